"""The JSON shape of each record, defined once: what every registry method returns, the
CLI's --json prints and the JSON API answers."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from dpl_web.collection import validation
from dpl_web.registry.fields import APP_FIELDS, CONTAINER_FIELDS


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
