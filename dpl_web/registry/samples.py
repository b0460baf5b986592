"""Monitoring's history: samples of each container and app, kept raw for a day and as
5-minute averages and maxima for 30 days (so the file stops growing), and the state each
target was last seen in.

A sample is one target's figures at one time (``{"cpu": 3.2, "memory": 123456, "up": true,
...}``); numbers and booleans (as 0/1) are what a rollup averages and maxes, other values
are not kept in rollups.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from dpl_web.registry.base import RegistryBase
from dpl_web.registry.records import _now

RAW_KEEP = 24 * 3600  # seconds a raw sample is kept
ROLLUP_KEEP = 30 * 24 * 3600  # seconds a 5-minute rollup is kept
BUCKET = 300  # seconds a rollup covers


def _numbers(data: Mapping[str, Any]) -> dict[str, float]:
    return {key: float(value) for key, value in data.items() if isinstance(value, int | float)}


def _merge(rollup: dict[str, list[float]], data: Mapping[str, Any]) -> dict[str, list[float]]:
    """Add one raw sample to a rollup: ``{field: [average, maximum, count], ...}``."""
    for key, value in _numbers(data).items():
        average, maximum, count = rollup.get(key, [0.0, value, 0])
        rollup[key] = [(average * count + value) / (count + 1), max(maximum, value), count + 1]
    return rollup


class SamplesTable(RegistryBase):
    """Samples, their rollups, and the targets' last states."""

    def add_samples(self, at: float, samples: Mapping[str, Mapping[str, Any]]) -> None:
        """Store one collection round: ``{target: figures}`` taken at ``at`` (epoch s)."""
        with self.transaction() as conn:
            conn.executemany("INSERT INTO sample (at, target, data) VALUES (?, ?, ?)",
                             [(at, target, json.dumps(dict(data))) for target, data in samples.items()])

    def latest_samples(self, targets: list[str]) -> dict[str, dict[str, Any]]:
        """The newest sample of each of ``targets``: ``{target: {"at": epoch, **figures}}``
        (one indexed lookup each: a day of raw samples is a lot of rows to group)."""
        found = {}
        for target in targets:
            row = self.conn.execute("SELECT at, data FROM sample WHERE target = ? ORDER BY at DESC LIMIT 1",
                                    (target,)).fetchone()
            if row is not None:
                found[target] = {"at": row["at"], **json.loads(row["data"])}
        return found

    def series(self, target: str, since: float, until: float | None = None) -> list[dict[str, Any]]:
        """The target's figures from ``since`` on, oldest first: raw samples while they are
        kept, then the rollups (``{"at", field: average, field_max: maximum}``)."""
        until = time.time() if until is None else until
        points = []
        # The rollups of the buckets that start in [since, until).
        for row in self.conn.execute("SELECT bucket, data FROM sample_rollup WHERE target = ? AND bucket >= ? "
                                     "AND bucket < ? ORDER BY bucket", (target, since, until)):
            rollup = json.loads(row["data"])
            point: dict[str, Any] = {"at": row["bucket"] + BUCKET / 2}
            for key, (average, maximum, _count) in rollup.items():
                point[key], point[f"{key}_max"] = average, maximum
            points.append(point)
        for row in self.conn.execute("SELECT at, data FROM sample WHERE target = ? AND at >= ? AND at < ? "
                                     "ORDER BY at", (target, since, until)):
            points.append({"at": row["at"], **json.loads(row["data"])})
        return points

    def compact_samples(self, now: float | None = None) -> dict[str, int]:
        """Fold the raw samples older than a day into their 5-minute rollups and delete them;
        delete the rollups older than 30 days. Returns how many of each went."""
        now = time.time() if now is None else now
        cutoff = (now - RAW_KEEP) // BUCKET * BUCKET  # whole buckets only
        with self.transaction() as conn:
            rollups: dict[tuple[str, int], dict[str, Any]] = {}
            rows = conn.execute("SELECT at, target, data FROM sample WHERE at < ? ORDER BY at", (cutoff,)).fetchall()
            for row in rows:
                key = (row["target"], int(row["at"] // BUCKET * BUCKET))
                if key not in rollups:
                    stored = conn.execute("SELECT data FROM sample_rollup WHERE target = ? AND bucket = ?",
                                          key).fetchone()
                    rollups[key] = json.loads(stored["data"]) if stored else {}
                _merge(rollups[key], json.loads(row["data"]))
            conn.executemany("INSERT OR REPLACE INTO sample_rollup (target, bucket, data) VALUES (?, ?, ?)",
                             [(target, bucket, json.dumps(data)) for (target, bucket), data in rollups.items()])
            conn.execute("DELETE FROM sample WHERE at < ?", (cutoff,))
            expired = conn.execute("DELETE FROM sample_rollup WHERE bucket < ?", (now - ROLLUP_KEEP,)).rowcount
        return {"folded": len(rows), "rollups_written": len(rollups), "rollups_expired": expired}

    # -- states (what an alert is about) -------------------------------------------------------

    def set_state(self, target: str, state: str, detail: str = "", confirm: int = 1) -> dict[str, Any] | None:
        """Record the state ``target`` is seen in; it counts once seen ``confirm`` rounds in a
        row (a flapping target does not alert at every sample). Returns the previous state
        (``{"state", "since", "detail"}``) when it changed, None otherwise (and the first time
        a target is seen)."""
        with self.transaction() as conn:
            row = conn.execute("SELECT * FROM monitor_state WHERE target = ?", (target,)).fetchone()
            if row is not None and row["state"] == state:
                if row["detail"] != detail or row["pending"] is not None:
                    conn.execute("UPDATE monitor_state SET detail = ?, pending = NULL, pending_count = 0 "
                                 "WHERE target = ?", (detail, target))
                return None
            if row is not None:
                seen = row["pending_count"] + 1 if row["pending"] == state else 1
                if seen < confirm:
                    conn.execute("UPDATE monitor_state SET pending = ?, pending_count = ? WHERE target = ?",
                                 (state, seen, target))
                    return None
            conn.execute("INSERT OR REPLACE INTO monitor_state (target, state, since, detail, pending, pending_count) "
                         "VALUES (?, ?, ?, ?, NULL, 0)", (target, state, _now(), detail))
        return None if row is None else {"state": row["state"], "since": row["since"], "detail": row["detail"]}

    # -- alerts --------------------------------------------------------------------------------

    def add_alert(self, target: str, state: str, message: str) -> int:
        with self.transaction() as conn:
            return conn.execute("INSERT INTO alert (at, target, state, message) VALUES (?, ?, ?, ?)",
                                (_now(), target, state, message)).lastrowid

    def alert_notified(self, alert_id: int, how: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE alert SET notified = ? WHERE id = ?", (how, alert_id))

    def list_alerts(self, limit: int = 20) -> list[dict[str, Any]]:
        return [dict(row) for row in self.conn.execute("SELECT * FROM alert ORDER BY id DESC LIMIT ?", (limit,))]

    def states(self) -> dict[str, dict[str, Any]]:
        return {row["target"]: {"state": row["state"], "since": row["since"], "detail": row["detail"]}
                for row in self.conn.execute("SELECT * FROM monitor_state")}

    def pending_states(self) -> int:
        """How many targets were seen in a new state that is not confirmed yet (the worker then
        looks again soon, not a whole interval later)."""
        return self.conn.execute("SELECT count(*) FROM monitor_state WHERE pending IS NOT NULL").fetchone()[0]

    # -- where the reading of nginx's traffic log stopped (dpl_web.traffic) -----------------------

    def traffic_cursor(self) -> dict[str, int] | None:
        row = self._one("SELECT value FROM meta WHERE key = 'traffic_cursor'")
        return json.loads(row["value"]) if row else None

    def set_traffic_cursor(self, cursor: Mapping[str, int]) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('traffic_cursor', ?)",
                         (json.dumps(dict(cursor)),))
