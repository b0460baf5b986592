"""The dashboard: hosts, containers, projects and apps at a glance, from the registry alone
(no LXD call), with the last job of each and how to reach each app."""

from __future__ import annotations

from flask import Blueprint, render_template

from dpl_web import services
from dpl_web.web import ctx

bp = Blueprint("dashboard", __name__)


@bp.get("/")
def index():
    seen = services.overview(ctx())
    containers = {container["name"]: container for container in seen["containers"]}
    apps_by_project: dict[str, list] = {}
    for app in seen["apps"]:
        target = f"app/{app['project']}/{app['name']}"
        app["last_job"] = seen["last_jobs"].get(target)
        app["release"] = seen["releases"].get(target)
        app["reach"] = services.how_to_reach(app, containers.get(app["container"]))
        app["sample"] = seen["samples"].get(target)
        apps_by_project.setdefault(app["project"], []).append(app)
    for container in seen["containers"]:
        container["last_job"] = seen["last_jobs"].get(f"container/{container['name']}")
        container["sample"] = seen["samples"].get(f"container/{container['name']}")
    # Drift and troubles still present, as the last monitoring round left them (the worker's,
    # or dpl status --record).
    drift = [{"kind": key.split("/")[1], "target": key.split("/", 2)[2], **state}
             for key, state in sorted(seen["states"].items())
             if key.startswith(("drift/", "trouble/")) and state["state"] == "present"]
    down = [app for app in seen["apps"] if app["sample"] and not app["sample"].get("up")]
    return render_template("dashboard.html", hosts=seen["hosts"], containers=seen["containers"],
                           projects=seen["projects"], apps=seen["apps"], apps_by_project=apps_by_project,
                           drift=drift, down=down, alerts=seen["alerts"])
