"""The processes of jobs and workers: who runs a job, and stopping every process a job started.

ansible-runner SIGKILLs the process group of ansible-playbook, but ansible-core's workers
run in sessions of their own and would go on with their task. Every process of a job
carries ``DPL_JOB_ID`` in its environment; cancel and timeout send them SIGTERM
(ansible-playbook passes it on to its workers, which lets the connection stop the command
in the container), then SIGKILL the stragglers.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import time
from pathlib import Path

TERM_GRACE = 5  # seconds between SIGTERM and SIGKILL when a job is stopped


def owner_id() -> str:
    """Who runs a job: this machine and process, as recorded in the registry."""
    return f"{socket.gethostname()}:{os.getpid()}"


def registry_key(registry_path: Path) -> str:
    """A short name for a registry file: job ids count per registry, so what is named after
    a job (its directory, its process marker) or a registry (its worker) carries this key."""
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
