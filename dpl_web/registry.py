"""The registry: DPL's SQLite record of hosts, containers, projects, apps and jobs.

It answers the seed's question "how do we reach a production app": which LXD host runs
which container at which address, which projects and apps live in it, how each app is
deployed, and what was done to them (jobs). The CLI, the web front end, the jobs that run
the playbooks and the inventory plugin all read and write it through :class:`Registry`.

Why it is built the way it is:

- One file, WAL mode and a long busy timeout, so the web server, a CLI call and an
  inventory run can use it at the same time; every change is one ``BEGIN IMMEDIATE``
  transaction, so writers queue instead of failing half way.
- Every value goes through the collection's one validation layer
  (``plugins/module_utils/validation.py``) *before* the transaction starts: a refused
  value raises :class:`validation.ValidationError` and nothing is written.
- Relations are checked inside the transaction (it holds the write lock, so the check
  cannot race another writer): a missing parent raises :class:`NotFound`, a name, port,
  domain or address already taken raises :class:`Conflict`.
- Secret environment values are stored here (the file is mode 0600) and only come out
  through :meth:`Registry.app_secrets` and :meth:`Registry.get_secret`; every other
  method reports their names only.
- Reads that span several queries run in one read transaction (a consistent snapshot),
  and lists load related rows in bulk: the inventory costs six queries for any size.

Methods return plain dicts and lists (JSON-serialisable), the shape the CLI's ``--json``
output and the JSON API use.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from dpl_web import paths
from dpl_web.collection import validation
from dpl_web.errors import Conflict, NotFound, RegistryUnusable

ValidationError = validation.ValidationError

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
]

SCHEMA_VERSION = len(MIGRATIONS)

BUSY_TIMEOUT = 30  # seconds a writer waits for another one before giving up

JOB_STATUSES = ("queued", "running", "successful", "failed", "canceled", "timeout")
JOB_FINISHED = ("successful", "failed", "canceled", "timeout")
JOB_TARGET_KINDS = ("host", "container", "project", "app")
# The events of this many newest jobs are kept (a job's log stays with it for good).
KEEP_JOB_EVENTS = 1000

# Containers get addresses from this offset in their host's bridge network up: the first
# few are left for the host and whatever else the operator puts on the bridge.
FIRST_CONTAINER_ADDRESS = 10

# Where an app lives inside its container (the seed's layout).
APP_ROOT = "/root/apps"
DEPLOY_ROOT = "/root/deploy"
BACKUP_ROOT = "/root/backups"

SECRET_MASK = "********"


# The errors the registry raises (dpl_web.errors has the one hierarchy).
RegistryError = RegistryUnusable

# -- the file ------------------------------------------------------------------------------


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


# -- helpers -------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_precise() -> str:
    """Event times: milliseconds, so a follower can tell how long each step took."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def layout(project: str, app: str) -> dict[str, str]:
    """Where an app's files live inside its container (the seed's layout)."""
    return {
        "app_dir": f"{APP_ROOT}/{project}/{app}",
        "deploy_dir": f"{DEPLOY_ROOT}/{project}/{app}",
        "backup_dir": f"{BACKUP_ROOT}/{project}/{app}",
    }


def split_app(value: str, field: str = "app") -> tuple[str, str]:
    """``"project/app"`` -> ``("project", "app")``, both validated names."""
    if not isinstance(value, str) or value.count("/") != 1:
        raise ValidationError(field, value, "name an app as PROJECT/APP, for example shop/web")
    project, app = value.split("/")
    return validation.name(project, f"{field} (project)"), validation.app_name(app, field)


class _Field(NamedTuple):
    default: Any
    check: Callable[[Any, str], Any]
    nullable: bool = False


_REQUIRED = object()

HOST_FIELDS: dict[str, _Field] = {
    "endpoint": _Field("unix:", validation.lxd_endpoint),
    "client_cert": _Field(None, validation.absolute_path, True),
    "client_key": _Field(None, validation.absolute_path, True),
    "server_cert": _Field(None, validation.absolute_path, True),
    "public_ipv4": _Field(None, validation.ipv4, True),
    "nginx_sites_dir": _Field("/etc/nginx/sites-available", validation.absolute_path),
    "bridge": _Field("dplbr0", validation.interface_name),
    "bridge_ipv4": _Field("10.210.0.1/24", validation.ipv4_interface),
    "notes": _Field("", validation.text),
}

CONTAINER_FIELDS: dict[str, _Field] = {
    "image": _Field("dpl-base", validation.image),
    "profiles": _Field(["default"], validation.names),
    "cpu": _Field(None, validation.cpu_limit, True),
    "memory": _Field(None, validation.size, True),
    "disk": _Field(None, validation.size, True),
    # None on add: the lowest free address from .10 up in the host's bridge network.
    "ipv4": _Field(None, validation.ipv4, True),
    # Talks to the host only, not to the other containers (docs/containers.md).
    "isolated": _Field(False, validation.flag),
    "notes": _Field("", validation.text),
}

PROJECT_FIELDS: dict[str, _Field] = {
    "notes": _Field("", validation.text),
}

APP_FIELDS: dict[str, _Field] = {
    "repo": _Field(_REQUIRED, validation.repo_url),
    # None: the repository's default branch (its HEAD), asked at each deploy.
    "ref": _Field(None, validation.git_ref, True),
    "deploy_script": _Field(None, validation.command, True),
    "start_command": _Field("npm start", validation.command),
    "port": _Field(3000, validation.app_port),
    "domains": _Field([], validation.domains),
    "health_path": _Field("/", validation.url_path),
    "keep_releases": _Field(5, validation.keep_count),
    "keep_backups": _Field(5, validation.keep_count),
    "notes": _Field("", validation.text),
}

# How the ref column (NOT NULL since v2) stores "no ref: follow the default branch".
DEFAULT_BRANCH_REF = ""


def _ref_column(values: dict[str, Any]) -> dict[str, Any]:
    if "ref" in values and values["ref"] is None:
        values["ref"] = DEFAULT_BRANCH_REF
    return values


# Keys of the seed's request shape (and the CLI's --from-json) that differ from APP_FIELDS.
_REQUEST_ALIASES = {"start": "start_command"}


def _check(kind: str, values: Mapping[str, Any], spec: Mapping[str, _Field],
           defaults: bool) -> dict[str, Any]:
    """Validate ``values`` against ``spec``; with ``defaults``, fill in what is missing."""
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if key not in spec:
            raise ValidationError(key, value, f"is not a field of a {kind}; use one of {', '.join(spec)}")
        field = spec[key]
        if value is None:
            if not field.nullable:
                raise ValidationError(key, value, "must be given")
            checked[key] = None
        else:
            checked[key] = field.check(value, key)
    if defaults:
        for key, field in spec.items():
            if key in checked:
                continue
            if field.default is _REQUIRED:
                raise ValidationError(key, None, "must be given")
            checked[key] = list(field.default) if isinstance(field.default, list) else field.default
    return checked


def _secret_env(values: Any, field: str = "secret_env") -> dict[str, str]:
    """Validate secret variables without ever putting a secret value into an error message."""
    if not isinstance(values, Mapping):
        raise ValidationError(field, SECRET_MASK, "must be a mapping of NAME to value")
    checked = {}
    for key, value in values.items():
        validation.env_name(key, f"{field} name")
        checked[key] = validation.secret_value(value, f"{field}[{key}]")
    return checked


def _env_changes(env: Any, secret_env: Any, unset: Any) -> tuple[dict, dict, list]:
    """Validate the three ways an app's environment changes; a name may appear once."""
    plain = validation.env(env, "env") if env is not None else {}
    secret = _secret_env(secret_env) if secret_env is not None else {}
    if unset is None:
        unset = []
    if isinstance(unset, str) or not isinstance(unset, list | tuple):
        raise ValidationError("unset_env", unset, "must be a list of variable names")
    removed = [validation.env_name(name, "unset_env") for name in unset]
    for name in plain:
        if name in secret:
            raise ValidationError("env", name, "is given both as a plain and as a secret variable")
    for name in removed:
        if name in plain or name in secret:
            raise ValidationError("unset_env", name, "is also being set in the same change")
    return plain, secret, removed


def app_request(data: Any) -> dict[str, Any]:
    """Turn the seed's request shape into :meth:`Registry.add_app` keyword arguments.

    ``{"name": "web", "project": "shop", "repo": "https://..."}`` plus optional ``ref``,
    ``port``, ``domain`` (one) or ``domains`` (a list), ``start`` or ``start_command``,
    ``deploy_script``, ``health_path``, ``keep_releases``, ``keep_backups``, ``notes`` and
    ``env``: a mapping of NAME to a value, or to ``{"value": ..., "secret": true}`` for a
    secret; and ``container``, to create the project there when it does not exist yet.
    Shared by the CLI (``dpl app add --from-json``) and the JSON API.
    """
    if not isinstance(data, Mapping):
        raise ValidationError("request", data, 'must be a JSON object such as {"name": ..., '
                                               '"project": ..., "repo": ...}')
    request = dict(data)
    result: dict[str, Any] = {}
    for key in ("project", "name", "repo"):
        if key not in request:
            raise ValidationError(key, None, "must be given")
    result["project"] = validation.name(request.pop("project"), "project")
    result["name"] = validation.app_name(request.pop("name"), "name")
    if request.get("container") is not None:
        result["container"] = validation.container_name(request.pop("container"), "container")
    request.pop("container", None)
    if "domain" in request and "domains" in request:
        raise ValidationError("domain", request["domain"], "give either domain or domains, not both")
    if "domain" in request:
        request["domains"] = [request.pop("domain")]
    for alias, key in _REQUEST_ALIASES.items():
        if alias in request:
            if key in request:
                raise ValidationError(alias, request[alias], f"give either {alias} or {key}, not both")
            request[key] = request.pop(alias)
    env = request.pop("env", None)
    if env is not None:
        if not isinstance(env, Mapping):
            raise ValidationError("env", env, "must be a mapping of NAME to value")
        plain, secret = {}, {}
        for key, value in env.items():
            if isinstance(value, Mapping):
                unknown = set(value) - {"value", "secret"}
                if unknown or "value" not in value or not isinstance(value.get("secret", False), bool):
                    raise ValidationError(f"env[{key}]", SECRET_MASK if value.get("secret") else value,
                                          'use a value or {"value": ..., "secret": true}')
                (secret if value.get("secret") else plain)[key] = value["value"]
            else:
                plain[key] = value
        result["env"], result["secret_env"] = plain, secret
    if "secret_env" in request:
        result.setdefault("secret_env", {}).update(_secret_env(request.pop("secret_env")))
    for key, value in request.items():
        if key not in APP_FIELDS:
            raise ValidationError(key, value, "is not a field of an app request; use name, project, repo, "
                                              "container, ref, port, domain or domains, start, deploy_script, "
                                              "env, health_path, keep_releases, keep_backups, notes")
        result[key] = value
    return result


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


def _host_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {key: row[key] for key in (
        "name", "endpoint", "client_cert", "client_key", "server_cert", "public_ipv4", "nginx_sites_dir",
        "bridge", "bridge_ipv4", "notes", "created_at", "updated_at")}


def _container_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "name": row["name"],
        "host": row["host"],
        "image": row["image"],
        "profiles": json.loads(row["profiles"]),
        "limits": {"cpu": row["cpu"], "memory": row["memory"], "disk": row["disk"]},
        "ipv4": row["ipv4"],
        "isolated": bool(row["isolated"]),
        "status": row["status"],
        "status_at": row["status_at"],
        "notes": row["notes"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _job_dict(row: sqlite3.Row, with_log: bool) -> dict[str, Any]:
    job = {key: row[key] for key in (
        "id", "kind", "target", "container", "project", "who", "status", "created_at", "started_at",
        "finished_at", "summary", "owner", "timeout", "replaced_by")}
    job["commit"] = row["commit_id"]
    job["params"] = json.loads(row["params"])
    job["cancel_requested"] = bool(row["cancel_requested"])
    job["changed"] = json.loads(row["changed"]) if row["changed"] is not None else None
    job["result"] = json.loads(row["result"]) if row["result"] is not None else None
    if with_log:
        job["log"] = row["log"]
    return job


def _event_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {"seq": row["seq"], "at": row["at"], "type": row["type"], **json.loads(row["data"])}


def jobs_clash(one: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """May these two jobs not run at the same time? Jobs of one target run one after the
    other, and an app and its container are one target as far as that goes: stopping or
    deleting a container in the middle of a deploy in it would break the deploy."""
    if one["target"] == other["target"]:
        return True
    container_job = [job for job in (one, other) if job["target"].startswith("container/")]
    return bool(container_job) and one["container"] is not None and one["container"] == other["container"]


_APPS_SQL = """
    SELECT a.*, p.name AS project, c.name AS container, h.name AS host
    FROM app a JOIN project p ON p.id = a.project_id
    JOIN container c ON c.id = p.container_id JOIN host h ON h.id = c.host_id
"""

_CONTAINERS_SQL = "SELECT c.*, h.name AS host FROM container c JOIN host h ON h.id = c.host_id"


# -- the registry --------------------------------------------------------------------------


class Registry:
    """DPL's registry: open one with :meth:`open`, close it (or use ``with``) when done.

    A Registry wraps one SQLite connection; use one per thread (the web front end keeps one
    per request, like Flask's tutorial keeps its database in ``g``).
    """

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path | str | None = None, create: bool = True) -> Registry:
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

    def __enter__(self) -> Registry:
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
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
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

    def _id(self, table: str, name: str, hint: str = "") -> int:
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

    # -- hosts -------------------------------------------------------------------------

    def list_hosts(self) -> list[dict[str, Any]]:
        return [_host_dict(row) for row in self.conn.execute("SELECT * FROM host ORDER BY name")]

    def get_host(self, name: str) -> dict[str, Any]:
        row = self._one("SELECT * FROM host WHERE name = ?", (name,))
        if row is None:
            raise NotFound("host", name, "list the hosts to see which exist (initialising the registry records "
                                         "the local one)")
        return _host_dict(row)

    @staticmethod
    def _check_host(host: Mapping[str, Any]) -> None:
        if host["endpoint"].startswith("https://"):
            missing = [key for key in ("client_cert", "client_key", "server_cert") if not host.get(key)]
            if missing:
                raise ValidationError(
                    missing[0], None,
                    "an https endpoint needs client_cert, client_key and server_cert (the pinned "
                    "certificate of the remote LXD)")

    def add_host(self, name: str, **fields: Any) -> dict[str, Any]:
        """Record an LXD host. Fields: see :data:`HOST_FIELDS` (all optional)."""
        validation.name(name, "host")
        values = _check("host", fields, HOST_FIELDS, defaults=True)
        self._check_host(values)
        with self.transaction() as conn:
            if self._one("SELECT 1 FROM host WHERE name = ?", (name,)):
                raise Conflict(f"host {name!r} already exists", "edit it instead", "edit")
            now = _now()
            columns = ["name", *values, "created_at", "updated_at"]
            conn.execute(f"INSERT INTO host ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                         (name, *values.values(), now, now))
        return self.get_host(name)

    def update_host(self, name: str, **changes: Any) -> dict[str, Any]:
        """Change some fields of a host. Changing ``bridge_ipv4`` is refused while a
        container's address would fall outside the new network."""
        validation.name(name, "host")
        values = _check("host", changes, HOST_FIELDS, defaults=False)
        with self.transaction() as conn:
            current = self.get_host(name)
            merged = dict(current, **values)
            self._check_host(merged)
            if "bridge_ipv4" in values and values["bridge_ipv4"] != current["bridge_ipv4"]:
                self._check_bridge_change(name, values["bridge_ipv4"])
            self._write_changes(conn, "host", "name", name, current, values)
        return self.get_host(name)

    def _check_bridge_change(self, host: str, bridge_ipv4: str) -> None:
        interface = ipaddress.IPv4Interface(bridge_ipv4)
        outside = [
            f"{row['name']} ({row['ipv4']})"
            for row in self.conn.execute(
                "SELECT c.name, c.ipv4 FROM container c JOIN host h ON h.id = c.host_id WHERE h.name = ?",
                (host,))
            if ipaddress.IPv4Address(row["ipv4"]) not in interface.network
            or ipaddress.IPv4Address(row["ipv4"]) in (interface.ip, interface.network.broadcast_address)]
        if outside:
            raise Conflict(f"host {host!r}: these containers' addresses do not fit {bridge_ipv4}: "
                           f"{', '.join(outside)}", "give those containers new addresses first")

    def ensure_host(self, name: str, **fields: Any) -> tuple[dict[str, Any], bool]:
        """Make sure a host exists with the given fields (others keep their values, or the
        defaults when it is new). Returns the host and whether anything changed."""
        with self.transaction():
            try:
                current = self.get_host(name)
            except NotFound:
                return self.add_host(name, **fields), True
            wanted = _check("host", fields, HOST_FIELDS, defaults=False)
            if all(current[key] == value for key, value in wanted.items()):
                return current, False
            return self.update_host(name, **wanted), True

    def remove_host(self, name: str, cascade: bool = False) -> dict[str, list[str]]:
        """Remove a host's record; with ``cascade``, also its containers, their projects and
        apps. Returns what was removed. LXD itself is not touched."""
        validation.name(name, "host")
        with self.transaction() as conn:
            host_id = self._id("host", name)
            containers = [row["name"] for row in conn.execute(
                "SELECT name FROM container WHERE host_id = ? ORDER BY name", (host_id,))]
            if containers and not cascade:
                raise Conflict(f"host {name!r} still has containers: {', '.join(containers)}",
                               "remove them first, or ask for a cascading removal to remove their records too",
                               "cascade")
            removed: dict[str, list[str]] = {"hosts": [name], "containers": [], "projects": [], "apps": []}
            for container in containers:
                self._merge(removed, self.remove_container(container, cascade=True))
            conn.execute("DELETE FROM host WHERE id = ?", (host_id,))
        return removed

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

    # -- containers --------------------------------------------------------------------

    def list_containers(self, host: str | None = None) -> list[dict[str, Any]]:
        with self._snapshot() as conn:
            if host is not None:
                self._id("host", host)
                rows = conn.execute(f"{_CONTAINERS_SQL} WHERE h.name = ? ORDER BY c.name", (host,))
            else:
                rows = conn.execute(f"{_CONTAINERS_SQL} ORDER BY c.name")
            containers = [_container_dict(row) for row in rows]
            projects: dict[str, list[str]] = {}
            for row in conn.execute("SELECT p.name, c.name AS container FROM project p "
                                    "JOIN container c ON c.id = p.container_id ORDER BY p.name"):
                projects.setdefault(row["container"], []).append(row["name"])
        for container in containers:
            container["projects"] = projects.get(container["name"], [])
        return containers

    def get_container(self, name: str) -> dict[str, Any]:
        with self._snapshot() as conn:
            row = self._one(f"{_CONTAINERS_SQL} WHERE c.name = ?", (name,))
            if row is None:
                raise NotFound("container", name)
            container = _container_dict(row)
            container["projects"] = [r["name"] for r in conn.execute(
                "SELECT name FROM project WHERE container_id = ? ORDER BY name", (row["id"],))]
        return container

    def _free_ipv4(self, host_id: int, bridge_ipv4: str, avoid: Iterable[str] = ()) -> str:
        interface = ipaddress.IPv4Interface(bridge_ipv4)
        used = {row["ipv4"] for row in self.conn.execute(
            "SELECT ipv4 FROM container WHERE host_id = ?", (host_id,))}
        used.update(avoid)
        used.add(str(interface.ip))
        network = interface.network
        first = int(network.network_address) + FIRST_CONTAINER_ADDRESS
        for number in range(first, int(network.broadcast_address)):
            address = str(ipaddress.IPv4Address(number))
            if address not in used:
                return address
        raise Conflict(f"the bridge network {network} has no free address from .{FIRST_CONTAINER_ADDRESS} "
                       "up: widen the host's bridge_ipv4 or remove containers")

    def _check_ipv4(self, host_id: int, bridge_ipv4: str, ipv4: str, container: str) -> None:
        interface = ipaddress.IPv4Interface(bridge_ipv4)
        validation.ipv4(ipv4, "ipv4", network=str(interface.network))
        if ipv4 == str(interface.ip):
            raise ValidationError("ipv4", ipv4, "is the host's own address on the bridge")
        row = self._one("SELECT name FROM container WHERE host_id = ? AND ipv4 = ? AND name != ?",
                        (host_id, ipv4, container))
        if row is not None:
            raise Conflict(f"ipv4 {ipv4} is already the address of container {row['name']!r}: "
                           "choose another, or leave it out to get the next free one")

    def add_container(self, name: str, host: str = "local", avoid_ipv4: Iterable[str] = (),
                      **fields: Any) -> dict[str, Any]:
        """Record a container on ``host``. Fields: image, profiles, cpu, memory, disk, ipv4
        (default: the lowest free address from .10 up in the host's bridge network, skipping
        ``avoid_ipv4``: addresses LXD has given out that the registry does not know), notes."""
        validation.container_name(name, "container")
        validation.name(host, "host")
        values = _check("container", fields, CONTAINER_FIELDS, defaults=True)
        with self.transaction() as conn:
            if self._one("SELECT 1 FROM container WHERE name = ?", (name,)):
                raise Conflict(f"container {name!r} already exists", "edit it instead", "edit")
            host_row = self._one("SELECT id, bridge_ipv4 FROM host WHERE name = ?", (host,))
            if host_row is None:
                raise NotFound("host", host, "list the hosts to see which exist (initialising the registry "
                                             "records the local one)")
            if values["ipv4"] is None:
                values["ipv4"] = self._free_ipv4(host_row["id"], host_row["bridge_ipv4"], avoid_ipv4)
            else:
                self._check_ipv4(host_row["id"], host_row["bridge_ipv4"], values["ipv4"], name)
            values["profiles"] = json.dumps(values["profiles"])
            now = _now()
            columns = ["name", "host_id", *values, "created_at", "updated_at"]
            conn.execute(
                f"INSERT INTO container ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                (name, host_row["id"], *values.values(), now, now))
        return self.get_container(name)

    def update_container(self, name: str, **changes: Any) -> dict[str, Any]:
        """Change some fields of a container (not its name or host: those are its identity in
        LXD; remove and add it instead). ``cpu``, ``memory`` and ``disk`` accept None to
        remove the limit."""
        validation.container_name(name, "container")
        if changes.get("ipv4", "") is None:
            raise ValidationError("ipv4", None, "must be given (a container always has an address)")
        values = _check("container", changes, CONTAINER_FIELDS, defaults=False)
        with self.transaction() as conn:
            row = self._one("SELECT c.*, h.bridge_ipv4 FROM container c JOIN host h ON h.id = c.host_id "
                            "WHERE c.name = ?", (name,))
            if row is None:
                raise NotFound("container", name)
            if "ipv4" in values and values["ipv4"] != row["ipv4"]:
                self._check_ipv4(row["host_id"], row["bridge_ipv4"], values["ipv4"], name)
            if "profiles" in values:
                values["profiles"] = json.dumps(values["profiles"])
            self._write_changes(conn, "container", "name", name, dict(row), values)
        return self.get_container(name)

    def set_container_status(self, name: str, status: str, ipv4: str | None = None) -> dict[str, Any]:
        """Record what LXD says about a container (the container playbooks call this):
        its status (Running, Stopped, absent, ...) and, when given, the address it has."""
        validation.container_name(name, "container")
        validation.token(status, "status")
        if ipv4 is not None:
            validation.ipv4(ipv4, "ipv4")
        with self.transaction() as conn:
            row = self._one("SELECT c.*, h.bridge_ipv4 FROM container c JOIN host h ON h.id = c.host_id "
                            "WHERE c.name = ?", (name,))
            if row is None:
                raise NotFound("container", name)
            if ipv4 is not None and ipv4 != row["ipv4"]:
                self._check_ipv4(row["host_id"], row["bridge_ipv4"], ipv4, name)
            conn.execute("UPDATE container SET status = ?, status_at = ?, ipv4 = ? WHERE id = ?",
                         (status, _now(), ipv4 or row["ipv4"], row["id"]))
        return self.get_container(name)

    def remove_container(self, name: str, cascade: bool = False) -> dict[str, list[str]]:
        """Remove a container's record; with ``cascade``, also its projects and their apps.
        Returns what was removed. LXD itself is not touched (the container playbook is)."""
        validation.container_name(name, "container")
        with self.transaction() as conn:
            container_id = self._id("container", name)
            projects = [row["name"] for row in conn.execute(
                "SELECT name FROM project WHERE container_id = ? ORDER BY name", (container_id,))]
            if projects and not cascade:
                raise Conflict(f"container {name!r} still has projects: {', '.join(projects)}",
                               "remove them first, or ask for a cascading removal to remove them and their apps "
                               "too", "cascade")
            removed: dict[str, list[str]] = {"containers": [name], "projects": [], "apps": []}
            for project in projects:
                self._merge(removed, self.remove_project(project, cascade=True))
            conn.execute("DELETE FROM container WHERE id = ?", (container_id,))
        return removed

    # -- projects ----------------------------------------------------------------------

    def list_projects(self, container: str | None = None) -> list[dict[str, Any]]:
        with self._snapshot() as conn:
            sql = ("SELECT p.*, c.name AS container FROM project p JOIN container c ON c.id = p.container_id")
            if container is not None:
                self._id("container", container)
                rows = conn.execute(f"{sql} WHERE c.name = ? ORDER BY p.name", (container,)).fetchall()
            else:
                rows = conn.execute(f"{sql} ORDER BY p.name").fetchall()
            apps: dict[int, list[str]] = {}
            for row in conn.execute("SELECT project_id, name FROM app ORDER BY name"):
                apps.setdefault(row["project_id"], []).append(row["name"])
        return [{"name": row["name"], "container": row["container"], "apps": apps.get(row["id"], []),
                 "notes": row["notes"], "created_at": row["created_at"], "updated_at": row["updated_at"]}
                for row in rows]

    def get_project(self, name: str) -> dict[str, Any]:
        for project in self.list_projects():
            if project["name"] == name:
                return project
        raise NotFound("project", name)

    def add_project(self, name: str, container: str, **fields: Any) -> dict[str, Any]:
        """Record a project in a container (several projects may share one)."""
        validation.name(name, "project")
        validation.container_name(container, "container")
        values = _check("project", fields, PROJECT_FIELDS, defaults=True)
        with self.transaction() as conn:
            existing = self._one("SELECT c.name AS container FROM project p JOIN container c "
                                 "ON c.id = p.container_id WHERE p.name = ?", (name,))
            if existing:
                raise Conflict(f"project {name!r} already exists (in container {existing['container']!r}); "
                               "project names are unique across containers")
            container_id = self._id("container", container)
            now = _now()
            conn.execute("INSERT INTO project (name, container_id, notes, created_at, updated_at) "
                         "VALUES (?, ?, ?, ?, ?)", (name, container_id, values["notes"], now, now))
        return self.get_project(name)

    def update_project(self, name: str, container: str | None = None, **changes: Any) -> dict[str, Any]:
        """Change a project's notes, or move its record to another ``container`` (the apps'
        ports must be free there; the files are not moved: deploy again)."""
        validation.name(name, "project")
        values = _check("project", changes, PROJECT_FIELDS, defaults=False)
        if container is not None:
            validation.container_name(container, "container")
        with self.transaction() as conn:
            row = self._one("SELECT * FROM project WHERE name = ?", (name,))
            if row is None:
                raise NotFound("project", name)
            if container is not None:
                container_id = self._id("container", container)
                if container_id != row["container_id"]:
                    for app in conn.execute("SELECT name, port FROM app WHERE project_id = ?", (row["id"],)):
                        self._check_port(container_id, app["port"], exclude_app_id=None,
                                         what=f"app {name}/{app['name']}")
                    values["container_id"] = container_id
            self._write_changes(conn, "project", "name", name, dict(row), values)
        return self.get_project(name)

    def remove_project(self, name: str, cascade: bool = False) -> dict[str, list[str]]:
        """Remove a project's record; with ``cascade``, also its apps. Returns what was removed."""
        validation.name(name, "project")
        with self.transaction() as conn:
            project_id = self._id("project", name)
            apps = [row["name"] for row in conn.execute(
                "SELECT name FROM app WHERE project_id = ? ORDER BY name", (project_id,))]
            if apps and not cascade:
                raise Conflict(f"project {name!r} still has apps: {', '.join(apps)}",
                               "remove them first, or ask for a cascading removal to remove them too", "cascade")
            conn.execute("DELETE FROM app WHERE project_id = ?", (project_id,))
            conn.execute("DELETE FROM project WHERE id = ?", (project_id,))
        return {"projects": [name], "apps": [f"{name}/{app}" for app in apps]}

    # -- apps --------------------------------------------------------------------------

    def _load_apps(self, where: str = "", params: tuple = ()) -> list[dict[str, Any]]:
        """Apps matching ``where`` (on the aliases of :data:`_APPS_SQL`), with their domains and
        environment: three queries, however many apps. Secret values are not read."""
        with self._snapshot() as conn:
            rows = conn.execute(f"{_APPS_SQL} {where} ORDER BY p.name, a.name", params).fetchall()
            ids = f"SELECT a.id FROM app a JOIN project p ON p.id = a.project_id " \
                  f"JOIN container c ON c.id = p.container_id JOIN host h ON h.id = c.host_id {where}"
            domains: dict[int, list[str]] = {}
            for row in conn.execute(f"SELECT app_id, domain FROM app_domain WHERE app_id IN ({ids}) "
                                    "ORDER BY app_id, position", params):
                domains.setdefault(row[0], []).append(row[1])
            env: dict[int, dict[str, str]] = {}
            secret: dict[int, list[str]] = {}
            for row in conn.execute(
                    "SELECT app_id, name, secret, CASE WHEN secret THEN NULL ELSE value END "
                    f"FROM app_env WHERE app_id IN ({ids}) ORDER BY app_id, name", params):
                if row[2]:
                    secret.setdefault(row[0], []).append(row[1])
                else:
                    env.setdefault(row[0], {})[row[1]] = row[3]
        return [{
            "project": row["project"],
            "name": row["name"],
            "container": row["container"],
            "host": row["host"],
            "repo": row["repo"],
            "ref": row["ref"] or None,
            "deploy_script": row["deploy_script"],
            "start_command": row["start_command"],
            "port": row["port"],
            "ports": list(validation.app_ports(row["port"])),
            "live_port": row["live_port"],
            "domains": domains.get(row["id"], []),
            "env": env.get(row["id"], {}),
            "secret_env": secret.get(row["id"], []),
            "health_path": row["health_path"],
            "keep_releases": row["keep_releases"],
            "keep_backups": row["keep_backups"],
            "notes": row["notes"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
        } for row in rows]

    def list_apps(self, project: str | None = None, container: str | None = None) -> list[dict[str, Any]]:
        """Apps, optionally of one project or one container. Secret variables by name only."""
        clauses, params = [], []
        with self._snapshot():
            if project is not None:
                self._id("project", project)
                clauses.append("p.name = ?")
                params.append(project)
            if container is not None:
                self._id("container", container)
                clauses.append("c.name = ?")
                params.append(container)
            where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
            return self._load_apps(where, tuple(params))

    def get_app(self, project: str, name: str) -> dict[str, Any]:
        """One app. ``env`` holds the plain variables, ``secret_env`` the secret ones' names."""
        apps = self._load_apps("WHERE p.name = ? AND a.name = ?", (project, name))
        if not apps:
            with self._snapshot():
                self._id("project", project)
            raise NotFound("app", f"{project}/{name}", f"list the apps of project {project} to see which exist")
        return apps[0]

    def _check_port(self, container_id: int, port: int, exclude_app_id: int | None, what: str) -> None:
        """No two apps of a container share a port: each has all of :func:`validation.app_ports`."""
        span = len(validation.app_ports(port))
        row = self._one(
            "SELECT p.name AS project, a.name AS app, a.port, c.name AS container FROM app a "
            "JOIN project p ON p.id = a.project_id JOIN container c ON c.id = p.container_id "
            "WHERE p.container_id = ? AND abs(a.port - ?) < ? AND a.id IS NOT ?",
            (container_id, port, span, exclude_app_id))
        if row is not None:
            raise Conflict(f"{what}: port {port} (the app uses ports {port}-{port + span - 1}) overlaps "
                           f"ports {row['port']}-{row['port'] + span - 1} of app {row['project']}/{row['app']} "
                           f"in container {row['container']!r}: choose another port")

    def set_live_port(self, project: str, name: str, port: int) -> bool:
        """Record which port serves the app now (a job's result); True when it changed."""
        validation.port(port, "live_port")
        with self.transaction() as conn:
            app_id = self._app_id(project, name)
            return conn.execute("UPDATE app SET live_port = ? WHERE id = ? AND live_port IS NOT ?",
                                (port, app_id, port)).rowcount > 0

    def _check_domains(self, domains: list[str], exclude_app_id: int | None, what: str) -> None:
        if not domains:
            return
        marks = ", ".join("?" * len(domains))
        row = self._one(
            "SELECT d.domain, p.name AS project, a.name AS app FROM app_domain d JOIN app a ON a.id = d.app_id "
            f"JOIN project p ON p.id = a.project_id WHERE d.domain IN ({marks}) AND d.app_id IS NOT ?",
            (*domains, exclude_app_id))
        if row is not None:
            raise Conflict(f"{what}: domain {row['domain']} is already served by app "
                           f"{row['project']}/{row['app']}; a domain belongs to one app")

    def _write_env(self, conn: sqlite3.Connection, app_id: int, plain: dict, secret: dict,
                   unset: list) -> bool:
        """Set and remove variables, writing only what differs; returns whether anything did."""
        current = {row[0]: (row[1], row[2]) for row in conn.execute(
            "SELECT name, value, secret FROM app_env WHERE app_id = ?", (app_id,))}
        wanted = [(name, value, 0) for name, value in plain.items()]
        wanted += [(name, value, 1) for name, value in secret.items()]
        changed = False
        for name, value, flag in wanted:
            if current.get(name) != (value, flag):
                conn.execute("INSERT INTO app_env (app_id, name, value, secret) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT (app_id, name) DO UPDATE SET value = excluded.value, "
                             "secret = excluded.secret", (app_id, name, value, flag))
                changed = True
        for name in unset:
            if name in current:
                conn.execute("DELETE FROM app_env WHERE app_id = ? AND name = ?", (app_id, name))
                changed = True
        return changed

    def _write_domains(self, conn: sqlite3.Connection, app_id: int, domains: list[str]) -> None:
        conn.execute("DELETE FROM app_domain WHERE app_id = ?", (app_id,))
        conn.executemany("INSERT INTO app_domain (domain, app_id, position) VALUES (?, ?, ?)",
                         [(domain, app_id, position) for position, domain in enumerate(domains)])

    def add_app(self, project: str, name: str, repo: str, *, env: Mapping[str, Any] | None = None,
                secret_env: Mapping[str, Any] | None = None, container: str | None = None,
                **fields: Any) -> dict[str, Any]:
        """Record an app in ``project``.

        Fields: ref, deploy_script, start_command, port (unique in its container), domains
        (each served by one app only), health_path, keep_releases, keep_backups, notes.
        ``env`` maps NAME to value; ``secret_env`` likewise for values never shown back.
        With ``container``, a missing project is created there (an existing project must
        already be in that container).
        """
        validation.name(project, "project")
        validation.app_name(name, "app")
        if container is not None:
            validation.container_name(container, "container")
        values = _ref_column(_check("app", dict(fields, repo=repo), APP_FIELDS, defaults=True))
        plain, secret, _unset = _env_changes(env, secret_env, None)
        domains = values.pop("domains")
        what = f"app {project}/{name}"
        with self.transaction() as conn:
            row = self._one("SELECT p.id, p.container_id, c.name AS container FROM project p "
                            "JOIN container c ON c.id = p.container_id WHERE p.name = ?", (project,))
            if row is None:
                if container is None:
                    raise NotFound("project", project, "record the project first, or name a container to "
                                                       "create it in with the app", "give_container")
                self.add_project(project, container)
                row = self._one("SELECT p.id, p.container_id, c.name AS container FROM project p "
                                "JOIN container c ON c.id = p.container_id WHERE p.name = ?", (project,))
            elif container is not None and row["container"] != container:
                raise Conflict(f"project {project!r} is in container {row['container']!r}, not {container!r}")
            if self._one("SELECT 1 FROM app WHERE project_id = ? AND name = ?", (row["id"], name)):
                raise Conflict(f"{what} already exists", "edit it instead", "edit")
            self._check_port(row["container_id"], values["port"], None, what)
            self._check_domains(domains, None, what)
            now = _now()
            columns = ["project_id", "name", *values, "created_at", "updated_at"]
            cursor = conn.execute(
                f"INSERT INTO app ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                (row["id"], name, *values.values(), now, now))
            self._write_domains(conn, cursor.lastrowid, domains)
            self._write_env(conn, cursor.lastrowid, plain, secret, [])
        return self.get_app(project, name)

    def update_app(self, project: str, name: str, *, env: Mapping[str, Any] | None = None,
                   secret_env: Mapping[str, Any] | None = None, unset_env: list[str] | None = None,
                   **changes: Any) -> dict[str, Any]:
        """Change some fields of an app. ``domains`` replaces the list; ``env`` and
        ``secret_env`` set (or re-classify) the variables they name, ``unset_env`` removes
        variables; others are kept. ``deploy_script=None`` clears the deploy script."""
        validation.name(project, "project")
        validation.app_name(name, "app")
        values = _ref_column(_check("app", changes, APP_FIELDS, defaults=False))
        plain, secret, unset = _env_changes(env, secret_env, unset_env)
        domains = values.pop("domains", None)
        what = f"app {project}/{name}"
        with self.transaction() as conn:
            app_id = self._app_id(project, name)
            row = self._one("SELECT a.*, p.container_id FROM app a JOIN project p ON p.id = a.project_id "
                            "WHERE a.id = ?", (app_id,))
            if "port" in values and values["port"] != row["port"]:
                self._check_port(row["container_id"], values["port"], app_id, what)
                # The live port was one of the old ports: unknown until the next deploy.
                conn.execute("UPDATE app SET live_port = NULL WHERE id = ?", (app_id,))
            changed = self._write_changes(conn, "app", "id", app_id, dict(row), values)
            if domains is not None:
                current = [r[0] for r in conn.execute(
                    "SELECT domain FROM app_domain WHERE app_id = ? ORDER BY position", (app_id,))]
                if domains != current:
                    self._check_domains(domains, app_id, what)
                    self._write_domains(conn, app_id, domains)
                    changed = True
            if self._write_env(conn, app_id, plain, secret, unset):
                changed = True
            if changed:
                conn.execute("UPDATE app SET updated_at = ? WHERE id = ?", (_now(), app_id))
        return self.get_app(project, name)

    def remove_app(self, project: str, name: str) -> dict[str, list[str]]:
        """Remove an app's record (its domains and variables with it)."""
        validation.name(project, "project")
        validation.app_name(name, "app")
        with self.transaction() as conn:
            conn.execute("DELETE FROM app WHERE id = ?", (self._app_id(project, name),))
        return {"apps": [f"{project}/{name}"]}

    def app_secrets(self, project: str, name: str) -> dict[str, str]:
        """The app's secret variables with their values. Only for tasks that hand them to the
        app (with ``no_log``); never print or log the result."""
        validation.name(project, "project")
        validation.app_name(name, "app")
        with self._snapshot() as conn:
            app_id = self._app_id(project, name)
            return {row[0]: row[1] for row in conn.execute(
                "SELECT name, value FROM app_env WHERE app_id = ? AND secret = 1 ORDER BY name", (app_id,))}

    def get_secret(self, project: str, name: str, variable: str) -> str:
        """One secret variable's value (see :meth:`app_secrets`)."""
        validation.env_name(variable, "variable")
        secrets = self.app_secrets(project, name)
        if variable not in secrets:
            raise NotFound("secret variable", variable,
                           f"app {project}/{name} has {', '.join(secrets) or 'no secret variables'}; set it "
                           "as a secret variable of the app", "edit")
        return secrets[variable]

    # -- the inventory -----------------------------------------------------------------

    def inventory(self, container: str | None = None) -> dict[str, Any]:
        """Everything the inventory plugin needs, in six queries whatever the size:
        ``{"hosts": {name: host}, "containers": [container + {"projects": {name: {"name",
        "apps": {name: app}}}}]}``. JSON-serialisable (it is what the inventory caches), and
        free of secret values. With ``container``, only that container and its host (a job
        on one app reads no more)."""
        where, params = ("WHERE c.name = ?", (container,)) if container is not None else ("", ())
        with self._snapshot() as conn:
            containers = [_container_dict(row) for row in conn.execute(
                f"{_CONTAINERS_SQL} {where} ORDER BY c.name", params)]
            hosts = {row["name"]: _host_dict(row) for row in conn.execute("SELECT * FROM host ORDER BY name")
                     if container is None or row["name"] in {c["host"] for c in containers}}
            by_name = {container["name"]: container for container in containers}
            for record in containers:
                record["projects"] = {}
            for row in conn.execute("SELECT p.name, c.name AS container FROM project p "
                                    f"JOIN container c ON c.id = p.container_id {where} ORDER BY p.name", params):
                by_name[row["container"]]["projects"][row["name"]] = {"name": row["name"], "apps": {}}
            for app in self._load_apps(where, params):
                by_name[app["container"]]["projects"][app["project"]]["apps"][app["name"]] = app
        return {"hosts": hosts, "containers": containers}

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
        if slots <= 0:
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

    def fail_orphaned_jobs(self, is_alive: Callable[[str], bool],
                           summary: str = "the process running this job died before it finished") -> list[int]:
        """Mark failed the running jobs whose owner process is gone (``is_alive`` answers for
        an owner string). Returns their ids."""
        with self.transaction() as conn:
            orphaned = [row["id"] for row in conn.execute(
                "SELECT id, owner FROM job WHERE status = 'running' AND owner IS NOT NULL")
                if not is_alive(row["owner"])]
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
                  limit: int = 50) -> list[dict[str, Any]]:
        """Jobs, newest first, without their logs. ``app`` is PROJECT/APP; ``project`` and
        ``container`` include the jobs of the apps in them; ``status`` may be a list."""
        clauses, params = [], []
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
