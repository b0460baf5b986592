"""Containers: create (a job), edit the record, and the actions (start, stop, restart,
reconfigure, delete) with a confirmation where they take something away."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from dpl_web import services
from dpl_web.jobs.kinds import CONTAINER_OPERATIONS
from dpl_web.web import ctx, forms

bp = Blueprint("containers", __name__, url_prefix="/containers")

# Actions that take something away ask first, on a page of their own.
DESTRUCTIVE = ("stop", "restart", "delete")
ACTIONS = tuple(action for action in CONTAINER_OPERATIONS if action != "create")


def queued_redirect(outcome: services.Outcome, what: str):
    """After an action that queued a job: say so, and show the job."""
    for note in outcome.notes:
        flash(note, "info")
    flash(f"{what}: job {outcome.job['id']} queued", "info")
    return redirect(url_for("jobs.show", job_id=outcome.job["id"]))


@bp.route("/new", methods=["GET", "POST"])
def new():
    def save(values):
        outcome = services.create_container(ctx(), request.form.get("name", ""), request.form.get("host", "local"),
                                            **values)
        return queued_redirect(outcome, f"container {outcome.record['name']}: create")

    hosts = [host["name"] for host in services.list_hosts(ctx())]
    return forms.record_form("container", "container_form.html", save, names=("name", "host"), container=None,
                             hosts=hosts)


@bp.get("/<name>")
def show(name: str):
    context = ctx()
    container = services.get_container(context, name)
    # What monitoring saw last, over what the last job recorded.
    sample = services.latest_samples(context, [f"container/{name}"]).get(f"container/{name}")
    container["status"] = sample["status"] if sample else container["status"]
    return render_template("container.html", container=container, actions=ACTIONS, destructive=DESTRUCTIVE,
                           projects=services.list_projects(context, container=name),
                           apps=services.list_apps(context, container=name),
                           jobs=services.list_jobs(context, container=name, limit=10))


@bp.route("/import/<name>", methods=["GET", "POST"])
def import_(name: str):
    """A container made outside DPL (the dashboard's unknown-container drift): what would be
    recorded and the apps found in it, then, confirmed, the import."""
    if request.method == "GET" or "confirmed" not in request.form:
        found = services.container_in_lxd(ctx(), name)
        limits = ", ".join(f"{key} {found[key]}" for key in ("cpu", "memory", "disk") if found[key]) or "no limits"
        offers = "; ".join(f"{offer['path']} ({offer['add']})" for offer in found["apps"]) or "none"
        return render_template("confirm.html", title=f"Import container {name}?", button="Import",
                               button_class="primary",
                               detail=f"It is recorded as LXD has it ({found['status']}, {found['ipv4']}, {limits}, "
                                      f"profiles {', '.join(found['profiles'])}), then reconfigured: its address "
                                      f"pinned, /root/apps, /root/backups and /root/deploy laid out where missing. "
                                      f"Apps found in it, offered (record each with the command shown): {offers}.",
                               back=url_for("dashboard.index"))
    outcome = services.import_container(ctx(), name)
    if outcome.job is None:
        for note in outcome.notes:
            flash(note, "info")
        return redirect(url_for("containers.show", name=name))
    return queued_redirect(outcome, f"container {name}: import")


@bp.route("/<name>/edit", methods=["GET", "POST"])
def edit(name: str):
    def save(values):
        changed = services.edit_container(ctx(), name, **values).changed
        flash(f"container {name}: " + ("saved (a reconfigure applies it to LXD)" if changed else "nothing changed"),
              "info")
        return redirect(url_for("containers.show", name=name))

    container = services.get_container(ctx(), name)
    return forms.record_form("container", "container_form.html", save, record=container, container=container)


@bp.route("/<name>/<action>", methods=["GET", "POST"])
def act(name: str, action: str):
    if action not in ACTIONS:
        abort(404)
    container = services.get_container(ctx(), name)
    if request.method == "GET" or (action in DESTRUCTIVE and "confirmed" not in request.form):
        if action not in DESTRUCTIVE and request.method == "GET":
            abort(405)
        apps = services.list_apps(ctx(), container=name)
        return render_template("confirm.html", title=f"{action.capitalize()} container {name}?",
                               detail=_consequence(action, container, apps), button=action.capitalize(),
                               force=action == "delete" and bool(apps),
                               back=url_for("containers.show", name=name))
    outcome = services.container_action(ctx(), name, action, force="force" in request.form)
    return queued_redirect(outcome, f"container {name}: {action}")


def _consequence(action: str, container: dict, apps: list[dict]) -> str:
    served = ", ".join(f"{app['project']}/{app['name']}" for app in apps) or "no app"
    if action == "delete":
        return (f"The container {container['name']} ({container['ipv4']}) and everything in it are deleted, its "
                f"record too. It serves {served}." + (" Tick 'with its apps' to delete them with it." if apps else ""))
    return f"{served} in {container['name']} will be unreachable until it runs again."
