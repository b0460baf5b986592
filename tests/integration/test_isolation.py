"""Containers on DPL's bridge cannot impersonate each other or the host, and an isolated one
talks to the host only: two real containers made by `dpl container create`, real packets.

Every probe has a control that must succeed (the same connection from the container's own
address, or before isolation), so a probe that fails for another reason fails the test.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import uuid

import pylxd
import pytest

from tests.conftest import TEST_PREFIX, delete_instance
from tests.support.apps import BRIDGE_ADDRESS
from tests.support.cli import Dpl

pytestmark = pytest.mark.lxd

PORT = 8123

# Connect from ``source`` (an address the container may or may not own) to host:port and
# say whether the TCP handshake completed.
PROBE = """
import socket, sys
s = socket.socket()
s.settimeout(3)
try:
    s.bind((sys.argv[1], 0))
    s.connect((sys.argv[2], int(sys.argv[3])))
    print("connected")
except OSError as exc:
    print("refused: %s" % exc)
"""


@pytest.fixture
def pair(tmp_path, lxd_client):
    dpl = Dpl(tmp_path)
    dpl("init", "--bridge", "dplbr0", "--bridge-ipv4", "10.210.0.1/24")
    names = [f"{TEST_PREFIX}{uuid.uuid4().hex[:8]}-{side}" for side in ("a", "b")]
    try:
        for name in names:
            assert dpl.json("container", "create", name)["status"] == "successful"
            # Something to reach on each: a web server in the container, run by its systemd.
            run(lxd_client, name, f"systemd-run --unit=dpltest-http python3 -m http.server {PORT}")
        addresses = [dpl.json("container", "show", name)["container"]["ipv4"] for name in names]
        for name, address in zip(names, addresses, strict=True):
            wait_listening(lxd_client, name, address)
        yield dpl, names, addresses
    finally:
        for name in names:
            delete_instance(lxd_client, name)
        subprocess.run(["nft", "delete", "table", "bridge", "dpl_dplbr0"], capture_output=True, check=False)


def run(client, name, script):
    rc, out, err = client.execute(name, ["/bin/sh", "-c", script])
    assert rc == 0, err
    return out.decode().strip()


def probe(client, name, source, address, port=PORT):
    return run(client, name, f"python3 -c '{PROBE}' {source} {address} {port}")


def wait_listening(client, name, address):
    for _attempt in range(50):
        if reachable_from_host(address):
            return
        run(client, name, "sleep 0.1")
    raise AssertionError(f"nothing listens on {address}:{PORT} in {name}")


def reachable_from_host(address, port=PORT):
    with socket.socket() as sock:
        sock.settimeout(3)
        return sock.connect_ex((address, port)) == 0


@pytest.fixture
def host_listener():
    """A TCP listener on the bridge's host address; counts the connections it accepts."""
    server = socket.socket()
    server.bind((BRIDGE_ADDRESS, 0))
    server.listen(8)
    accepted = []

    def accept():
        while True:
            try:
                conn, peer = server.accept()
            except OSError:
                return
            accepted.append(peer[0])
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1], accepted
    server.close()


def test_a_container_cannot_send_as_another_or_as_the_host(pair, lxd_client, host_listener):
    _dpl, (a, b), (address_a, address_b) = pair
    port, accepted = host_listener
    nic = pylxd.Client().instances.get(a).devices["eth0"]
    assert (nic["security.ipv4_filtering"], nic["security.mac_filtering"]) == ("true", "true")

    # The controls: from its own address, A reaches the host and B.
    assert probe(lxd_client, a, address_a, BRIDGE_ADDRESS, port) == "connected"
    assert probe(lxd_client, a, address_a, address_b) == "connected"

    # A takes B's address: nothing it sends from it reaches the host, and B is still B to the
    # host (A's claim did not take B's traffic).
    run(lxd_client, a, f"ip addr add {address_b}/32 dev eth0")
    assert probe(lxd_client, a, address_b, BRIDGE_ADDRESS, port).startswith("refused")
    assert reachable_from_host(address_b)
    run(lxd_client, a, f"ip addr del {address_b}/32 dev eth0")
    # A takes the host's address: B never hears from it.
    run(lxd_client, a, f"ip addr add {BRIDGE_ADDRESS}/32 dev eth0")
    assert probe(lxd_client, a, BRIDGE_ADDRESS, address_b).startswith("refused")
    run(lxd_client, a, f"ip addr del {BRIDGE_ADDRESS}/32 dev eth0")
    assert accepted == [address_a]

    # A new MAC address cuts A off altogether.
    run(lxd_client, a, "ip link set eth0 down && ip link set eth0 address 02:00:5e:00:53:01 && ip link set eth0 up")
    assert probe(lxd_client, a, address_a, BRIDGE_ADDRESS, port).startswith("refused")


def test_an_isolated_container_talks_to_the_host_only(pair, lxd_client):
    dpl, (a, b), (address_a, address_b) = pair
    assert probe(lxd_client, a, address_a, address_b) == "connected"

    dpl("container", "edit", a, "--isolated")
    assert dpl.json("container", "reconfigure", a)["status"] == "successful"
    assert dpl.json("container", "show", a)["container"]["isolated"] is True
    assert probe(lxd_client, a, address_a, address_b).startswith("refused")
    assert probe(lxd_client, b, address_b, address_a).startswith("refused")
    # The host (nginx) still reaches both, and A still reaches the host.
    assert reachable_from_host(address_a) and reachable_from_host(address_b)
    assert probe(lxd_client, a, address_a, BRIDGE_ADDRESS, 53) == "connected"  # LXD's DNS on the bridge

    # Stopping and starting it keeps it isolated (its MAC address is its own for good).
    dpl("container", "restart", a)
    run(lxd_client, a, f"systemd-run --unit=dpltest-http2 python3 -m http.server {PORT}")
    wait_listening(lxd_client, a, address_a)
    assert probe(lxd_client, b, address_b, address_a).startswith("refused")

    # Back to the flat bridge: the table goes with the last isolated container.
    dpl("container", "edit", a, "--no-isolated")
    dpl("container", "reconfigure", a)
    assert probe(lxd_client, a, address_a, address_b) == "connected"
    listed = subprocess.run(["nft", "--json", "list", "tables"], capture_output=True, text=True, check=True)
    assert "dpl_dplbr0" not in json.dumps(json.loads(listed.stdout))
