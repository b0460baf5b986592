"""The registry: DPL's SQLite record of hosts, containers, projects, apps and jobs.

It answers the seed's question "how do we reach a production app": which LXD host runs
which container at which address, which projects and apps live in it, how each app is
deployed, and what was done to them (jobs). The services (dpl_web.services), the worker,
and the inventory plugin read and write it through :class:`Registry`, the facade over one
module per concern:

- :mod:`.schema`: the file (private, WAL, busy timeout) and its migrations;
- :mod:`.fields`: what each record holds, its checks and defaults, the request shapes;
- :mod:`.records`: the JSON shape of each record, defined once;
- :mod:`.base`: the connection, transactions and snapshots;
- :mod:`.hosts`, :mod:`.containers`, :mod:`.projects`, :mod:`.apps` (and the inventory),
  :mod:`.jobs` (the queue and the event streams), :mod:`.tokens` (the API's tokens),
  :mod:`.webhooks` (push webhooks), :mod:`.audit` (who did what), :mod:`.git_access` (deploy
  keys, tokens and pinned host keys): one concern each.

Why it is built the way it is:

- One file, WAL mode and a long busy timeout, so the web server, the worker, a CLI call
  and an inventory run can use it at the same time; every change is one ``BEGIN
  IMMEDIATE`` transaction, so writers queue instead of failing half way.
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

from dpl_web.errors import Conflict, NotFound
from dpl_web.registry.apps import AppsTable
from dpl_web.registry.audit import AuditTable
from dpl_web.registry.containers import FIRST_CONTAINER_ADDRESS, ContainersTable
from dpl_web.registry.fields import (
    APP_FIELDS,
    CONTAINER_FIELDS,
    DEFAULT_BRANCH_REF,
    FIELDS,
    HOST_FIELDS,
    PROJECT_FIELDS,
    SECRET_MASK,
    Field,
    ValidationError,
    app_request,
    check_fields,
    json_schema,
    layout,
    split_app,
)
from dpl_web.registry.git_access import GitAccessTable
from dpl_web.registry.hosts import HostsTable
from dpl_web.registry.jobs import (
    JOB_FINISHED,
    JOB_STATUSES,
    JOB_TARGET_KINDS,
    KEEP_JOB_EVENTS,
    JobsTable,
    jobs_clash,
    parse_target,
)
from dpl_web.registry.projects import ProjectsTable
from dpl_web.registry.records import INVENTORY_KEYS
from dpl_web.registry.samples import SamplesTable
from dpl_web.registry.schema import (
    BUSY_TIMEOUT,
    MIGRATIONS,
    SCHEMA_VERSION,
    RegistryError,
    connect,
    connect_readonly,
    migrate,
    schema_version,
)
from dpl_web.registry.tokens import TOKEN_SCOPES, TokensTable
from dpl_web.registry.users import UsersTable
from dpl_web.registry.webhooks import WebhooksTable

__all__ = [
    "APP_FIELDS", "BUSY_TIMEOUT", "CONTAINER_FIELDS", "DEFAULT_BRANCH_REF", "FIELDS", "FIRST_CONTAINER_ADDRESS",
    "HOST_FIELDS", "INVENTORY_KEYS", "Field", "check_fields", "json_schema",
    "JOB_FINISHED", "JOB_STATUSES", "JOB_TARGET_KINDS", "KEEP_JOB_EVENTS", "MIGRATIONS", "PROJECT_FIELDS",
    "SCHEMA_VERSION", "SECRET_MASK", "TOKEN_SCOPES",
    "Conflict", "NotFound", "Registry", "RegistryError", "ValidationError",
    "app_request", "connect", "connect_readonly", "jobs_clash", "layout", "migrate", "parse_target", "schema_version",
    "split_app",
]


class Registry(HostsTable, ContainersTable, ProjectsTable, AppsTable, JobsTable, TokensTable, WebhooksTable,
               AuditTable, UsersTable, SamplesTable, GitAccessTable):
    """DPL's registry: open one with :meth:`open`, close it (or use ``with``) when done.

    A Registry wraps one SQLite connection; use one per thread (the web front end keeps one
    per request, like Flask's tutorial keeps its database in ``g``). Its methods come from
    one class per table (the modules of this package).
    """
