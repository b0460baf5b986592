"""What each kind of job does when the worker runs it: which playbooks, with which extra
vars (from the job's params, recorded when it was queued), and what the registry records
afterwards. The services (dpl_web.services) queue jobs; only the worker runs these.

A kind returns the job's status. The registry and LXD never disagree after a job: a
container that could not be created loses its record again, and a record goes only once
its container or app is gone.
"""

from __future__ import annotations

from collections.abc import Callable

from dpl_web.errors import NotFound
from dpl_web.jobs.run import JobRun
from dpl_web.registry import split_app


def deploy(run: JobRun) -> str:
    # The module writes its steps and output as they happen for this job to follow.
    extravars = {"app": run.params["app"], "dpl_progress_job": run.id}
    if run.params.get("ref"):
        extravars["ref"] = run.params["ref"]
    with run.following_progress(run.params["app"]):
        return run.playbook("playbooks/deploy.yml", extravars)


def rollback(run: JobRun) -> str:
    return run.playbook("playbooks/rollback.yml", {"app": run.params["app"]})


def restore(run: JobRun) -> str:
    return run.playbook("playbooks/restore.yml", {"app": run.params["app"], "backup": run.params["backup"]})


def app_info(run: JobRun) -> str:
    """The app's releases and backups as its container has them (the job's result)."""
    status = run.playbook("playbooks/app_info.yml", {"app": run.params["app"]})
    found = run.task_results("dpl.platform.app_info")
    keys = ("releases", "backups", "live_release", "previous_release")
    run.result = {key: found[0].get(key) for key in keys} if found else {
        "releases": [], "backups": [], "live_release": None, "previous_release": None}
    return status


def _remove_app(run: JobRun, app: str) -> str:
    status = run.playbook("playbooks/app_remove.yml", {"app": app})
    if status == "successful":
        try:
            run.reg.remove_app(*split_app(app))
        except NotFound:
            pass  # its record went meanwhile
        run.note(f"the record of {app} is removed (its backups stay in the container)")
    return status


def app_remove(run: JobRun) -> str:
    """Take the app out of service (service, releases, vhosts), then remove its record."""
    return _remove_app(run, run.params["app"])


def project_remove(run: JobRun) -> str:
    """Take every app of the project out of service, stopping at the first that fails (its
    record stays), then remove the project's record."""
    project = run.params["project"]
    for app in run.params["apps"]:
        status = _remove_app(run, app)
        if status != "successful":
            return status
    try:
        run.reg.remove_project(project, cascade=True)
    except NotFound:
        pass
    run.note(f"the record of project {project} is removed")
    return "successful"


def container(run: JobRun) -> str:
    """playbooks/container.yml: create, start, stop, restart, reconfigure or delete."""
    name, operation = run.params["container"], run.params["operation"]
    status = run.playbook("playbooks/container.yml", {"container": name, "operation": operation,
                                                      "force": bool(run.params.get("force"))})
    if operation == "create" and status != "successful":
        run.note(f"the create did not succeed: deleting container {name} again, so LXD and the registry agree")
        undo = run.playbook("playbooks/container.yml", {"container": name, "operation": "delete", "force": True},
                            cleanup=True)
        if undo == "successful":
            # What was queued for the container (the deploy of a JSON request) cannot run.
            for waiting in run.reg.list_jobs(container=name, status="queued", limit=1000):
                run.reg.request_cancel(waiting["id"], who=f"job {run.id}, whose create of container {name} failed")
            run.reg.remove_container(name, cascade=True)
            run.note(f"the record of container {name} is removed")
        else:
            run.note(f"LXD still has container {name}: its record stays, with what LXD reported")
    elif operation == "delete" and status == "successful":
        # The playbook refused unless the container had no apps or force was given: what is
        # left in the record (empty projects, or the forced apps) goes with it.
        try:
            run.reg.remove_container(name, cascade=True)
        except NotFound:
            pass
        run.note(f"the record of container {name} is removed")
    return status


def app_domains(run: JobRun) -> str:
    """Make nginx (and DNS, when DPL manages it) follow a change of the app's domains."""
    return run.playbook("playbooks/vhost.yml", {"nginx_edge_apps": run.params["nginx_edge_apps"],
                                                "nginx_edge_public_ipv4": run.params["nginx_edge_public_ipv4"]})


CONTAINER_OPERATIONS = ("create", "start", "stop", "restart", "reconfigure", "delete")

KINDS: dict[str, Callable[[JobRun], str]] = {
    "deploy": deploy,
    "rollback": rollback,
    "restore": restore,
    "app-info": app_info,
    "app-remove": app_remove,
    "project-remove": project_remove,
    "app-domains": app_domains,
    **{f"container-{operation}": container for operation in CONTAINER_OPERATIONS},
}

# Kinds whose queued jobs a newer one of the same target replaces (the newest request wins).
COALESCING = ("deploy",)
# The jobs that put a release live: the newest successful one says what an app serves, and a
# failed one is an alert.
RELEASE_KINDS = ("deploy", "rollback", "restore")
