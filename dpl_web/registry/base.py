"""The registry's connection: opening, transactions and snapshots, and the helpers every
table shares."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dpl_web import paths
from dpl_web.errors import Conflict, NotFound
from dpl_web.registry.records import _now
from dpl_web.registry.schema import RegistryError, connect


class RegistryBase:
    """DPL's registry: open one with :meth:`open`, close it (or use ``with``) when done.

    A Registry wraps one SQLite connection; use one per thread (the web front end keeps one
    per request, like Flask's tutorial keeps its database in ``g``).
    """

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path | str | None = None, create: bool = True) -> RegistryBase:
        """Open (and migrate) the registry at ``path``, by default ``$DPL_REGISTRY`` or
        ``~/.local/share/dpl/registry.sqlite3``. ``create=False`` refuses a missing file."""
        path = Path(path) if path else paths.registry_path()
        return cls(connect(path, create=create), path)

    def close(self) -> None:
        self.conn.close()

    @property
    def total_changes(self) -> int:
        """Rows written through this registry object so far: compare it before and after a
        call to know whether the call changed anything (the update methods write only what
        differs)."""
        return self.conn.total_changes

    def __enter__(self) -> RegistryBase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- transactions ------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: it waits for other writers up to the
        busy timeout, then holds the write lock). Nested calls join the outer transaction,
        so callers can group several changes: ``with reg.transaction(): reg.add_project(...);
        reg.add_app(...)``."""
        if self.conn.in_transaction:
            yield self.conn
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise RegistryError(f"cannot change the registry {self.path}: {exc}") from exc
        try:
            yield self.conn
        except sqlite3.IntegrityError as exc:
            self.conn.execute("ROLLBACK")
            raise Conflict(f"the registry refused the change: {exc}") from exc
        except sqlite3.OperationalError as exc:
            self.conn.execute("ROLLBACK")
            raise RegistryError(f"cannot change the registry {self.path}: {exc}") from exc
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction, so reads made of several queries see one state."""
        if self.conn.in_transaction:
            yield self.conn
            return
        self.conn.execute("BEGIN")
        try:
            yield self.conn
        finally:
            self.conn.execute("COMMIT")

    def _one(self, sql: str, params: tuple = ()) -> sqlite3.Row | None:
        return self.conn.execute(sql, params).fetchone()

    def _id(self, table: str, name: str, hint: str | None = None) -> int:
        row = self._one(f"SELECT id FROM {table} WHERE name = ?", (name,))
        if row is None:
            raise NotFound(table, name, hint)
        return row["id"]

    def _app_id(self, project: str, app: str) -> int:
        row = self._one("SELECT a.id FROM app a JOIN project p ON p.id = a.project_id "
                        "WHERE p.name = ? AND a.name = ?", (project, app))
        if row is None:
            raise NotFound("app", f"{project}/{app}", f"list the apps of project {project} to see which exist")
        return row["id"]

    @staticmethod
    def _merge(into: dict[str, list[str]], more: dict[str, list[str]]) -> None:
        for key, names in more.items():
            into.setdefault(key, [])
            into[key].extend(name for name in names if name not in into[key])

    def _write_changes(self, conn: sqlite3.Connection, table: str, key: str, name: str,
                       current: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
        """UPDATE only the columns whose value differs; touch updated_at only then."""
        changed = {column: value for column, value in values.items() if current.get(column) != value}
        if not changed:
            return False
        assignments = ", ".join(f"{column} = ?" for column in changed)
        conn.execute(f"UPDATE {table} SET {assignments}, updated_at = ? WHERE {key} = ?",
                     (*changed.values(), _now(), name))
        return True
