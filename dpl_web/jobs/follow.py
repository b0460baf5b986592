"""Following a job from any process: its stored events, read from a sequence number on.

The CLI prints them as they come (``dpl deploy``, ``dpl job follow``); the API and the job
page send them as server-sent events (:func:`server_sent_events`), resuming at Last-Event-ID. A follower only reads
the registry, so it can follow a job that another process queued and the worker runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dpl_web.jobs import worker
from dpl_web.registry import JOB_FINISHED, Registry

POLL = 0.05  # seconds between two reads of the stream (an indexed read: cheap)
HEARTBEAT = 15  # seconds between two comments on an idle stream (Cloudflare drops ~100 s idle)
STREAM_POLL = 0.1  # seconds between two reads of a job's events while streaming to a browser
RECHECK = 30  # seconds between two checks that a stream's reader may still read it


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


def server_sent_events(registry_path: Path, job_id: int, after: int,
                       still_allowed: Callable[[Registry], bool] | None = None,
                       max_seconds: float | None = None) -> Iterator[str]:
    """The job's events as server-sent events (``id`` = the sequence number, so a browser that
    reconnects resumes after the last one it had), then the end of the stream once the job has
    finished; a comment line every :data:`HEARTBEAT` s while nothing happens, so no proxy
    takes the stream for dead. It only reads: the web worker serving it need not be the one
    that queued the job. ``still_allowed`` is asked every :data:`RECHECK` s (a session that
    ended ends the stream), and the stream ends after ``max_seconds`` (the browser reconnects
    and resumes where it was)."""
    quiet_since = started = checked = time.monotonic()
    yield "retry: 2000\n\n"
    with Registry.open(registry_path, create=False) as reg:
        while True:
            now = time.monotonic()
            if max_seconds is not None and now - started >= max_seconds:
                return
            if still_allowed is not None and now - checked >= RECHECK:
                if not still_allowed(reg):
                    yield "event: denied\ndata: {}\n\n"
                    return
                checked = now
            batch = reg.job_events(job_id, after=after)
            for event in batch:
                after = event["seq"]
                yield f"id: {event['seq']}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n"
            if batch:
                quiet_since = time.monotonic()
                continue
            if reg.get_job(job_id)["status"] in JOB_FINISHED and not reg.job_events(job_id, after=after):
                yield "event: end\ndata: {}\n\n"
                return
            if time.monotonic() - quiet_since >= HEARTBEAT:
                yield ": heartbeat\n\n"
                quiet_since = time.monotonic()
            time.sleep(STREAM_POLL)


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
