"""Apps: record, edit, their variables (a secret's value is write-only), and the actions:
deploy (a branch, tag or commit), rollback, restore from a backup, remove, and the push
webhook's secret."""

from __future__ import annotations

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for

from dpl_web import services
from dpl_web.errors import DplError, ValidationError
from dpl_web.web import ctx, forms
from dpl_web.web.containers import queued_redirect

bp = Blueprint("apps", __name__, url_prefix="/apps")


def _name(project: str, app: str) -> str:
    return f"{project}/{app}"


@bp.route("/new", methods=["GET", "POST"])
def new():
    def save(values):
        project, name = request.form.get("project", ""), request.form.get("name", "")
        try:
            services.add_app(ctx(), f"{project}/{name}", values.pop("repo", ""), **values)
        except ValidationError as exc:
            if exc.field == "app":
                exc.field = "name"  # the form's name for it
            raise
        flash(f"app {project}/{name}: recorded; deploy it when ready", "info")
        return redirect(url_for("apps.show", project=project, app=name))

    projects = [project["name"] for project in services.list_projects(ctx())]
    return forms.record_form("app", "app_form.html", save, names=("project", "name", "repo"), app=None,
                             projects=projects, selected=request.values.get("project"))


@bp.get("/<project>/<app>")
def show(project: str, app: str, webhook: dict | None = None, env_errors: dict | None = None):
    context = ctx()
    record = services.get_app(context, _name(project, app))
    container = services.get_container(context, record["container"])
    jobs = services.list_jobs(context, app=_name(project, app), limit=10)
    seen = services.latest_samples(context, [f"app/{project}/{app}", f"container/{record['container']}"])
    sample = seen.get(f"app/{project}/{app}")
    if f"container/{record['container']}" in seen:  # what monitoring saw last, over what the last job recorded
        container["status"] = seen[f"container/{record['container']}"]["status"]
    return render_template("app.html", app=record, container=container, jobs=jobs, sample=sample,
                           release=services.live_release_job(context, _name(project, app)),
                           reach=services.how_to_reach(record, container),
                           webhook_on=services.webhook_enabled(context, _name(project, app)),
                           webhook=webhook, env_errors=env_errors or {}), 422 if env_errors else 200


@bp.route("/<project>/<app>/edit", methods=["GET", "POST"])
def edit(project: str, app: str):
    def save(values):
        outcome = services.edit_app(ctx(), _name(project, app), **values)
        if outcome.job is not None:
            return queued_redirect(outcome, f"app {project}/{app}: saved; the domains' vhosts")
        flash(f"app {project}/{app}: {'saved (the next deploy uses it)' if outcome.changed else 'nothing changed'}",
              "info")
        return redirect(url_for("apps.show", project=project, app=app))

    record = services.get_app(ctx(), _name(project, app))
    return forms.record_form("app", "app_form.html", save, record=record, app=record)


@bp.post("/<project>/<app>/env")
def env(project: str, app: str):
    """Set a variable (plain or secret), or remove one (``unset``)."""
    name = request.form.get("name", "")
    try:
        if "unset" in request.form:
            services.edit_app(ctx(), _name(project, app), unset_env=[request.form["unset"]])
            flash(f"{request.form['unset']}: removed (the next deploy drops it)", "info")
        elif "secret" in request.form:
            services.edit_app(ctx(), _name(project, app), secret_env={name: request.form.get("value", "")})
            flash(f"{name}: secret set (the next deploy uses it)", "info")
        else:
            services.edit_app(ctx(), _name(project, app), env={name: request.form.get("value", "")})
            flash(f"{name}: set (the next deploy uses it)", "info")
    except DplError as exc:
        return show(project, app, env_errors={"": str(exc)})  # a secret's value is never in it
    return redirect(url_for("apps.show", project=project, app=app) + "#env")


@bp.get("/<project>/<app>/logs")
def logs(project: str, app: str):
    """The app's service journal, following live (the page asks for what came after the last
    entry every second)."""
    since = request.args.get("since") or None
    found = services.app_logs(ctx(), _name(project, app), request.args.get("lines", "200"), since)
    return render_template("logs.html", app=services.get_app(ctx(), _name(project, app)), entries=found["entries"],
                           cursor=found["cursor"] or "", since=since or "",
                           deploys=services.deploy_outputs(ctx(), _name(project, app)))


@bp.get("/<project>/<app>/logs.json")
def logs_after(project: str, app: str):
    after = request.args.get("after") or None
    found = services.app_logs(ctx(), _name(project, app), after=after) if after else {"entries": [], "cursor": None}
    return jsonify(found)


@bp.post("/<project>/<app>/deploy")
def deploy(project: str, app: str):
    ref = request.form.get("ref", "").strip() or None
    outcome = services.deploy(ctx(), _name(project, app), ref)
    return queued_redirect(outcome, f"app {project}/{app}: deploy" + (f" of {ref}" if ref else ""))


@bp.route("/<project>/<app>/rollback", methods=["GET", "POST"])
def rollback(project: str, app: str):
    services.get_app(ctx(), _name(project, app))
    if request.method == "GET" or "confirmed" not in request.form:
        return render_template("confirm.html", title=f"Roll {project}/{app} back?", button="Roll back",
                               detail="The previous release is switched back in and the current one set aside.",
                               back=url_for("apps.show", project=project, app=app))
    return queued_redirect(services.rollback(ctx(), _name(project, app)), f"app {project}/{app}: rollback")


@bp.route("/<project>/<app>/backups", methods=["GET", "POST"])
def backups(project: str, app: str):
    """The backups as the container has them: asking runs a short job (so it is a POST: a
    link from elsewhere cannot make jobs), and the page waits for it."""
    record = services.get_app(ctx(), _name(project, app))
    if request.method == "GET":
        return render_template("backups.html", app=record, backups=None, releases=None)
    found = services.app_history(ctx(), _name(project, app))
    return render_template("backups.html", app=record, backups=found.get("backups") or [],
                           releases=found.get("releases") or [])


@bp.post("/<project>/<app>/restore")
def restore(project: str, app: str):
    backup = request.form.get("backup", "")
    if "confirmed" not in request.form:
        return render_template("confirm.html", title=f"Restore {project}/{app} from {backup}?", button="Restore",
                               hidden={"backup": backup},
                               detail="The app is rebuilt from this backup and switched in; the release it "
                                      "replaces is backed up first.",
                               back=url_for("apps.backups", project=project, app=app))
    return queued_redirect(services.restore(ctx(), _name(project, app), backup), f"app {project}/{app}: restore")


@bp.route("/<project>/<app>/remove", methods=["GET", "POST"])
def remove(project: str, app: str):
    record = services.get_app(ctx(), _name(project, app))
    if request.method == "GET" or "confirmed" not in request.form:
        domains = ", ".join(record["domains"]) or "none"
        return render_template("confirm.html", title=f"Remove {project}/{app}?", button="Remove",
                               detail=f"The app's service stops, its files and vhosts ({domains}) go; its backups "
                                      f"stay in {record['container']}.",
                               back=url_for("apps.show", project=project, app=app))
    outcome = services.remove_app(ctx(), _name(project, app))
    if outcome.job is None:
        flash(f"app {project}/{app}: removed", "info")
        return redirect(url_for("dashboard.index"))
    return queued_redirect(outcome, f"app {project}/{app}: removal")


@bp.post("/<project>/<app>/webhook")
def webhook(project: str, app: str):
    """Turn the push webhook on with a new secret (shown on this answer only), or off."""
    if "off" in request.form:
        services.remove_webhook(ctx(), _name(project, app))
        flash(f"{project}/{app}: webhook off (every call is refused)", "info")
        return redirect(url_for("apps.show", project=project, app=app))
    record = services.set_webhook(ctx(), _name(project, app)).record
    record["url"] = request.host_url.rstrip("/") + record["path"]
    return show(project, app, webhook=record)
