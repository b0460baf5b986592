"""Jobs: one playbook run through ansible-runner, recorded in the registry.

A job has its own private data directory (under the state directory), its events, a
status (queued, running, successful, failed, canceled, timeout), who started it, what it
changed and a log. One job at a time per target: a second job for the same app or
container is refused while the first is queued or running.

Two things ansible-runner does not do for us, done here:

* Cancel and timeout. ansible-runner SIGKILLs the process group of ansible-playbook,
  but ansible-core's workers run in sessions of their own and would go on with their
  task. Every process of a job carries ``DPL_JOB_ID`` in its environment; cancel and
  timeout send them SIGTERM (ansible-playbook passes it on to its workers, which lets
  the connection stop the command in the container), then SIGKILL the stragglers.
* Secrets. Nothing secret is passed as an extra var or an environment variable (both
  are written in plain text under the private data directory): playbooks read secrets
  with the ``dpl.platform.registry_secret`` lookup, modules take them as ``no_log``
  parameters, and the job log is scrubbed of the app's secret values before it is
  stored, as a last line of defence.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpl_web import paths
from dpl_web.collection import releases
from dpl_web.registry import Conflict, NotFound, Registry, ValidationError

# How many finished jobs keep their private data directory (artifacts, events).
KEEP_JOB_DIRECTORIES = 50
DEFAULT_TIMEOUT = 3600
TERM_GRACE = 5  # seconds between SIGTERM and SIGKILL when a job is stopped

EventHandler = Callable[[dict[str, Any]], None]

# What a job keeps of each task result (besides host, task, status, changed and msg).
RESULT_KEYS = ("commit", "release", "replaced_release", "backup", "duration", "failed_step", "rolled_back",
               "skipped_build", "health_status", "status", "ipv4", "releases", "backups", "actions",
               "live_release", "previous_release", "live_port", "project", "app")


class JobRefused(Conflict):
    """Another job for the same target is queued or running."""


@dataclass
class JobResult:
    id: int
    status: str
    rc: int | None
    results: list[dict[str, Any]] = field(default_factory=list)
    log: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "successful"

    def task_results(self, module: str) -> list[dict[str, Any]]:
        """The results of one module's tasks, e.g. ``dpl.platform.app_deploy``."""
        return [r for r in self.results if r.get("module") == module]


def owner_id() -> str:
    """Who runs a job: this machine and process, as recorded in the registry."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str) -> bool:
    """Is the process named by an owner string still running? (Another machine's: assume so.)"""
    host, _sep, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def registry_key(registry_path: Path) -> str:
    """A short name for a registry file: job ids count per registry, so what is named after
    a job (its directory, its process marker) also carries its registry's key."""
    return hashlib.sha256(str(Path(registry_path).resolve()).encode()).hexdigest()[:12]


def job_marker(registry_path: Path, job_id: int) -> str:
    """The DPL_JOB_ID value of a job, unique on this machine."""
    return f"{registry_key(registry_path)}:{job_id}"


def job_processes(marker: str) -> list[int]:
    """Every process started for the job (they inherit DPL_JOB_ID=marker), except this one."""
    marker = f"DPL_JOB_ID={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(int(entry))
    return found


def stop_job_processes(marker: str, grace: float = TERM_GRACE) -> None:
    """SIGTERM the job's processes, then SIGKILL what is left after ``grace`` seconds."""
    for pid in job_processes(marker):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and job_processes(marker):
        time.sleep(0.1)
    for pid in job_processes(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Job:
    """One run of a playbook. Create with :meth:`JobRunner.submit`."""

    def __init__(self, runner: JobRunner, job_id: int, kind: str, target: str, playbook: str,
                 extravars: dict[str, Any], limit: str | None, timeout: int,
                 on_event: EventHandler | None, secrets: list[str]):
        self.runner = runner
        self.id = job_id
        self.kind = kind
        self.target = target
        self.playbook = playbook
        self.extravars = extravars
        self.limit = limit
        self.timeout = timeout
        self.on_event = on_event
        # The same masking the deploy module applies to script output.
        self.scrub = releases.Masker(secrets)
        self.directory = runner.jobs_dir / str(job_id)
        self.marker = job_marker(runner.registry_path, job_id)
        self.results: list[dict[str, Any]] = []
        self.no_hosts: list[str] = []
        self.cancel_requested = threading.Event()
        self.timed_out = False
        self.started = time.monotonic()
        self.result: JobResult | None = None

    # -- what runs in the job's thread -------------------------------------------------

    def _cancel_callback(self) -> bool:
        elapsed = time.monotonic() - self.started
        if elapsed > self.timeout and not self.timed_out:
            self.timed_out = True
        if self.cancel_requested.is_set() or self.timed_out:
            stop_job_processes(self.marker)
            return True
        return False

    def _event_handler(self, event: dict[str, Any]) -> bool:
        data = event.get("event_data") or {}
        kind = event.get("event", "")
        if kind == "playbook_on_no_hosts_matched":
            self.no_hosts.append(data.get("play") or "a play")
        res = data.get("res") or {}
        # A looped task reports each item (runner_item_on_*) and then a summary holding them
        # all under "results": record the items, not the summary.
        is_item = kind.startswith("runner_item_on_")
        if (kind in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable") and "results" not in res) \
                or (is_item and kind != "runner_item_on_skipped"):
            self.results.append({
                "host": data.get("host"), "task": data.get("task"),
                "module": data.get("resolved_action") or data.get("task_action"),
                "status": kind.rsplit("_", 1)[1], "changed": bool(res.get("changed")),
                "item": res.get("_ansible_item_label") if is_item else None,
                "msg": self.scrub(str(res.get("msg", ""))),
                **{key: res[key] for key in RESULT_KEYS if key in res},
                "log": self.scrub(res["log"]) if isinstance(res.get("log"), str) else "",
            })
        if self.on_event:
            try:
                self.on_event(event)
            except Exception:  # noqa: BLE001 - a broken progress printer must not break the job
                self.on_event = None
        return True

    def run(self) -> JobResult:
        """Run the job; whatever happens, its record is finished (never left running)."""
        status, log = "failed", ""
        try:
            self.result = self._run()
            return self.result
        except BaseException as exc:
            log = f"the job stopped: {exc!r}"
            raise
        finally:
            if self.result is None:
                self.result = JobResult(self.id, status, None, self.results, log)
                try:
                    with Registry.open(str(self.runner.registry_path)) as reg:
                        reg.finish_job(self.id, status, summary=log[:500])
                except Exception:  # noqa: BLE001 - already failing; the orphan check will catch it
                    pass
            with self.runner.lock:
                self.runner.active.pop(self.id, None)

    def _run(self) -> JobResult:
        import ansible_runner  # heavy; only jobs need it

        registry_path = str(self.runner.registry_path)
        with Registry.open(registry_path) as reg:
            reg.start_job(self.id, owner=owner_id())
        # A fresh directory: ansible-runner would read files a previous run left there.
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        envvars = {
            "ANSIBLE_CONFIG": str(paths.REPO_ROOT / "ansible.cfg"),
            "DPL_REGISTRY": registry_path,
            "DPL_JOB_ID": self.marker,
            # ansible-runner runs ansible-playbook from PATH.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            # A registry the inventory cannot read fails the job instead of running on no host.
            "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "true",
        }
        status, rc = "failed", None
        stdout = ""
        try:
            runner = ansible_runner.run(
                private_data_dir=str(self.directory),
                project_dir=str(paths.REPO_ROOT),
                playbook=self.playbook,
                inventory=str(paths.REPO_ROOT / "inventory" / "dpl.yml"),
                extravars=self.extravars,
                limit=self.limit,
                envvars=envvars,
                quiet=True,
                event_handler=self._event_handler,
                cancel_callback=self._cancel_callback,
                # Environment and secrets stay out of the status records and of env/ files.
                status_handler=lambda data, runner_config: None,
                suppress_env_files=True,
            )
            status, rc = runner.status, runner.rc
            with runner.stdout as handle:
                stdout = handle.read()
        except Exception as exc:  # noqa: BLE001 - any runner failure must still close the job
            stdout = f"the job could not run: {exc}"
        if status == "successful" and self.no_hosts and not self.results:
            # The target is not in the inventory (a registry out of step with the request):
            # a play that ran on nothing did nothing, and must not look like a success.
            status = "failed"
        if self.timed_out:
            status = "timeout"
        elif self.cancel_requested.is_set():
            status = "canceled"
        log = self.scrub(stdout)
        for result in self.results:
            if result.get("log"):
                log += f"\n--- output of {result['task']} on {result['host']} ---\n{result['log']}"
        commits = [r["commit"] for r in self.results if r.get("commit") and r["status"] == "ok"]
        changed = {r["host"]: True for r in self.results if r["changed"]}
        summary = self.summary(status)
        with Registry.open(registry_path) as reg:
            # Which port serves each app now (it alternates when deployed without downtime).
            for result in self.results:
                if result["status"] == "ok" and result.get("live_port") and result.get("project"):
                    try:
                        reg.set_live_port(result["project"], result["app"], result["live_port"])
                    except (NotFound, ValidationError):
                        pass  # the app was removed meanwhile: nothing to record
            reg.finish_job(self.id, status, commit=commits[-1] if commits else None, summary=summary,
                           log=log, changed=changed or None)
        self.runner.prune_directories()
        return JobResult(self.id, status, rc, self.results, log)

    def summary(self, status: str) -> str:
        failures = [r for r in self.results if r["status"] in ("failed", "unreachable")]
        if status == "timeout":
            return f"stopped after {self.timeout} s (timeout)"
        if status == "canceled":
            return "canceled"
        if self.no_hosts and not self.results:
            return f"no host matched {self.no_hosts[0]!r}: is {self.target} in the registry the job read?"
        if failures:
            first = failures[0]
            return f"{first['task']} on {first['host']}: {first['msg'].splitlines()[0] if first['msg'] else 'failed'}"
        return f"{len(self.results)} task result(s), {sum(r['changed'] for r in self.results)} changed"

    # -- control from outside ------------------------------------------------------------

    def cancel(self) -> None:
        self.cancel_requested.set()


class JobRunner:
    """Submits jobs; one runner per process (the web server, a CLI call)."""

    def __init__(self, registry_path: str | Path | None = None, jobs_dir: Path | None = None):
        self.registry_path = Path(registry_path) if registry_path else paths.registry_path()
        # Job ids count per registry: each registry gets its own folder of job directories.
        self.jobs_dir = jobs_dir or paths.state_dir() / "jobs" / registry_key(self.registry_path)
        self.active: dict[int, Job] = {}
        self.lock = threading.Lock()

    def cancel_all(self) -> None:
        """Cancel every job of this runner that is still running (Ctrl-C, server shutdown)."""
        with self.lock:
            running = list(self.active.values())
        for job in running:
            job.cancel()

    def submit(self, kind: str, target: str, playbook: str, extravars: dict[str, Any] | None = None,
               limit: str | None = None, who: str | None = None, timeout: int = DEFAULT_TIMEOUT,
               on_event: EventHandler | None = None, secrets: list[str] | None = None) -> Job:
        """Record a job for ``target`` and run ``playbook`` (a path relative to the checkout).

        Refused with :class:`JobRefused` while another job for the same target is queued or
        running. Returns when the job is done (``job.result`` holds the outcome); callers
        that must stay responsive run it in a thread and cancel it with :meth:`cancel_all`.
        """
        with Registry.open(self.registry_path) as reg, reg.transaction():
            # A job whose process died (killed, crashed) must not block its target for ever.
            reg.fail_orphaned_jobs(owner_alive)
            active = reg.list_jobs(target=target, status=["queued", "running"], limit=1)
            # An app and its container are one target as far as clashes go: stopping or
            # deleting a container in the middle of a deploy in it would break the deploy.
            active += [job for job in self.related_jobs(reg, target) if job not in active]
            if active:
                raise JobRefused(f"job {active[0]['id']} ({active[0]['kind']} of {active[0]['target']}) is still "
                                 f"{active[0]['status']}: wait for it to finish")
            job_id = reg.create_job(kind, target, who or default_user(), owner=owner_id())
        job = Job(self, job_id, kind, target, playbook, dict(extravars or {}), limit, timeout, on_event,
                  secrets or [])
        with self.lock:
            self.active[job_id] = job
        job.run()
        return job

    @staticmethod
    def related_jobs(reg: Registry, target: str) -> list[dict[str, Any]]:
        """Active jobs that clash with one for ``target``: for a container, any job of its
        apps; for an app, a job of its container."""
        kind, _sep, rest = target.partition("/")
        if kind == "container":
            return reg.list_jobs(container=rest, status=["queued", "running"], limit=5)
        if kind == "app":
            project, _sep, _app = rest.partition("/")
            try:
                container = reg.get_project(project)["container"]
            except NotFound:
                return []
            return reg.list_jobs(target=f"container/{container}", status=["queued", "running"], limit=5)
        return []

    def prune_directories(self) -> None:
        """Keep the private data directories of the newest finished jobs only."""
        try:
            directories = sorted((d for d in self.jobs_dir.iterdir() if d.name.isdigit()), key=lambda d: int(d.name))
        except OSError:
            return
        with self.lock:
            running = {str(job_id) for job_id in self.active}
        for old in directories[:-KEEP_JOB_DIRECTORIES]:
            if old.name not in running:
                shutil.rmtree(old, ignore_errors=True)


def default_user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return str(os.getuid())
