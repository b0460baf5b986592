"""The JSON shape of each record, defined once: what every registry method returns, the
CLI's --json prints and the JSON API answers."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from dpl_web.collection import validation
from dpl_web.registry.fields import APP_FIELDS, CONTAINER_FIELDS, json_schema


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_precise() -> str:
    """Event times: milliseconds, so a follower can tell how long each step took."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


def _project_dict(row: sqlite3.Row, apps: list[str]) -> dict[str, Any]:
    return {"name": row["name"], "container": row["container"], "apps": apps, "notes": row["notes"],
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


def _token_dict(row: sqlite3.Row) -> dict[str, Any]:
    """A token's record: never its hash (nor the token, which is not kept)."""
    return {key: row[key] for key in ("name", "scope", "created_at", "expires_at", "revoked_at", "last_used_at")}


def _audit_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "at": row["at"], "who": row["who"], "action": row["action"], "target": row["target"],
            "detail": json.loads(row["detail"]), "job": row["job_id"]}


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


_APPS_SQL = """
    SELECT a.*, p.name AS project, c.name AS container, h.name AS host
    FROM app a JOIN project p ON p.id = a.project_id
    JOIN container c ON c.id = p.container_id JOIN host h ON h.id = c.host_id
"""

_CONTAINERS_SQL = "SELECT c.*, h.name AS host FROM container c JOIN host h ON h.id = c.host_id"


def _app_dict(row: sqlite3.Row, domains: list[str], env: dict[str, str], secret_names: list[str]) -> dict[str, Any]:
    """An app: its fields, its domains, its plain variables and the names of its secret ones
    (their values never leave the registry this way)."""
    return {
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
        "domains": domains,
        "env": env,
        "secret_env": secret_names,
        "health_path": row["health_path"],
        "keep_releases": row["keep_releases"],
        "keep_backups": row["keep_backups"],
        "notes": row["notes"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


# A container's resource limits, grouped under "limits" in its record.
LIMITS = ("cpu", "memory", "disk")

# What the inventory gives each container and app (dpl_container, dpl_projects[...].apps):
# the fields that concern the machines (not notes), and what the registry adds.
INVENTORY_KEYS = {
    "container": ("name", "host", *(key for key, spec in CONTAINER_FIELDS.items()
                                    if spec.inventory and key not in LIMITS), "limits", "status", "status_at"),
    "app": ("project", "name", *(key for key, spec in APP_FIELDS.items() if spec.inventory), "ports", "live_port",
            "env"),
}


# -- the records' JSON Schemas (the API's responses) -------------------------------------------

_TEXT = {"type": "string"}
_TIME = {"type": "string"}
_MAYBE_TIME = {"type": ["string", "null"]}
_NAMES = {"type": "array", "items": {"type": "string"}}

# What a record holds besides its fields (registry.fields): names, relations, timestamps, and
# what the registry computes or records.
RECORD_EXTRAS: dict[str, dict[str, Any]] = {
    "host": {"name": _TEXT, "created_at": _TIME, "updated_at": _TIME},
    "container": {"name": _TEXT, "host": _TEXT, "projects": _NAMES, "status": _TEXT, "status_at": _MAYBE_TIME,
                  "limits": {"type": "object", "additionalProperties": False, "required": list(LIMITS),
                             "properties": {key: {"type": ["string", "null"]} for key in LIMITS}},
                  "created_at": _TIME, "updated_at": _TIME},
    "project": {"name": _TEXT, "container": _TEXT, "apps": _NAMES, "created_at": _TIME, "updated_at": _TIME},
    "app": {"project": _TEXT, "name": _TEXT, "container": _TEXT, "host": _TEXT,
            "ports": {"type": "array", "items": {"type": "integer"}}, "live_port": {"type": ["integer", "null"]},
            "env": {"type": "object", "additionalProperties": {"type": "string"}},
            "secret_env": {**_NAMES, "description": "the names of the secret variables (never their values)"},
            "created_at": _TIME, "updated_at": _TIME},
}


def record_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of a record as the registry returns it: its fields (as
    registry.fields defines them) and :data:`RECORD_EXTRAS`; every key present, no other."""
    properties = {name: {key: value for key, value in schema.items() if key != "default"}
                  for name, schema in json_schema(kind, for_change=True)["properties"].items()
                  if not (kind == "container" and name in LIMITS)}
    properties.update(RECORD_EXTRAS[kind])
    return {"type": "object", "properties": properties, "required": sorted(properties), "additionalProperties": False}


JOB_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "required": ["id", "kind", "target", "container", "project", "who", "status", "created_at", "started_at",
                 "finished_at", "summary", "owner", "timeout", "replaced_by", "commit", "params", "cancel_requested",
                 "changed", "result"],
    "properties": {
        "id": {"type": "integer"}, "kind": _TEXT, "target": _TEXT, "container": {"type": ["string", "null"]},
        "project": {"type": ["string", "null"]}, "who": _TEXT,
        "status": {"enum": ["queued", "running", "successful", "failed", "canceled", "timeout"]},
        "created_at": _TIME, "started_at": _MAYBE_TIME, "finished_at": _MAYBE_TIME,
        "summary": {"type": ["string", "null"]}, "owner": {"type": ["string", "null"]}, "timeout": {"type": "integer"},
        "replaced_by": {"type": ["integer", "null"]}, "commit": {"type": ["string", "null"]},
        "params": {"type": "object"}, "cancel_requested": {"type": "boolean"}, "changed": {},
        "result": {}, "log": {"type": ["string", "null"]},
    },
}

EVENT_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["seq", "at", "type"],
    "properties": {"seq": {"type": "integer", "minimum": 1}, "at": _TIME,
                   "type": {"enum": ["queued", "started", "play", "task", "result", "note", "finished"]}},
}

TOKEN_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "required": ["name", "scope", "created_at", "expires_at", "revoked_at", "last_used_at"],
    "properties": {"name": _TEXT, "scope": {"enum": ["read", "write"]}, "created_at": _TIME,
                   "expires_at": _MAYBE_TIME, "revoked_at": _MAYBE_TIME, "last_used_at": _MAYBE_TIME},
}

AUDIT_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "required": ["id", "at", "who", "action", "target", "detail", "job"],
    "properties": {"id": {"type": "integer"}, "at": _TIME, "who": _TEXT, "action": _TEXT, "target": _TEXT,
                   "detail": {"type": "object"}, "job": {"type": ["integer", "null"]}},
}
