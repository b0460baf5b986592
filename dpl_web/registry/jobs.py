"""The jobs: queued by anyone, claimed and run by the worker, followed by their events."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from dpl_web.collection import validation
from dpl_web.errors import Conflict, NotFound, ValidationError
from dpl_web.registry.base import RegistryBase
from dpl_web.registry.fields import split_app
from dpl_web.registry.records import _event_dict, _job_dict, _now, _now_precise

JOB_STATUSES = ("queued", "running", "successful", "failed", "canceled", "timeout")
JOB_FINISHED = ("successful", "failed", "canceled", "timeout")
JOB_TARGET_KINDS = ("host", "container", "project", "app")
# The events of this many newest jobs are kept (a job's log stays with it for good).
KEEP_JOB_EVENTS = 1000


def parse_target(target: str) -> tuple[str, tuple[str, ...]]:
    """A job target: ``host/NAME``, ``container/NAME``, ``project/NAME`` or ``app/PROJECT/APP``."""
    if not isinstance(target, str) or "/" not in target:
        raise ValidationError("target", target,
                              "use host/NAME, container/NAME, project/NAME or app/PROJECT/APP")
    kind, _sep, rest = target.partition("/")
    validation.choice(kind, "target", JOB_TARGET_KINDS)
    if kind == "app":
        return kind, split_app(rest, "target")
    check = validation.container_name if kind == "container" else validation.name
    return kind, (check(rest, "target"),)


def jobs_clash(one: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """May these two jobs not run at the same time? Jobs of one target run one after the
    other, and an app and its container are one target as far as that goes: stopping or
    deleting a container in the middle of a deploy in it would break the deploy."""
    if one["target"] == other["target"]:
        return True
    container_job = [job for job in (one, other) if job["target"].startswith("container/")]
    return bool(container_job) and one["container"] is not None and one["container"] == other["container"]


class JobsTable(RegistryBase):
    """The jobs: queued by anyone, claimed and run by the worker, followed by their events."""

    # -- jobs ------------------------------------------------------------------------
    # A job is queued by whoever asks for it, claimed and run by the worker (dpl_web.jobs),
    # and finished by it; any process can cancel it or follow its events.

    def create_job(self, kind: str, target: str, who: str, owner: str | None = None,
                   params: Mapping[str, Any] | None = None, timeout: int = 3600) -> int:
        """Record a queued job: ``kind`` (deploy, rollback, container-create, ...), ``target``
        (``app/PROJECT/APP``, ``container/NAME``, ``project/NAME`` or ``host/NAME``), ``who``
        asked for it, and the ``params`` its kind needs (JSON, never a secret). Returns its id.
        The target need not exist any more later: the job keeps its container and project
        names for the history."""
        return self.queue_job(kind, target, who, owner=owner, params=params, timeout=timeout)[0]

    def queue_job(self, kind: str, target: str, who: str, owner: str | None = None,
                  params: Mapping[str, Any] | None = None, timeout: int = 3600,
                  coalesce: bool = False) -> tuple[int, list[int]]:
        """:meth:`create_job`; with ``coalesce``, the queued (not yet running) jobs of the same
        kind and target are replaced by this one (the newest request wins): they end
        canceled, saying which job replaced them. Returns the new id and the replaced ids."""
        validation.name(kind, "kind")
        target_kind, names = parse_target(target)
        validation.line(who, "who")
        validation.count(timeout, "timeout", minimum=1, maximum=7 * 24 * 3600)
        try:
            params_json = json.dumps(dict(params or {}))
        except (TypeError, ValueError) as exc:
            raise ValidationError("params", params, f"must be JSON-serialisable ({exc})") from None
        with self.transaction() as conn:
            container = project = None
            if target_kind == "container":
                container = names[0]
            elif target_kind in ("project", "app"):
                project = names[0]
                row = self._one("SELECT c.name FROM project p JOIN container c ON c.id = p.container_id "
                                "WHERE p.name = ?", (project,))
                container = row[0] if row else None
            now = _now()
            cursor = conn.execute(
                "INSERT INTO job (kind, target, container, project, who, status, created_at, owner, params, timeout) "
                "VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
                (kind, target, container, project, who, now, owner, params_json, int(timeout)))
            job_id = cursor.lastrowid
            replaced = []
            if coalesce:
                replaced = [row[0] for row in conn.execute(
                    "SELECT id FROM job WHERE kind = ? AND target = ? AND status = 'queued' AND id < ? ORDER BY id",
                    (kind, target, job_id))]
                for old in replaced:
                    summary = (f"replaced by job {job_id}: a newer {kind} of {target} was asked for before this "
                               "one started")
                    conn.execute("UPDATE job SET status = 'canceled', finished_at = ?, summary = ?, replaced_by = ? "
                                 "WHERE id = ?", (now, summary, job_id, old))
                    self._append_event(conn, old, "finished", {"status": "canceled", "summary": summary,
                                                               "replaced_by": job_id})
            self._append_event(conn, job_id, "queued", {"kind": kind, "target": target, "who": who,
                                                        "replaces": replaced})
        return job_id, replaced

    def get_job(self, job_id: int) -> dict[str, Any]:
        """One job, with its log."""
        validation.count(job_id, "job", minimum=1, maximum=2**62)
        row = self._one("SELECT * FROM job WHERE id = ?", (int(job_id),))
        if row is None:
            raise NotFound("job", str(job_id))
        return _job_dict(row, with_log=True)

    def start_job(self, job_id: int, owner: str | None = None) -> dict[str, Any]:
        """Mark a queued job running; ``owner`` (``host:pid``) names the process running it."""
        validation.count(job_id, "job", minimum=1, maximum=2**62)
        with self.transaction() as conn:
            job = self.get_job(job_id)
            if job["status"] != "queued":
                raise Conflict(f"job {job_id} is {job['status']}, not queued: it cannot start")
            conn.execute("UPDATE job SET status = 'running', started_at = ?, owner = ? WHERE id = ?",
                         (_now(), owner, job_id))
            self._append_event(conn, job_id, "started", {"owner": owner})
        return self.get_job(job_id)

    def claim_jobs(self, owner: str, slots: int) -> list[dict[str, Any]]:
        """Start up to ``slots`` queued jobs, oldest first, for the worker ``owner``: each only
        when it clashes (:func:`jobs_clash`) with no running job and with no older queued one,
        so the jobs of one target run in the order they were asked for. Returns them."""
        # Read first: a worker looks at the queue twice a second, and an idle one must not take
        # the write lock every time.
        if slots <= 0 or self._one("SELECT 1 FROM job WHERE status = 'queued' LIMIT 1") is None:
            return []
        claimed: list[dict[str, Any]] = []
        with self.transaction() as conn:
            rows = conn.execute("SELECT * FROM job WHERE status IN ('queued', 'running') ORDER BY id").fetchall()
            ahead = [_job_dict(row, with_log=False) for row in rows if row["status"] == "running"]
            for row in rows:
                if row["status"] != "queued" or len(claimed) >= slots:
                    continue
                job = _job_dict(row, with_log=False)
                if not any(jobs_clash(job, other) for other in ahead):
                    conn.execute("UPDATE job SET status = 'running', started_at = ?, owner = ? WHERE id = ?",
                                 (_now(), owner, job["id"]))
                    self._append_event(conn, job["id"], "started", {"owner": owner})
                    claimed.append(job)
                ahead.append(job)  # a job that waits keeps the younger jobs it clashes with waiting too
        return [self.get_job(job["id"]) for job in claimed]

    def request_cancel(self, job_id: int, who: str = "") -> dict[str, Any]:
        """Cancel a job from any process: a queued job ends canceled at once; a running one is
        flagged, and its worker stops it within a moment. A finished job is a Conflict."""
        validation.count(job_id, "job", minimum=1, maximum=2**62)
        with self.transaction() as conn:
            job = self.get_job(job_id)
            if job["status"] in JOB_FINISHED:
                raise Conflict(f"job {job_id} already finished ({job['status']})", "there is nothing to cancel")
            by = f" by {validation.line(who, 'who')}" if who else ""
            if job["status"] == "queued":
                summary = f"canceled{by} before it started"
                conn.execute("UPDATE job SET status = 'canceled', finished_at = ?, summary = ? WHERE id = ?",
                             (_now(), summary, job_id))
                self._append_event(conn, job_id, "finished", {"status": "canceled", "summary": summary})
            elif not job["cancel_requested"]:
                conn.execute("UPDATE job SET cancel_requested = 1 WHERE id = ?", (job_id,))
                self._append_event(conn, job_id, "note", {"msg": f"cancel requested{by}"})
        return self.get_job(job_id)

    def canceled_jobs(self, job_ids: Iterable[int]) -> set[int]:
        """Which of these running jobs someone asked to cancel (the worker polls this)."""
        ids = [int(job_id) for job_id in job_ids]
        if not ids:
            return set()
        return {row[0] for row in self.conn.execute(
            f"SELECT id FROM job WHERE cancel_requested = 1 AND id IN ({', '.join('?' * len(ids))})", ids)}

    def fail_running_jobs(self, summary: str) -> list[int]:
        """Mark every running job failed (a worker that took the lock does: the worker that ran
        them is gone). Returns their ids."""
        validation.text(summary, "summary")
        with self.transaction() as conn:
            orphaned = [row[0] for row in conn.execute("SELECT id FROM job WHERE status = 'running' ORDER BY id")]
            for job_id in orphaned:
                conn.execute("UPDATE job SET status = 'failed', finished_at = ?, summary = ? WHERE id = ?",
                             (_now(), summary, job_id))
                self._append_event(conn, job_id, "finished", {"status": "failed", "summary": summary})
        return orphaned

    def finish_job(self, job_id: int, status: str, commit: str | None = None, summary: str | None = None,
                   log: str | None = None, changed: Any = None, result: Any = None) -> dict[str, Any]:
        """Record how a job ended: ``status`` is successful, failed, canceled or timeout;
        ``commit`` the commit deployed, ``summary`` a line or two for humans, ``log`` the
        output, ``changed`` a JSON-serialisable account of what changed, ``result`` what the
        job found (an app's releases, ...). The last event of the job says so."""
        validation.count(job_id, "job", minimum=1, maximum=2**62)
        validation.choice(status, "status", JOB_FINISHED)
        if commit is not None:
            validation.commit(commit, "commit")
        if summary is not None:
            summary = validation.text(summary, "summary")
        if log is not None:
            log = validation.output(log, "log")
        try:
            changed_json = json.dumps(changed) if changed is not None else None
            result_json = json.dumps(result) if result is not None else None
        except (TypeError, ValueError) as exc:
            raise ValidationError("changed", changed, f"must be JSON-serialisable ({exc})") from None
        with self.transaction() as conn:
            job = self.get_job(job_id)
            if job["status"] in JOB_FINISHED:
                raise Conflict(f"job {job_id} already finished ({job['status']})")
            conn.execute(
                "UPDATE job SET status = ?, finished_at = ?, commit_id = COALESCE(?, commit_id), "
                "summary = COALESCE(?, summary), log = COALESCE(?, log), changed = COALESCE(?, changed), "
                "result = COALESCE(?, result) WHERE id = ?",
                (status, _now(), commit, summary, log, changed_json, result_json, job_id))
            self._append_event(conn, job_id, "finished", {"status": status, "summary": summary or job["summary"],
                                                          "commit": commit})
            # Events are for following jobs: those of old jobs go (their logs stay).
            conn.execute("DELETE FROM job_event WHERE job_id <= ?", (job_id - KEEP_JOB_EVENTS,))
        return self.get_job(job_id)

    # -- job events ----------------------------------------------------------------------

    def _append_event(self, conn: sqlite3.Connection, job_id: int, kind: str, data: Mapping[str, Any]) -> int:
        seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM job_event WHERE job_id = ?", (job_id,)).fetchone()[0]
        conn.execute("INSERT INTO job_event (job_id, seq, at, type, data) VALUES (?, ?, ?, ?, ?)",
                     (job_id, seq, _now_precise(), kind, json.dumps(dict(data))))
        return seq

    def add_job_event(self, job_id: int, kind: str, data: Mapping[str, Any]) -> int:
        """Append an event to a job's stream (already trimmed and masked by the caller);
        returns its sequence number, 1 for the first event of the job."""
        validation.name(kind, "event type")
        with self.transaction() as conn:
            return self._append_event(conn, int(job_id), kind, data)

    def job_events(self, job_id: int, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """The job's events with a sequence number above ``after``, in order: ``{"seq", "at",
        "type", ...}``. Following a job is calling this with the last ``seq`` seen."""
        validation.count(job_id, "job", minimum=1, maximum=2**62)
        validation.count(after, "after", minimum=0, maximum=2**62)
        validation.count(limit, "limit", minimum=1, maximum=100000)
        rows = self.conn.execute("SELECT seq, at, type, data FROM job_event WHERE job_id = ? AND seq > ? "
                                 "ORDER BY seq LIMIT ?", (int(job_id), int(after), int(limit)))
        return [_event_dict(row) for row in rows]

    def list_jobs(self, *, app: str | None = None, project: str | None = None, container: str | None = None,
                  status: str | list[str] | None = None, kind: str | None = None, target: str | None = None,
                  limit: int = 50, before: int | None = None) -> list[dict[str, Any]]:
        """Jobs, newest first, without their logs. ``app`` is PROJECT/APP; ``project`` and
        ``container`` include the jobs of the apps in them; ``status`` may be a list;
        ``before``: only jobs older than that id (the next page)."""
        clauses, params = [], []
        if before is not None:
            clauses.append("id < ?")
            params.append(validation.count(before, "before", minimum=1, maximum=2 ** 62))
        if app is not None:
            project_name, app_name = split_app(app)
            clauses.append("target = ?")
            params.append(f"app/{project_name}/{app_name}")
        if project is not None:
            clauses.append("project = ?")
            params.append(validation.name(project, "project"))
        if container is not None:
            clauses.append("container = ?")
            params.append(validation.container_name(container, "container"))
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            for value in statuses:
                validation.choice(value, "status", JOB_STATUSES)
            clauses.append(f"status IN ({', '.join('?' * len(statuses))})")
            params.extend(statuses)
        if kind is not None:
            clauses.append("kind = ?")
            params.append(validation.name(kind, "kind"))
        if target is not None:
            parse_target(target)
            clauses.append("target = ?")
            params.append(target)
        limit = validation.count(limit, "limit", minimum=1, maximum=100000)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.conn.execute(f"SELECT * FROM job {where} ORDER BY id DESC LIMIT ?", (*params, limit))
        return [_job_dict(row, with_log=False) for row in rows]

    def latest_jobs(self, kinds: tuple[str, ...] | None = None, status: str | None = None) -> dict[str, dict[str, Any]]:
        """The newest job of each target (of these ``kinds``, with this ``status``): one
        query for a whole dashboard."""
        clauses, params = [], []
        if kinds is not None:
            clauses.append(f"kind IN ({', '.join('?' * len(kinds))})")
            params.extend(kinds)
        if status is not None:
            clauses.append("status = ?")
            params.append(validation.choice(status, "status", JOB_STATUSES))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.conn.execute(f"SELECT * FROM job WHERE id IN (SELECT max(id) FROM job {where} GROUP BY target)",
                                 params)
        return {row["target"]: _job_dict(row, with_log=False) for row in rows}
