"""Backups that survive the container: each deploy's backup is copied to the controller with
its SHA-256; after the container is lost and made again from its record, the app is restored
from that copy (a damaged copy is refused first); the controller keeps its newest copies."""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from pathlib import Path

import pytest

from dpl_web import paths
from dpl_web.errors import JobFailed
from dpl_web.paths import REPO_ROOT
from tests.conftest import delete_instance
from tests.support.cli import deploy_web_app, in_container, served
from tests.support.playbooks import run_playbook

pytestmark = [pytest.mark.lxd, pytest.mark.slow]


def test_an_app_is_restored_from_the_controllers_copy_into_its_container_made_again(dpl, repos, lxd_client):
    project, domain = deploy_web_app(dpl, repos[1])  # v1
    app = f"{project}/web"
    dpl("deploy", app, "--ref", "v2")  # backs up v1's release first
    assert served(domain) == "v2"
    folder = paths.host_backups_dir(dpl.env["DPL_REGISTRY"]) / project / "web"
    [copy] = sorted(folder.glob("*.tar.gz"))
    assert copy.name.endswith(f"-{repos[0].commits['v1'][:12]}.tar.gz")
    digest = hashlib.sha256(copy.read_bytes()).hexdigest()
    assert (folder / f"{copy.name}.sha256").read_text() == f"{digest}  {copy.name}\n"
    assert in_container(lxd_client, project, f"sha256sum /root/backups/{project}/web/{copy.name}").split()[0] == digest
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and stat.S_IMODE(folder.parent.parent.stat().st_mode) == 0o700
    listed = dpl.json("app", "backups", app)["backups"]
    assert [(backup["name"], backup["kept_in"]) for backup in listed] == [(copy.name, ["container", "controller"])]

    # The container is lost, and made again from its record: no release, no backup in it.
    delete_instance(lxd_client, project)
    dpl("container", "start", project)
    assert in_container(lxd_client, project, f"ls -A /root/backups/{project}/web") == ""
    assert served(domain) is None
    assert [backup["kept_in"] for backup in dpl.json("app", "backups", app)["backups"]] == [["controller"]]

    # A damaged copy is refused before anything is changed.
    good = copy.read_bytes()
    copy.write_bytes(good[:-16] + bytes(16))
    refused = dpl("app", "restore", app, copy.name, expect=JobFailed.exit_code)
    assert "does not match the SHA-256" in refused.stdout + refused.stderr
    assert in_container(lxd_client, project, f"ls -A /root/backups/{project}/web") == ""

    copy.write_bytes(good)
    dpl("app", "restore", app, copy.name)
    assert served(domain) == "v1"
    assert in_container(lxd_client, project, f"sha256sum /root/backups/{project}/web/{copy.name}").split()[0] == digest


def test_the_controller_keeps_the_newest_copies(tmp_path: Path):
    """tasks/backup_to_host.yml on its own (the "container" is this machine): a new copy
    with its SHA-256, and the oldest copies beyond the newest N removed with theirs."""
    made = tmp_path / "in-container"
    made.mkdir()
    host = tmp_path / "controller" / "backups" / "shop" / "web"
    host.mkdir(parents=True)
    for day in range(1, 13):  # twelve older copies, from 1 to 12 December
        name = f"202612{day:02d}T000000Z-{day:012x}.tar.gz"
        (host / name).write_bytes(b"old")
        (host / f"{name}.sha256").write_text(f"x  {name}\n")
    new = made / "20261213T000000Z-0123456789ab.tar.gz"
    new.write_bytes(os.urandom(4096))
    plays = [{"name": "copy", "hosts": "localhost", "gather_facts": False,
              "vars": {"dpl_host_keep_backups": 10,
                       "result": {"backup": str(new),
                                  "item": {"project": "shop", "name": "web", "host_backup_dir": str(host)}}},
              "tasks": [{"ansible.builtin.include_tasks": str(REPO_ROOT / "playbooks/tasks/backup_to_host.yml")}]}]
    localhost = {"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                                 "ansible_python_interpreter": sys.executable}}}}
    result = run_playbook(tmp_path, plays, localhost)
    assert result.rc == 0, result.stdout[-3000:]
    kept = sorted(path.name for path in host.glob("*.tar.gz"))
    assert kept == [f"202612{day:02d}T000000Z-{day:012x}.tar.gz" for day in range(4, 13)] + [new.name]
    assert sorted(path.name for path in host.glob("*.sha256")) == [f"{name}.sha256" for name in kept]
    assert (host / new.name).read_bytes() == new.read_bytes()
    assert (host / f"{new.name}.sha256").read_text().split()[0] == hashlib.sha256(new.read_bytes()).hexdigest()
