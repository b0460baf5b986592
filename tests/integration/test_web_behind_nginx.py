"""The web app published through the host's nginx on its own domain (the control_plane role's
edge tasks, as scripts/setup runs them with control_plane_domain): the dashboard over TLS,
a session cookie marked Secure, and a job's live stream passed through unbuffered, each
event within a second of being stored. Taken away again (state absent), nothing is left."""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from dpl_web.registry import Registry
from tests.conftest import TEST_PREFIX
from tests.support.playbooks import run_playbook
from tests.support.web import start_gunicorn

pytestmark = pytest.mark.lxd

LOCAL = {"all": {"hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}
PASSWORD = "behind-nginx-password"


def edge_play(domain: str, bind: str, state: str = "present") -> list[dict]:
    publish = {"name": "publish",
               "ansible.builtin.include_role": {"name": "dpl.platform.control_plane", "tasks_from": "edge"},
               "vars": {"control_plane_domain": domain, "control_plane_bind": bind,
                        "control_plane_domain_state": state}}
    return [{"name": "edge", "hosts": "all", "gather_facts": False, "tasks": [publish]}]


class ToThisMachine(http.client.HTTPSConnection):
    """HTTPS for a domain (its name in SNI and Host), sent to this machine's nginx."""

    def connect(self):
        self.sock = self._context.wrap_socket(socket.create_connection(("127.0.0.1", 443), self.timeout),
                                              server_hostname=self.host)


class Client:
    """HTTPS to this machine's nginx for ``domain`` (its self-signed certificate), with cookies."""

    def __init__(self, domain: str):
        self.domain = domain
        self.cookies: dict[str, str] = {}
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE

    def request(self, method: str, path: str, body: str | None = None, stream: bool = False):
        connection = ToThisMachine(self.domain, 443, timeout=10, context=self.context)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if body is not None:
            headers.update({"Content-Type": "application/x-www-form-urlencoded",
                            "Referer": f"https://{self.domain}/login"})
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _sep, rest = header.partition("=")
            self.cookies[name] = rest.split(";")[0]
        if stream:
            return response, connection
        try:
            return response, response.read().decode()
        finally:
            connection.close()


def test_the_web_app_behind_nginx_over_tls(dpl, tmp_path):
    registry_path = dpl.env["DPL_REGISTRY"]
    with Registry.open(registry_path) as reg:
        reg.add_user("admin", PASSWORD)
        reg.add_container("web1")
        reg.add_app("shop", "web", "https://git.example.com/shop.git", container="web1")
        job = reg.create_job("deploy", "app/shop/web", "tester")
    server, base = start_gunicorn(dpl.env)
    bind = base.removeprefix("http://")
    domain = f"{TEST_PREFIX}{uuid.uuid4().hex[:6]}.dpl.test"
    vhost = Path("/etc/nginx/sites-available") / f"{domain}.conf"
    try:
        published = run_playbook(tmp_path, edge_play(domain, bind), LOCAL)
        assert published.rc == 0, published.stdout[-3000:]
        assert vhost.exists()
        client = Client(domain)
        response, page = client.request("GET", "/login")
        assert response.status == 200 and "Log in to DPL" in page
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        response, _page = client.request("POST", "/login", f"user=admin&password={PASSWORD}&csrf_token={token}")
        assert response.status == 302, _page
        assert "Secure" in response.headers["Set-Cookie"] and "HttpOnly" in response.headers["Set-Cookie"]
        response, page = client.request("GET", "/")
        assert response.status == 200 and "shop/web" in page

        # The job's stream through nginx: each event arrives within a second of being stored.
        stream, connection = client.request("GET", f"/jobs/{job}/events", stream=True)
        assert stream.status == 200 and stream.headers["Content-Type"].startswith("text/event-stream")
        lags: list[float] = []
        stored: dict[str, float] = {}

        def store():
            with Registry.open(registry_path) as writer:
                for number in range(3):
                    time.sleep(1)
                    stored[f"step {number}"] = time.monotonic()
                    writer.add_job_event(job, "note", {"msg": f"step {number}"})
                writer.claim_jobs("test", 1)
                writer.finish_job(job, "successful", summary="done")

        threading.Thread(target=store, daemon=True).start()
        while True:
            line = stream.fp.readline().decode()
            if not line or line.startswith("event: end"):
                break
            found = re.search(r'"msg": "(step \d)"', line)
            if found:
                lags.append(time.monotonic() - stored[found.group(1)])
        stream.close()
        connection.close()
        assert len(lags) == 3 and max(lags) < 1.0, lags
    finally:
        removed = run_playbook(tmp_path, edge_play(domain, bind, "absent"), LOCAL)
        server.kill()
        server.wait(timeout=30)
    assert removed.rc == 0, removed.stdout[-3000:]
    assert not vhost.exists() and not (Path("/etc/nginx/sites-enabled") / f"{domain}.conf").exists()
    assert not Path(f"/etc/ssl/dpl/{domain}.crt").exists()
    with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):  # nginx no longer knows the name
        Client(domain).request("GET", "/login")
