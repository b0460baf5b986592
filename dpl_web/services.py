"""Every operation a user can ask DPL for, in one place: the CLI, the JSON API and the web
pages are thin adapters over these functions.

Each service validates its input (through the registry, which calls the one validation
layer), writes the registry in one transaction, queues the job that does the work when
there is one, and returns an :class:`Outcome`: the record, whether anything changed, and
the job. A service never waits for a job (except :func:`app_history`, a query answered by
one): the worker (dpl_web.jobs.worker) runs it, and anyone can follow it
(dpl_web.jobs.follow). Errors are dpl_web.errors' kinds, whose hints name no client.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpl_web import paths, webhooks
from dpl_web.collection import host_client, lxd, releases, validation
from dpl_web.errors import Conflict, DplError, Forbidden, JobFailed, NotFound
from dpl_web.jobs import follow, worker
from dpl_web.jobs.kinds import COALESCING, CONTAINER_OPERATIONS, RELEASE_KINDS
from dpl_web.registry import Registry, app_request, check_fields, split_app

DEFAULT_TIMEOUT = 3600  # seconds a job may run before it is stopped


@dataclass(frozen=True)
class Context:
    """Who asks, and which registry: what every service needs besides its arguments."""

    registry_path: Path
    who: str
    # Start a worker when a job is queued and none runs (the CLI and the tests); the web
    # server relies on the one scripts/setup keeps running.
    start_worker: bool = True

    @classmethod
    def default(cls, registry_path: Path | str | None = None, who: str | None = None) -> Context:
        return cls(Path(registry_path) if registry_path else paths.registry_path(), who or default_user())

    def open(self) -> Registry:
        """The registry, which must exist (only ``dpl init`` creates one)."""
        return Registry.open(self.registry_path, create=False)


@dataclass
class Outcome:
    """What a service did: the ``record`` (or the list, or what was removed), whether
    anything ``changed``, the ``job`` it queued (its record), the queued jobs that job
    replaced, and ``notes``: what was done along the way, for humans."""

    record: Any = None
    changed: bool = False
    job: dict[str, Any] | None = None
    replaced: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def default_user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return str(os.getuid())


def audited(action: str, target: str) -> Callable[[Callable[..., Outcome]], Callable[..., Outcome]]:
    """Record in the audit trail who did ``action`` to ``target`` (a format of the service's
    first argument: ``"app/{}"``; a queued job's own target when there is one), when the
    service changed something or queued a job. The detail names the fields given, never
    their values (a value may be a secret)."""
    def wrap(service: Callable[..., Outcome]) -> Callable[..., Outcome]:
        @functools.wraps(service)
        def run(ctx: Context, *args: Any, **kwargs: Any) -> Outcome:
            outcome = service(ctx, *args, **kwargs)
            if outcome.changed or outcome.job:
                detail = {"fields": sorted(key for key, value in kwargs.items() if value not in (None, [], {}, ()))}
                where = outcome.job["target"] if outcome.job else target.format(*args[:1])
                with ctx.open() as reg:
                    reg.add_audit(ctx.who, action, where, detail if detail["fields"] else None,
                                  outcome.job["id"] if outcome.job else None)
            return outcome
        return run
    return wrap


def list_audit(ctx: Context, **filters: Any) -> list[dict[str, Any]]:
    """The audit trail, newest first: filters ``who``, ``target`` (a prefix), ``limit``."""
    with ctx.open() as reg:
        return reg.list_audit(**filters)


def _queue(ctx: Context, kind: str, target: str, params: Mapping[str, Any],
           timeout: int = DEFAULT_TIMEOUT) -> Outcome:
    """Queue a job (a deploy replaces the queued deploys of its app) and see that a worker
    will run it."""
    with ctx.open() as reg:
        job_id, replaced = reg.queue_job(kind, target, ctx.who, params=params, timeout=timeout,
                                         coalesce=kind in COALESCING)
        job = reg.get_job(job_id)
    if ctx.start_worker:
        worker.ensure_worker(ctx.registry_path)
    else:
        worker.wake(ctx.registry_path)
    notes = [f"job {job_id} replaces queued job {old}, which will not run" for old in replaced]
    return Outcome(job=job, changed=True, replaced=replaced, notes=notes)


def wait(ctx: Context, job: dict[str, Any], on_event: Any = None) -> dict[str, Any]:
    """Wait for a job to finish (following its events); :class:`JobFailed` unless it succeeded."""
    done = follow.follow(ctx.registry_path, job["id"], on_event)
    if done["status"] != "successful":
        raise JobFailed(f"{done['kind']} of {done['target']}: job {done['id']} {done['status']}: "
                        f"{done['summary'] or done['status']}", done)
    return done


# -- the whole picture ------------------------------------------------------------------

def overview(ctx: Context) -> dict[str, Any]:
    """Everything a dashboard shows, from the registry alone, in one snapshot: hosts,
    containers, projects, apps, the newest job of every target (``last_jobs``), the newest
    successful release job of every app (``releases``, by target), and what monitoring saw
    last (``samples`` and ``states``, by target: dpl_web.monitor)."""
    with ctx.open() as reg, reg.snapshot():
        containers, apps = reg.list_containers(), reg.list_apps()
        targets = [f"container/{c['name']}" for c in containers] + [f"app/{a['project']}/{a['name']}" for a in apps]
        return {"hosts": reg.list_hosts(), "containers": containers, "projects": reg.list_projects(), "apps": apps,
                "last_jobs": reg.latest_jobs(), "releases": reg.latest_jobs(kinds=RELEASE_KINDS, status="successful"),
                "samples": reg.latest_samples(targets), "states": reg.states(), "alerts": reg.list_alerts(10)}


def latest_samples(ctx: Context, targets: list[str]) -> dict[str, dict[str, Any]]:
    """What monitoring saw last of each of ``targets`` (dpl_web.monitor)."""
    with ctx.open() as reg:
        return reg.latest_samples(targets)


def how_to_reach(app: dict[str, Any], container: dict[str, Any] | None) -> dict[str, Any]:
    """How to reach a production app: its public URLs, its address in the container's
    network, its folder, its journal and a shell in its folder; every path and unit from the
    deploy pipeline's one definition (releases.AppPaths)."""
    app_paths = releases.AppPaths(app["project"], app["name"])
    name = app["container"]
    ipv4 = container["ipv4"] if container else None
    port = app["live_port"] or app["port"]
    slots = app_paths.slot_template.replace("@.service", "@*")
    return {
        "urls": [f"https://{domain}/" for domain in app["domains"]],
        "address": f"{ipv4}:{port}" if ipv4 else None,
        "folder": app_paths.live,
        "journal": f"lxc exec {name} -- journalctl -u {app_paths.unit} -u '{slots}' -n 100 -f",
        "shell": f"lxc exec {name} --cwd {app_paths.live} -- sh -l",
    }


# -- hosts ---------------------------------------------------------------------------


def list_hosts(ctx: Context) -> list[dict[str, Any]]:
    with ctx.open() as reg:
        return reg.list_hosts()


def get_host(ctx: Context, name: str) -> dict[str, Any]:
    with ctx.open() as reg:
        return reg.get_host(name)


@audited("host.add", "host/{}")
def add_host(ctx: Context, name: str, **fields: Any) -> Outcome:
    with ctx.open() as reg:
        return Outcome(reg.add_host(name, **fields), True)


@audited("host.edit", "host/{}")
def edit_host(ctx: Context, name: str, **changes: Any) -> Outcome:
    with ctx.open() as reg:
        before = reg.total_changes
        host = reg.update_host(name, **changes)
        return Outcome(host, reg.total_changes != before)


@audited("host.remove", "host/{}")
def remove_host(ctx: Context, name: str, cascade: bool = False) -> Outcome:
    """Remove a host's record (with ``cascade``, its containers', projects' and apps' too).
    LXD is not touched."""
    with ctx.open() as reg:
        return Outcome(reg.remove_host(name, cascade=cascade), True)


# -- containers ----------------------------------------------------------------------


def list_containers(ctx: Context, host: str | None = None) -> list[dict[str, Any]]:
    with ctx.open() as reg:
        return reg.list_containers(host=host)


def get_container(ctx: Context, name: str) -> dict[str, Any]:
    with ctx.open() as reg:
        return reg.get_container(name)


@audited("container.record", "container/{}")
def record_container(ctx: Context, name: str, host: str = "local", **fields: Any) -> Outcome:
    """Record a container that exists (or will be made) outside DPL's jobs."""
    with ctx.open() as reg:
        return Outcome(reg.add_container(name, host, **fields), True)


@audited("container.edit", "container/{}")
def edit_container(ctx: Context, name: str, **changes: Any) -> Outcome:
    """Change a container's record; ``reconfigure`` applies limits, profiles and address."""
    with ctx.open() as reg:
        before = reg.total_changes
        container = reg.update_container(name, **changes)
        return Outcome(container, reg.total_changes != before)


def set_container_status(ctx: Context, name: str, status: str, ipv4: str | None = None) -> Outcome:
    """Record what LXD says of a container; changed when its status or address differ
    (the time of the report moves on every call)."""
    with ctx.open() as reg:
        before = reg.get_container(name)
        container = reg.set_container_status(name, status, ipv4=ipv4)
    return Outcome(container, (container["status"], container["ipv4"]) != (before["status"], before["ipv4"]))


@audited("container.forget", "container/{}")
def forget_container(ctx: Context, name: str, cascade: bool = False) -> Outcome:
    """Remove a container's record only (LXD keeps the container)."""
    with ctx.open() as reg:
        return Outcome(reg.remove_container(name, cascade=cascade), True)


def addresses_in_use(host: dict[str, Any]) -> set[str]:
    """IPv4 addresses LXD has handed out on the host's bridge: fixed ones and DHCP leases.

    The registry knows its own containers' addresses; these are the others (containers made
    outside DPL, or by another registry), which a new container must not be given.
    """
    used: set[str] = set()
    try:
        with host_client(host, 10) as client:
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


def container_in_lxd(ctx: Context, name: str, host: str = "local") -> dict[str, Any]:
    """What importing a container LXD has and the registry does not would record: its
    address (pinned or leased), limits, profiles and status, as LXD has them. Refused (with
    what to do) when the registry has it already or it is not on the host's bridge."""
    from dpl_web.monitor import state_ipv4

    validation.container_name(name, "container")
    with ctx.open() as reg:
        host_record = reg.get_host(host)
        if any(container["name"] == name for container in reg.list_containers()):
            raise Conflict(f"the registry has container {name} already", "edit it instead", "edit")
    from dpl_web import found_apps

    try:
        with host_client(host_record, 10) as client:
            instance = client.get(f"/1.0/instances/{name}")
            state = client.get(f"/1.0/instances/{name}/state")
            # Its /root/apps folders, read without changing anything: offered as apps.
            offers = found_apps.parse(found_apps.read(client, name)) if instance.get("status") == "Running" else []
    except lxd.LXDError as exc:
        raise NotFound("container", name, f"LXD on {host} has no such container (lxc list shows what it has)") \
            from exc
    bridge = host_record["bridge"]
    nics = [device for device in (instance.get("expanded_devices") or {}).values()
            if device.get("type") == "nic" and bridge in (device.get("network"), device.get("parent"))]
    if not nics:
        raise Conflict(f"container {name} has no network device on the bridge {bridge}, which DPL's containers use",
                       f"attach it first: lxc config device add {name} eth0 nic network={bridge}", "attach")
    config = instance.get("expanded_config") or {}
    root = next((device for device in (instance.get("expanded_devices") or {}).values()
                 if device.get("type") == "disk" and device.get("path") == "/"), {})
    fields = {
        "ipv4": nics[0].get("ipv4.address") or state_ipv4(state or {}),
        "profiles": instance.get("profiles") or [],
        "cpu": config.get("limits.cpu") or None,
        "memory": config.get("limits.memory") or None,
        "disk": root.get("size") or None,
        "notes": f"imported from LXD ({config.get('image.description') or 'image unknown'})"[:200],
    }
    if fields["ipv4"] is None:
        raise Conflict(f"container {name} has no IPv4 address on {bridge} (it is {instance.get('status')})",
                       f"start it (lxc start {name}) so that it gets one, then import it", "start")
    try:
        check_fields("container", {key: value for key, value in fields.items() if value is not None})
    except validation.ValidationError as exc:
        advice = f"{exc.rule} (LXD has this for {name}: change it there, then import it)"
        raise validation.ValidationError(exc.field, exc.value, advice) from None
    for offer in offers:
        offer["add"] = found_apps.add_command(name, offer)
    return {"name": name, "host": host, "status": instance.get("status") or "Unknown", **fields, "apps": offers}


@audited("container.import", "container/{}")
def import_container(ctx: Context, name: str, host: str = "local") -> Outcome:
    """Record a container made outside DPL as LXD has it (:func:`container_in_lxd`), then
    queue a reconfigure, which pins its address and lays out /root/apps, /root/backups and
    /root/deploy where missing. From then on it is managed like any other. The apps found in
    its /root/apps are offered (the notes say how to record each), not recorded: nothing in
    them changes until they are deployed. Importing a container recorded already changes
    nothing (``changed`` is False)."""
    with ctx.open() as reg:
        known = next((container for container in reg.list_containers() if container["name"] == name), None)
    if known is not None and known["host"] == host:  # imported already: nothing to do
        return Outcome(known, False, notes=[f"the registry has container {name} already: nothing to import"])
    found = container_in_lxd(ctx, name, host)
    with ctx.open() as reg:
        fields = {key: found[key] for key in ("ipv4", "profiles", "cpu", "memory", "disk", "notes")
                  if found[key] is not None}
        reg.add_container(name, host, **fields)
        container = reg.set_container_status(name, found["status"], ipv4=found["ipv4"])
    outcome = Outcome(container, True)
    outcome.notes += [f"found {offer['path']}: record it with: {offer['add']}" + (f" ({offer['why']})" if offer["why"]
                      else "") for offer in found["apps"]]
    if found["status"] == "Running":
        queued = _queue(ctx, "container-reconfigure", f"container/{name}",
                        {"container": name, "operation": "reconfigure", "force": False})
        outcome.job = queued.job
    else:
        outcome.notes.append(f"{name} is {found['status']}: start it (dpl container start {name}) to lay out its "
                             "directories")
    return outcome


@audited("container.create", "container/{}")
def create_container(ctx: Context, name: str, host: str = "local", **fields: Any) -> Outcome:
    """Record the container and queue its creation in LXD. When the creation fails, the job
    deletes what LXD made and removes the record: registry and LXD never disagree."""
    with ctx.open() as reg:
        avoid = addresses_in_use(reg.get_host(host)) if not fields.get("ipv4") else set()
        container = reg.add_container(name, host, avoid_ipv4=avoid, **fields)
    outcome = _queue_create(ctx, name)
    outcome.record = container
    return outcome


def _queue_create(ctx: Context, name: str) -> Outcome:
    """Queue the creation in LXD of a container just recorded."""
    return _queue(ctx, "container-create", f"container/{name}", {"container": name, "operation": "create"})


@audited("container.action", "container/{}")
def container_action(ctx: Context, name: str, action: str, force: bool = False) -> Outcome:
    """Queue start, stop, restart, reconfigure or delete of a container the registry knows.
    A delete is refused (by its job) while the container has apps, unless ``force``; its
    record goes once LXD has deleted it."""
    if action not in CONTAINER_OPERATIONS or action == "create":
        raise validation.ValidationError("action", action, "must be one of " + ", ".join(
            operation for operation in CONTAINER_OPERATIONS if operation != "create"))
    with ctx.open() as reg:
        container = reg.get_container(name)
    outcome = _queue(ctx, f"container-{action}", f"container/{name}",
                     {"container": name, "operation": action, "force": bool(force)})
    outcome.record = container
    return outcome


# -- projects ------------------------------------------------------------------------


def list_projects(ctx: Context, container: str | None = None) -> list[dict[str, Any]]:
    with ctx.open() as reg:
        return reg.list_projects(container=container)


def get_project(ctx: Context, name: str) -> dict[str, Any]:
    with ctx.open() as reg:
        return reg.get_project(name)


@audited("project.add", "project/{}")
def add_project(ctx: Context, name: str, container: str, **fields: Any) -> Outcome:
    with ctx.open() as reg:
        return Outcome(reg.add_project(name, container, **fields), True)


@audited("project.edit", "project/{}")
def edit_project(ctx: Context, name: str, container: str | None = None, **changes: Any) -> Outcome:
    with ctx.open() as reg:
        before = reg.total_changes
        project = reg.update_project(name, container=container, **changes)
        return Outcome(project, reg.total_changes != before)


@audited("project.remove", "project/{}")
def remove_project(ctx: Context, name: str, cascade: bool = False, record_only: bool = False) -> Outcome:
    """Remove a project. Refused while it has apps, unless ``cascade``: then its apps are
    taken out of service first by one job (their backups stay), which removes the records
    as it goes; with ``record_only`` only the records go, no container is touched."""
    with ctx.open() as reg:
        project = reg.get_project(name)
        if not project["apps"] or record_only or not cascade:
            return Outcome(reg.remove_project(name, cascade=cascade), True)
    apps = [f"{name}/{app}" for app in project["apps"]]
    outcome = _queue(ctx, "project-remove", f"project/{name}", {"project": name, "apps": apps})
    outcome.record = {"projects": [name], "apps": apps}
    return outcome


# -- apps ----------------------------------------------------------------------------


def list_apps(ctx: Context, project: str | None = None, container: str | None = None) -> list[dict[str, Any]]:
    with ctx.open() as reg:
        return reg.list_apps(project=project, container=container)


def get_app(ctx: Context, app: str) -> dict[str, Any]:
    with ctx.open() as reg:
        return reg.get_app(*split_app(app))


@audited("app.add", "app/{}")
def add_app(ctx: Context, app: str, repo: str, container: str | None = None, **fields: Any) -> Outcome:
    """Record an app (with ``container``, its project is created there when missing)."""
    project, name = split_app(app)
    with ctx.open() as reg:
        return Outcome(reg.add_app(project, name, repo, container=container, **fields), True)


def add_app_request(ctx: Context, request: Any, container: str | None = None) -> Outcome:
    """Record an app from the seed's request shape (:func:`registry.app_request`)."""
    fields = app_request(request)
    project, name, repo = fields.pop("project"), fields.pop("name"), fields.pop("repo")
    given = fields.pop("container", None)
    if container and given and container != given:
        raise validation.ValidationError("container", given, f"differs from the container asked for ({container})")
    return add_app(ctx, f"{project}/{name}", repo, container=container or given, **fields)


def _domain_list(current: list[str], app: str, domains: list[str] | None, add: list[str],
                 remove: list[str]) -> list[str] | None:
    """The app's new domains: ``domains`` replaces the list, then ``add`` and ``remove``
    change it; None when none of them was given."""
    if domains is None and not add and not remove:
        return None
    result = list(domains if domains is not None else current)
    for domain in add:
        if domain not in result:
            result.append(domain)
    for domain in remove:
        if domain not in result:
            raise NotFound("domain", domain, f"app {app} serves {', '.join(current) or 'no domains'}")
        result.remove(domain)
    return result


@audited("app.edit", "app/{}")
def edit_app(ctx: Context, app: str, *, domains: list[str] | None = None, add_domains: list[str] = (),
             remove_domains: list[str] = (), env: Mapping[str, Any] | None = None,
             secret_env: Mapping[str, Any] | None = None, unset_env: list[str] | None = None,
             record_only: bool = False, **changes: Any) -> Outcome:
    """Change an app's record. When its domains change, nginx follows (a job writes the
    vhosts of the added domains and removes those of the removed ones, DNS too when DPL
    manages it), unless ``record_only``."""
    project, name = split_app(app)
    with ctx.open() as reg:
        before = reg.get_app(project, name)
        new_domains = _domain_list(before["domains"], f"{project}/{name}", domains, list(add_domains),
                                   list(remove_domains))
        if new_domains is not None:
            changes["domains"] = new_domains
        written = reg.total_changes
        record = reg.update_app(project, name, env=env, secret_env=secret_env, unset_env=unset_env, **changes)
        outcome = Outcome(record, reg.total_changes != written)
        removed = [domain for domain in before["domains"] if domain not in record["domains"]]
        added = [domain for domain in record["domains"] if domain not in before["domains"]]
        if (removed or added) and not record_only:
            params = _vhost_params(reg, record, removed, added)
            if params is not None:
                queued = _queue(ctx, "app-domains", f"app/{project}/{name}", params)
                outcome.job = queued.job
                outcome.notes.append(f"vhosts: removing {', '.join(removed) or '-'}; adding "
                                     f"{', '.join(added) or '-'} (job {queued.job['id']})")
    return outcome


def _vhost_params(reg: Registry, app: dict[str, Any], removed: list[str], added: list[str]) -> dict | None:
    """The vhost playbook's vars for a change of domains. None for an app on another LXD
    host: nginx runs on this one (docs/host.md)."""
    container = reg.get_container(app["container"])
    host = reg.get_host(app["host"])
    if host["endpoint"] != "unix:":
        return None
    # The same vhost name the deploy and removal playbooks use for the app.
    vhost_name = f"{app['project']}-{app['name']}"
    apps = []
    if removed:
        apps.append({"name": vhost_name, "domains": removed, "state": "absent"})
    if added:
        # The port that serves now first; its other ports (slots of deploys without
        # downtime) as backups nginx tries when it refuses.
        live = app["live_port"] or app["port"]
        apps.append({"name": vhost_name, "domains": added, "ipv4": container["ipv4"], "port": live,
                     "backup_ports": [port for port in app["ports"] if port != live]})
    return {"nginx_edge_apps": apps, "nginx_edge_public_ipv4": host["public_ipv4"] or ""}


def import_vhosts(ctx: Context, host: str = "local", file: str | None = None, dry_run: bool = False,
                  on_event: Any = None, confined: bool = False) -> dict[str, Any]:
    """Adopt the server blocks of an operator's nginx file (dpl_web.vhost_import): each block
    proxied to an app becomes domains of that app, served by DPL's own vhosts. The blocks
    leave the file first (a copy kept, nginx not reloaded yet), then ONE vhost job writes
    DPL's vhosts for every app, tests the whole configuration and reloads: both changes take
    effect in the same reload. When it fails, the file and the records are put back as they
    were, and the vhosts it wrote before failing are removed again (nginx reloaded as it was).
    With ``dry_run``, only what would be done. ``confined`` (the web app): the file must be in
    nginx's own folder, so that no other file of the machine can be read through it."""
    from dpl_web import vhost_import

    with ctx.open() as reg:
        host_record = reg.get_host(host)
        if host_record["endpoint"] != "unix:":
            raise Conflict(f"host {host}'s nginx is not on this machine", "run dpl vhost import where nginx runs",
                           "elsewhere")
        path = Path(validation.absolute_path(file, "file") if file else
                    os.path.join(host_record["nginx_sites_dir"], vhost_import.DEFAULT_FILE))
        nginx_dir = Path(host_record["nginx_sites_dir"]).resolve().parent
        if confined and not path.resolve().is_relative_to(nginx_dir):
            raise validation.ValidationError("file", str(path), f"must be in nginx's folder {nginx_dir} (the web app "
                                                                "reads no other file; the dpl command can)")
        if not path.is_file():
            raise NotFound("file", str(path), "give the nginx file that holds the server blocks")
        found = vhost_import.plan(reg, path, host)
    summary = {"file": str(path), "adopt": found["adopt"], "dry_run": dry_run, "job": None, "backup": None,
               "blocks": [{"line": block.line, "names": block.names, "listens": block.listens,
                           "app": block.app, "domains": block.domains, "why": block.why} for block in found["blocks"]]}
    if dry_run or not found["adopt"]:
        return summary
    lines = [block.line for block in found["blocks"] if block.app]
    added: dict[str, list[str]] = {}
    with ctx.open() as reg:
        for app, domains in found["adopt"].items():
            current = reg.get_app(*split_app(app))["domains"]
            if [domain for domain in domains if domain not in current]:
                added[app] = [domain for domain in domains if domain not in current]
    if not added:  # recorded already (an import that stopped half way): only the blocks are left to go
        summary["backup"] = str(vhost_import.take_out_blocks(path, lines))
        return summary
    backup, original = vhost_import.write_without_blocks(path, lines)
    summary["backup"] = str(backup)
    try:
        params: dict[str, Any] = {"nginx_edge_apps": []}
        for app, domains in added.items():
            record = edit_app(ctx, app, add_domains=domains, record_only=True).record
            with ctx.open() as reg:
                one = _vhost_params(reg, record, [], domains)
            params["nginx_edge_apps"] += one["nginx_edge_apps"]
            params["nginx_edge_public_ipv4"] = one["nginx_edge_public_ipv4"]
        job = _queue(ctx, "app-domains", f"host/{host}", params).job
        summary["job"] = wait(ctx, job, on_event)["id"]
    except DplError:
        # The file as it was, and the vhosts the job may have written for some domains before
        # it failed on another removed (a job of their own, which tests and reloads nginx).
        path.write_text(original)
        undo: dict[str, Any] = {"nginx_edge_apps": []}
        for app, domains in added.items():
            with contextlib.suppress(DplError), ctx.open() as reg:
                one = _vhost_params(reg, reg.get_app(*split_app(app)), domains, [])
                undo["nginx_edge_apps"] += one["nginx_edge_apps"]
                undo["nginx_edge_public_ipv4"] = one["nginx_edge_public_ipv4"]
            with contextlib.suppress(DplError):
                edit_app(ctx, app, remove_domains=domains, record_only=True)
        if undo["nginx_edge_apps"]:
            with contextlib.suppress(DplError):
                wait(ctx, _queue(ctx, "app-domains", f"host/{host}", undo).job, on_event)
        raise
    with ctx.open() as reg:  # the apps' changes are in the trail already; this is the file's
        reg.add_audit(ctx.who, "vhost.import", f"host/{host}", {"fields": ["file"]}, job["id"])
    return summary


@audited("app.remove", "app/{}")
def remove_app(ctx: Context, app: str, record_only: bool = False) -> Outcome:
    """Take the app out of service (service, releases, vhosts) and then remove its record,
    in one job; its backups stay in the container. ``record_only`` removes the record now
    and touches no container."""
    project, name = split_app(app)
    with ctx.open() as reg:
        if record_only:
            return Outcome(reg.remove_app(project, name), True)
        reg.get_app(project, name)
    outcome = _queue(ctx, "app-remove", f"app/{project}/{name}", {"app": f"{project}/{name}"})
    outcome.record = {"apps": [f"{project}/{name}"]}
    return outcome


def _app_job(ctx: Context, kind: str, app: str, **params: Any) -> Outcome:
    project, name = split_app(app)
    with ctx.open() as reg:
        record = reg.get_app(project, name)
    outcome = _queue(ctx, kind, f"app/{project}/{name}", {"app": f"{project}/{name}", **params})
    outcome.record = record
    return outcome


@audited("app.deploy", "app/{}")
def deploy(ctx: Context, app: str, ref: str | None = None) -> Outcome:
    """Queue a deploy of PROJECT/APP at ``ref`` (else the registry's ref, else the
    repository's default branch). It replaces a deploy of the app still queued."""
    if ref is not None:
        validation.git_ref(ref, "ref")
    return _app_job(ctx, "deploy", app, **({"ref": ref} if ref else {}))


@audited("app.rollback", "app/{}")
def rollback(ctx: Context, app: str) -> Outcome:
    """Queue a switch back to the app's previous release."""
    return _app_job(ctx, "rollback", app)


@audited("app.restore", "app/{}")
def restore(ctx: Context, app: str, backup: str) -> Outcome:
    """Queue a rebuild of the app from one of its backups (a file name of app_history)."""
    validation.relative_path(backup, "backup")
    if "/" in backup or not backup.endswith(".tar.gz"):
        raise validation.ValidationError("backup", backup, "must be a backup's file name (as the app's list of "
                                                           "backups gives it)")
    return _app_job(ctx, "restore", app, backup=backup)


def app_history(ctx: Context, app: str, on_event: Any = None) -> dict[str, Any]:
    """The app's releases and backups, as its container has them (a job asks it, and this
    waits for it), and the copies of its backups on this machine (``host_copies``)."""
    job = wait(ctx, _app_job(ctx, "app-info", app).job, on_event)
    copies = host_backups(ctx, app)
    in_container = {backup["name"]: backup for backup in job["result"].get("backups") or []}
    on_host = {copy["name"]: copy for copy in copies}
    # Every backup there is, each saying where it is kept: a restore takes either.
    backups = [{**(in_container.get(name) or on_host[name]),
                "kept_in": [place for place, there in (("container", in_container), ("controller", on_host))
                            if name in there]}
               for name in sorted(in_container.keys() | on_host.keys())]
    return {**job["result"], "backups": backups, "host_copies": copies}


def host_backups(ctx: Context, app: str) -> list[dict[str, Any]]:
    """The copies of the app's backups on this machine (paths.host_backups_dir), oldest
    first, each with the SHA-256 recorded when it was copied."""
    project, name = split_app(app)
    folder = paths.host_backups_dir(ctx.registry_path) / project / name
    copies = releases.list_backups_in(str(folder))
    for copy in copies:
        try:
            copy["sha256"] = (folder / f"{copy['name']}.sha256").read_text().split()[0]
        except (OSError, IndexError):
            copy["sha256"] = None
    return copies


def app_logs(ctx: Context, app: str, lines: int = 100, since: str | None = None,
             after: str | None = None) -> dict[str, Any]:
    """The app's service journal (dpl_web.logs), secrets masked: the newest ``lines``
    entries from ``since``, or those after the cursor ``after`` (following)."""
    from dpl_web import logs

    return logs.app_journal(ctx.registry_path, app, lines, since, after)


def live_release_job(ctx: Context, app: str) -> dict[str, Any] | None:
    """The job that put the app's live release in place: its newest successful deploy,
    rollback or restore (a restore or rollback after a deploy is what serves)."""
    project, name = split_app(app)
    with ctx.open() as reg:
        return reg.latest_jobs(kinds=RELEASE_KINDS, status="successful").get(f"app/{project}/{name}")


DEPLOY_OUTPUT_LINES = 200  # lines of each deploy's output shown (its last ones)


def deploy_outputs(ctx: Context, app: str, count: int = 3) -> list[dict[str, Any]]:
    """What the deploy script (and the steps around it) printed in the app's ``count`` newest
    release jobs, newest first: ``[{"job", "kind", "status", "commit", "finished_at", "lines"}]``.
    The lines come from each job's live progress, masked as they were stored; the last
    :data:`DEPLOY_OUTPUT_LINES` of each."""
    project, name = split_app(app)
    count = validation.count(count, "count", minimum=1, maximum=50)
    with ctx.open() as reg:
        reg.get_app(project, name)
        jobs = [job for job in reg.list_jobs(app=f"{project}/{name}", limit=200) if job["kind"] in RELEASE_KINDS]
        found = []
        for job in jobs[:count]:
            events = reg.job_events(job["id"], limit=10000)
            lines = [event["line"] for event in events if event["type"] == "output"]
            found.append({"job": job["id"], "kind": job["kind"], "status": job["status"], "commit": job["commit"],
                          "finished_at": job["finished_at"], "lines": lines[-DEPLOY_OUTPUT_LINES:]})
    return found


def deploy_request(ctx: Context, request: Any) -> Outcome:
    """The seed's request: ``{"name", "project", "repo"}`` plus optional fields.

    Records the app (or updates it) through the registry's validation and queues its
    deploy. When the project has no container yet, one is created first (named after the
    project, or the request's ``container``): its create job runs before the deploy, and
    when it fails the deploy is canceled and the records go with the container.
    """
    fields = app_request(request)
    project, name = fields.pop("project"), fields.pop("name")
    wanted = fields.pop("container", None)
    env, secret_env = fields.pop("env", None), fields.pop("secret_env", None)
    notes: list[str] = []
    with ctx.open() as reg:
        try:
            container = reg.get_project(project)["container"]
        except NotFound:
            container = wanted or project
        try:
            reg.get_container(container)
            create = False
        except NotFound:
            create = True
        # Asked of LXD before the transaction: it must not hold the registry's write lock.
        avoid = addresses_in_use(reg.get_host("local")) if create else set()
        # One transaction: a refused field records no container, project or app.
        with reg.transaction():
            if create:
                reg.add_container(container, "local", avoid_ipv4=avoid)
            try:
                reg.get_project(project)
            except NotFound:
                reg.add_project(project, container)
                notes.append(f"project {project} recorded in container {container}")
            try:
                reg.get_app(project, name)
                reg.update_app(project, name, env=env, secret_env=secret_env, **fields)
                notes.append(f"app {project}/{name} updated in the registry")
            except NotFound:
                reg.add_app(project, name, env=env, secret_env=secret_env, **fields)
                notes.append(f"app {project}/{name} recorded in the registry")
    with ctx.open() as reg:
        given = sorted({*fields, *(["env"] if env else []), *(["secret_env"] if secret_env else [])})
        reg.add_audit(ctx.who, "app.request", f"app/{project}/{name}", {"fields": given} if given else None)
    if create:
        job = _queue_create(ctx, container).job
        notes.insert(0, f"container {container} is not in the registry yet: creating it (job {job['id']})")
    outcome = deploy(ctx, f"{project}/{name}")
    outcome.notes = notes + outcome.notes
    return outcome


# -- jobs ----------------------------------------------------------------------------


def list_jobs(ctx: Context, **filters: Any) -> list[dict[str, Any]]:
    """Jobs, newest first: filters ``app``, ``project``, ``container``, ``status``, ``kind``,
    ``target``, ``limit`` (see :meth:`Registry.list_jobs`)."""
    with ctx.open() as reg:
        return reg.list_jobs(**filters)


def get_job(ctx: Context, job_id: int) -> dict[str, Any]:
    with ctx.open() as reg:
        return reg.get_job(job_id)


def job_events(ctx: Context, job_id: int, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
    with ctx.open() as reg:
        reg.get_job(job_id)
        return reg.job_events(job_id, after=after, limit=limit)


@audited("job.cancel", "job/{}")
def cancel_job(ctx: Context, job_id: int) -> Outcome:
    """Cancel a queued job at once, or ask the worker to stop a running one (it does within
    a moment; its deploy leaves the previous release serving). A finished job: Conflict."""
    with ctx.open() as reg:
        job = reg.request_cancel(job_id, who=ctx.who)
    return Outcome(job, True)


# -- push webhooks -------------------------------------------------------------------


def webhook_path(app: str) -> str:
    project, name = split_app(app)
    return f"/hooks/{project}/{name}"


@audited("webhook.set", "app/{}")
def set_webhook(ctx: Context, app: str) -> Outcome:
    """Turn the app's push webhook on with a new secret (a rotation when it was on: the old
    secret stops working). The record holds the path to give the forge and the secret,
    shown this once."""
    project, name = split_app(app)
    with ctx.open() as reg:
        secret = reg.set_webhook_secret(project, name)
    return Outcome({"app": f"{project}/{name}", "path": webhook_path(app), "secret": secret}, True)


def webhook_enabled(ctx: Context, app: str) -> bool:
    """Whether the app takes push webhooks (it has a secret)."""
    project, name = split_app(app)
    with ctx.open() as reg:
        return reg.webhook_secret(project, name) is not None


@audited("webhook.remove", "app/{}")
def remove_webhook(ctx: Context, app: str) -> Outcome:
    """Turn the app's webhook off: every call is refused from now on."""
    project, name = split_app(app)
    with ctx.open() as reg:
        changed = reg.remove_webhook(project, name)
    return Outcome({"app": f"{project}/{name}", "path": webhook_path(app), "on": False}, changed)


def receive_push(ctx: Context, project: str, name: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """A forge's call: refused unless the app's webhook is on and the call is signed with its
    secret (dpl_web.webhooks); a delivery seen before, an event that is no push, or a push to
    another branch than the app deploys is acknowledged and ignored; a push to it queues a
    deploy (replacing one still queued). Returns what was done."""
    with ctx.open() as reg:
        record = reg.get_app(project, name)
        secret = reg.webhook_secret(project, name)
        if secret is None:
            raise Forbidden(f"the webhook of app {project}/{name} is off", "turn it on: that makes its secret")
        delivery = webhooks.verify(headers, body, secret)
        if not delivery.is_push:
            return {"status": "ignored", "reason": f"a {delivery.forge} {delivery.event or 'unnamed'} event is no push"}
        if delivery.delivery and not reg.record_delivery(project, name, delivery.delivery):
            return {"status": "ignored", "reason": f"delivery {delivery.delivery} was received before"}
        wanted = record["ref"] or delivery.default_branch
        if delivery.branch is None or delivery.branch != wanted:
            pushed = delivery.branch or str(delivery.payload.get("ref") or "nothing")
            deploys = wanted or "its default branch"
            return {"status": "ignored", "reason": f"a push to {pushed}; the app deploys {deploys}"}
    outcome = deploy(ctx, f"{project}/{name}")
    if delivery.delivery:
        with ctx.open() as reg:
            reg.delivery_job(project, name, delivery.delivery, outcome.job["id"])
    return {"status": "queued", "job": outcome.job["id"], "replaced": outcome.replaced, "commit": delivery.commit}


# -- API tokens ----------------------------------------------------------------------


@audited("token.add", "token/{}")
def add_token(ctx: Context, name: str, scope: str = "read", expires_days: int | None = None) -> Outcome:
    """Make a bearer token for the JSON API. The outcome's record holds it under ``token``:
    shown this once, only its hash is kept."""
    with ctx.open() as reg:
        record, token = reg.add_token(name, scope, expires_days)
    return Outcome(dict(record, token=token), True)


def list_tokens(ctx: Context) -> list[dict[str, Any]]:
    with ctx.open() as reg:
        return reg.list_tokens()


@audited("token.revoke", "token/{}")
def revoke_token(ctx: Context, name: str) -> Outcome:
    with ctx.open() as reg:
        before = reg.get_token(name)
        record = reg.revoke_token(name)
    return Outcome(record, before["revoked_at"] is None)


# -- users of the web app ----------------------------------------------------------------


def new_password() -> str:
    """A password to hand out: 24 characters, 144 random bits."""
    return secrets.token_urlsafe(18)


@audited("user.add", "user/{}")
def add_user(ctx: Context, name: str, password: str) -> Outcome:
    with ctx.open() as reg:
        return Outcome(reg.add_user(name, password), True)


@audited("user.passwd", "user/{}")
def set_password(ctx: Context, name: str, password: str) -> Outcome:
    with ctx.open() as reg:
        return Outcome(reg.set_password(name, password), True)


@audited("user.remove", "user/{}")
def remove_user(ctx: Context, name: str) -> Outcome:
    with ctx.open() as reg:
        return Outcome(reg.remove_user(name), True)


def list_users(ctx: Context) -> list[dict[str, Any]]:
    with ctx.open() as reg:
        return reg.list_users()


__all__ = ["Context", "Outcome", "Conflict"]
