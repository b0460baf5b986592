"""The ``dpl`` command line: the registry for humans and for scripts.

Every command prints text for humans, or one JSON document with ``--json`` (before or
after the command). Commands that run a job (deploy, rollback, restore, container
actions, removals) queue it for the worker and follow it live by default; ``--detach``
prints the job's id and returns at once (``dpl job follow ID`` attaches to any job).
Ctrl-C while following stops following, not the job; a second Ctrl-C within 3 s cancels
it (``dpl job cancel ID`` does the same from anywhere).

Scripts can rely on the exit codes, those of dpl_web.errors' table:

====  ====================================================================
0     done
1     failed for another reason (a file could not be read, ...)
2     usage: unknown command or option (argparse)
3     the registry is unusable (missing, corrupt, newer schema, locked too long)
4     a value was refused by the validation layer (nothing was written)
5     the host, container, project, app or job named does not exist
6     conflict: it exists already, a port/domain/address is taken, it still has
      children (``--cascade`` removes them too), or the job already finished
7     a job ran and failed (a deploy, a container action): the message and
      ``dpl job show ID`` say why
130   interrupted (Ctrl-C): following stopped (the job goes on unless canceled)
====  ====================================================================

Errors go to stderr as one sentence that says what to do; with ``--json`` the same error
is also printed on stdout as ``{"error": {...}}`` (dpl_web.errors.describe). Secret values
are never printed.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from dpl_web import errors, paths, registry, repo_access, services
from dpl_web.collection import validation
from dpl_web.errors import DplError, JobFailed
from dpl_web.jobs import follow
from dpl_web.registry import SECRET_MASK, Registry

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_JOB_FAILED = JobFailed.exit_code
EXIT_INTERRUPTED = 130
# `dpl status`: something is down, or out of step with the registry (the list says what).
EXIT_ATTENTION = 11

CANCEL_WINDOW = 3  # seconds after a first Ctrl-C in which a second one cancels the job

# What the CLI adds to an error's hint: its own way of doing the error's remedy.
CLI_REMEDIES = {
    "list:host": "`dpl host list` shows them",
    "list:container": "`dpl container list` shows them",
    "list:project": "`dpl project list` shows them",
    "list:app": "`dpl app list` shows them",
    "list:job": "`dpl job list` shows them",
    "cascade": "--cascade does that",
    "give_container": "`dpl project add NAME --container CONTAINER` records it, or give --container with the app",
    "edit": "`dpl ... edit` does that",
}


class Failure(DplError):
    """A command failed for a reason that is none of the other kinds (exit code 1)."""


# -- output --------------------------------------------------------------------------------


def _emit(args: argparse.Namespace, data: dict[str, Any], text: str | Iterable[str]) -> None:
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=False))
    else:
        print(text if isinstance(text, str) else "\n".join(text))


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, Callable[[dict], Any]]], empty: str) -> str:
    if not rows:
        return empty
    cells = [[title.upper() for title, _get in columns]]
    cells += [["-" if (value := get(row)) in (None, "", []) else str(value) for _title, get in columns]
              for row in rows]
    widths = [max(len(line[index]) for line in cells) for index in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
                     for line in cells)


def _fields(record: dict[str, Any], keys: Iterable[str]) -> list[str]:
    lines = []
    for key in keys:
        value = record.get(key)
        if isinstance(value, list):
            value = ", ".join(value)
        lines.append(f"{key + ':':<16} {'-' if value in (None, '') else value}")
    return lines


def _limits(container: dict[str, Any]) -> str:
    limits = container["limits"]
    shown = [f"{key}={value}" for key, value in limits.items() if value]
    return " ".join(shown)


def _removed(removed: dict[str, list[str]]) -> str:
    parts = [f"{kind}: {', '.join(names)}" for kind, names in removed.items() if names]
    return "removed " + "; ".join(parts)


# -- argument helpers ----------------------------------------------------------------------


def _given(args: argparse.Namespace, names: Iterable[str], nullable: Iterable[str] = ()) -> dict[str, Any]:
    """The options the user gave (argparse leaves the others None). For ``nullable`` fields an
    empty string means "clear it"."""
    nullable = set(nullable)
    values = {}
    for name in names:
        value = getattr(args, name, None)
        if value is None:
            continue
        values[name] = None if (value == "" and name in nullable) else value
    return values


def _pairs(values: list[str] | None, field: str) -> dict[str, str]:
    result = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise validation.ValidationError(field, item, "use NAME=VALUE")
        result[name] = value
    return result


def _secrets(values: list[str] | None) -> dict[str, str]:
    """``--secret NAME=VALUE``, or ``--secret NAME`` to type the value (or pipe it: one line
    per NAME on standard input), which keeps it out of the shell history and ``ps``."""
    result = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep:
            validation.env_name(name, "secret")
            if sys.stdin.isatty():
                value = getpass.getpass(f"value of {name}: ")
            else:
                value = sys.stdin.readline().rstrip("\r\n")
        result[name] = value
    return result


def _ctx(args: argparse.Namespace) -> services.Context:
    """Which registry, and who asks: every command but init refuses to create a registry."""
    return services.Context.default(args.registry)


def _registry_path(args: argparse.Namespace) -> Path:
    return Path(args.registry) if args.registry else paths.registry_path()


# -- init ----------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    """Create the registry (or migrate it), make sure the host ``local`` exists, and say
    whether anything changed (the setup playbook's ``changed_when`` reads ``changed``)."""
    path = _registry_path(args)
    existed = path.exists()
    before = 0
    if existed:
        conn = registry.connect_readonly(path)
        try:
            before = registry.schema_version(conn)
        finally:
            conn.close()
    wanted = _given(args, ("bridge", "bridge_ipv4", "public_ipv4"))
    with Registry.open(path) as reg:
        after = registry.schema_version(reg.conn)
        host, host_changed = reg.ensure_host("local", **wanted)
    report = {"path": str(path), "created": not existed, "migrated": existed and before != after,
              "schema_version": after, "host": host, "host_changed": host_changed}
    report["changed"] = report["created"] or report["migrated"] or host_changed
    state = "created" if report["created"] else "migrated" if report["migrated"] else "up to date"
    lines = [f"registry {path}: {state} (schema version {after})",
             f"host local: {'changed' if host_changed else 'unchanged'} (endpoint {host['endpoint']}, "
             f"bridge {host['bridge']} {host['bridge_ipv4']})"]
    _emit(args, report, lines)
    return EXIT_OK


# -- hosts ---------------------------------------------------------------------------------

HOST_OPTIONS = tuple(registry.HOST_FIELDS)
HOST_NULLABLE = tuple(name for name, spec in registry.HOST_FIELDS.items() if spec.nullable)
HOST_SHOW = ("name", "endpoint", "client_cert", "client_key", "server_cert", "public_ipv4", "nginx_sites_dir",
             "bridge", "bridge_ipv4", "notes", "created_at", "updated_at")


def cmd_host_add(args: argparse.Namespace) -> int:
    host = services.add_host(_ctx(args), args.name, **_given(args, HOST_OPTIONS, HOST_NULLABLE)).record
    _emit(args, {"changed": True, "host": host}, [f"added host {host['name']}", *_fields(host, HOST_SHOW)])
    return EXIT_OK


def cmd_host_list(args: argparse.Namespace) -> int:
    hosts = services.list_hosts(_ctx(args))
    _emit(args, {"hosts": hosts}, _table(hosts, [
        ("name", lambda h: h["name"]), ("endpoint", lambda h: h["endpoint"]),
        ("public ipv4", lambda h: h["public_ipv4"]), ("bridge", lambda h: f"{h['bridge']} {h['bridge_ipv4']}"),
    ], "no hosts: run `dpl init` to record this machine"))
    return EXIT_OK


def cmd_host_show(args: argparse.Namespace) -> int:
    host = services.get_host(_ctx(args), args.name)
    _emit(args, {"host": host}, _fields(host, HOST_SHOW))
    return EXIT_OK


def cmd_host_edit(args: argparse.Namespace) -> int:
    outcome = services.edit_host(_ctx(args), args.name, **_given(args, HOST_OPTIONS, HOST_NULLABLE))
    host = outcome.record
    _emit(args, {"changed": outcome.changed, "host": host},
          [f"host {host['name']}: {'changed' if outcome.changed else 'unchanged'}", *_fields(host, HOST_SHOW)])
    return EXIT_OK


def cmd_host_remove(args: argparse.Namespace) -> int:
    removed = services.remove_host(_ctx(args), args.name, cascade=args.cascade).record
    _emit(args, {"changed": True, "removed": removed}, _removed(removed))
    return EXIT_OK


# -- containers ----------------------------------------------------------------------------

CONTAINER_OPTIONS = tuple(registry.CONTAINER_FIELDS)
CONTAINER_NULLABLE = tuple(name for name, spec in registry.CONTAINER_FIELDS.items() if spec.nullable)


def _container_text(container: dict[str, Any]) -> list[str]:
    shown = dict(container, limits=_limits(container))
    return _fields(shown, ("name", "host", "image", "profiles", "limits", "ipv4", "isolated", "status", "status_at",
                           "projects", "notes", "created_at", "updated_at"))


def cmd_container_add(args: argparse.Namespace) -> int:
    container = services.record_container(_ctx(args), args.name, args.host, **_given(args, CONTAINER_OPTIONS)).record
    _emit(args, {"changed": True, "container": container},
          [f"added container {container['name']}", *_container_text(container)])
    return EXIT_OK


def cmd_container_import(args: argparse.Namespace) -> int:
    ctx = _ctx(args)
    if args.dry_run:
        found = services.container_in_lxd(ctx, args.name, args.host)
        offers = [f"found {offer['path']}" + (f" ({offer['package_name']})" if offer["package_name"] else "")
                  + (f", listening on {offer['port']}" if offer["port"] else "") + f": {offer['add']}"
                  + (f"  [{offer['why']}]" if offer["why"] else "") for offer in found["apps"]]
        _emit(args, {"changed": False, "container": found},
              [f"would record container {args.name} as LXD has it:",
               *_fields(found, [key for key in found if key != "apps"]),
               "then reconfigure it: pin its address, lay out /root/apps, /root/backups and /root/deploy"
               if found["status"] == "Running" else "(start it afterwards to lay out its directories)", *offers])
        return EXIT_OK
    outcome = services.import_container(ctx, args.name, args.host)
    if outcome.job is None:
        _emit(args, {"changed": outcome.changed, "container": outcome.record},
              [f"recorded container {args.name}", *_container_text(outcome.record), *outcome.notes])
        return EXIT_OK
    return _run_job(args, outcome, f"reconfigure of imported container {args.name}",
                    extra={"container": outcome.record, "notes": outcome.notes},
                    done=[f"imported container {args.name}: its address pinned, its directories laid out",
                          *outcome.notes])


def cmd_container_list(args: argparse.Namespace) -> int:
    containers = services.list_containers(_ctx(args), host=args.host)
    _emit(args, {"containers": containers}, _table(containers, [
        ("name", lambda c: c["name"]), ("host", lambda c: c["host"]), ("ipv4", lambda c: c["ipv4"]),
        ("status", lambda c: c["status"]), ("image", lambda c: c["image"]), ("limits", _limits),
        ("projects", lambda c: ",".join(c["projects"])),
    ], "no containers: add one with `dpl container add NAME`"))
    return EXIT_OK


def cmd_container_show(args: argparse.Namespace) -> int:
    container = services.get_container(_ctx(args), args.name)
    _emit(args, {"container": container}, _container_text(container))
    return EXIT_OK


def cmd_container_edit(args: argparse.Namespace) -> int:
    outcome = services.edit_container(_ctx(args), args.name, **_given(args, CONTAINER_OPTIONS, CONTAINER_NULLABLE))
    container = outcome.record
    _emit(args, {"changed": outcome.changed, "container": container},
          [f"container {container['name']}: {'changed' if outcome.changed else 'unchanged'}",
           *_container_text(container)])
    return EXIT_OK


def cmd_container_status(args: argparse.Namespace) -> int:
    outcome = services.set_container_status(_ctx(args), args.name, args.status, ipv4=args.ipv4)
    container = outcome.record
    _emit(args, {"changed": outcome.changed, "container": container},
          f"container {container['name']}: {container['status']} at {container['ipv4']}")
    return EXIT_OK


def cmd_container_remove(args: argparse.Namespace) -> int:
    removed = services.forget_container(_ctx(args), args.name, cascade=args.cascade).record
    _emit(args, {"changed": True, "removed": removed}, _removed(removed))
    return EXIT_OK


def cmd_container_run(args: argparse.Namespace) -> int:
    ctx = _ctx(args)
    if args.action == "create":
        outcome = services.create_container(ctx, args.name, args.host, **_given(args, CONTAINER_OPTIONS))
    else:
        outcome = services.container_action(ctx, args.name, args.action, force=getattr(args, "force", False))
    return _run_job(args, outcome, f"{args.action} of container {args.name}")


# -- projects ------------------------------------------------------------------------------

PROJECT_SHOW = ("name", "container", "apps", "notes", "created_at", "updated_at")


def cmd_project_add(args: argparse.Namespace) -> int:
    fields = _given(args, registry.PROJECT_FIELDS)
    project = services.add_project(_ctx(args), args.name, args.container, **fields).record
    _emit(args, {"changed": True, "project": project},
          [f"added project {project['name']}", *_fields(project, PROJECT_SHOW)])
    return EXIT_OK


def cmd_project_list(args: argparse.Namespace) -> int:
    projects = services.list_projects(_ctx(args), container=args.container)
    _emit(args, {"projects": projects}, _table(projects, [
        ("name", lambda p: p["name"]), ("container", lambda p: p["container"]),
        ("apps", lambda p: ",".join(p["apps"])),
    ], "no projects: add one with `dpl project add NAME --container CONTAINER`"))
    return EXIT_OK


def cmd_project_show(args: argparse.Namespace) -> int:
    project = services.get_project(_ctx(args), args.name)
    _emit(args, {"project": project}, _fields(project, PROJECT_SHOW))
    return EXIT_OK


def cmd_project_edit(args: argparse.Namespace) -> int:
    changes = _given(args, registry.PROJECT_FIELDS)
    outcome = services.edit_project(_ctx(args), args.name, container=args.container, **changes)
    project = outcome.record
    _emit(args, {"changed": outcome.changed, "project": project},
          [f"project {project['name']}: {'changed' if outcome.changed else 'unchanged'}",
           *_fields(project, PROJECT_SHOW)])
    return EXIT_OK


def cmd_project_remove(args: argparse.Namespace) -> int:
    outcome = services.remove_project(_ctx(args), args.name, cascade=args.cascade, record_only=args.record_only)
    if outcome.job is None:
        _emit(args, {"changed": True, "removed": outcome.record}, _removed(outcome.record))
        return EXIT_OK
    # Its apps are taken out of service first (their containers keep only the backups).
    return _run_job(args, outcome, f"removal of project {args.name} and its apps",
                    extra={"changed": True, "removed": outcome.record, "jobs": [outcome.job["id"]]},
                    done=_removed(outcome.record))


# -- private repositories ------------------------------------------------------------------


def _access_text(access: dict[str, Any]) -> list[str]:
    key, token = access["deploy_key"], access["token"]
    lines = [f"deploy key:      {key['fingerprint']} (made {key['created_at']})" if key else
             f"deploy key:      none (`dpl project key {access['project']}` makes one)"]
    lines.append(f"token:           set for user {token['user']} ({token['set_at']})" if token
                 else "token:           none")
    lines += [f"host key:        {pin['host']} {pin['type']} {pin['fingerprint']} (pinned {pin['pinned_at']})"
              for pin in access["host_keys"]] or ["host keys:       none pinned (the first deploy over ssh pins them)"]
    return lines


def cmd_project_key(args: argparse.Namespace) -> int:
    ctx = _ctx(args)
    if args.remove:
        outcome = repo_access.remove_deploy_key(ctx, args.project)
        _emit(args, {"changed": outcome.changed, "access": outcome.record},
              [f"project {args.project}: deploy key {'removed' if outcome.changed else 'was not set'}; the next deploy "
               "deletes its copy in the container; remove it from the git host too"])
        return EXIT_OK
    outcome = repo_access.deploy_key(ctx, args.project, rotate=args.rotate)
    key = outcome.record["deploy_key"]
    said = ("made a new deploy key" if outcome.changed else "the deploy key") + f" of project {args.project}"
    _emit(args, {"changed": outcome.changed, "access": outcome.record},
          [f"{said} ({key['fingerprint']}); add this public key to the repository's deploy keys (read access):",
           key["public"]])
    return EXIT_OK


def cmd_project_token(args: argparse.Namespace) -> int:
    ctx = _ctx(args)
    if args.remove:
        outcome = repo_access.remove_token(ctx, args.project)
        _emit(args, {"changed": outcome.changed, "access": outcome.record},
              [f"project {args.project}: token {'removed' if outcome.changed else 'was not set'}"])
        return EXIT_OK
    # Never from argv (the process list and the shell's history would show it).
    token = (getpass.getpass("token: ") if sys.stdin.isatty() else sys.stdin.readline()).strip()
    outcome = repo_access.set_token(ctx, args.project, token, user=args.user)
    _emit(args, {"changed": outcome.changed, "access": outcome.record},
          [f"project {args.project}: token set for user {outcome.record['token']['user']}; "
           "deploys from https:// repositories send it"])
    return EXIT_OK


def cmd_project_host_keys(args: argparse.Namespace) -> int:
    ctx = _ctx(args)
    if args.pin:
        lines = [line for line in sys.stdin.read().splitlines() if line.strip()]
        outcome = repo_access.pin_host_keys(ctx, args.project, lines)
        _emit(args, {"changed": outcome.changed, "pinned": outcome.record},
              [f"pinned {pin['host']} {pin['type']} {pin['fingerprint']}" for pin in outcome.record]
              or ["nothing new to pin"])
        return EXIT_OK
    if args.forget:
        outcome = repo_access.forget_host_key(ctx, args.project, args.forget)
        _emit(args, {"changed": outcome.changed, "access": outcome.record},
              [f"project {args.project}: {args.forget} "
               + ("forgotten; the next deploy pins the key it answers with" if outcome.changed else "was not pinned")])
        return EXIT_OK
    access = repo_access.access(ctx, args.project)
    _emit(args, {"access": access}, _access_text(access))
    return EXIT_OK


# -- apps ----------------------------------------------------------------------------------

# Domains have options of their own in edit (--add-domain, --remove-domain).
APP_OPTIONS = tuple(name for name in registry.APP_FIELDS if name != "domains")
APP_NULLABLE = tuple(name for name, spec in registry.APP_FIELDS.items() if spec.nullable)


def _app_text(app: dict[str, Any]) -> list[str]:
    shown = dict(app, app=f"{app['project']}/{app['name']}",
                 ref=app["ref"] or "- (the repository's default branch, asked at each deploy)",
                 port=f"{app['port']} (the app's ports: {', '.join(map(str, app['ports']))})",
                 live_port=app["live_port"] or "- (recorded by its next deploy, rollback or restore)")
    lines = _fields(shown, ("app", "container", "host", "repo", "ref", "deploy_script", "start_command", "port",
                            "live_port", "domains", "health_path", "keep_releases", "keep_backups", "notes",
                            "created_at", "updated_at"))
    variables = [f"  {name}={value}" for name, value in app["env"].items()]
    variables += [f"  {name}={SECRET_MASK} (secret)" for name in app["secret_env"]]
    lines.append(f"{'env:':<16} {'-' if not variables else ''}".rstrip())
    lines.extend(variables)
    return lines


def _load_request(source: str) -> Any:
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            text = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Failure(f"cannot read {source}: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = "standard input" if source == "-" else source
        raise validation.ValidationError("request", where, f"is not valid JSON ({exc})") from None


def cmd_app_add(args: argparse.Namespace) -> int:
    ctx = _ctx(args)
    if args.from_json is not None:
        given = [option for option in (*APP_OPTIONS, "domains", "env", "secret") if getattr(args, option)]
        if args.app or given:
            args.parser.error("--from-json takes the whole app from the JSON document: give no APP or "
                              f"other app options with it (got {', '.join(given) or args.app})")
        app = services.add_app_request(ctx, _load_request(args.from_json), container=args.container).record
    else:
        if not args.app or not args.repo:
            args.parser.error("give PROJECT/APP and --repo URL, or --from-json FILE")
        request = _given(args, APP_OPTIONS, APP_NULLABLE)
        repo = request.pop("repo")
        app = services.add_app(ctx, args.app, repo, container=args.container, domains=args.domains or [],
                               env=_pairs(args.env, "env"), secret_env=_secrets(args.secret), **request).record
    _emit(args, {"changed": True, "app": app}, [f"added app {app['project']}/{app['name']}", *_app_text(app)])
    return EXIT_OK


def cmd_app_list(args: argparse.Namespace) -> int:
    apps = services.list_apps(_ctx(args), project=args.project, container=args.container)
    _emit(args, {"apps": apps}, _table(apps, [
        ("app", lambda a: f"{a['project']}/{a['name']}"), ("container", lambda a: a["container"]),
        ("port", lambda a: a["port"]), ("ref", lambda a: a["ref"]), ("domains", lambda a: ",".join(a["domains"])),
        ("repo", lambda a: a["repo"]),
    ], "no apps: add one with `dpl app add PROJECT/APP --repo URL`"))
    return EXIT_OK


def cmd_app_show(args: argparse.Namespace) -> int:
    app = services.get_app(_ctx(args), args.app)
    _emit(args, {"app": app}, _app_text(app))
    return EXIT_OK


def cmd_app_edit(args: argparse.Namespace) -> int:
    outcome = services.edit_app(
        _ctx(args), args.app, domains=args.domains, add_domains=args.add_domain or [],
        remove_domains=args.remove_domain or [], env=_pairs(args.env, "env"), secret_env=_secrets(args.secret),
        unset_env=args.unset_env or [], record_only=args.record_only, **_given(args, APP_OPTIONS, APP_NULLABLE))
    app = outcome.record
    name = f"{app['project']}/{app['name']}"
    lines = [f"app {name}: {'changed' if outcome.changed else 'unchanged'}", *_app_text(app)]
    if outcome.job is None:
        _emit(args, {"changed": outcome.changed, "app": app}, lines)
        return EXIT_OK
    # The vhosts follow the record: a domain taken off stops proxying to the app at once.
    return _run_job(args, outcome, f"the vhosts of {name}", extra={"changed": outcome.changed, "app": app},
                    done=lines + outcome.notes,
                    failed_hint=f"the registry has the new domains: run `dpl deploy {name}` to try again")


def cmd_app_remove(args: argparse.Namespace) -> int:
    outcome = services.remove_app(_ctx(args), args.app, record_only=args.record_only)
    if outcome.job is None:
        _emit(args, {"changed": True, "removed": outcome.record},
              f"removed the record of {args.app} (its container was not touched)")
        return EXIT_OK
    return _run_job(args, outcome, f"removal of {args.app}")


def cmd_deploy(args: argparse.Namespace) -> int:
    ctx = _ctx(args)
    if args.from_json is not None:
        if args.app or args.ref:
            args.parser.error("give either PROJECT/APP (with --ref) or --from-json, not both")
        outcome = services.deploy_request(ctx, _load_request(args.from_json))
        return _run_job(args, outcome, "deploy")
    if not args.app:
        args.parser.error("name the app as PROJECT/APP, or give the request with --from-json")
    return _run_job(args, services.deploy(ctx, args.app, args.ref), f"deploy of {args.app}")


def cmd_app_rollback(args: argparse.Namespace) -> int:
    return _run_job(args, services.rollback(_ctx(args), args.app), f"rollback of {args.app}")


def cmd_app_restore(args: argparse.Namespace) -> int:
    return _run_job(args, services.restore(_ctx(args), args.app, args.backup), f"restore of {args.app}")


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return str(value)


def cmd_app_logs(args: argparse.Namespace) -> int:
    """The app's journal; with --follow, new entries as they come (Ctrl-C stops). With
    --deploys, what its newest deploys printed instead."""
    context = _ctx(args)
    if args.deploys is not None:
        outputs = services.deploy_outputs(context, args.app, args.deploys)
        lines = []
        for output in outputs:
            lines += [f"== job {output['job']}: {output['kind']} {output['status']} "
                      f"{(output['commit'] or '')[:12]} {output['finished_at'] or ''}".rstrip()]
            lines += [terminal_safe(line) for line in output["lines"]] or ["(no output)"]
        _emit(args, {"deploys": outputs}, lines or [f"{args.app} has not been deployed yet"])
        return EXIT_OK
    found = services.app_logs(context, args.app, args.lines, args.since)
    while True:
        for entry in found["entries"]:
            if args.json:
                print(json.dumps(entry), flush=True)
            else:
                print(f"{entry['at']} {terminal_safe(entry['text'])}", flush=True)
        if not args.follow:
            return EXIT_OK
        try:
            time.sleep(1)
        except KeyboardInterrupt:
            return EXIT_OK
        found = services.app_logs(context, args.app, after=found["cursor"]) if found["cursor"] else \
            services.app_logs(context, args.app, args.lines, args.since)


def cmd_app_history(args: argparse.Namespace) -> int:
    found = services.app_history(_ctx(args), args.app)
    if args.action == "releases":
        rows = found["releases"] or []
        text = _table(rows, [("release", lambda r: r["id"]), ("commit", lambda r: (r["commit"] or "")[:12]),
                             ("ref", lambda r: r["ref"]), ("size", lambda r: _size(r["size"])),
                             ("", lambda r: "live" if r["live"] else "previous" if r["previous"] else "")],
                      f"{args.app} has no releases yet: `dpl deploy {args.app}`")
        _emit(args, {"releases": rows, "live_release": found["live_release"],
                     "previous_release": found["previous_release"]}, text)
    else:
        rows = found["backups"] or []
        text = _table(rows, [("backup", lambda r: r["name"]), ("time", lambda r: r["time"]),
                             ("commit", lambda r: r["commit"]), ("size", lambda r: _size(r["size"])),
                             ("kept in", lambda r: ", ".join(r["kept_in"]))],
                      f"{args.app} has no backups yet (each deploy backs up the release it replaces)")
        _emit(args, {"backups": rows, "host_copies": found["host_copies"]}, text)
    return EXIT_OK


def cmd_example(args: argparse.Namespace) -> int:
    """Publish and deploy the bundled example app (what scripts/setup runs)."""
    from dpl_web import example

    say = (lambda line: None) if args.json else (lambda line: print(f"dpl: {line}", file=sys.stderr))
    report = example.ensure(_ctx(args), args.bridge_address, on_event=None if args.json else _progress, say=say)
    state = "deployed" if report["deployed"] else "already deployed"
    _emit(args, report, [f"example app {state} (commit {report['commit'][:12]}): {report['url']}",
                         f"try it: {report['curl']}"])
    return EXIT_OK


def cmd_app_webhook(args: argparse.Namespace) -> int:
    if args.off:
        outcome = services.remove_webhook(_ctx(args), args.app)
        _emit(args, {"changed": outcome.changed, "webhook": outcome.record},
              f"webhook of {args.app}: {'off' if outcome.changed else 'was off already'} (every call is refused)")
        return EXIT_OK
    hook = services.set_webhook(_ctx(args), args.app).record
    _emit(args, {"changed": True, "webhook": hook}, [
        f"webhook of {hook['app']}: on, with a new secret (a previous one no longer works)",
        f"  URL:     <where the web front end is reachable>{hook['path']}  (locally "
        f"http://127.0.0.1:8470{hook['path']})",
        f"  secret:  {hook['secret']}   (shown this once)",
        "  GitHub, Gitea, Forgejo: content type application/json, this secret, push events;",
        "  GitLab: this secret as the secret token, push events. Pushes to the app's branch deploy it.",
    ])
    return EXIT_OK


# -- jobs ----------------------------------------------------------------------------------


def cmd_job_list(args: argparse.Namespace) -> int:
    jobs = services.list_jobs(_ctx(args), app=args.app, project=args.project, container=args.container,
                              status=args.status, kind=args.kind, limit=args.limit)
    _emit(args, {"jobs": jobs}, _table(jobs, [
        ("id", lambda j: j["id"]), ("kind", lambda j: j["kind"]), ("target", lambda j: j["target"]),
        ("status", lambda j: j["status"]), ("who", lambda j: j["who"]), ("created", lambda j: j["created_at"]),
        ("finished", lambda j: j["finished_at"]), ("commit", lambda j: (j["commit"] or "")[:12]),
        ("summary", lambda j: (j["summary"] or "").splitlines()[0] if j["summary"] else ""),
    ], "no jobs"))
    return EXIT_OK


# Escape sequences (CSI, OSC and the rest) and control characters but newline and tab: a
# repository's output could otherwise rewrite the operator's terminal (its title, its
# clipboard through OSC 52, or earlier lines through carriage returns).
_TERMINAL_CONTROL = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]?"
                               r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """Text from programs, made safe to print on a terminal."""
    return _TERMINAL_CONTROL.sub("", text.replace("\r\n", "\n"))


def cmd_job_show(args: argparse.Namespace) -> int:
    job = services.get_job(_ctx(args), args.id)
    lines = _fields(job, ("id", "kind", "target", "container", "project", "who", "status", "created_at",
                          "started_at", "finished_at", "commit", "summary"))
    if job["replaced_by"]:
        lines.append(f"{'replaced by:':<16} job {job['replaced_by']}")
    if job["changed"] is not None:
        lines.append(f"{'changed:':<16} {json.dumps(job['changed'])}")
    if job["log"]:
        lines += ["log:", job["log"]]
    # --json output is escaped by JSON itself; text goes to a terminal.
    _emit(args, {"job": job}, [terminal_safe(line) for line in lines])
    return EXIT_OK


def cmd_job_follow(args: argparse.Namespace) -> int:
    ctx = _ctx(args)
    job = services.get_job(ctx, args.id)
    if args.json:
        # One JSON document per event, as they come (JSON lines), ending with the job's.
        for event in follow.events(ctx.registry_path, job["id"], after=args.after):
            print(json.dumps(event), flush=True)
        return EXIT_OK if services.get_job(ctx, job["id"])["status"] == "successful" else EXIT_JOB_FAILED
    return _follow_and_report(args, ctx, job, f"{job['kind']} of {job['target']}", after=args.after)


def cmd_job_cancel(args: argparse.Namespace) -> int:
    job = services.cancel_job(_ctx(args), args.id).record
    state = "canceled" if job["status"] == "canceled" else "asked to stop (the worker stops it within a moment)"
    _emit(args, {"changed": True, "job": {k: v for k, v in job.items() if k != "log"}}, f"job {job['id']}: {state}")
    return EXIT_OK


def cmd_vhost_import(args: argparse.Namespace) -> int:
    ctx = _ctx(args)
    if not args.dry_run and not args.json:
        print("dpl: the adopted blocks leave the file, and one job writes DPL's vhosts for their domains",
              file=sys.stderr, flush=True)
    found = services.import_vhosts(ctx, args.host, args.file, dry_run=args.dry_run)
    lines = [f"{found['file']}:"]
    for block in found["blocks"]:
        what = (f"-> {block['app']}" if block["app"] and block["app"] != "(redirect)" else
                "-> goes (DPL's vhosts redirect to https themselves)" if block["app"] else f"stays: {block['why']}")
        lines.append(f"  line {block['line']:<5} {' '.join(block['names']) or '-':<40} {what}")
    if not found["adopt"]:
        lines.append("nothing to import")
    elif args.dry_run:
        lines += [f"would add to {app}: {', '.join(domains)}" for app, domains in found["adopt"].items()]
        lines.append("(dry run: nothing changed)")
    else:
        lines += [f"{app} serves {', '.join(domains)} through DPL's vhosts" for app, domains in found["adopt"].items()]
        lines.append(f"the adopted blocks left {found['file']}; its copy from before: {found['backup']}")
    _emit(args, found, lines)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from dpl_web import monitor

    found = monitor.collect(_registry_path(args))
    alerts = monitor.record(_registry_path(args), found) if args.record else []
    problems = found.problems
    containers = [{"name": name, **figures} for name, figures in sorted(found.containers.items())]
    apps = [{"app": name, **figures} for name, figures in sorted(found.apps.items())]
    lines = [_table(containers, [
        ("container", lambda c: c["name"]), ("status", lambda c: c["status"]), ("ipv4", lambda c: c["ipv4"]),
        ("cpu %", lambda c: c.get("cpu")), ("memory", lambda c: _size(c["memory"])),
        ("disk", lambda c: _size(c["disk"])), ("processes", lambda c: c["processes"]),
    ], "no containers"), "", _table(apps, [
        ("app", lambda a: a["app"]), ("up", lambda a: "up" if a["up"] else "DOWN"), ("http", lambda a: a["http"]),
        ("ms", lambda a: a["latency_ms"]), ("via nginx", lambda a: a.get("edge_http")),
        ("ms", lambda a: a.get("edge_latency_ms")), ("service", lambda a: a.get("service")),
        ("restarts", lambda a: a.get("restarts")), ("live commit", lambda a: a.get("live_commit")),
        ("requests", lambda a: a.get("requests")), ("5xx", lambda a: a.get("errors_5xx")),
        ("upstream ms", lambda a: a.get("upstream_ms")),
    ], "no apps")]
    lines += [""] + [f"! {problem['message']} ({problem['fix']})" for problem in problems] if problems else [
        "", "all well"]
    lines += [f"changed: {alert['message']}" for alert in alerts]
    _emit(args, {"at": found.at, "containers": found.containers, "apps": found.apps, "problems": problems,
                 **({"changes": alerts} if args.record else {})}, lines)
    return EXIT_ATTENTION if problems else EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    entries = services.list_audit(_ctx(args), who=args.who, target=args.target, limit=args.limit)
    _emit(args, {"audit": entries}, _table(entries, [
        ("at", lambda e: e["at"]), ("who", lambda e: e["who"]), ("action", lambda e: e["action"]),
        ("target", lambda e: e["target"]), ("job", lambda e: e["job"]),
        ("fields", lambda e: ",".join(e["detail"].get("fields", []))),
    ], "nothing recorded yet"))
    return EXIT_OK


# -- API tokens ------------------------------------------------------------------------------


def cmd_token_add(args: argparse.Namespace) -> int:
    token = services.add_token(_ctx(args), args.name, args.scope, args.expires).record
    expiry = f", expires {token['expires_at']}" if token["expires_at"] else ""
    _emit(args, {"changed": True, "token": token["token"], "record": {k: v for k, v in token.items() if k != "token"}},
          [token["token"], f"(token {token['name']}, scope {token['scope']}{expiry}: shown this once, keep it "
                           "secret; send it as 'Authorization: Bearer <token>')"])
    return EXIT_OK


def cmd_token_list(args: argparse.Namespace) -> int:
    tokens = services.list_tokens(_ctx(args))
    _emit(args, {"tokens": tokens}, _table(tokens, [
        ("name", lambda t: t["name"]), ("scope", lambda t: t["scope"]), ("created", lambda t: t["created_at"]),
        ("expires", lambda t: t["expires_at"]), ("revoked", lambda t: t["revoked_at"]),
        ("last used", lambda t: t["last_used_at"]),
    ], "no tokens: make one with `dpl token add NAME`"))
    return EXIT_OK


def cmd_token_revoke(args: argparse.Namespace) -> int:
    outcome = services.revoke_token(_ctx(args), args.name)
    _emit(args, {"changed": outcome.changed, "token": outcome.record},
          f"token {args.name}: {'revoked' if outcome.changed else 'already revoked'}")
    return EXIT_OK


# -- users of the web app --------------------------------------------------------------------


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """The password given on stdin (--password-stdin), or a new one; and whether it is new."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n"), False
    return services.new_password(), True


def _hand_out(args: argparse.Namespace, name: str, password: str, made: bool) -> list[str]:
    """Save a made password (--save FILE, mode 0600) and say where it is, or print it once."""
    if not made:
        return []
    if args.save:
        path = Path(args.save)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # an older file may have been made with a looser mode
        with os.fdopen(descriptor, "w") as file:
            file.write(f"user: {name}\npassword: {password}\n")
        return [f"the password of {name} is in {path} (mode 0600)"]
    return [f"password of {name}: {password}", "(shown this once: keep it, or change it with `dpl user passwd`)"]


def cmd_user_add(args: argparse.Namespace) -> int:
    context = _ctx(args)
    if args.first and services.list_users(context):
        _emit(args, {"changed": False, "users": [user["name"] for user in services.list_users(context)]},
              "a user exists already: nothing done")
        return EXIT_OK
    password, made = _password(args)
    user = services.add_user(context, args.name, password).record
    lines = [f"user {args.name}: added"] + _hand_out(args, args.name, password, made)
    _emit(args, {"changed": True, "user": user, **({"password": password} if made and not args.save else {})}, lines)
    return EXIT_OK


def cmd_user_passwd(args: argparse.Namespace) -> int:
    password, made = _password(args)
    user = services.set_password(_ctx(args), args.name, password).record
    lines = [f"user {args.name}: password changed (their open sessions end)"]
    lines += _hand_out(args, args.name, password, made)
    _emit(args, {"changed": True, "user": user, **({"password": password} if made and not args.save else {})}, lines)
    return EXIT_OK


def cmd_user_list(args: argparse.Namespace) -> int:
    users = services.list_users(_ctx(args))
    _emit(args, {"users": users}, _table(users, [
        ("name", lambda u: u["name"]), ("created", lambda u: u["created_at"]),
        ("password changed", lambda u: u["password_changed_at"][:20]), ("last login", lambda u: u["last_login_at"]),
    ], "no users: add one with `dpl user add NAME`"))
    return EXIT_OK


def cmd_user_remove(args: argparse.Namespace) -> int:
    services.remove_user(_ctx(args), args.name)
    _emit(args, {"changed": True, "removed": args.name}, f"user {args.name}: removed")
    return EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    from dpl_web.jobs.worker import Worker

    runner = Worker(_registry_path(args), slots=args.slots, idle_exit=args.idle_exit)
    if not runner.run(wait_for_lock=not args.no_wait):
        print(f"dpl worker: another worker runs the jobs of {runner.registry_path}", file=sys.stderr)
    return EXIT_OK


# -- following jobs --------------------------------------------------------------------------


def _progress(event: dict[str, Any]) -> None:
    """Print a job's progress on stderr as its events come (stdout keeps the result)."""
    kind = event["type"]
    if kind == "task":
        print(f"==> {terminal_safe(event['task'])}", file=sys.stderr, flush=True)
    elif kind == "step":
        print(f"  -> {terminal_safe(event['step'])}", file=sys.stderr, flush=True)
    elif kind == "output":
        print(f"     | {terminal_safe(event['line'])}", file=sys.stderr, flush=True)
    elif kind == "note":
        print(f"    {terminal_safe(event['msg'])}", file=sys.stderr, flush=True)
    elif kind == "result":
        label = f" ({event['item']})" if isinstance(event.get("item"), str) else ""
        if event["status"] in ("failed", "unreachable"):
            first = str(event.get("msg") or "failed").splitlines()
            print(f"    FAILED {event['host']}{label}: {terminal_safe(first[0] if first else 'failed')}",
                  file=sys.stderr, flush=True)
        else:
            state = "changed" if event.get("changed") else "ok"
            details = ", ".join(f"{label} {str(event[key])[:12]}" for key, label in (
                ("commit", "commit"), ("release", "release"), ("ipv4", "ipv4"), ("reported_status", "status"))
                if event.get(key))
            print(f"    {state} {event['host']}{label}" + (f": {terminal_safe(details)}" if details else ""),
                  file=sys.stderr, flush=True)


def _follow(args: argparse.Namespace, ctx: services.Context, job: dict[str, Any], after: int = 0) -> dict[str, Any]:
    """Follow the job until it ends, printing its progress. Ctrl-C stops following (the job
    goes on: ``dpl job cancel ID``); a second Ctrl-C within :data:`CANCEL_WINDOW` seconds
    cancels it, and following goes on until it has stopped."""
    on_event = None if args.json else _progress
    try:
        return follow.follow(ctx.registry_path, job["id"], on_event, after=after)
    except KeyboardInterrupt:
        print(f"\ndpl: stopped following job {job['id']}, which goes on in the background: "
              f"`dpl job follow {job['id']}` follows it again, `dpl job cancel {job['id']}` cancels it. "
              f"Press Ctrl-C again within {CANCEL_WINDOW} s to cancel it now.", file=sys.stderr, flush=True)
        try:
            time.sleep(CANCEL_WINDOW)
        except KeyboardInterrupt:
            services.cancel_job(ctx, job["id"])
            print(f"dpl: canceling job {job['id']}...", file=sys.stderr, flush=True)
            follow.follow(ctx.registry_path, job["id"], None)
        raise


def _follow_and_report(args: argparse.Namespace, ctx: services.Context, job: dict[str, Any], what: str,
                       extra: dict[str, Any] | None = None, done: Any = None, failed_hint: str = "",
                       after: int = 0) -> int:
    job = _follow(args, ctx, job, after=after)
    results = [{k: v for k, v in r.items() if k != "log"} for r in follow.results(ctx.registry_path, job["id"])]
    report = {"job": job["id"], "status": job["status"], "results": results}
    ok = job["status"] == "successful"
    if ok and done is not None:
        _emit(args, dict(extra or {}, **report), done)
        return EXIT_OK
    lines = [f"{what}: {job['status']} (job {job['id']}; `dpl job show {job['id']}` has the log)"]
    for result in results:
        if result.get("commit"):
            lines.append(f"  {result['host']}: commit {result['commit'][:12]}, release {result.get('release')}")
    _emit(args, report, lines)
    if ok:
        return EXIT_OK
    message = f"{what}: job {job['id']} {job['status']}: {job['summary'] or job['status']}"
    raise JobFailed(f"{message} ({failed_hint})" if failed_hint else message, job)


def _run_job(args: argparse.Namespace, outcome: services.Outcome, what: str, extra: dict[str, Any] | None = None,
             done: Any = None, failed_hint: str = "") -> int:
    """Report a queued job: with --detach its id, else follow it to its end."""
    ctx = _ctx(args)
    job = outcome.job
    if not args.json:
        for note in outcome.notes:
            print(f"dpl: {note}", file=sys.stderr)
    if args.detach:
        _emit(args, dict(extra or {}, job=job["id"], status=job["status"], replaced=outcome.replaced),
              [f"job {job['id']} queued: {what}", f"follow it: dpl job follow {job['id']}; cancel it: dpl job cancel "
                                                  f"{job['id']}"])
        return EXIT_OK
    if not args.json:
        print(f"dpl: job {job['id']}: {what} (Ctrl-C stops following; the job goes on)", file=sys.stderr, flush=True)
    return _follow_and_report(args, ctx, job, what, extra=extra, done=done, failed_hint=failed_hint)


# -- the parser ----------------------------------------------------------------------------


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dpl")
    except PackageNotFoundError:
        return "unknown"


def _json_option() -> argparse.ArgumentParser:
    # --json after the command as well as before it; SUPPRESS keeps the global value.
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print one JSON document (for scripts)")
    return parent


def _field_options(parser: argparse.ArgumentParser, kind: str, edit: bool, skip: Iterable[str] = ()) -> None:
    """The options of a record's fields, each made from its one definition (registry.FIELDS):
    its name, placeholder, doc and default; in edit, how to clear it."""
    for name, spec in registry.FIELDS[kind].items():
        if name in skip:
            continue
        text = spec.doc
        if edit and spec.kind == "array":
            text += " (replaces the list)"
        elif edit and spec.nullable:
            text += " (an empty value clears it)"
        elif not edit and not spec.required:
            default = spec.default_doc or (", ".join(spec.default) if isinstance(spec.default, list)
                                           else spec.default)
            if default not in (None, "", False):
                text += f" (default: {default})"
        options: dict[str, Any] = {"dest": name, "help": text}
        if spec.kind == "boolean":
            options.update(action=argparse.BooleanOptionalAction, default=None)
        else:
            options["metavar"] = spec.metavar
            if spec.kind == "array":
                options["action"] = "append"
        parser.add_argument(spec.option or "--" + name.replace("_", "-"), **options)


def _app_options(parser: argparse.ArgumentParser, edit: bool) -> None:
    _field_options(parser, "app", edit)
    parser.add_argument("--env", action="append", metavar="NAME=VALUE", help="environment variable, repeatable")
    parser.add_argument("--secret", action="append", metavar="NAME[=VALUE]",
                        help="secret variable, never shown back; without =VALUE it is prompted for "
                             "(or read from standard input, one line per NAME)")


def build_parser() -> argparse.ArgumentParser:
    json_option = _json_option()
    detach_option = argparse.ArgumentParser(add_help=False)
    detach_option.add_argument("--detach", action="store_true",
                               help="queue the job, print its id and return (dpl job follow ID attaches to it)")
    parser = argparse.ArgumentParser(
        prog="dpl", description="DPL: many web apps on one LXD host. Edit the registry of hosts, "
                                "containers, projects and apps, and list the jobs run against them.",
        epilog="exit codes: 0 ok, 1 failure, 2 usage, 3 registry unusable, 4 value refused, 5 not found, "
               "6 conflict. The registry is $DPL_REGISTRY, else ~/.local/share/dpl/registry.sqlite3.")
    parser.add_argument("--json", action="store_true", help="print one JSON document (for scripts)")
    parser.add_argument("--version", action="version", version=f"dpl {_version()}")
    parser.add_argument("--registry", metavar="PATH", help="the registry file (default: $DPL_REGISTRY, else "
                                                           "~/.local/share/dpl/registry.sqlite3)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(group: argparse._SubParsersAction, name: str, func: Callable, summary: str, job: bool = False,
                **kwargs: Any) -> argparse.ArgumentParser:
        """A command; a ``job`` command queues a job and follows it unless --detach."""
        sub = group.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".",
                               parents=[json_option, detach_option] if job else [json_option], **kwargs)
        sub.set_defaults(func=func, parser=sub, detach=False)
        return sub

    init = command(commands, "init", cmd_init, "create or migrate the registry and record this machine "
                                               "as the host 'local'")
    init.add_argument("--bridge", metavar="NAME", help="the local host's container bridge")
    init.add_argument("--bridge-ipv4", metavar="CIDR", help="the local host's address on the bridge")
    init.add_argument("--public-ipv4", metavar="ADDRESS", help="the local host's public address")

    hosts = commands.add_parser("host", help="LXD hosts").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    sub = command(hosts, "add", cmd_host_add, "record an LXD host")
    sub.add_argument("name")
    _field_options(sub, "host", edit=False)
    command(hosts, "list", cmd_host_list, "list the hosts")
    command(hosts, "show", cmd_host_show, "show a host").add_argument("name")
    sub = command(hosts, "edit", cmd_host_edit, "change a host")
    sub.add_argument("name")
    _field_options(sub, "host", edit=True)
    sub = command(hosts, "remove", cmd_host_remove, "remove a host's record")
    sub.add_argument("name")
    sub.add_argument("--cascade", action="store_true", help="also remove its containers, projects and apps")

    containers = commands.add_parser("container", help="LXD containers").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    sub = command(containers, "add", cmd_container_add, "record a container")
    sub.add_argument("name")
    sub.add_argument("--host", default="local", help="the LXD host it runs on (default local)")
    _field_options(sub, "container", edit=False)
    sub = command(containers, "import", cmd_container_import,
                  "record a container made outside DPL as LXD has it (address, limits, profiles), then "
                  "reconfigure it: its address pinned, its directories laid out", job=True)
    sub.add_argument("name")
    sub.add_argument("--host", default="local", help="the LXD host it runs on (default local)")
    sub.add_argument("--dry-run", action="store_true", help="show what would be recorded; change nothing")
    command(containers, "list", cmd_container_list, "list the containers").add_argument(
        "--host", help="only this host's")
    command(containers, "show", cmd_container_show, "show a container").add_argument("name")
    sub = command(containers, "edit", cmd_container_edit, "change a container")
    sub.add_argument("name")
    _field_options(sub, "container", edit=True)
    sub = command(containers, "set-status", cmd_container_status,
                  "record a container's status as LXD reports it (used by the container playbooks)")
    sub.add_argument("name")
    sub.add_argument("status", help="Running, Stopped, absent, ...")
    sub.add_argument("--ipv4", metavar="ADDRESS", help="the address it has")
    sub = command(containers, "remove", cmd_container_remove, "remove a container's record")
    sub.add_argument("name")
    sub.add_argument("--cascade", action="store_true", help="also remove its projects and apps")
    sub = command(containers, "create", cmd_container_run,
                  "record a container and create it in LXD, with the seed's directory layout", job=True)
    sub.add_argument("name")
    sub.add_argument("--host", default="local", help="the LXD host it runs on (default local)")
    _field_options(sub, "container", edit=False)
    for verb, summary in (("start", "start a container"), ("stop", "stop a container"),
                          ("restart", "restart a container"),
                          ("reconfigure", "apply the registry's limits, profiles and address to a container")):
        command(containers, verb, cmd_container_run, summary, job=True).add_argument("name")
    sub = command(containers, "delete", cmd_container_run,
                  "delete a container in LXD, then its record (refused while it has apps)", job=True)
    sub.add_argument("name")
    sub.add_argument("--force", action="store_true", help="delete it with its apps, and remove their vhosts")

    projects = commands.add_parser("project", help="projects (in containers)").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    sub = command(projects, "add", cmd_project_add, "record a project")
    sub.add_argument("name")
    sub.add_argument("--container", required=True, help="the container it lives in")
    _field_options(sub, "project", edit=False)
    command(projects, "list", cmd_project_list, "list the projects").add_argument(
        "--container", help="only this container's")
    command(projects, "show", cmd_project_show, "show a project").add_argument("name")
    sub = command(projects, "edit", cmd_project_edit, "change a project")
    sub.add_argument("name")
    sub.add_argument("--container", help="move the record to this container (deploy again afterwards)")
    _field_options(sub, "project", edit=True)
    sub = command(projects, "remove", cmd_project_remove, "remove a project (refused while it has apps)", job=True)
    sub.add_argument("name")
    sub.add_argument("--cascade", action="store_true",
                     help="also remove its apps: each is taken out of service first (backups kept)")
    sub.add_argument("--record-only", action="store_true",
                     help="with --cascade: only remove the registry records, touch no container")

    sub = command(projects, "key", cmd_project_key, "show the project's deploy key for private repositories "
                  "(made the first time)")
    sub.add_argument("project")
    sub.add_argument("--rotate", action="store_true", help="make a new one (add it to the git host, deploy, then "
                                                           "remove the old one there)")
    sub.add_argument("--remove", action="store_true", help="forget it (the next deploy deletes its copy)")
    sub = command(projects, "token", cmd_project_token, "set the project's token for https repositories "
                  "(read from standard input or prompted, never an argument)")
    sub.add_argument("project")
    sub.add_argument("--user", help="the user name sent with it (default: dpl; GitHub: x-access-token, "
                                    "GitLab: oauth2)")
    sub.add_argument("--remove", action="store_true", help="forget it")
    sub = command(projects, "host-keys", cmd_project_host_keys, "show the git hosts' keys pinned at the first deploy")
    sub.add_argument("project")
    sub.add_argument("--forget", metavar="HOST", help="drop a host's pin after its key really changed "
                                                      "(HOST, or [HOST]:PORT)")
    sub.add_argument("--pin", action="store_true",
                     help="pin the 'HOST TYPE KEY' lines read from standard input (ssh-keyscan's output, checked "
                          "with the host's admin) for hosts not pinned yet; deploys pin this way on first use")

    apps = commands.add_parser("app", help="apps (in projects)").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    sub = command(apps, "add", cmd_app_add, "record an app",
                  epilog='--from-json reads the seed\'s request shape: {"name": "web", "project": "shop", '
                         '"repo": "https://...", "ref": "main", "port": 3000, "domain": "shop.example.com", '
                         '"start": "npm start", "env": {"NODE_ENV": "production", "DB_PASSWORD": '
                         '{"value": "...", "secret": true}}}')
    sub.add_argument("app", nargs="?", metavar="PROJECT/APP")
    sub.add_argument("--from-json", metavar="FILE", help="read the app from a JSON file ('-': standard input)")
    sub.add_argument("--container", help="create the project in this container if it does not exist yet")
    _app_options(sub, edit=False)
    sub = command(apps, "list", cmd_app_list, "list the apps")
    sub.add_argument("--project", help="only this project's")
    sub.add_argument("--container", help="only this container's")
    command(apps, "show", cmd_app_show, "show an app (secret values masked)").add_argument(
        "app", metavar="PROJECT/APP")
    sub = command(apps, "edit", cmd_app_edit, "change an app (a change of domains runs a job for the vhosts)",
                  job=True)
    sub.add_argument("app", metavar="PROJECT/APP")
    _app_options(sub, edit=True)
    sub.add_argument("--add-domain", action="append", metavar="DOMAIN", help="add a domain, repeatable")
    sub.add_argument("--remove-domain", action="append", metavar="DOMAIN", help="remove a domain, repeatable")
    sub.add_argument("--record-only", action="store_true",
                     help="change only the registry: write or remove no vhost for the domains changed")
    sub.add_argument("--unset-env", action="append", metavar="NAME", help="remove a variable, repeatable")
    sub = command(apps, "remove", cmd_app_remove, "stop an app, remove its releases and vhosts, then its record "
                                                  "(backups stay)", job=True)
    sub.add_argument("app", metavar="PROJECT/APP")
    sub.add_argument("--record-only", action="store_true", help="only remove the registry record")

    sub = command(apps, "rollback", cmd_app_rollback, "switch an app back to its previous release", job=True)
    sub.add_argument("app", metavar="PROJECT/APP")
    sub = command(apps, "restore", cmd_app_restore, "rebuild an app from one of its backups and make it live",
                  job=True)
    sub.add_argument("app", metavar="PROJECT/APP")
    sub.add_argument("backup", help="the backup's file name (dpl app backups PROJECT/APP)")
    sub = command(apps, "webhook", cmd_app_webhook, "turn on an app's push webhook with a new secret (printed "
                                                    "once; run again to rotate it)")
    sub.add_argument("app", metavar="PROJECT/APP")
    sub.add_argument("--off", action="store_true", help="turn it off: every call is refused")
    sub = command(apps, "logs", cmd_app_logs,
                  "the app's service journal, secrets masked (--json: one entry per line)")
    sub.add_argument("app", metavar="PROJECT/APP")
    sub.add_argument("-n", "--lines", type=int, default=100, help="the newest N entries (default 100)")
    sub.add_argument("--since", help="from this time: '2026-12-01 10:00', 'yesterday', '-2h'")
    sub.add_argument("-f", "--follow", action="store_true", help="then new entries as they come, until Ctrl-C")
    sub.add_argument("--deploys", type=int, nargs="?", const=3, metavar="N",
                     help="instead: what its N newest deploys printed (default 3), their last 200 lines each")
    command(apps, "releases", cmd_app_history, "list an app's releases (time, commit, size)").add_argument(
        "app", metavar="PROJECT/APP")
    command(apps, "backups", cmd_app_history, "list an app's backups (time, commit, size)").add_argument(
        "app", metavar="PROJECT/APP")

    sub = command(commands, "deploy", cmd_deploy, "deploy an app from git into its container", job=True,
                  epilog='--from-json takes the seed\'s request: {"name": "pixel-sushi", "project": '
                         '"pixel-sushi", "repo": "https://.../pixel-sushi.git"} plus optional ref, port, '
                         'domain, start, deploy_script, env, container. It records (or updates) the app, '
                         'creates its container when the project has none, then deploys.')
    sub.add_argument("app", nargs="?", metavar="PROJECT/APP")
    sub.add_argument("--ref", help="branch, tag or commit (default: the app's ref in the registry)")
    sub.add_argument("--from-json", metavar="FILE", help="the request as JSON ('-': standard input)")

    vhosts = commands.add_parser("vhost", help="nginx server blocks written by hand").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    sub = command(vhosts, "import", cmd_vhost_import,
                  "adopt the server blocks of an nginx file (default: sites-available/default) that proxy to an "
                  "app: its domains get DPL's vhosts, then the blocks leave the file (a copy kept)")
    sub.add_argument("file", nargs="?", help="the nginx file (default: the host's sites-available/default)")
    sub.add_argument("--host", default="local", help="the LXD host whose nginx it is (default local)")
    sub.add_argument("--dry-run", action="store_true", help="show what would be imported; change nothing")

    sub = command(commands, "example", cmd_example,
                  "publish examples/hello and deploy it behind nginx on hello.dpl.test (scripts/setup runs this)")
    sub.add_argument("--bridge-address", default="10.210.0.1",
                     help="where the containers reach this host's git daemon (default 10.210.0.1)")

    jobs = commands.add_parser("job", help="the history of jobs").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    sub = command(jobs, "list", cmd_job_list, "list jobs, newest first")
    sub.add_argument("--app", metavar="PROJECT/APP", help="only this app's")
    sub.add_argument("--project", help="only this project's (and its apps')")
    sub.add_argument("--container", help="only this container's (and its projects' and apps')")
    sub.add_argument("--status", action="append", choices=registry.JOB_STATUSES, help="repeatable")
    sub.add_argument("--kind", help="deploy, rollback, container-create, ...")
    sub.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    sub = command(jobs, "show", cmd_job_show, "show a job with its log")
    sub.add_argument("id", type=int)
    sub = command(jobs, "follow", cmd_job_follow, "follow a job's progress live until it ends (--json: one event "
                                                  "per line)")
    sub.add_argument("id", type=int)
    sub.add_argument("--after", type=int, default=0, metavar="SEQ",
                     help="start after this event (the sequence number of the last one seen)")
    sub = command(jobs, "cancel", cmd_job_cancel, "cancel a queued job, or stop a running one")
    sub.add_argument("id", type=int)

    sub = command(commands, "status", cmd_status, "the state of every container and app now (one LXD call per "
                                                  "host, each app's health check) and what differs from the "
                                                  f"registry; exit {EXIT_ATTENTION} when something needs attention")
    sub.add_argument("--record", action="store_true", help="also store the samples and states, as the worker "
                                                           "does every 30 s")

    sub = command(commands, "audit", cmd_audit, "who did what, newest first (changes and actions, from the CLI, "
                                                "the API and webhooks)")
    sub.add_argument("--who", help="only this user's, token's (token:NAME) or webhook's")
    sub.add_argument("--target", help="only this target and what is under it (app/shop, container/web1, ...)")
    sub.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")

    tokens = commands.add_parser("token", help="bearer tokens of the JSON API").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    sub = command(tokens, "add", cmd_token_add, "make a token (printed once; only its hash is kept)")
    sub.add_argument("name")
    sub.add_argument("--scope", choices=registry.TOKEN_SCOPES, default="read",
                     help="read: look only; write: also change and run jobs (default read)")
    sub.add_argument("--expires", type=int, metavar="DAYS", help="refused after this many days (default: never)")
    command(tokens, "list", cmd_token_list, "list the tokens (never the tokens themselves)")
    command(tokens, "revoke", cmd_token_revoke, "refuse a token from now on").add_argument("name")

    users = commands.add_parser("user", help="users of the web app").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    for name, func, summary in (("add", cmd_user_add, "add a user (a new password is made and printed once, unless "
                                                      "--password-stdin)"),
                                ("passwd", cmd_user_passwd, "change a user's password (made and printed once, unless "
                                                            "--password-stdin); their sessions end")):
        sub = command(users, name, func, summary)
        sub.add_argument("name")
        sub.add_argument("--password-stdin", action="store_true", help="read the password from the first line of "
                                                                       "standard input")
        sub.add_argument("--save", metavar="FILE", nargs="?", const=str(paths.admin_password_path()),
                         help="write the made password to FILE (mode 0600; default "
                              f"{paths.admin_password_path()}) instead of printing it")
        if name == "add":
            sub.add_argument("--first", action="store_true",
                             help="only if there is no user yet (scripts/setup's first admin)")
    command(users, "list", cmd_user_list, "list the users (never their passwords)")
    command(users, "remove", cmd_user_remove, "remove a user (their sessions end)").add_argument("name")

    sub = command(commands, "worker", cmd_worker, "run queued jobs (scripts/setup keeps one running; any job "
                                                  "command starts one when none runs)")
    sub.add_argument("--slots", type=int, metavar="N", help="jobs run at once (default, or 0: the number of cores)")
    sub.add_argument("--idle-exit", type=float, metavar="SECONDS", help="stop after this long without work "
                                                                        "(default: run until stopped)")
    sub.add_argument("--no-wait", action="store_true",
                     help="exit at once when another worker runs (default: wait to take over from it)")
    return parser


def _fail(args: argparse.Namespace, exc: DplError) -> int:
    """Report an error: one sentence on stderr (the message, then what to do), and with
    --json its description on stdout. The exit code is the error kind's."""
    body = errors.describe(exc)
    advice = "; ".join(part for part in (exc.hint, CLI_REMEDIES.get(exc.remedy or "", "")) if part)
    print(f"dpl: {exc}" + (f" ({advice})" if advice else ""), file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({"error": body}, indent=2))
    return exc.exit_code


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C stops following a job (and twice cancels it), even when this process was started
    # with SIGINT ignored, as a shell starts background jobs (CI runs its tests that way):
    # Python then leaves it ignored, and following would never stop.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse has already explained
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return args.func(args)
    except SystemExit as exc:  # args.parser.error() in a command: usage
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except DplError as exc:
        return _fail(args, exc)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
