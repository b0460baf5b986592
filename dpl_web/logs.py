"""An app's service journal, read inside its container (journalctl through one LXD exec),
with the app's secret values masked: `dpl app logs` and the app's log page.

Following is reading again after the last entry's cursor every second: each read is one
short exec, and nothing is left running in the container when the reader goes away.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dpl_web.collection import host_client, lxd, releases, validation
from dpl_web.errors import DplError
from dpl_web.registry import Registry, split_app

MAX_LINES = 10000
READ_TIMEOUT = 20  # seconds one read of the journal may take


def app_journal(registry_path: Path | str, app: str, lines: int = 100, since: str | None = None,
                after: str | None = None) -> dict[str, Any]:
    """The newest ``lines`` entries of the app's services (both slots), from ``since``, or
    those after the cursor ``after``: ``{"entries": [{"at", "unit", "text"}], "cursor"}``."""
    project, name = split_app(app)
    lines = validation.count(lines, "lines", minimum=1, maximum=MAX_LINES)
    with Registry.open(registry_path, create=False) as reg:
        record = reg.get_app(project, name)
        container = reg.get_container(record["container"])
        host = reg.get_host(container["host"])
        mask = releases.Masker(list(reg.app_secrets(project, name).values()))
    app_paths = releases.AppPaths(project, name)
    command = ["journalctl", "--no-pager", "--output=json", "-u", app_paths.unit,
               "-u", app_paths.slot_template.replace("@.service", "@*")]
    if after:
        command.append(f"--after-cursor={validation.line(after, 'after', 300)}")
    else:
        command.append(f"--lines={lines}")
    if since:
        command.append(f"--since={validation.journal_since(since)}")
    try:
        with host_client(host, READ_TIMEOUT) as client:
            code, out, err = client.execute(container["name"], command, timeout=READ_TIMEOUT)
    except lxd.LXDError as exc:
        raise DplError(f"cannot read the journal of {app} in {container['name']}: {exc}",
                       "see that the container runs (dpl status)") from exc
    if code != 0:
        raise DplError(f"journalctl in {container['name']} failed: {mask(err.decode('utf-8', 'replace')).strip()}",
                       "the container needs systemd's journal")
    entries, cursor = [], after
    for line in out.decode("utf-8", "replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        message = entry.get("MESSAGE", "")
        if isinstance(message, list):  # journald gives bytes that are not UTF-8 as a list
            message = bytes(message).decode("utf-8", "replace")
        stamp = int(entry.get("__REALTIME_TIMESTAMP", 0)) / 1e6
        entries.append({"at": datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                        "unit": entry.get("_SYSTEMD_UNIT") or entry.get("UNIT") or "",
                        "text": mask(str(message))})
        cursor = entry.get("__CURSOR", cursor)
    return {"entries": entries, "cursor": cursor}
