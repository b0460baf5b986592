"""What DPL does to containers and apps, shared by the CLI and the web: each action checks
its input against the registry, then runs one playbook as a job (dpl_web.jobs).

The registry and LXD never disagree after an action: a container that could not be created
loses its registry row again, and a container is removed from the registry only once LXD
has deleted it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dpl_web.collection import lxd, validation
from dpl_web.jobs import EventHandler, Job, JobRunner
from dpl_web.registry import NotFound, Registry, app_request, split_app

CONTAINER_ACTIONS = ("create", "start", "stop", "restart", "reconfigure", "delete")


class ActionFailed(Exception):
    """The job ran and failed: ``job`` holds its outcome."""

    def __init__(self, message: str, job: Job):
        super().__init__(message)
        self.job = job


def _app_target(project: str, app: str) -> str:
    return f"app/{project}/{app}"


def _secrets(reg: Registry, project: str, app: str) -> list[str]:
    return [str(value) for value in reg.app_secrets(project, app).values()]


def _finish(job: Job, what: str) -> Job:
    if job.result is not None and not job.result.ok:
        raise ActionFailed(f"{what}: job {job.id} {job.result.status}: {job_summary(job)}", job)
    return job


def job_summary(job: Job) -> str:
    failures = [r for r in job.results if r["status"] in ("failed", "unreachable")]
    if failures:
        return failures[0]["msg"] or "failed"
    return job.result.status if job.result else "running"


# -- apps ----------------------------------------------------------------------------

def deploy(runner: JobRunner, app: str, ref: str | None = None, who: str | None = None,
           on_event: EventHandler | None = None) -> Job:
    """Deploy PROJECT/APP (at ``ref``, else the registry's ref)."""
    project, name = split_app(app)
    with Registry.open(runner.registry_path, create=False) as reg:
        record = reg.get_app(project, name)
        if ref is not None:
            validation.git_ref(ref, "ref")
        secrets = _secrets(reg, project, name)
    extravars = {"app": f"{project}/{name}"}
    if ref:
        extravars["ref"] = ref
    job = runner.submit("deploy", _app_target(project, name), "playbooks/deploy.yml", extravars,
                        who=who, on_event=on_event, secrets=secrets)
    return _finish(job, f"deploy of {project}/{name} at {ref or record['ref']}")


def rollback(runner: JobRunner, app: str, who: str | None = None, on_event: EventHandler | None = None) -> Job:
    project, name = split_app(app)
    with Registry.open(runner.registry_path, create=False) as reg:
        reg.get_app(project, name)
        secrets = _secrets(reg, project, name)
    job = runner.submit("rollback", _app_target(project, name), "playbooks/rollback.yml",
                        {"app": f"{project}/{name}"}, who=who, on_event=on_event, secrets=secrets)
    return _finish(job, f"rollback of {project}/{name}")


def restore(runner: JobRunner, app: str, backup: str, who: str | None = None,
            on_event: EventHandler | None = None) -> Job:
    project, name = split_app(app)
    validation.relative_path(backup, "backup")
    if "/" in backup or not backup.endswith(".tar.gz"):
        raise validation.ValidationError("backup", backup, "must be a backup's file name (dpl app backups)")
    with Registry.open(runner.registry_path, create=False) as reg:
        reg.get_app(project, name)
        secrets = _secrets(reg, project, name)
    job = runner.submit("restore", _app_target(project, name), "playbooks/restore.yml",
                        {"app": f"{project}/{name}", "backup": backup}, who=who, on_event=on_event,
                        secrets=secrets)
    return _finish(job, f"restore of {project}/{name} from {backup}")


def history(runner: JobRunner, app: str, who: str | None = None) -> dict[str, Any]:
    """The app's releases and backups, as its container has them."""
    project, name = split_app(app)
    with Registry.open(runner.registry_path, create=False) as reg:
        reg.get_app(project, name)
    job = runner.submit("app-info", _app_target(project, name), "playbooks/app_info.yml",
                        {"app": f"{project}/{name}"}, who=who)
    _finish(job, f"listing the releases of {project}/{name}")
    found = job.result.task_results("dpl.platform.app_info")
    if not found:
        return {"releases": [], "backups": [], "live_release": None, "previous_release": None}
    return {key: found[0].get(key) for key in ("releases", "backups", "live_release", "previous_release")}


def deploy_request(runner: JobRunner, request: Any, who: str | None = None,
                   on_event: EventHandler | None = None, say: Callable[[str], None] = lambda line: None) -> Job:
    """The seed's request: ``{"name", "project", "repo"}`` plus optional fields.

    Registers the app (or updates it) through the registry's validation, creates its
    container first when the project has none yet (a container named after the project,
    or the request's ``container``), then deploys it.
    """
    fields = app_request(request)
    project, name = fields.pop("project"), fields.pop("name")
    container = fields.pop("container", None)
    with Registry.open(runner.registry_path, create=False) as reg:
        try:
            project_record = reg.get_project(project)
            container = project_record["container"]
        except NotFound:
            container = container or project
        try:
            reg.get_container(container)
            container_exists = True
        except NotFound:
            container_exists = False
    if not container_exists:
        say(f"container {container} is not in the registry yet: creating it")
        create_container(runner, container, who=who, on_event=on_event)
    with Registry.open(runner.registry_path, create=False) as reg, reg.transaction():
        try:
            reg.get_project(project)
        except NotFound:
            reg.add_project(project, container)
            say(f"project {project} recorded in container {container}")
        env, secret_env = fields.pop("env", None), fields.pop("secret_env", None)
        try:
            reg.get_app(project, name)
            reg.update_app(project, name, env=env, secret_env=secret_env, **fields)
            say(f"app {project}/{name} updated in the registry")
        except NotFound:
            reg.add_app(project, name, env=env, secret_env=secret_env, **fields)
            say(f"app {project}/{name} recorded in the registry")
    return deploy(runner, f"{project}/{name}", who=who, on_event=on_event)


# -- containers ----------------------------------------------------------------------

def container_action(runner: JobRunner, name: str, action: str, force: bool = False, who: str | None = None,
                     on_event: EventHandler | None = None) -> Job:
    """Run playbooks/container.yml for a container the registry knows."""
    if action not in CONTAINER_ACTIONS:
        raise validation.ValidationError("action", action, "must be one of " + ", ".join(CONTAINER_ACTIONS))
    with Registry.open(runner.registry_path, create=False) as reg:
        reg.get_container(name)
    extravars = {"container": name, "operation": action, "force": bool(force)}
    job = runner.submit(f"container-{action}", f"container/{name}", "playbooks/container.yml", extravars,
                        who=who, on_event=on_event)
    return _finish(job, f"{action} of container {name}")


def addresses_in_use(host: dict[str, Any]) -> set[str]:
    """IPv4 addresses LXD has handed out on the host's bridge: fixed ones and DHCP leases.

    The registry knows its own containers' addresses; these are the others (containers made
    outside DPL, or by another registry), which a new container must not be given.
    """
    used: set[str] = set()
    try:
        with lxd.LXDClient(endpoint=host["endpoint"], client_cert=host.get("client_cert"),
                           client_key=host.get("client_key"), server_cert=host.get("server_cert"),
                           timeout=10) as client:
            for instance in client.get("/1.0/instances", {"recursion": 1}):
                for device in (instance.get("expanded_devices") or instance.get("devices") or {}).values():
                    if device.get("type") == "nic" and device.get("ipv4.address"):
                        used.add(device["ipv4.address"])
            for lease in client.get(f"/1.0/networks/{host['bridge']}/leases"):
                if lease.get("address") and ":" not in lease["address"]:
                    used.add(lease["address"])
    except lxd.LXDError:
        pass  # LXD unreachable: the create job itself will say so
    return used


def create_container(runner: JobRunner, name: str, host: str = "local", who: str | None = None,
                     on_event: EventHandler | None = None, **fields: Any) -> Job:
    """Record the container, create it in LXD. When that fails, the container is deleted
    again if LXD has it, and the record goes: registry and LXD never disagree."""
    with Registry.open(runner.registry_path, create=False) as reg:
        avoid = addresses_in_use(reg.get_host(host)) if not fields.get("ipv4") else set()
        reg.add_container(name, host, avoid_ipv4=avoid, **fields)
    try:
        return container_action(runner, name, "create", who=who, on_event=on_event)
    except ActionFailed:
        try:
            container_action(runner, name, "delete", force=True, who=who, on_event=on_event)
        except ActionFailed:
            # LXD still has it: keep the record, which says what LXD reported.
            raise
        with Registry.open(runner.registry_path, create=False) as reg:
            reg.remove_container(name, cascade=True)
        raise


def delete_container(runner: JobRunner, name: str, force: bool = False, who: str | None = None,
                     on_event: EventHandler | None = None) -> Job:
    """Delete it in LXD (refused while it has apps, unless forced), then from the registry."""
    job = container_action(runner, name, "delete", force=force, who=who, on_event=on_event)
    # The playbook refused unless the container had no apps or force was given: what is
    # left in the record (empty projects, or the forced apps) goes with it.
    with Registry.open(runner.registry_path, create=False) as reg:
        reg.remove_container(name, cascade=True)
    return job


def remove_app(runner: JobRunner, app: str, who: str | None = None,
               on_event: EventHandler | None = None) -> Job:
    """Take the app out of service (service, releases, vhosts), then remove its record.

    Its backups stay in the container's /root/backups.
    """
    project, name = split_app(app)
    with Registry.open(runner.registry_path, create=False) as reg:
        reg.get_app(project, name)
    job = runner.submit("app-remove", _app_target(project, name), "playbooks/app_remove.yml",
                        {"app": f"{project}/{name}"}, who=who, on_event=on_event)
    _finish(job, f"removal of {project}/{name}")
    with Registry.open(runner.registry_path, create=False) as reg:
        reg.remove_app(project, name)
    return job


def remove_project(runner: JobRunner, name: str, who: str | None = None,
                   on_event: EventHandler | None = None) -> tuple[dict[str, list[str]], list[Job]]:
    """Take every app of the project out of service (one app-remove job each, stopping at
    the first that fails: its record stays), then remove the project's record.

    Returns what was removed from the registry and the jobs that ran.
    """
    with Registry.open(runner.registry_path, create=False) as reg:
        reg.get_project(name)
        apps = [app["name"] for app in reg.list_apps(project=name)]
    jobs = [remove_app(runner, f"{name}/{app}", who=who, on_event=on_event) for app in apps]
    with Registry.open(runner.registry_path, create=False) as reg:
        removed = reg.remove_project(name, cascade=True)
    removed["apps"] = [f"{name}/{app}" for app in apps]
    return removed, jobs


def apply_domains(runner: JobRunner, app: str, removed: list[str], added: list[str], who: str | None = None,
                  on_event: EventHandler | None = None) -> Job | None:
    """Make nginx (and DNS, when DPL manages it) follow a change of the app's domains: a
    removed domain loses its vhost and certificate, an added one gets them, pointing at the
    app's container and port. Nothing to do (None) for an app on another LXD host: nginx
    runs on this one (docs/host.md)."""
    project, name = split_app(app)
    with Registry.open(runner.registry_path, create=False) as reg:
        record = reg.get_app(project, name)
        container = reg.get_container(record["container"])
        host = reg.get_host(record["host"])
    if host["endpoint"] != "unix:":
        return None
    # The same vhost name the deploy and removal playbooks use for the app.
    vhost_name = f"{project}-{name}"
    apps = []
    if removed:
        apps.append({"name": vhost_name, "domains": removed, "state": "absent"})
    if added:
        # The port that serves now first; its other ports (slots of deploys without
        # downtime) as backups nginx tries when it refuses.
        live = record["live_port"] or record["port"]
        apps.append({"name": vhost_name, "domains": added, "ipv4": container["ipv4"], "port": live,
                     "backup_ports": [port for port in record["ports"] if port != live]})
    if not apps:
        return None
    extravars = {"nginx_edge_apps": apps, "nginx_edge_public_ipv4": host["public_ipv4"] or ""}
    job = runner.submit("app-domains", _app_target(project, name), "playbooks/vhost.yml", extravars,
                        who=who, on_event=on_event)
    return _finish(job, f"the domains of {project}/{name}")
