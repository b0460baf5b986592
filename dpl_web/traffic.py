"""nginx's traffic per domain: requests, 4xx, 5xx and upstream time, so that an app answering
errors shows up even while its health path answers.

The role ``nginx_edge`` gives the host's nginx one more access log (``nginx_edge_traffic_log``,
:data:`DEFAULT_LOG`) in the ``dpl_traffic`` format, one tab-separated line per request::

    $msec  $server_name  $status  $upstream_response_time

``$server_name`` is the vhost's own name (the app's domain), never the client's Host header.
Each monitoring round reads only what was added since the last one: where it stopped (the
file's inode and offset) is kept in the registry. After a rotation it finishes the rotated
file (``<log>.1``) first; a line still being written waits for the next round; a round reads at
most :data:`MAX_READ` bytes (after a long pause the oldest backlog is skipped, not replayed).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# Must equal the role's default `nginx_edge_traffic_log` (a unit test holds them equal).
DEFAULT_LOG = "/var/log/nginx/dpl-traffic.log"
MAX_READ = 32 * 1024 * 1024  # bytes one round reads at most


def log_path() -> Path:
    """The traffic log this control plane reads (``DPL_TRAFFIC_LOG`` when nginx writes it elsewhere)."""
    return Path(os.environ.get("DPL_TRAFFIC_LOG") or DEFAULT_LOG)


def _read_from(path: Path, offset: int, limit: int) -> tuple[bytes, int]:
    """Whole lines of ``path`` from ``offset`` (at most ``limit`` bytes): the bytes and the offset
    after the last whole line."""
    with open(path, "rb") as log:
        size = os.fstat(log.fileno()).st_size
        if offset > size:  # truncated (copytruncate): start again
            offset = 0
        skip_partial = False
        if size - offset > limit:  # a backlog too big for one round: keep its newest part
            offset, skip_partial = size - limit, True
        log.seek(offset)
        data = log.read(size - offset)
    if skip_partial:
        first = data.find(b"\n") + 1
        data, offset = data[first:], offset + first
    end = data.rfind(b"\n") + 1  # a line still being written is read next round
    return data[:end], offset + end


def read_new(path: Path, cursor: Mapping[str, int] | None) -> tuple[list[str], dict[str, int]]:
    """The lines added to ``path`` since ``cursor`` (``{"inode", "offset"}``), and the new cursor.
    With no cursor, nothing: the log's past is not this control plane's to count.
    Raises OSError when the log cannot be read."""
    stat = os.stat(path)
    if cursor is None:
        return [], {"inode": stat.st_ino, "offset": stat.st_size}
    chunks = []
    offset = cursor["offset"]
    if cursor["inode"] != stat.st_ino:  # rotated: the rest of the old file first, when it is still there
        rotated = path.with_name(path.name + ".1")
        try:
            if os.stat(rotated).st_ino == cursor["inode"]:
                chunks.append(_read_from(rotated, offset, MAX_READ)[0])
        except OSError:
            pass
        offset = 0
    data, offset = _read_from(path, offset, MAX_READ - sum(map(len, chunks)))
    chunks.append(data)
    lines = b"".join(chunks).decode("utf-8", "replace").splitlines()
    return lines, {"inode": stat.st_ino, "offset": offset}


def _upstream_seconds(field: str) -> float | None:
    """``$upstream_response_time``: "-" (no upstream), or the times of each upstream tried
    ("0.010, 0.002" when nginx tried the other slot; " : " after an internal redirect)."""
    total, seen = 0.0, False
    for part in field.replace(":", ",").split(","):
        try:
            total += float(part.strip())
            seen = True
        except ValueError:
            continue
    return total if seen else None


def count(lines: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Per domain: ``{"requests", "errors_4xx", "errors_5xx", "upstream_ms", "upstream_ms_max"}``."""
    found: dict[str, dict[str, Any]] = {}
    for line in lines:
        parts = line.split("\t")
        if len(parts) != 4 or not parts[2].isdigit():
            continue
        _msec, domain, status, upstream = parts
        figures = found.setdefault(domain.lower(), {"requests": 0, "errors_4xx": 0, "errors_5xx": 0,
                                                    "upstream_total": 0.0, "upstream_count": 0, "upstream_ms_max": 0.0})
        figures["requests"] += 1
        figures["errors_4xx"] += status.startswith("4")
        figures["errors_5xx"] += status.startswith("5")
        seconds = _upstream_seconds(upstream)
        if seconds is not None:
            figures["upstream_total"] += seconds
            figures["upstream_count"] += 1
            figures["upstream_ms_max"] = max(figures["upstream_ms_max"], round(seconds * 1000, 1))
    return found


def per_app(domains: Mapping[str, dict[str, Any]], apps: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The round's figures of each app with domains (zeros when nothing came): its domains' sums."""
    figures = {}
    for app in apps:
        if not app["domains"]:
            continue
        mine = [domains[domain] for domain in app["domains"] if domain in domains]
        timed = sum(one["upstream_count"] for one in mine)
        figures[f"{app['project']}/{app['name']}"] = {
            "requests": sum(one["requests"] for one in mine),
            "errors_4xx": sum(one["errors_4xx"] for one in mine),
            "errors_5xx": sum(one["errors_5xx"] for one in mine),
            "upstream_ms": round(sum(one["upstream_total"] for one in mine) / timed * 1000, 1) if timed else None,
            "upstream_ms_max": max((one["upstream_ms_max"] for one in mine), default=None) if timed else None,
        }
    return figures
