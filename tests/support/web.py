"""The web server as scripts/setup runs it, for tests and benchmarks: gunicorn with the
control_plane role's workers and threads, on a free loopback port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import yaml

from dpl_web.paths import REPO_ROOT

DEFAULTS = yaml.safe_load((REPO_ROOT / "roles" / "control_plane" / "defaults" / "main.yml").read_text())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(env: dict[str, str], output: IO | int = subprocess.DEVNULL,
                   access_log: bool = False) -> tuple[subprocess.Popen, str]:
    """gunicorn serving DPL with ``env`` (its registry and directories); returns the process
    and its base URL once it answers. Stop it with ``kill()``: open streams of jobs that never
    end would hold a graceful stop for 30 s."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "--bind", f"127.0.0.1:{port}",
         "--workers", str(DEFAULTS["control_plane_workers"]), "--threads", str(DEFAULTS["control_plane_threads"]),
         *(["--access-logfile", "-"] if access_log else []), "dpl_web.wsgi:app"],
        env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            if time.monotonic() >= deadline or server.poll() is not None:
                server.kill()
                raise AssertionError("gunicorn did not start") from None
            time.sleep(0.2)
