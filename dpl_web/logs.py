"""An app's service journal, read inside its container (journalctl through one LXD exec),
with the app's secret values masked: `dpl app logs` and the app's log page. In a container
whose init is OpenRC the output is in the services' log files instead (supervise-daemon writes
them, without timestamps): a second exec reads their ends.

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

# journalctl with the arguments given, or "@openrc" when the container's init is OpenRC.
JOURNAL_SCRIPT = r"""
if [ -d /run/systemd/system ]; then exec journalctl "$@"; fi
if [ -d /run/openrc ]; then echo @openrc; exit 0; fi
echo "the container runs neither systemd nor OpenRC" >&2; exit 1
"""
# Run by the container's python3 (DPL's containers all have it) with LINES, then pairs
# "FILE OFFSET": each file's whole lines from OFFSET up to its size when opened (a line still
# being written waits for the next read), or its last LINES lines when OFFSET is -1 or
# past the end (the file was truncated); each file's part after a line "@file FILE SIZE".
OPENRC_LOG_READER = r"""
import os, sys
lines, pairs, out = int(sys.argv[1]), sys.argv[2:], sys.stdout.buffer
for path, offset in zip(pairs[0::2], pairs[1::2]):
    try:
        handle = open(path, "rb")
    except OSError:
        continue
    with handle:
        size, offset = os.fstat(handle.fileno()).st_size, int(offset)
        if 0 <= offset <= size:
            handle.seek(offset)
            data = handle.read(size - offset)
            data = data[:data.rfind(b"\n") + 1]  # a line still being written waits
            size = offset + len(data)
        else:
            handle.seek(max(size - 65536, 0))
            data = b"\n".join(handle.read(size - handle.tell()).splitlines()[-lines:])
    out.write(b"@file %s %d\n" % (path.encode(), size) + data + (b"\n" if data and not data.endswith(b"\n") else b""))
"""


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
            code, out, err = client.execute(container["name"], ["sh", "-c", JOURNAL_SCRIPT, "dpl-logs", *command[1:]],
                                            timeout=READ_TIMEOUT)
            if code == 0 and out.startswith(b"@openrc"):
                return _openrc_logs(client, container["name"], project, name, record["port"], lines, after, mask)
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


def _openrc_logs(client: lxd.LXDClient, container: str, project: str, name: str, port: int, lines: int,
                 after: str | None, mask: releases.Masker) -> dict[str, Any]:
    """The ends of the app's OpenRC services' log files (its one service and its two slots);
    the cursor is "openrc:" and each file's size, in that order."""
    paths = releases.AppPaths(project, name, init="openrc")
    specs = [paths.single(port)] + [paths.slot(slot) for slot in validation.app_ports(port)]
    offsets = [-1] * len(specs)
    if after and after.startswith("openrc:"):
        given = after[len("openrc:"):].split(",")
        if len(given) == len(specs) and all(value.isdigit() for value in given):
            offsets = [int(value) for value in given]
    arguments = [str(lines)]
    for spec, offset in zip(specs, offsets, strict=True):
        arguments += [spec.log_file, str(offset)]
    code, out, err = client.execute(container, ["python3", "-c", OPENRC_LOG_READER, *arguments],
                                    timeout=READ_TIMEOUT)
    if code != 0:
        raise DplError(f"reading the logs in {container} failed: {mask(err.decode('utf-8', 'replace')).strip()}")
    units = {spec.log_file: spec.unit for spec in specs}
    sizes = dict.fromkeys(units, 0)
    entries, unit = [], ""
    for line in out.decode("utf-8", "replace").splitlines():
        if line.startswith("@file "):
            file, _space, size = line[6:].rpartition(" ")
            unit = units.get(file, "")
            sizes[file] = int(size) if size.isdigit() else 0
        elif unit:
            entries.append({"at": "", "unit": unit, "text": mask(line)})
    return {"entries": entries, "cursor": "openrc:" + ",".join(str(sizes[spec.log_file]) for spec in specs)}
