"""Fixtures every unit test shares (the flaskr tutorial's conftest.py): a private registry
per test, opened or as a path, and the services' context over it. Unit tests need no LXD;
the test bed of tests/conftest.py serves the integration tests.
"""

from __future__ import annotations

import pytest

from dpl_web import services
from dpl_web.registry import Registry

REPO = "https://git.example.com/shop/web.git"


@pytest.fixture(autouse=True)
def registry_path(tmp_path, monkeypatch):
    """Where this test's registry lives (not made yet). Everything DPL keeps goes under the
    test's own directory: the registry ($DPL_REGISTRY) and the state (job directories,
    worker logs), so the user's are never touched."""
    path = tmp_path / "registry.sqlite3"
    monkeypatch.setenv("DPL_REGISTRY", str(path))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
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
