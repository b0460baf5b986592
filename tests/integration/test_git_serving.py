"""DPL's own git daemon, as scripts/setup leaves it running: it serves only the repositories
DPL published, as an unprivileged user, and only to the containers of the bridge.

Each refusal has a control that must succeed the same way (the published repository from
the same container; the same port from the bridge), so a probe failing for another reason
fails the test.
"""

from __future__ import annotations

import pwd
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from dpl_web import example, paths
from dpl_web.collection import validation
from tests.support.apps import BRIDGE_ADDRESS

pytestmark = pytest.mark.lxd

ROLE_DEFAULTS = yaml.safe_load((paths.REPO_ROOT / "roles/control_plane/defaults/main.yml").read_text())
PORT = ROLE_DEFAULTS["control_plane_git_port"]


def test_the_role_serves_the_folder_the_validation_accepts_in_file_urls():
    assert ROLE_DEFAULTS["control_plane_git_dir"].rstrip("/") + "/" == validation.FILE_REPO_ROOT
    assert example.git_dir() == Path(validation.FILE_REPO_ROOT)


def daemon_pid() -> int:
    state = paths.state_dir() / "git.pid"
    assert state.exists(), "scripts/setup has not started DPL's git daemon"
    return int(state.read_text())


def ls_remote(client, container: str, repo: str) -> tuple[int, str]:
    rc, out, err = client.execute(container, ["git", "ls-remote", f"git://{BRIDGE_ADDRESS}/{repo}"])
    return rc, (out + err).decode()


def test_only_published_repositories_are_served_and_only_to_the_bridge(lxd_client, container):
    # Unprivileged: the daemon (and so every upload-pack it runs) is not root. `git daemon`
    # runs git-daemon as its child, which drops root before it serves anything.
    wrapper = daemon_pid()
    children = Path(f"/proc/{wrapper}/task/{wrapper}/children").read_text().split()
    assert len(children) == 1, children
    assert Path(f"/proc/{children[0]}/comm").read_text().strip() == "git-daemon"
    status = Path(f"/proc/{children[0]}/status").read_text()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert {pwd.getpwuid(int(uid)).pw_name for uid in uids} == {ROLE_DEFAULTS["control_plane_git_user"]}

    # A repository in the folder, readable by all, but not published: refused.
    secret = example.git_dir() / f"dpltest-unpublished-{uuid.uuid4().hex[:8]}.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "--shared=0644", str(secret)], check=True)
    try:
        rc, output = ls_remote(lxd_client, container, secret.name)
        assert rc != 0 and "not exported" in output, output
        # The control: the published example repository answers the same container.
        rc, output = ls_remote(lxd_client, container, example.REPO_NAME)
        assert rc == 0 and "refs/heads/main" in output, output
        # Published (what `dpl example` does), the same repository is served.
        (secret / example.EXPORT_MARK).touch()
        rc, output = ls_remote(lxd_client, container, secret.name)
        assert rc == 0, output
    finally:
        shutil.rmtree(secret)
    assert not secret.exists()

    # Reachable from the bridge only: the same address and port, reached from this host
    # (the packet comes in on lo, not on the bridge), is refused by the firewall...
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((BRIDGE_ADDRESS, PORT), timeout=5).close()
    # ...and nothing listens on the host's other addresses.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", PORT), timeout=5).close()
