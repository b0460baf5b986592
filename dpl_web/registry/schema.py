"""The registry's file: creating it private (it holds secrets), opening it (WAL, a long
busy timeout) and bringing its schema up to date, one migration at a time."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from dpl_web.errors import RegistryUnusable

# Schema migrations, applied in order; the index + 1 is the schema version they lead to.
# Never edit a migration that has shipped: add a new one.
MIGRATIONS: list[str] = [
    # 1: the file exists and is DPL's.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 2: the entities and the job history.
    """
    CREATE TABLE host (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        endpoint TEXT NOT NULL DEFAULT 'unix:',
        client_cert TEXT,
        client_key TEXT,
        server_cert TEXT,
        public_ipv4 TEXT,
        nginx_sites_dir TEXT NOT NULL DEFAULT '/etc/nginx/sites-available',
        bridge TEXT NOT NULL DEFAULT 'dplbr0',
        bridge_ipv4 TEXT NOT NULL DEFAULT '10.210.0.1/24',
        notes TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE container (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        host_id INTEGER NOT NULL REFERENCES host (id),
        image TEXT NOT NULL DEFAULT 'dpl-base',
        profiles TEXT NOT NULL DEFAULT '["default"]',
        cpu TEXT,
        memory TEXT,
        disk TEXT,
        ipv4 TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'unknown',
        status_at TEXT,
        notes TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (host_id, ipv4)
    );
    CREATE INDEX container_host ON container (host_id);
    CREATE TABLE project (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        container_id INTEGER NOT NULL REFERENCES container (id),
        notes TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX project_container ON project (container_id);
    CREATE TABLE app (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES project (id),
        name TEXT NOT NULL,
        repo TEXT NOT NULL,
        ref TEXT NOT NULL DEFAULT 'main',
        deploy_script TEXT,
        start_command TEXT NOT NULL DEFAULT 'npm start',
        port INTEGER NOT NULL DEFAULT 3000,
        health_path TEXT NOT NULL DEFAULT '/',
        keep_releases INTEGER NOT NULL DEFAULT 5,
        keep_backups INTEGER NOT NULL DEFAULT 5,
        notes TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (project_id, name)
    );
    CREATE TABLE app_domain (
        domain TEXT PRIMARY KEY,
        app_id INTEGER NOT NULL REFERENCES app (id) ON DELETE CASCADE,
        position INTEGER NOT NULL
    );
    CREATE INDEX app_domain_app ON app_domain (app_id);
    CREATE TABLE app_env (
        app_id INTEGER NOT NULL REFERENCES app (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        secret INTEGER NOT NULL DEFAULT 0 CHECK (secret IN (0, 1)),
        PRIMARY KEY (app_id, name)
    );
    CREATE TABLE job (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        container TEXT,
        project TEXT,
        who TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'queued' CHECK (
            status IN ('queued', 'running', 'successful', 'failed', 'canceled', 'timeout')),
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        commit_id TEXT,
        summary TEXT,
        log TEXT,
        changed TEXT
    );
    CREATE INDEX job_target ON job (target, id);
    CREATE INDEX job_container ON job (container, id);
    CREATE INDEX job_project ON job (project, id);
    CREATE INDEX job_status ON job (status);
    """,
    # v3: the process running a job, so a job whose process died can be told from one
    # still running (and stop blocking its target).
    """
    ALTER TABLE job ADD COLUMN owner TEXT;
    """,
    # v4: a container cut off from the other containers of its bridge (host only).
    """
    ALTER TABLE container ADD COLUMN isolated INTEGER NOT NULL DEFAULT 0 CHECK (isolated IN (0, 1));
    """,
    # v5: the port of the app's live service, as the last deploy, rollback or restore left it
    # (an app deployed without downtime alternates between its two ports).
    """
    ALTER TABLE app ADD COLUMN live_port INTEGER;
    """,
    # v6: jobs run in a background worker. The row holds what the worker needs to run the job
    # (its parameters, never a secret, and its timeout), a cancel request any process can
    # make, the job that replaced a queued deploy, and what the job found; each job's events
    # are stored as they arrive, numbered, so any process can follow it from any point.
    """
    ALTER TABLE job ADD COLUMN params TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE job ADD COLUMN timeout INTEGER NOT NULL DEFAULT 3600;
    ALTER TABLE job ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE job ADD COLUMN replaced_by INTEGER;
    ALTER TABLE job ADD COLUMN result TEXT;
    CREATE TABLE job_event (
        job_id INTEGER NOT NULL REFERENCES job (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        at TEXT NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (job_id, seq)
    ) WITHOUT ROWID;
    """,
    # v7: bearer tokens of the JSON API, stored hashed (SHA-256 of 32 random bytes: a token is
    # never guessable, so a slow hash buys nothing), each read-only or read-write.
    """
    CREATE TABLE api_token (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        hash TEXT NOT NULL UNIQUE,
        scope TEXT NOT NULL CHECK (scope IN ('read', 'write')),
        created_at TEXT NOT NULL,
        expires_at TEXT,
        revoked_at TEXT,
        last_used_at TEXT
    );
    """,
    # v8: push webhooks. An app's webhook secret (kept in the clear like the apps' secret
    # variables: an HMAC needs it; the file is mode 0600), and the deliveries seen, so a
    # replayed one is ignored.
    """
    CREATE TABLE app_webhook (
        app_id INTEGER PRIMARY KEY REFERENCES app (id) ON DELETE CASCADE,
        secret TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE webhook_delivery (
        app_id INTEGER NOT NULL REFERENCES app (id) ON DELETE CASCADE,
        delivery TEXT NOT NULL,
        received_at TEXT NOT NULL,
        job_id INTEGER,
        PRIMARY KEY (app_id, delivery)
    );
    CREATE INDEX webhook_delivery_time ON webhook_delivery (received_at);
    """,
    # v9: the audit trail: who (a user, a token, a webhook) did what to what, and when; the
    # names of the fields changed, never their values.
    """
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        who TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}',
        job_id INTEGER
    );
    CREATE INDEX audit_target ON audit (target, id);
    CREATE INDEX audit_who ON audit (who, id);
    """,
    # v10: the web app's users (passwords hashed with scrypt), the failed logins that slow
    # the next try down (here, so every web worker sees them), and the secret that signs the
    # session cookies (here too: every worker must sign alike, and the file is mode 0600).
    """
    CREATE TABLE user (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        password_changed_at TEXT NOT NULL,
        last_login_at TEXT
    );
    CREATE TABLE login_failure (
        key TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX login_failure_key ON login_failure (key, at);
    """,
    # v11: monitoring. Samples of each container and app (raw for a day), their 5-minute
    # averages and maxima (30 days), and the state each target was last seen in, with since
    # when (what changes it is an alert).
    """
    CREATE TABLE sample (
        at REAL NOT NULL,
        target TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX sample_target ON sample (target, at);
    CREATE INDEX sample_at ON sample (at);
    CREATE TABLE sample_rollup (
        target TEXT NOT NULL,
        bucket INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (target, bucket)
    ) WITHOUT ROWID;
    CREATE TABLE monitor_state (
        target TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        since TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    """,
    # v12: the web app's sessions, kept here so that logging out, a new password or a user's
    # removal ends them on every web worker (the cookie only names one).
    """
    CREATE TABLE web_session (
        id TEXT PRIMARY KEY,
        user TEXT NOT NULL,
        created_at REAL NOT NULL,
        seen_at REAL NOT NULL
    );
    CREATE INDEX web_session_user ON web_session (user);
    """,
    # v13: alerts. A state must hold for some rounds before it counts (pending, pending_count:
    # flapping is damped), and each change is an alert, kept, shown, and sent where asked.
    """
    ALTER TABLE monitor_state ADD COLUMN pending TEXT;
    ALTER TABLE monitor_state ADD COLUMN pending_count INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE alert (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        target TEXT NOT NULL,
        state TEXT NOT NULL,
        message TEXT NOT NULL,
        notified TEXT
    );
    """,
    # v14: private repositories. A project's deploy key (the private half is a secret, like
    # the apps' secret variables) and token, and the git hosts' keys pinned at first use.
    """
    CREATE TABLE project_git (
        project_id INTEGER PRIMARY KEY REFERENCES project (id) ON DELETE CASCADE,
        deploy_key TEXT,
        deploy_key_public TEXT,
        deploy_key_at TEXT,
        token TEXT,
        token_user TEXT,
        token_at TEXT
    );
    CREATE TABLE git_host_key (
        project_id INTEGER NOT NULL REFERENCES project (id) ON DELETE CASCADE,
        host TEXT NOT NULL,
        type TEXT NOT NULL,
        key TEXT NOT NULL,
        pinned_at TEXT NOT NULL,
        PRIMARY KEY (project_id, host, type)
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)

BUSY_TIMEOUT = 30  # seconds a writer waits for another one before giving up


BUSY_TIMEOUT = 30  # seconds a writer waits for another one before giving up

# The errors the registry raises (dpl_web.errors has the one hierarchy).
RegistryError = RegistryUnusable


def _statements(script: str) -> Iterator[str]:
    """Split a migration into statements (semicolons inside triggers stay put)."""
    current = ""
    for piece in script.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \n;"):
                yield current
            current = ""
    if current.strip(" \n;"):
        yield current


def _create_private(path: Path) -> None:
    """Create the file mode 0600 before SQLite does: it will hold secrets.

    SQLite gives the -wal and -shm files the main file's mode, so they stay private too.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass  # another process made it first


def _make_private(path: Path) -> None:
    """Tighten a registry made by an older DPL (or a careless copy) to mode 0600."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if info.st_mode & 0o077 and info.st_uid == os.geteuid():
        for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            try:
                os.chmod(file, 0o600)
            except FileNotFoundError:
                pass


def connect(path: Path | str, create: bool = True) -> sqlite3.Connection:
    """Open the registry at ``path``, creating (mode 0600) and migrating it as needed.

    With ``create=False`` a missing file is a :class:`RegistryError` that says how to make
    one, rather than a new empty registry somewhere unexpected.
    """
    path = Path(path)
    if not path.exists():
        if not create:
            raise RegistryError(
                f"the registry {path} does not exist",
                "initialise it (dpl init, or scripts/setup), or point DPL_REGISTRY at an existing one")
        try:
            _create_private(path)
        except OSError as exc:
            raise RegistryError(f"cannot create the registry {path}: {exc}") from exc
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
    except sqlite3.DatabaseError as exc:
        raise RegistryError(f"cannot open the registry {path}: {exc}") from exc
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        # WAL's safe setting: a power cut may lose the last commits, never corrupt the file.
        conn.execute("PRAGMA synchronous=NORMAL")
        migrate(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise RegistryError(f"{path} is not a usable DPL registry: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    _make_private(path)
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
            for statement in _statements(MIGRATIONS[version]):
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
