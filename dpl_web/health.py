"""Health of the parts DPL stands on: LXD, nginx and the registry."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from pathlib import Path

from flask import Blueprint, current_app, jsonify, render_template

from dpl_web import registry
from dpl_web.collection import lxd

bp = Blueprint("health", __name__)

BASE_IMAGE_ALIAS = "dpl-base"


def check_lxd() -> dict:
    try:
        with lxd.LXDClient(timeout=5) as client:
            server = client.server()
            images = {alias["name"] for alias in client.get("/1.0/images/aliases", {"recursion": 1})}
            instances = client.get("/1.0/instances")
    except lxd.LXDError as exc:
        return {"ok": False, "detail": str(exc), "fix": "run scripts/setup to start LXD"}
    version = server.get("environment", {}).get("server_version", "?")
    if BASE_IMAGE_ALIAS not in images:
        return {"ok": False, "detail": f"LXD {version} runs, but the image {BASE_IMAGE_ALIAS} is missing",
                "fix": "run scripts/setup to build it"}
    return {"ok": True, "detail": f"LXD {version}, {len(instances)} instance(s), image {BASE_IMAGE_ALIAS}"}


def _nginx_masters() -> list[int]:
    masters = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"nginx: master process"):
            masters.append(int(entry))
    return masters


def check_nginx() -> dict:
    masters = _nginx_masters()
    if not masters:
        return {"ok": False, "detail": "nginx is not running", "fix": "run scripts/setup to start it"}
    try:
        test = subprocess.run(["nginx", "-t", "-q"], capture_output=True, text=True, timeout=10,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"ok": False, "detail": f"cannot run nginx -t: {exc}", "fix": "is nginx installed?"}
    if test.returncode != 0:
        return {"ok": False, "detail": f"nginx runs but its configuration is invalid: {test.stderr.strip()}",
                "fix": "fix the file nginx -t names"}
    return {"ok": True, "detail": f"nginx runs (master pid {masters[0]}), configuration valid"}


def check_registry(path: str) -> dict:
    if not Path(path).exists():
        return {"ok": False, "detail": f"{path} does not exist", "fix": "run scripts/setup to create it"}
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            version = registry.schema_version(conn)
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return {"ok": False, "detail": f"{path}: {exc}", "fix": "restore the registry from a backup"}
    if verdict != "ok":
        return {"ok": False, "detail": f"{path}: integrity check says {verdict}",
                "fix": "restore the registry from a backup"}
    return {"ok": True, "detail": f"{path}, schema version {version}"}


# The health checks need no login (they say what to fix when nothing else works yet), so a
# report is reused for a few seconds: asking often costs no more LXD calls or `nginx -t`.
CACHE_SECONDS = 5
_cache: dict[str, tuple[float, dict]] = {}


def collect() -> dict:
    path = current_app.config["REGISTRY"]
    cached = _cache.get(path)
    if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1]
    checks = {
        "lxd": check_lxd(),
        "nginx": check_nginx(),
        "registry": check_registry(path),
    }
    report = {"ok": all(check["ok"] for check in checks.values()), "checks": checks}
    _cache[path] = (time.monotonic(), report)
    return report


@bp.get("/health")
def page():
    report = collect()
    return render_template("health.html", report=report), 200 if report["ok"] else 503


@bp.get("/api/health")
def api():
    report = collect()
    return jsonify(report), 200 if report["ok"] else 503
