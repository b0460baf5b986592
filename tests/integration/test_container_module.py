"""dpl.platform.container on the real LXD daemon: every state transition, check and diff
mode, bad input and faults, and the same module against LXD over HTTPS."""

from __future__ import annotations

import sys
import uuid

import pylxd
import pytest

from tests.conftest import TEST_PREFIX, delete_instance
from tests.support.playbooks import lxd_inventory, run_playbook

pytestmark = pytest.mark.lxd

LOCAL = {"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                         "ansible_python_interpreter": sys.executable}}}}
BRIDGE = "dplbr0"


@pytest.fixture
def name(lxd_client):
    """A fresh container name; whatever the test made under it is deleted afterwards."""
    value = f"{TEST_PREFIX}{uuid.uuid4().hex[:10]}"
    yield value
    delete_instance(lxd_client, value)


@pytest.fixture
def free_ipv4(lxd_client):
    """An address on the bridge that no instance has a lease or fixed address for."""
    used = set()
    for instance in lxd_client.get("/1.0/instances", {"recursion": 1}):
        used.add((instance.get("devices", {}).get("eth0") or {}).get("ipv4.address"))
    for lease in lxd_client.get(f"/1.0/networks/{BRIDGE}/leases"):
        used.add(lease.get("address"))
    for last in range(200, 250):
        address = f"10.210.0.{last}"
        if address not in used:
            return address
    raise AssertionError("no free address on the test bridge")


def container_task(**params):
    return {"name": "container", "dpl.platform.container": params, "register": "result"}


def run(tmp_path, check=False, diff=False, **params):
    plays = [{"name": "container", "hosts": "localhost", "gather_facts": False,
              "tasks": [container_task(**params)]}]
    return run_playbook(tmp_path, plays, LOCAL, check=check, diff=diff).result("container")


def pylxd_state(name):
    instance = pylxd.Client().instances.get(name)
    addresses = [a["address"] for a in (instance.state().network or {}).get("eth0", {}).get("addresses", [])
                 if a["family"] == "inet"]
    return instance.status, addresses, instance


def test_lifecycle_keeps_the_fixed_address(tmp_path, name, free_ipv4):
    spec = dict(name=name, ipv4=free_ipv4, network=BRIDGE, timeout=60)

    created = run(tmp_path, **spec)
    assert created["changed"] and created["created"] and created["actions"] == ["create", "start"]
    assert created["ipv4"] == free_ipv4
    assert pylxd_state(name)[:2] == ("Running", [free_ipv4])

    again = run(tmp_path, **spec)
    assert not again["changed"] and again["actions"] == []

    stopped = run(tmp_path, state="stopped", **spec)
    assert stopped["changed"] and stopped["actions"] == ["stop"] and stopped["status"] == "Stopped"
    assert pylxd_state(name)[0] == "Stopped"
    assert not run(tmp_path, state="stopped", **spec)["changed"]

    started = run(tmp_path, state="started", **spec)
    assert started["actions"] == ["start"] and started["ipv4"] == free_ipv4
    assert pylxd_state(name)[:2] == ("Running", [free_ipv4])

    restarted = run(tmp_path, state="restarted", **spec)
    assert restarted["changed"] and restarted["actions"] == ["restart"] and restarted["ipv4"] == free_ipv4

    removed = run(tmp_path, state="absent", name=name)
    assert removed["changed"] and removed["status"] == "absent"
    with pytest.raises(pylxd.exceptions.NotFound):
        pylxd.Client().instances.get(name)
    assert not run(tmp_path, state="absent", name=name)["changed"]


def test_check_mode_changes_nothing_and_diff_shows_the_plan(tmp_path, name, lxd_client):
    planned = run(tmp_path, check=True, diff=True, name=name, limits={"memory": "256MB"})
    assert planned["changed"] and planned["actions"] == ["create", "start"]
    assert planned["diff"]["before"] == {"state": "absent"}
    assert planned["diff"]["after"]["config"] == {"limits.memory": "256MB"}
    assert name not in lxd_client.instance_names()


def test_limits_are_applied_and_reconfigured(tmp_path, name):
    first = run(tmp_path, name=name, state="present", limits={"cpu": "1", "memory": "256MB", "disk": "3GiB"})
    assert first["actions"] == ["create"] and first["status"] == "Stopped"
    instance = pylxd_state(name)[2]
    assert instance.config["limits.cpu"] == "1"
    assert instance.config["limits.memory"] == "256MB"
    assert instance.devices["root"]["size"] == "3GiB"

    changed = run(tmp_path, diff=True, name=name, state="present",
                  limits={"cpu": "1", "memory": "384MB", "disk": "3GiB"})
    assert changed["actions"] == ["configure"]
    assert changed["diff"]["before"]["config"]["limits.memory"] == "256MB"
    assert changed["diff"]["after"]["config"]["limits.memory"] == "384MB"
    assert pylxd_state(name)[2].config["limits.memory"] == "384MB"


@pytest.mark.parametrize("params, message", [
    ({"name": "Bad_Name"}, "name: 'Bad_Name' is not valid: use 1-63 lower-case letters"),
    ({"name": "9lives"}, "LXD instance names cannot start with a digit"),
    ({"ipv4": "10.210.0.300"}, "ipv4: '10.210.0.300' is not valid"),
    ({"limits": {"memory": "lots"}}, "limits.memory: 'lots' is not valid: use a number and a unit"),
    ({"image": "no-such-image"}, "image 'no-such-image' is not in the local image store"),
    ({"profiles": ["default", "no-such-profile"]}, "profile 'no-such-profile' does not exist"),
    ({"lxd_endpoint": "unix:/run/dpltest-no-lxd.socket"}, "cannot reach LXD at unix:/run/dpltest-no-lxd.socket"),
])
def test_bad_input_fails_clearly_and_leaves_nothing(tmp_path, name, lxd_client, params, message):
    result = run(tmp_path, **dict({"name": name}, **params))
    assert result["_event"] == "runner_on_failed"
    assert message in result["msg"]
    assert "Traceback" not in result["msg"]
    assert not [n for n in lxd_client.instance_names() if n in (name, params.get("name"))]


def test_a_limit_lxd_refuses_leaves_no_container(tmp_path, name, lxd_client):
    result = run(tmp_path, name=name, config={"limits.processes": "many"})
    assert result["_event"] == "runner_on_failed"
    assert f"LXD refused to create '{name}'" in result["msg"]
    assert name not in lxd_client.instance_names()


def test_no_address_times_out_clearly_and_cleans_up(tmp_path, name, lxd_client):
    """A nic on a bridge without DHCP never gets an address: the wait must fail, not hang."""
    suffix = uuid.uuid4().hex[:6]
    network, profile = f"dplt{suffix}", f"{TEST_PREFIX}nodhcp-{suffix}"
    lxd_client.sync_or_wait("POST", "/1.0/networks", {"name": network, "type": "bridge", "config": {
        "ipv4.address": "10.211.77.1/24", "ipv4.dhcp": "false", "ipv4.nat": "false", "ipv4.routing": "false",
        "ipv6.address": "none"}})
    lxd_client.sync_or_wait("POST", "/1.0/profiles", {"name": profile, "devices": {
        "root": {"type": "disk", "path": "/", "pool": "dpl"},
        "eth0": {"type": "nic", "name": "eth0", "network": network}}})
    try:
        result = run(tmp_path, name=name, profiles=[profile], timeout=5)
        assert result["_event"] == "runner_on_failed"
        assert f"'{name}' is running but got no IPv4 address on eth0 within 5s" in result["msg"]
        assert "the container made by this task was removed again" in result["msg"]
        assert name not in lxd_client.instance_names()
    finally:
        delete_instance(lxd_client, name)
        lxd_client.sync_or_wait("DELETE", f"/1.0/profiles/{profile}")
        lxd_client.sync_or_wait("DELETE", f"/1.0/networks/{network}")


def test_https_host_side_by_side_with_the_unix_socket(tmp_path, name, lxd_https):
    """The module and the connection plugin against LXD over HTTPS with a pinned certificate."""
    remote = {"lxd_endpoint": lxd_https["endpoint"], "client_cert": lxd_https["client_cert"],
              "client_key": lxd_https["client_key"], "server_cert": lxd_https["server_cert"]}
    created = run(tmp_path, name=name, **remote)
    assert created["changed"] and created["ipv4"]
    # The unix socket sees the same container.
    assert pylxd_state(name)[0] == "Running"

    source = tmp_path / "over-https.txt"
    source.write_text("pushed over HTTPS\n")
    hostvars = {"dpl_lxd_endpoint": lxd_https["endpoint"], "dpl_lxd_client_cert": lxd_https["client_cert"],
                "dpl_lxd_client_key": lxd_https["client_key"], "dpl_lxd_server_cert": lxd_https["server_cert"]}
    plays = [{"name": "over https", "hosts": "all", "gather_facts": False, "tasks": [
        {"name": "ping", "ansible.builtin.ping": {}},
        {"name": "copy",
         "ansible.builtin.copy": {"src": str(source), "dest": "/root/over-https.txt", "mode": "0600"}},
        {"name": "fetch",
         "ansible.builtin.fetch": {"src": "/root/over-https.txt", "dest": f"{tmp_path}/back.txt", "flat": True}},
        {"name": "no session", "ansible.builtin.command": "cat /etc/hostname", "changed_when": False,
         "vars": {"dpl_lxd_persist_timeout": 0}},
    ]}]
    result = run_playbook(tmp_path, plays, lxd_inventory(name, **hostvars))
    assert result.rc == 0, result.stdout
    assert (tmp_path / "back.txt").read_text() == "pushed over HTTPS\n"
    assert result.result("no session")["stdout"] == name

    wrong = {**hostvars, "dpl_lxd_server_cert": lxd_https["client_cert"]}  # not the server's certificate
    refused = run_playbook(tmp_path, [dict(plays[0], tasks=plays[0]["tasks"][:1])], lxd_inventory(name, **wrong))
    res = refused.result("ping")
    assert res["_event"] == "runner_on_unreachable"
    assert "is not the pinned one" in res["msg"]
