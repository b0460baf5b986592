"""Following a job from any process: its stored events, read from a sequence number on.

The CLI prints them as they come (``dpl deploy``, ``dpl job follow``); the web's live log
will send them as server-sent events, resuming at Last-Event-ID. A follower only reads
the registry, so it can follow a job that another process queued and the worker runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dpl_web.jobs import worker
from dpl_web.registry import JOB_FINISHED, Registry

POLL = 0.05  # seconds between two reads of the stream (an indexed read: cheap)


def events(registry_path: Path, job_id: int, after: int = 0, poll: float = POLL,
           keep_worker: bool = True) -> Iterator[dict[str, Any]]:
    """The job's events with a sequence number above ``after``, as they are stored, until
    the job has finished. With ``keep_worker``, a job left without a worker (it died, or
    none was running) gets one: the new worker fails the jobs the dead one left running."""
    checked = time.monotonic()
    with Registry.open(registry_path, create=False) as reg:
        while True:
            batch = reg.job_events(job_id, after=after)
            for event in batch:
                after = event["seq"]
                yield event
            if batch:
                continue
            status = reg.get_job(job_id)["status"]
            if status in JOB_FINISHED:
                # The last events were stored with the status, in one transaction.
                yield from reg.job_events(job_id, after=after)
                return
            if keep_worker and time.monotonic() - checked > 2:
                worker.ensure_worker(registry_path, wake_it=False)
                checked = time.monotonic()
            time.sleep(poll)


def follow(registry_path: Path, job_id: int, on_event: Callable[[dict[str, Any]], None] | None = None,
           after: int = 0, keep_worker: bool = True) -> dict[str, Any]:
    """Wait for the job to finish, handing each event to ``on_event``; returns the job."""
    for event in events(registry_path, job_id, after=after, keep_worker=keep_worker):
        if on_event:
            on_event(event)
    with Registry.open(registry_path, create=False) as reg:
        return reg.get_job(job_id)


def results(registry_path: Path, job_id: int) -> list[dict[str, Any]]:
    """The task results of a job (its ``result`` events), from its stream."""
    with Registry.open(registry_path, create=False) as reg:
        found, after = [], 0
        while batch := reg.job_events(job_id, after=after):
            found += [{k: v for k, v in event.items() if k not in ("seq", "at", "type")}
                      for event in batch if event["type"] == "result"]
            after = batch[-1]["seq"]
        return found
