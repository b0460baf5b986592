"""Fixtures shared by the integration tests: the test app's repository, served by git."""

from __future__ import annotations

import pytest

from tests.conftest import delete_instance, remove_test_vhosts
from tests.support.apps import AppRepo, GitDaemon, app_files
from tests.support.cli import Dpl


@pytest.fixture(scope="session")
def repos(tmp_path_factory):
    """The test app with good and bad versions (tags v1, v2, crash, sick, v3), served by
    git daemon on the bridge. Yields (AppRepo, its git:// URL)."""
    root = tmp_path_factory.mktemp("repos")
    repo = AppRepo(root, "demo")
    repo.commit("v1", app_files("v1"), tag="v1")
    repo.commit("v2", app_files("v2"), tag="v2")
    repo.commit("crash", app_files("crash", startup="process.exit(3);"), tag="crash")
    repo.commit("sick", app_files("sick", health_status=500), tag="sick")
    repo.commit("v3", app_files("v3"), tag="v3")
    daemon = GitDaemon(root)
    yield repo, daemon.url(repo)
    daemon.stop()


@pytest.fixture
def dpl(tmp_path, lxd_client):
    tool = Dpl(tmp_path)
    tool("init", "--bridge", "dplbr0", "--bridge-ipv4", "10.210.0.1/24")
    made = []
    tool.made = made
    yield tool
    for name in made:
        delete_instance(lxd_client, name)
    remove_test_vhosts(made)  # the vhosts of its deleted containers' apps
