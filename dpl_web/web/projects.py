"""Projects: record one in a container, edit its notes, remove it (with its apps: a job takes
them out of service first)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from dpl_web import services
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
                           apps=services.list_apps(context, project=name),
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
