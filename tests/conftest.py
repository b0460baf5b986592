"""Test bed: the real LXD daemon, real containers from the base image, real Ansible.

Every container a test makes is named ``dpltest-<random>`` and deleted after the test,
even when it fails; anything left with that prefix (a killed run) is swept at the start
and at the end of the session. Tests send traffic only to loopback and to these
containers on DPL's own bridge (NAT and routing off).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from dpl_web.collection import lxd

TEST_PREFIX = "dpltest-"
BASE_IMAGE = os.environ.get("DPL_TEST_IMAGE", "dpl-base")
SETUP_HINT = "run scripts/setup (as root) to install and start LXD and build the base image"


# Test containers carry the pid of the pytest process that made them, so a sweep removes
# what a killed run left behind but never the containers of a run still going (two test
# sessions may share this machine's LXD).
OWNER_KEY = "user.dpltest.owner"
UNOWNED_GRACE = 900  # seconds: containers made by modules under test carry no owner


def _owner_alive(owner: str) -> bool:
    try:
        os.kill(int(owner), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _sweep(client: lxd.LXDClient, everything_mine: bool = False) -> None:
    import datetime

    now = datetime.datetime.now(datetime.UTC)
    for instance in client.get("/1.0/instances", {"recursion": 1}):
        name = instance["name"]
        if not name.startswith(TEST_PREFIX):
            continue
        owner = (instance.get("config") or {}).get(OWNER_KEY)
        if owner:
            stale = not _owner_alive(owner) or (everything_mine and owner == str(os.getpid()))
        else:
            # LXD gives nanoseconds; fromisoformat takes at most microseconds.
            stamp = re.sub(r"(\.\d{6})\d*", r"\1", instance["created_at"]).replace("Z", "+00:00")
            stale = (now - datetime.datetime.fromisoformat(stamp)).total_seconds() > UNOWNED_GRACE
        if stale:
            try:
                delete_instance(client, name)
            except lxd.LXDError:
                pass  # busy or already going: the next sweep gets it


SITES_AVAILABLE = Path("/etc/nginx/sites-available")
TLS_DIR = Path("/etc/ssl/dpl")


def remove_test_vhosts(names: list[str] = (), older_than: float | None = None) -> list[str]:
    """Remove the vhosts (and certificates) DPL wrote for test domains: those naming one of
    ``names``, or, at the end of a session, every test domain's older than ``older_than``
    seconds (another session may be running). Returns the domains removed."""
    from dpl_web.collection import nginx

    removed = []
    for path in sorted(SITES_AVAILABLE.glob("*.conf")):
        domain = path.name[:-len(".conf")]
        if TEST_PREFIX not in domain:
            continue
        if names and not any(name in domain for name in names):
            continue
        try:
            if not path.read_text().startswith(nginx.MARKER) or (
                    older_than is not None and time.time() - path.stat().st_mtime < older_than):
                continue
        except OSError:
            continue
        for leftover in (SITES_AVAILABLE.parent / "sites-enabled" / path.name, path,
                         TLS_DIR / f"{domain}.crt", TLS_DIR / f"{domain}.key"):
            leftover.unlink(missing_ok=True)
        removed.append(domain)
    if removed:
        subprocess.run(["nginx", "-s", "reload"], check=False, capture_output=True)
    return removed


def delete_instance(client: lxd.LXDClient, name: str) -> None:
    try:
        if client.instance(name)["status"] != "Stopped":
            client.set_state(name, "stop", timeout=30, force=True)
        client.sync_or_wait("DELETE", client.instance_path(name), timeout=120)
    except lxd.LXDNotFound:
        pass


@pytest.fixture(scope="session")
def lxd_client():
    """A client for the local LXD, or a stop of the whole run saying how to get one."""
    client = lxd.LXDClient(timeout=30)
    try:
        client.server()
        client.get(f"/1.0/images/aliases/{BASE_IMAGE}")
    except lxd.LXDNotFound:
        pytest.exit(f"the LXD image {BASE_IMAGE!r} is missing: {SETUP_HINT}", returncode=3)
    except lxd.LXDError as exc:
        pytest.exit(f"LXD is not reachable ({exc}): {SETUP_HINT}", returncode=3)
    _sweep(client)
    yield client
    _sweep(client, everything_mine=True)
    remove_test_vhosts(older_than=UNOWNED_GRACE)
    client.close()


class ContainerFactory:
    """Makes test containers from the base image; deletes them all at teardown."""

    def __init__(self, client: lxd.LXDClient):
        self.client = client
        self.names: list[str] = []

    def create(self, start: bool = True, wait_ipv4: bool = True, config: dict | None = None,
               devices: dict | None = None, profiles: list[str] | None = None) -> str:
        name = f"{TEST_PREFIX}{uuid.uuid4().hex[:10]}"
        body = {
            "name": name,
            "source": {"type": "image", "alias": BASE_IMAGE},
            "profiles": profiles or ["default"],
            "config": dict(config or {}, **{OWNER_KEY: str(os.getpid())}),
            "devices": devices or {},
        }
        self.names.append(name)
        self.client.sync_or_wait("POST", "/1.0/instances", body, timeout=300)
        if start:
            self.client.set_state(name, "start", timeout=60)
            if wait_ipv4:
                self.client.wait_for_ipv4(name, timeout=60)
        return name

    def cleanup(self) -> None:
        for name in self.names:
            delete_instance(self.client, name)


@pytest.fixture
def containers(lxd_client):
    factory = ContainerFactory(lxd_client)
    yield factory
    factory.cleanup()


@pytest.fixture
def container(containers) -> str:
    """One running container with its IPv4 address, deleted after the test."""
    return containers.create()


@pytest.fixture(scope="session")
def lxd_https(lxd_client, tmp_path_factory):
    """This machine's LXD, also reached over HTTPS on loopback, as a remote LXD host would be.

    Sets ``core.https_address`` to 127.0.0.1:<port>, makes a client certificate, trusts it,
    and pins the server's certificate; undoes all of it at the end.
    Returns a dict with endpoint, client_cert, client_key and server_cert.
    """
    import base64
    import socket
    import ssl
    import subprocess

    workdir = tmp_path_factory.mktemp("lxd-https")
    cert, key = workdir / "client.crt", workdir / "client.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1",
                    "-sha384", "-nodes", "-days", "2", "-subj", "/CN=dpltest-client", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    previous = lxd_client.server().get("config", {}).get("core.https_address", "")
    lxd_client.request("PATCH", "/1.0", json_body={"config": {"core.https_address": f"127.0.0.1:{port}"}})
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    fingerprint = __import__("hashlib").sha256(der).hexdigest()
    lxd_client.request("POST", "/1.0/certificates", json_body={
        "type": "client", "name": "dpltest-client", "certificate": base64.b64encode(der).decode()})
    server_cert = workdir / "server.crt"
    server_cert.write_text(lxd_client.server()["environment"]["certificate"])
    try:
        yield {"endpoint": f"https://127.0.0.1:{port}", "client_cert": str(cert), "client_key": str(key),
               "server_cert": str(server_cert)}
    finally:
        try:
            lxd_client.request("DELETE", f"/1.0/certificates/{fingerprint}")
        finally:
            lxd_client.request("PATCH", "/1.0", json_body={"config": {"core.https_address": previous}})
