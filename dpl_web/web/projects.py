"""Projects: record one in a container, edit its notes, remove it (with its apps: a job takes
them out of service first); and how it reaches its private repositories (deploy key, token,
pinned host keys)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from dpl_web import repo_access, services
from dpl_web.errors import DplError
from dpl_web.web import ctx, forms
from dpl_web.web.containers import queued_redirect

bp = Blueprint("projects", __name__, url_prefix="/projects")


@bp.route("/new", methods=["GET", "POST"])
def new():
    def save(values):
        name = request.form.get("name", "")
        services.add_project(ctx(), name, request.form.get("container", ""), **values)
        flash(f"project {name}: recorded", "info")
        return redirect(url_for("projects.show", name=name))

    containers = [container["name"] for container in services.list_containers(ctx())]
    return forms.record_form("project", "project_form.html", save, names=("name", "container"), project=None,
                             containers=containers, selected=request.values.get("container"))


@bp.get("/<name>")
def show(name: str):
    context = ctx()
    return render_template("project.html", project=services.get_project(context, name),
                           apps=services.list_apps(context, project=name), access=repo_access.access(context, name),
                           jobs=services.list_jobs(context, project=name, limit=10))


@bp.route("/<name>/edit", methods=["GET", "POST"])
def edit(name: str):
    def save(values):
        changed = services.edit_project(ctx(), name, **values).changed
        flash(f"project {name}: {'saved' if changed else 'nothing changed'}", "info")
        return redirect(url_for("projects.show", name=name))

    project = services.get_project(ctx(), name)
    return forms.record_form("project", "project_form.html", save, record=project, project=project)


@bp.route("/<name>/delete", methods=["GET", "POST"])
def delete(name: str):
    project = services.get_project(ctx(), name)
    if request.method == "GET" or "confirmed" not in request.form:
        apps = ", ".join(project["apps"])
        return render_template(
            "confirm.html", title=f"Remove project {name}?", button="Remove", force=bool(project["apps"]),
            force_label="with its apps (taken out of service; their backups stay in the container)",
            detail=f"The project {name} in {project['container']} is removed from the registry."
                   + (f" Its apps: {apps}." if apps else " It has no apps."),
            back=url_for("projects.show", name=name))
    outcome = services.remove_project(ctx(), name, cascade="force" in request.form)
    if outcome.job is not None:
        return queued_redirect(outcome, f"project {name}: removal")
    flash(f"project {name}: removed", "info")
    return redirect(url_for("dashboard.index"))


# -- private repositories ---------------------------------------------------------------------


@bp.post("/<name>/git/key")
def git_key(name: str):
    rotate = request.form.get("rotate") == "1"
    outcome = repo_access.deploy_key(ctx(), name, rotate=rotate)
    if outcome.changed:
        flash(f"project {name}: a new deploy key. Add its public half to the repository's deploy keys"
              + (", deploy, then remove the old key there" if rotate else ""), "info")
    return redirect(url_for("projects.show", name=name, _anchor="access"))


@bp.post("/<name>/git/key/remove")
def git_key_remove(name: str):
    if repo_access.remove_deploy_key(ctx(), name).changed:
        flash(f"project {name}: deploy key forgotten (the next deploy deletes its copy); remove it from the git "
              "host too", "info")
    return redirect(url_for("projects.show", name=name, _anchor="access"))


@bp.post("/<name>/git/token")
def git_token(name: str):
    try:
        repo_access.set_token(ctx(), name, request.form.get("token", "").strip(),
                              user=request.form.get("user", "").strip() or None)
    except DplError as exc:  # the message never quotes the token
        flash(f"project {name}: {exc}", "warning")
    else:
        flash(f"project {name}: token set; deploys from https:// repositories send it", "info")
    return redirect(url_for("projects.show", name=name, _anchor="access"))


@bp.post("/<name>/git/token/remove")
def git_token_remove(name: str):
    if repo_access.remove_token(ctx(), name).changed:
        flash(f"project {name}: token forgotten", "info")
    return redirect(url_for("projects.show", name=name, _anchor="access"))


@bp.post("/<name>/git/host-keys/forget")
def git_host_key_forget(name: str):
    host = request.form.get("host", "")
    if repo_access.forget_host_key(ctx(), name, host).changed:
        flash(f"project {name}: {host}'s key forgotten; the next deploy pins the key it answers with", "info")
    return redirect(url_for("projects.show", name=name, _anchor="access"))
