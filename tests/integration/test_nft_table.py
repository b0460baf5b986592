"""dpl.platform.nft_table against this machine's real nftables: a table made, left alone
when unchanged, replaced when its content changes, and gone after state=absent.

The test's table has one regular chain (no hook), so it never sees a packet."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from tests.support.playbooks import run_playbook

pytestmark = pytest.mark.lxd  # needs root and nftables, like the LXD host

LOCAL = {"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                         "ansible_python_interpreter": sys.executable}}}}


def table_play(task, **params):
    return [{"name": "nft", "hosts": "all", "gather_facts": False,
             "tasks": [{"name": task, "dpl.platform.nft_table": params}]}]


def listing(name: str) -> subprocess.CompletedProcess:
    return subprocess.run(["nft", "list", "table", "inet", name], capture_output=True, text=True, check=False)


def test_a_table_is_made_kept_replaced_and_removed(tmp_path):
    name = f"dpltest_{uuid.uuid4().hex[:8]}"
    first = "chain probe {\n  counter\n}\n"
    try:
        made = run_playbook(tmp_path, table_play("make", name=name, content=first), LOCAL).result("make")
        assert made["changed"] and "chain probe" in listing(name).stdout
        again = run_playbook(tmp_path, table_play("again", name=name, content=first), LOCAL).result("again")
        assert not again["changed"] and again["digest"] == made["digest"]
        second = "chain other {\n  counter\n}\n"
        replaced = run_playbook(tmp_path, table_play("replace", name=name, content=second), LOCAL).result("replace")
        assert replaced["changed"]
        assert "chain other" in listing(name).stdout and "chain probe" not in listing(name).stdout
        removed = run_playbook(tmp_path, table_play("remove", name=name, state="absent"), LOCAL).result("remove")
        assert removed["changed"] and listing(name).returncode != 0
        gone = run_playbook(tmp_path, table_play("gone", name=name, state="absent"), LOCAL).result("gone")
        assert not gone["changed"]
    finally:
        subprocess.run(["nft", "delete", "table", "inet", name], capture_output=True, check=False)
    assert listing(name).returncode != 0
