"""The registry: DPL's SQLite record of hosts, containers, projects, apps and jobs.

This first version creates the file and runs the schema migrations; the registry issue
fills in the entities.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

# Schema migrations, applied in order; the index + 1 is the schema version they lead to.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


class RegistryError(Exception):
    """The registry file cannot be opened or is not a DPL registry."""


def connect(path: Path | str) -> sqlite3.Connection:
    """Open the registry at ``path``, creating and migrating it as needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=10, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
        migrate(conn)
    except sqlite3.DatabaseError as exc:
        raise RegistryError(f"{path} is not a usable DPL registry: {exc}") from exc
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations the database lacks, each in its own transaction."""
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise RegistryError(
            f"the registry has schema version {current}, newer than this DPL ({SCHEMA_VERSION}): "
            "upgrade DPL"
        )
    for version in range(current, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while this one waited for the lock.
            if schema_version(conn) > version:
                conn.execute("ROLLBACK")
                continue
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return schema_version(conn)


def connect_readonly(path: Path | str) -> sqlite3.Connection:
    """Open an existing registry without creating or migrating anything."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        schema_version(conn)
    except sqlite3.DatabaseError as exc:
        raise RegistryError(f"{path} is not a usable DPL registry: {exc}") from exc
    conn.row_factory = sqlite3.Row
    return conn
