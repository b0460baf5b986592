"""Private repositories, on real git servers: git over ssh (sshd in a container on the bridge,
the project's deploy key in its authorized_keys, its host key pinned at the first contact) and
smart HTTP over TLS that asks for a token. Deploys work with the right key or token, fail
saying what to do without them, and the key and the token appear nowhere but the registry and
the container's key file."""

from __future__ import annotations

import json
import os
import secrets
import uuid
from pathlib import Path

import pytest

from dpl_web.errors import JobFailed
from dpl_web.registry import Registry
from tests.conftest import OWNER_KEY, TEST_PREFIX, delete_instance
from tests.support.cli import Dpl, in_container, served
from tests.support.git_servers import GIT_HOST_IMAGE, TokenGitServer, build_git_host_image

pytestmark = [pytest.mark.lxd, pytest.mark.slow]


@pytest.fixture(scope="module")
def git_host(lxd_client, repos, tmp_path_factory):
    """A git host reached over ssh: a container running sshd, with the test app's repository
    as /srv/git/demo.git of its user git (whose shell is git-shell). Yields (name, address)."""
    build_git_host_image(tmp_path_factory.mktemp("githost-image"))
    name = f"{TEST_PREFIX}git{uuid.uuid4().hex[:6]}"
    lxd_client.sync_or_wait("POST", "/1.0/instances", {
        "name": name, "source": {"type": "image", "alias": GIT_HOST_IMAGE}, "profiles": ["default"],
        "config": {OWNER_KEY: str(os.getpid())}}, timeout=300)
    try:
        lxd_client.set_state(name, "start", timeout=60)
        address = lxd_client.wait_for_ipv4(name, timeout=60)
        in_container(lxd_client, name, f"""set -e
            useradd --home-dir /srv/git --create-home --shell /usr/bin/git-shell git
            git clone --quiet --bare {repos[1]} /srv/git/demo.git
            install -d -m 700 -o git -g git /srv/git/.ssh
            install -m 600 -o git -g git /dev/null /srv/git/.ssh/authorized_keys
            chown -R git:git /srv/git/demo.git
            systemctl is-active --quiet ssh || systemctl start ssh""")
        yield name, address
    finally:
        delete_instance(lxd_client, name)


def authorize(client, git_host: str, public_key: str) -> None:
    """The git host's authorized_keys holds this key only (an older one is removed)."""
    in_container(client, git_host, f"printf '%s\\n' '{public_key}' > /srv/git/.ssh/authorized_keys")


def host_fingerprint(client, git_host: str) -> str:
    return in_container(client, git_host, "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub").split()[1]


def pinned(dpl: Dpl, project: str) -> dict[str, str]:
    return {pin["type"]: pin["fingerprint"] for pin in dpl.json("project", "host-keys", project)["access"]["host_keys"]}


def files_holding(root: Path, text: str) -> list[str]:
    """Files under ``root`` (the test's registry folder, job state and runner artifacts) that
    contain ``text``, the registry itself left out (it keeps the secrets)."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.name.startswith("registry.sqlite3"):
            if text.encode() in path.read_bytes():
                found.append(str(path.relative_to(root)))
    return found


def output(proc) -> str:
    return proc.stdout + proc.stderr


def test_a_private_repository_over_ssh_with_a_deploy_key(dpl, tmp_path, lxd_client, git_host):
    host, address = git_host
    project = f"{TEST_PREFIX}{uuid.uuid4().hex[:6]}"
    dpl.made.append(project)
    domain, app = f"{project}.dpl.test", f"{project}/web"
    request = {"name": "web", "project": project, "repo": f"git@{address}:demo.git", "ref": "v1", "port": 3000,
               "domain": domain, "health_path": "/health"}

    # No deploy key yet: the git host refuses, and the error says what to do.
    refused = dpl("deploy", "--from-json", "-", stdin=json.dumps(request), expect=JobFailed.exit_code)
    assert f"the project has no deploy key. Make one (dpl project key {project})" in output(refused)
    # That first contact pinned the host's key: the git host's own.
    first = host_fingerprint(lxd_client, host)
    assert pinned(dpl, project)["ssh-ed25519"] == first

    key = dpl.json("project", "key", project)["access"]["deploy_key"]
    assert key["public"].startswith("ssh-ed25519 ") and key["public"].endswith(f" dpl-deploy-{project}")
    assert dpl.json("project", "key", project)["changed"] is False  # shown again, not made again
    authorize(lxd_client, host, key["public"])
    dpl("deploy", app)
    assert served(domain) == "v1"
    assert in_container(lxd_client, project, f"stat -c '%a %U' /etc/dpl/git/{project} "
                                             f"/etc/dpl/git/{project}/deploy_key").split("\n") == ["700 root",
                                                                                                   "600 root"]
    with Registry.open(dpl.env["DPL_REGISTRY"], create=False) as reg:
        private = reg.git_credentials(project)["ssh_key"]
    secret_line = private.splitlines()[2]  # a line of the private key's body
    assert in_container(lxd_client, project, f"cat /etc/dpl/git/{project}/deploy_key") == private.strip()
    assert secret_line not in in_container(lxd_client, project, f"cat /root/deploy/{project}/web/.git/config")
    assert files_holding(tmp_path, secret_line) == []

    # The git host's key changes: the deploy fails saying so, and v1 keeps serving.
    in_container(lxd_client, host, "rm /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && systemctl restart ssh")
    changed = dpl("deploy", app, "--ref", "v2", expect=JobFailed.exit_code)
    assert f"the git host {address} answered with another host key than the one pinned" in output(changed)
    assert first in output(changed) and f"dpl project host-keys {project} --forget {address}" in output(changed)
    assert served(domain) == "v1"
    # Its admin confirms the change: forget the pin, and the next deploy pins the new key.
    dpl("project", "host-keys", project, "--forget", address)
    assert pinned(dpl, project) == {}
    dpl("deploy", app, "--ref", "v2")
    assert served(domain) == "v2"
    assert pinned(dpl, project)["ssh-ed25519"] == host_fingerprint(lxd_client, host) != first

    # Rotation: the new key is refused until the git host has it; the old one then goes.
    rotated = dpl.json("project", "key", project, "--rotate")["access"]["deploy_key"]
    assert rotated["fingerprint"] != key["fingerprint"]
    refused = dpl("deploy", app, "--ref", "v3", expect=JobFailed.exit_code)
    assert f"refused the project's deploy key: add its public half (dpl project key {project})" in output(refused)
    assert served(domain) == "v2"
    authorize(lxd_client, host, rotated["public"])
    dpl("deploy", app, "--ref", "v3")
    assert served(domain) == "v3"

    # Removed: the next deploy deletes the key's copy in the container (and cannot fetch).
    dpl("project", "key", project, "--remove")
    assert dpl.json("project", "host-keys", project)["access"]["deploy_key"] is None
    refused = dpl("deploy", app, "--ref", "v1", expect=JobFailed.exit_code)
    assert "the project has no deploy key" in output(refused)
    assert in_container(lxd_client, project, f"ls -A /etc/dpl/git/{project}") == "known_hosts"
    assert served(domain) == "v3"
    # The project's last app removed: its pins go with it; the registry keeps them.
    dpl("app", "remove", app)
    assert in_container(lxd_client, project, "ls -A /etc/dpl/git") == ""
    assert pinned(dpl, project)["ssh-ed25519"]


def test_a_private_repository_over_https_with_a_token(dpl, tmp_path, lxd_client, repos):
    token = secrets.token_urlsafe(24)
    server = TokenGitServer(repos[0].bare.parent, token, tmp_path)
    try:
        project = f"{TEST_PREFIX}{uuid.uuid4().hex[:6]}"
        dpl.made.append(project)
        app = f"{project}/api"
        dpl("container", "create", project)
        # The git host's certificate is signed by a CA the container trusts (its own here).
        lxd_client.push_file(project, "/usr/local/share/ca-certificates/dpltest-git.crt", server.cert.read_bytes())
        in_container(lxd_client, project, "update-ca-certificates >/dev/null 2>&1")
        dpl("app", "add", app, "--container", project, "--repo", server.url("demo.git"), "--ref", "v1",
            "--port", "3100", "--health-path", "/health")

        refused = dpl("deploy", app, expect=JobFailed.exit_code)
        assert f"the repository asks for credentials: set the project's token (dpl project token {project})" \
            in output(refused)
        dpl("project", "token", project, stdin="not-the-token\n")
        refused = dpl("deploy", app, expect=JobFailed.exit_code)
        assert f"the git host refused the project's token (user dpl): set a valid one (dpl project token {project})" \
            in output(refused)

        dpl("project", "token", project, "--user", "deployer", stdin=token + "\n")
        dpl("deploy", app)
        answer = json.loads(in_container(lxd_client, project, "python3 -c \"import urllib.request; print(urllib."
                                                              "request.urlopen('http://127.0.0.1:3100/').read()"
                                                              ".decode())\""))
        assert answer["version"] == "v1"
        assert ("/demo.git/git-upload-pack", "deployer") in server.seen
        # Nowhere but the registry: not in the URL, the checkout's config, the job's events,
        # output and artifacts, or the app's record.
        assert token not in in_container(lxd_client, project, f"cat /root/deploy/{project}/api/.git/config")
        assert token not in json.dumps(dpl.json("app", "show", app))
        assert files_holding(tmp_path, token) == []
        access = dpl.json("project", "host-keys", project)["access"]
        assert access["token"]["user"] == "deployer" and token not in json.dumps(access)

        # Removed: the next deploy asks for credentials again.
        dpl("project", "token", project, "--remove")
        assert dpl.json("project", "host-keys", project)["access"]["token"] is None
        refused = dpl("deploy", app, "--ref", "v2", expect=JobFailed.exit_code)
        assert "the repository asks for credentials" in output(refused)
    finally:
        server.stop()
