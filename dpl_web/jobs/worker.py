"""The worker: the one process per registry that runs queued jobs.

The registry's job table is the queue. The worker looks at it when woken (whoever queues a
job sends it SIGUSR1: :func:`wake`) and every :data:`POLL` seconds (a job finishing frees a
slot; a wake-up may be lost), claims what may start in one write
transaction (:meth:`Registry.claim_jobs`: several at once, up to ``slots``; one at a time
per target, an app and its container counting as one), and runs each job in a thread of
its own (a job is an ansible-playbook process; the thread waits for it and stores its
events). Cancel requests are read from the registry at every poll, so any process can
cancel any job; a timeout is the job's own (recorded when it was queued).

One worker per registry: it holds an exclusive lock on ``<registry>.worker-lock`` for its
life. The lock is how anyone knows whether a worker is running (:func:`worker_running`),
and why a worker that takes it may fail the jobs left running: their worker is dead. It
stops what is left of their processes (found by their ``DPL_JOB_ID``) and marks them
failed. Queued jobs wait for the next worker, however long.

``scripts/setup`` keeps a worker running for the user's registry (the ``daemon`` module:
a systemd unit where systemd is PID 1, a detached process otherwise). Wherever none runs
(another registry, a test), whoever queues a job starts one (:func:`ensure_worker`) that
exits after ``idle_exit`` seconds without work.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import IO, Any

from dpl_web import alerts, monitor, paths
from dpl_web.errors import DplError, RegistryUnusable
from dpl_web.jobs import process
from dpl_web.jobs.kinds import KINDS, RELEASE_KINDS
from dpl_web.jobs.run import Canceled, JobRun
from dpl_web.registry import Registry

POLL = 0.5  # seconds between two looks at the queue (whoever queues a job wakes the worker)
ON_DEMAND_IDLE_EXIT = 30  # seconds a worker started on demand waits for more work


def lock_path(registry_path: Path) -> Path:
    registry_path = Path(registry_path)
    return registry_path.with_name(registry_path.name + ".worker-lock")


def _open_lock(registry_path: Path) -> IO[bytes]:
    path = lock_path(registry_path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    return os.fdopen(fd, "r+b")


def wake(registry_path: Path) -> None:
    """Tell the worker a job was queued (SIGUSR1 to the pid its lock file holds), so it
    starts it now rather than at its next poll. A worker that cannot be told polls."""
    if worker_running(registry_path):  # else the pid in the file may be another process's by now
        _signal(registry_path)


def _signal(registry_path: Path) -> None:
    try:
        pid = int(lock_path(registry_path).read_text().strip() or 0)
    except (OSError, ValueError):
        return
    if pid > 0:
        try:
            os.kill(pid, signal.SIGUSR1)
        except (ProcessLookupError, PermissionError):
            pass


def worker_running(registry_path: Path) -> bool:
    """Does a worker hold the registry's lock?"""
    try:
        handle = _open_lock(registry_path)
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


# Starts the worker through a short-lived Python that exits at once: the worker is then no
# child of the caller (a web server would collect zombies, a test a "still running" warning).
_SPAWN = ("import subprocess, sys; subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=sys.stdout, "
          "stderr=subprocess.STDOUT, start_new_session=True, close_fds=True, cwd='/')")


def ensure_worker(registry_path: Path, wake_it: bool = True) -> bool:
    """Start a worker for the registry unless one runs (and wake it when it does, unless
    told not to); True when one was started. It runs detached (its own session, output in
    the log directory) and exits when idle."""
    registry_path = Path(registry_path).resolve()
    if worker_running(registry_path):
        if wake_it:
            _signal(registry_path)
        return False
    paths.log_dir().mkdir(parents=True, exist_ok=True)
    with open(paths.log_dir() / "worker.log", "ab") as log:
        subprocess.run(  # noqa: S603 - a fixed argument list
            [sys.executable, "-c", _SPAWN, sys.executable, "-m", "dpl_web", "worker", "--idle-exit",
             str(ON_DEMAND_IDLE_EXIT), "--no-wait"],
            env=dict(os.environ, DPL_REGISTRY=str(registry_path)), stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, check=False, timeout=30)
    return True


class Worker:
    def __init__(self, registry_path: Path | str | None = None, slots: int | None = None,
                 idle_exit: float | None = None, jobs_dir: Path | None = None, poll: float = POLL,
                 say: Any = None, monitor_interval: float | None = None):
        self.registry_path = Path(registry_path) if registry_path else paths.registry_path()
        self.slots = max(1, slots or os.cpu_count() or 1)
        self.idle_exit = idle_exit
        self.poll = poll
        self.jobs_dir = jobs_dir or paths.state_dir() / "jobs" / process.registry_key(self.registry_path)
        self.owner = process.owner_id()
        self.say = say or (lambda line: print(f"dpl worker: {line}", file=sys.stderr, flush=True))
        self.running: dict[int, tuple[threading.Thread, threading.Event]] = {}
        self.stopping = threading.Event()
        self.woken = threading.Event()  # a job was queued: look at the queue now
        # Monitoring rounds (dpl_web.monitor): by the long-running worker only, not by one started
        # on demand for a job; DPL_MONITOR_INTERVAL=0 turns them off.
        if monitor_interval is None:
            monitor_interval = 0 if idle_exit is not None else float(
                os.environ.get("DPL_MONITOR_INTERVAL") or monitor.INTERVAL)
        self.monitor_interval = monitor_interval

    # -- the loop ----------------------------------------------------------------------

    def run(self, wait_for_lock: bool = True) -> bool:
        """Run until stopped (SIGTERM, SIGINT, :meth:`stop`) or idle for ``idle_exit``
        seconds. False when another worker holds the lock and ``wait_for_lock`` is off."""
        with _open_lock(self.registry_path) as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait_for_lock else fcntl.LOCK_NB))
            except BlockingIOError:
                return False
            # Whoever queues a job reads the pid here to wake the worker up (wake()).
            lock.seek(0)
            lock.truncate()
            lock.write(f"{os.getpid()}\n".encode())
            lock.flush()
            if threading.current_thread() is threading.main_thread():
                for signum in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(signum, lambda *_: self.stop())
                signal.signal(signal.SIGUSR1, lambda *_: self.woken.set())
            with Registry.open(self.registry_path, create=False) as reg:
                self.recover(reg)
                self.say(f"running jobs of {self.registry_path}, {self.slots} at once")
                if self.monitor_interval:
                    threading.Thread(target=self._monitor, name="monitor", daemon=True).start()
                self._loop(reg)
            self._stop_running()
            lock.seek(0)
            lock.truncate()  # no pid for wake() to signal once the lock is free
        return True

    def stop(self) -> None:
        self.stopping.set()
        self.woken.set()

    def _loop(self, reg: Registry) -> None:
        idle_since = time.monotonic()
        while not self.stopping.is_set():
            try:
                self._reap()
                for job in reg.claim_jobs(self.owner, self.slots - len(self.running)):
                    self._start(job)
                for job_id in reg.canceled_jobs(self.running):
                    self.running[job_id][1].set()
                busy = bool(self.running) or bool(reg.list_jobs(status="queued", limit=1))
            except RegistryUnusable as exc:
                if not self.registry_path.exists():
                    self.say(f"the registry {self.registry_path} is gone: stopping")
                    return
                self.say(f"cannot read the queue ({exc}): trying again")
                busy = True
            if busy:
                idle_since = time.monotonic()
            elif self.idle_exit is not None and time.monotonic() - idle_since >= self.idle_exit:
                return
            self.woken.wait(self.poll)
            self.woken.clear()

    def _monitor(self) -> None:
        """A monitoring round every monitor_interval seconds (its own thread: a slow health
        check never holds a job back), and once an hour the samples compacted. A state seen
        once and not yet confirmed is looked at again after monitor.CONFIRM_AFTER seconds, so
        an app that goes down is alerted within one interval, not two."""
        next_compaction = 0.0
        while not self.stopping.is_set():
            wait = self.monitor_interval
            try:
                changes = monitor.record(self.registry_path, monitor.collect(self.registry_path))
                for alert in changes:
                    self.say(f"monitor: {alert['message']}")
                alerts.send_in_background(self.registry_path, changes, self.say)
                if time.monotonic() >= next_compaction:
                    with Registry.open(self.registry_path, create=False) as reg:
                        reg.compact_samples()
                    next_compaction = time.monotonic() + 3600
                with Registry.open(self.registry_path, create=False) as reg:
                    if reg.pending_states():
                        wait = min(wait, monitor.CONFIRM_AFTER)
            except Exception:  # noqa: BLE001 - monitoring must never stop the worker
                self.say(f"monitor: the round failed: {traceback.format_exc()}")
            self.stopping.wait(wait)

    def recover(self, reg: Registry) -> list[int]:
        """Fail the jobs a dead worker left running (this one holds the lock: the worker that
        claimed them is gone), after stopping what is left of their processes."""
        left = reg.list_jobs(status="running", limit=100000)
        for job in left:
            process.stop_job_processes(process.job_marker(self.registry_path, job["id"]))
        summary = "the worker running this job stopped before it finished: its processes were stopped"
        failed = reg.fail_running_jobs(summary) if left else []
        if failed:
            self.say(f"failed the jobs a stopped worker left running: {', '.join(map(str, failed))}")
        return failed

    # -- the jobs ----------------------------------------------------------------------

    def _start(self, job: dict[str, Any]) -> None:
        cancel = threading.Event()
        thread = threading.Thread(target=self._run_job, args=(job, cancel), name=f"job-{job['id']}", daemon=True)
        self.running[job["id"]] = (thread, cancel)
        thread.start()

    def _reap(self) -> None:
        for job_id in [job_id for job_id, (thread, _cancel) in self.running.items() if not thread.is_alive()]:
            del self.running[job_id]

    def _run_job(self, job: dict[str, Any], cancel: threading.Event) -> None:
        try:
            run = JobRun(job, self.registry_path, self.jobs_dir, cancel)
        except DplError as exc:
            self.say(f"job {job['id']} cannot start: {exc}")
            return
        status, error = "failed", ""
        try:
            kind = KINDS.get(job["kind"])
            if kind is None:
                error = f"this DPL does not know jobs of kind {job['kind']!r}"
            else:
                status = kind(run)
        except Canceled:
            status = "canceled"
        except Exception as exc:  # noqa: BLE001 - whatever happens, the job is finished
            error = f"the job stopped: {exc!r}"
            self.say(f"job {job['id']}: {traceback.format_exc()}")
        try:
            run.finish(status, error)
            if job["kind"] in RELEASE_KINDS and status in ("failed", "timeout"):
                self._alert_failed(job)
        except Exception:  # noqa: BLE001 - the next worker's recovery will fail it
            self.say(f"job {job['id']} could not be finished: {traceback.format_exc()}")
        finally:
            run.close()
            self.woken.set()  # a slot is free: the next job may start now

    def _alert_failed(self, job: dict[str, Any]) -> None:
        """A deploy, rollback or restore that failed is an alert (the previous release still
        serves, but someone should look)."""
        with Registry.open(self.registry_path, create=False) as reg:
            ended = reg.get_job(job["id"])
            alert = {"target": job["target"], "state": f"{job['kind']}-failed", "was": "",
                     "message": f"{job['kind']} of {job['target'].removeprefix('app/')} {ended['status']} "
                                f"(job {job['id']}): {ended['summary'] or ended['status']}"}
            alert["id"] = reg.add_alert(alert["target"], alert["state"], alert["message"])
        self.say(f"alert: {alert['message']}")
        alerts.send_in_background(self.registry_path, [alert], self.say)

    def _stop_running(self) -> None:
        """Stopping: cancel the running jobs (their deploys leave the previous release
        serving) and wait for them to end."""
        self._reap()
        if self.running:
            self.say(f"stopping: canceling jobs {', '.join(map(str, self.running))}")
        for _thread, cancel in self.running.values():
            cancel.set()
        for thread, _cancel in self.running.values():
            thread.join()
