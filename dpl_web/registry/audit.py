"""The audit trail: every change and action a user, a token or a webhook asked for (the
services write it), newest first. Field names only: a value may be a secret."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dpl_web.collection import validation
from dpl_web.registry.base import RegistryBase
from dpl_web.registry.records import _audit_dict, _now


class AuditTable(RegistryBase):
    """The audit trail."""

    def add_audit(self, who: str, action: str, target: str, detail: Mapping[str, Any] | None = None,
                  job_id: int | None = None) -> int:
        validation.line(who, "who")
        validation.line(action, "action")
        validation.line(target, "target")
        with self.transaction() as conn:
            return conn.execute("INSERT INTO audit (at, who, action, target, detail, job_id) VALUES (?, ?, ?, ?, ?, ?)",
                                (_now(), who, action, target, json.dumps(dict(detail or {})), job_id)).lastrowid

    def list_audit(self, *, who: str | None = None, target: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Entries, newest first; ``target`` matches a prefix (``app/shop`` finds the shop's apps)."""
        clauses, params = [], []
        if who is not None:
            clauses.append("who = ?")
            params.append(validation.line(who, "who"))
        if target is not None:
            clauses.append("(target = ? OR target LIKE ? ESCAPE '!')")
            prefix = validation.line(target, "target").rstrip("/")
            prefix = prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_")
            params += [target, prefix + "/%"]
        limit = validation.count(limit, "limit", minimum=1, maximum=100000)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.conn.execute(f"SELECT * FROM audit {where} ORDER BY id DESC LIMIT ?", (*params, limit))
        return [_audit_dict(row) for row in rows]
