"""Fixtures every unit test shares (the flaskr tutorial's conftest.py): a private registry
per test, opened or as a path, and the services' context over it. Unit tests need no LXD;
the test bed of tests/conftest.py serves the integration tests.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from dpl_web import services
from dpl_web.registry import Registry

REPO = "https://git.example.com/shop/web.git"


@pytest.fixture(autouse=True)
def registry_path(tmp_path, monkeypatch):
    """Where this test's registry lives (not made yet). Everything DPL keeps goes under the
    test's own directory: the registry ($DPL_REGISTRY), the state (job directories,
    worker logs) and the settings, so the user's are never touched."""
    path = tmp_path / "registry.sqlite3"
    monkeypatch.setenv("DPL_REGISTRY", str(path))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    # Nor its settings: no alert goes where the user's alert-urls file says.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return path


@pytest.fixture
def reg(registry_path):
    """The registry, opened, with the host ``local``."""
    with Registry.open(registry_path) as opened:
        opened.add_host("local")
        yield opened


@pytest.fixture
def ctx(reg, registry_path):
    """The services' context over ``reg``; jobs are queued, not run (no worker starts)."""
    return services.Context(registry_path, "tester", start_worker=False)


@pytest.fixture
def stocked(reg):
    """Two containers, a project in each, an app in each: shop/web in web1, blog/site in web2."""
    reg.add_container("web1")
    reg.add_container("web2")
    reg.add_app("shop", "web", REPO, container="web1")
    reg.add_app("blog", "site", REPO, container="web2")
    return reg


@pytest.fixture
def receiver():
    """A JSON webhook on loopback that fails its first ``fail`` calls with a 500."""
    got, state = [], {"fail": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the name http.server calls
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            got.append(body)
            if state["fail"] > 0:
                state["fail"] -= 1
                self.send_response(500)
            else:
                self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"json://127.0.0.1:{server.server_port}/dpl", got, state
    server.shutdown()
    server.server_close()
