"""The web server as scripts/setup runs it (gunicorn, the control_plane role's workers and
threads): 20 live job streams held open do not starve other requests."""

from __future__ import annotations

import fcntl
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from dpl_web.jobs import worker
from dpl_web.paths import REPO_ROOT
from dpl_web.registry import Registry

DEFAULTS = yaml.safe_load((REPO_ROOT / "roles" / "control_plane" / "defaults" / "main.yml").read_text())
STREAMS = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_open_streams_do_not_starve_other_requests(tmp_path):
    registry_path = tmp_path / "registry.sqlite3"
    with Registry.open(registry_path) as reg:
        reg.add_host("local")
        reg.add_container("web1")
        reg.add_app("shop", "web", "https://git.example.com/shop.git", container="web1")
        token = reg.add_token("ci", "read")[1]
        job = reg.create_job("deploy", "app/shop/web", "tester")
    port = free_port()
    env = dict(os.environ, DPL_REGISTRY=str(registry_path), XDG_STATE_HOME=str(tmp_path / "state"))
    headers = {"Authorization": f"Bearer {token}"}
    # This test holds the worker's lock: the job stays queued, so its stream stays open.
    with open(worker.lock_path(registry_path), "w+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        server = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "--bind", f"127.0.0.1:{port}",
                                   "--workers", str(DEFAULTS["control_plane_workers"]),
                                   "--threads", str(DEFAULTS["control_plane_threads"]), "dpl_web.wsgi:app"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                  start_new_session=True)
        streams = []
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline and server.poll() is None, "gunicorn did not start"
                    time.sleep(0.2)

            def open_stream(_number):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                connection.request("GET", f"/api/v1/jobs/{job}/stream", headers=headers)
                response = connection.getresponse()
                assert response.status == 200 and response.getheader("Content-Type").startswith("text/event-stream")
                first = response.read(len(b"retry:"))  # then the queued event: the stream is live
                assert first == b"retry:", first
                return connection, response

            with ThreadPoolExecutor(STREAMS) as pool:
                streams = list(pool.map(open_stream, range(STREAMS)))
            for _round in range(3):
                started = time.monotonic()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                connection.request("GET", "/api/v1/hosts", headers=headers)
                answer = connection.getresponse()
                body = answer.read()
                elapsed = time.monotonic() - started
                connection.close()
                assert answer.status == 200 and b'"local"' in body
                assert elapsed < 1, f"a page took {elapsed:.2f} s with {STREAMS} streams open"
        finally:
            for connection, _response in streams:
                connection.close()
            # A stream's thread notices its client left at its next heartbeats only: no graceful
            # shutdown here, the whole server goes.
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
            server.stderr.close()
