"""One job running in the worker: its playbooks through ansible-runner, its events stored
as they arrive, its cancel and timeout, and how it ends in the registry.

Secrets: nothing secret is passed as an extra var or an environment variable (both are
written in plain text under the private data directory): playbooks read secrets with the
``dpl.platform.registry_secret`` lookup, modules take them as ``no_log`` parameters, and
every stored event and the job log are scrubbed of the secret values of the apps the job
touches before they are stored, as a last line of defence.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dpl_web import paths
from dpl_web.collection import host_client, lxd, releases
from dpl_web.errors import DplError, NotFound
from dpl_web.jobs import process
from dpl_web.registry import Registry, ValidationError, parse_target, split_app

# What a job keeps of each task result (besides host, task, status, changed and msg).
# A module's own "status" (a container's LXD status) is kept as "reported_status": "status"
# is the task's outcome (ok, failed, unreachable), which a module's key must not overwrite.
RESULT_KEYS = ("commit", "release", "replaced_release", "backup", "duration", "failed_step", "rolled_back",
               "skipped_build", "health_status", "ipv4", "releases", "backups", "actions",
               "live_release", "previous_release", "live_port", "project", "app", "retired")

# Seconds between two reads of a running deploy's progress file in its container.
PROGRESS_POLL = 0.3

# How many finished jobs keep their private data directory (artifacts).
KEEP_JOB_DIRECTORIES = 50


class Canceled(Exception):
    """The job was canceled or ran out of time between two of its steps."""


def secrets_of(reg: Registry, job: dict[str, Any]) -> list[str]:
    """The secret values of the apps a job touches, to mask in what it stores."""
    kind, names = parse_target(job["target"])
    try:
        if kind == "app":
            apps = [names]
        elif kind == "project":
            apps = [(app["project"], app["name"]) for app in reg.list_apps(project=names[0])]
        elif kind == "container":
            apps = [(app["project"], app["name"]) for app in reg.list_apps(container=names[0])]
        else:
            apps = []
        return [value for project, app in apps for value in reg.app_secrets(project, app).values()]
    except NotFound:
        return []


class JobRun:
    """What a job's kind (dpl_web.jobs.kinds) works with while it runs in the worker."""

    def __init__(self, job: dict[str, Any], registry_path: Path, jobs_dir: Path, cancel: threading.Event):
        self.job = job
        self.id = job["id"]
        self.params = job["params"]
        self.registry_path = Path(registry_path)
        self.jobs_dir = jobs_dir
        self.marker = process.job_marker(self.registry_path, self.id)
        self.reg = Registry.open(self.registry_path, create=False)
        self.scrub = releases.Masker(secrets_of(self.reg, job))
        self.results: list[dict[str, Any]] = []
        self.no_hosts: list[str] = []
        self.logs: list[str] = []
        self.result: Any = None  # what the job found, for its record (an app's releases, ...)
        self.cancel_requested = cancel  # set by the worker when someone asks to cancel
        self.timed_out = False
        self.cleaning_up = False
        self.started = time.monotonic()

    def close(self) -> None:
        self.reg.close()

    # -- events ------------------------------------------------------------------------

    def emit(self, kind: str, **data: Any) -> None:
        """Store an event of the job (a follower sees it within its poll interval)."""
        self.reg.add_job_event(self.id, kind, data)

    def note(self, message: str) -> None:
        self.emit("note", msg=self.scrub(message))

    def _on_ansible_event(self, event: dict[str, Any]) -> bool:
        """Keep what a follower needs of ansible-runner's event, trimmed and masked."""
        data = event.get("event_data") or {}
        kind = event.get("event", "")
        if kind == "playbook_on_no_hosts_matched":
            self.no_hosts.append(data.get("play") or "a play")
        elif kind == "playbook_on_play_start":
            self.emit("play", name=self.scrub(str(data.get("play") or "")))
        elif kind == "playbook_on_task_start":
            self.emit("task", task=self.scrub(str(data.get("task") or "")))
        res = data.get("res") or {}
        # A looped task reports each item (runner_item_on_*) and then a summary holding them
        # all under "results": record the items, not the summary.
        is_item = kind.startswith("runner_item_on_")
        if (kind in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable") and "results" not in res) \
                or (is_item and kind != "runner_item_on_skipped"):
            result = {
                "host": data.get("host"), "task": self.scrub(str(data.get("task") or "")),
                "module": data.get("resolved_action") or data.get("task_action"),
                "status": kind.rsplit("_", 1)[1], "changed": bool(res.get("changed")),
                "item": res.get("_ansible_item_label") if is_item else None,
                "msg": self.scrub(str(res.get("msg", ""))),
                **{key: res[key] for key in RESULT_KEYS if key in res},
            }
            if "status" in res:
                result["reported_status"] = res["status"]
            self.results.append(dict(result, log=self.scrub(res["log"]) if isinstance(res.get("log"), str) else ""))
            self.emit("result", **result)
        return True

    # -- a deploy's live progress -------------------------------------------------------

    @contextmanager
    def following_progress(self, app: str) -> Iterator[None]:
        """While the block runs (a deploy's playbook), follow the deploy's progress file in
        its container over the LXD API (releases.Progress: the module writes its steps and
        their output there while its one task runs) and store them as ``step`` and
        ``output`` events, masked: the page and the CLI show them within a second."""
        stop = threading.Event()
        follower = threading.Thread(target=self._follow_progress, args=(app, stop), name=f"progress-{self.id}",
                                    daemon=True)
        follower.start()
        try:
            yield
        finally:
            stop.set()
            follower.join(timeout=30)

    def _follow_progress(self, app: str, stop: threading.Event) -> None:
        project, name = split_app(app)
        path = releases.AppPaths(project, name).progress
        seen = 0
        # Its own connection: SQLite connections stay in the thread that made them.
        with Registry.open(self.registry_path, create=False) as reg:
            container = reg.get_container(reg.get_app(project, name)["container"])
            host = reg.get_host(container["host"])
            with host_client(host, 10) as client:
                while True:
                    last_round = stop.is_set()
                    try:
                        lines = client.pull_file(container["name"], path).decode("utf-8", "replace").split("\n")
                    except lxd.LXDError:
                        lines = []  # not written yet (or LXD busy): the next round reads it
                    records = [json.loads(line) for line in lines[:-1] if line.startswith("{")]
                    if records and records[0].get("job") == self.id:
                        for record in records[1 + seen:]:
                            if "step" in record:
                                reg.add_job_event(self.id, "step", {"step": str(record["step"])})
                            elif "out" in record:
                                reg.add_job_event(self.id, "output", {"line": self.scrub(str(record["out"]))})
                            elif "note" in record:
                                reg.add_job_event(self.id, "note", {"msg": self.scrub(str(record["note"]))})
                        seen = len(records) - 1
                    if last_round:
                        return
                    stop.wait(PROGRESS_POLL)

    # -- cancel and timeout ------------------------------------------------------------

    def should_stop(self) -> bool:
        if self.cleaning_up:
            return False  # the undo of a failed step runs to its end
        if time.monotonic() - self.started > self.job["timeout"]:
            self.timed_out = True
        return self.timed_out or self.cancel_requested.is_set()

    def _cancel_callback(self) -> bool:
        if self.should_stop():
            process.stop_job_processes(self.marker)
            return True
        return False

    # -- playbooks ---------------------------------------------------------------------

    def playbook(self, playbook: str, extravars: dict[str, Any], limit: str | None = None,
                 cleanup: bool = False) -> str:
        """Run one playbook (a path relative to the checkout); returns its status. A
        ``cleanup`` run (undoing a failed step) is not stopped by cancel or timeout."""
        if self.should_stop() and not cleanup:
            raise Canceled()
        self.cleaning_up = cleanup
        try:
            return self._playbook(playbook, extravars, limit)
        finally:
            self.cleaning_up = False

    def _playbook(self, playbook: str, extravars: dict[str, Any], limit: str | None) -> str:
        import ansible_runner  # heavy; only the worker needs it

        directory = self.jobs_dir / str(self.id)
        # A fresh directory: ansible-runner would read files a previous run left there.
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        envvars = {
            "ANSIBLE_CONFIG": str(paths.REPO_ROOT / "ansible.cfg"),
            "DPL_REGISTRY": str(self.registry_path),
            "DPL_JOB_ID": self.marker,
            # ansible-runner runs ansible-playbook from PATH.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            # A registry the inventory cannot read fails the job instead of running on no host.
            "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "true",
        }
        if self.job["target"].startswith(("app/", "project/")) and self.job["container"]:
            # The inventory reads only the container the job works in: a deploy costs the same
            # however big the registry. (A container's own job reads them all: it rebuilds the
            # bridge's isolation from every container of the host.)
            envvars["DPL_INVENTORY_CONTAINER"] = self.job["container"]
        status, stdout = "failed", ""
        try:
            runner = ansible_runner.run(
                private_data_dir=str(directory),
                project_dir=str(paths.REPO_ROOT),
                playbook=playbook,
                inventory=str(paths.REPO_ROOT / "inventory" / "dpl.yml"),
                extravars=extravars,
                limit=limit,
                envvars=envvars,
                quiet=True,
                event_handler=self._on_ansible_event,
                cancel_callback=self._cancel_callback,
                # Environment and secrets stay out of the status records and of env/ files.
                status_handler=lambda data, runner_config: None,
                suppress_env_files=True,
            )
            status = runner.status
            with runner.stdout as handle:
                stdout = handle.read()
        except Exception as exc:  # noqa: BLE001 - any runner failure must still close the job
            stdout = f"the job could not run: {exc}"
        self.logs.append(self.scrub(stdout))
        if status == "successful" and self.no_hosts and not self.results:
            # The target is not in the inventory (a registry out of step with the request):
            # a play that ran on nothing did nothing, and must not look like a success.
            status = "failed"
        if not self.cleaning_up and self.should_stop():
            status = "canceled"
        return status

    def task_results(self, module: str) -> list[dict[str, Any]]:
        """The results of one module's tasks, e.g. ``dpl.platform.app_deploy``."""
        return [r for r in self.results if r.get("module") == module]

    # -- the end -----------------------------------------------------------------------

    def summary(self, status: str) -> str:
        failures = [r for r in self.results if r["status"] in ("failed", "unreachable")]
        if status == "timeout":
            return f"stopped after {self.job['timeout']} s (timeout)"
        if status == "canceled":
            return "canceled"
        if self.no_hosts and not self.results:
            return f"no host matched {self.no_hosts[0]!r}: is {self.job['target']} in the registry the job read?"
        if failures:
            first = failures[0]
            return f"{first['task']} on {first['host']}: {first['msg'].splitlines()[0] if first['msg'] else 'failed'}"
        return f"{len(self.results)} task result(s), {sum(r['changed'] for r in self.results)} changed"

    def finish(self, status: str, error: str = "") -> dict[str, Any]:
        """Record how the job ended (never left running, whatever happened)."""
        if self.timed_out:
            status = "timeout"
        elif self.cancel_requested.is_set() and status != "successful":
            status = "canceled"
        log = "\n".join(self.logs)
        for result in self.results:
            if result.get("log"):
                log += f"\n--- output of {result['task']} on {result['host']} ---\n{result['log']}"
        if error:
            log += f"\n{self.scrub(error)}"
        commits = [r["commit"] for r in self.results if r.get("commit") and r["status"] == "ok"]
        changed = {r["host"]: True for r in self.results if r["changed"]}
        summary = self.scrub(error).splitlines()[0] if error and status == "failed" else self.summary(status)
        # Which port serves each app now (it alternates when deployed without downtime).
        for result in self.results:
            if result["status"] == "ok" and result.get("live_port") and result.get("project"):
                try:
                    self.reg.set_live_port(result["project"], result["app"], result["live_port"])
                except (NotFound, ValidationError):
                    pass  # the app was removed meanwhile: nothing to record
        try:
            return self.reg.finish_job(self.id, status, commit=commits[-1] if commits else None,
                                       summary=summary[:2000], log=log, changed=changed or None, result=self.result)
        except DplError:
            # A log the registry refuses (too long, ...) must not leave the job running.
            return self.reg.finish_job(self.id, status, summary=summary[:2000], log=log[-100000:])
        finally:
            self.prune_directories()

    def prune_directories(self) -> None:
        """Keep the private data directories of the newest jobs only."""
        try:
            directories = sorted((d for d in self.jobs_dir.iterdir() if d.name.isdigit()), key=lambda d: int(d.name))
        except OSError:
            return
        for old in directories[:-KEEP_JOB_DIRECTORIES]:
            if int(old.name) < self.id:
                shutil.rmtree(old, ignore_errors=True)
