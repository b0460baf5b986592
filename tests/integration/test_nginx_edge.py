"""The host edge on the real thing: this machine's nginx, an app in a real container, curl.

The role dpl.platform.nginx_edge is applied to this machine once (as scripts/setup does);
each test serves its own dpltest-<hex>.example.test domains and removes their vhosts and
certificates afterwards, even when it fails. The system nginx is left running and valid.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from ansible_collections.dpl.platform.plugins.module_utils import validation
from ansible_collections.dpl.platform.plugins.module_utils.validation import ValidationError
from dpl_web.paths import REPO_ROOT
from tests.support.fake_cloudflare import FakeCloudflare
from tests.support.playbooks import run_playbook

pytestmark = pytest.mark.lxd

LOCAL = {"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                         "ansible_python_interpreter": sys.executable}}}}
ROLE = [{"name": "edge", "hosts": "all", "gather_facts": False, "roles": [{"role": "dpl.platform.nginx_edge"}]}]
VHOST_PLAYBOOK = REPO_ROOT / "playbooks" / "vhost.yml"
VHOST_TASK = "Write, test and enable the vhost of each app domain"
SITES_AVAILABLE = Path("/etc/nginx/sites-available")
SITES_ENABLED = Path("/etc/nginx/sites-enabled")
TLS_DIR = Path("/etc/ssl/dpl")
APP_PORT = 8080

# A tiny app for the container: answers every GET with its name and the headers it got.
APP_SOURCE = r'''
import http.server, json, sys

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"app": sys.argv[2], "path": self.path,
                           "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
'''


# -- helpers -------------------------------------------------------------------------------

@dataclass
class Answer:
    rc: int
    status: int | None = None
    body: str = ""
    location: str = ""
    error: str = ""

    def json(self):
        return json.loads(self.body)


def curl(domain, path="/", scheme="https", headers=()):
    """Ask this machine's nginx for ``domain`` (resolved to 127.0.0.1) as a browser would."""
    port = 443 if scheme == "https" else 80
    command = ["curl", "-sS", "-k", "--noproxy", "*", "--max-time", "10",
               "--resolve", f"{domain}:{port}:127.0.0.1", "-w", "\n%{http_code}|%{redirect_url}"]
    for header in headers:
        command += ["-H", header]
    done = subprocess.run(command + [f"{scheme}://{domain}{path}"], capture_output=True, text=True, timeout=30,
                          check=False)
    if done.returncode != 0:
        return Answer(done.returncode, error=done.stderr)
    body, tail = done.stdout.rsplit("\n", 1)
    status, location = tail.split("|", 1)
    return Answer(0, int(status), body, location)


def eventually(probe, check, timeout=10.0):
    """``probe()`` until ``check(answer)`` holds (nginx reloads asynchronously); the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if check(answer) or time.monotonic() >= deadline:
            return answer
        time.sleep(0.2)


def nginx_test():
    return subprocess.run(["nginx", "-t"], capture_output=True, text=True, env=dict(os.environ, LC_ALL="C"),
                          check=False)


def nginx_running():
    try:
        pid = int(Path("/run/nginx.pid").read_text().strip())
        os.kill(pid, 0)
        return True
    except (OSError, ValueError):
        return False


def tree(*roots):
    """Every path under ``roots`` with its size, mode and modification time."""
    found = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = os.path.join(folder, name)
                info = os.lstat(path)
                found[path] = (info.st_size, info.st_mode, info.st_mtime_ns)
    return found


def vhost_playbook(tmp_path, apps, check=False, diff=False, envvars=None, **extravars):
    return run_playbook(tmp_path, VHOST_PLAYBOOK, LOCAL, extravars=dict(extravars, nginx_edge_apps=apps),
                        check=check, diff=diff, envvars=envvars)


def task_play(*tasks):
    return [{"name": "vhost", "hosts": "all", "gather_facts": False, "tasks": list(tasks)}]


def refusal(check, value, field):
    with pytest.raises(ValidationError) as caught:
        check(value, field)
    return str(caught.value)


# -- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    """This machine's nginx with DPL's base configuration (what playbooks/host.yml lays down)."""
    result = run_playbook(tmp_path_factory.mktemp("edge"), ROLE, LOCAL)
    assert result.rc == 0, result.stdout
    yield
    done = nginx_test()
    assert done.returncode == 0, "the tests left nginx's configuration broken:\n" + done.stderr
    assert nginx_running(), "the tests left nginx stopped"


@pytest.fixture
def domains(tmp_path):
    """Makes test domains; removes their vhosts and certificates after the test."""
    made = []

    def new():
        domain = f"dpltest-{uuid.uuid4().hex[:10]}.example.test"
        made.append(domain)
        return domain

    yield new
    if not made:
        return
    result = vhost_playbook(tmp_path, [{"name": "cleanup", "domains": made, "state": "absent"}])
    leftovers = [path for domain in made for path in (
        SITES_AVAILABLE / f"{domain}.conf", SITES_ENABLED / f"{domain}.conf", TLS_DIR / f"{domain}.crt",
        TLS_DIR / f"{domain}.key") if os.path.lexists(path)]
    if result.rc != 0 or leftovers:
        for path in leftovers:
            os.unlink(path)
        subprocess.run(["nginx", "-s", "reload"], check=False)
    assert result.rc == 0, result.stdout
    assert not leftovers


@dataclass
class App:
    container: str
    ipv4: str
    port: int


@pytest.fixture
def app(container, lxd_client):
    """A plain HTTP app on port 8080 of a real container, answering with its name and headers."""
    lxd_client.push_file(container, "/usr/local/bin/dpltest-app.py", APP_SOURCE.encode(), mode=0o755)
    rc, out, err = lxd_client.execute(container, [
        "systemd-run", "--unit", "dpltest-app", "--quiet", "/usr/bin/python3", "/usr/local/bin/dpltest-app.py",
        str(APP_PORT), container], timeout=30)
    assert rc == 0, err
    ipv4 = lxd_client.ipv4_addresses(container)[0]
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 20
    while True:
        try:
            with opener.open(f"http://{ipv4}:{APP_PORT}/", timeout=2) as response:
                assert json.loads(response.read())["app"] == container
                break
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
    return App(container, ipv4, APP_PORT)


def serve(tmp_path, app, domain, **changes):
    return vhost_playbook(tmp_path, [dict({"name": "web", "domains": [domain], "ipv4": app.ipv4,
                                           "port": app.port}, **changes)])


# -- the base configuration ------------------------------------------------------------------

def test_base_configuration_is_idempotent_and_check_mode_changes_nothing(edge, tmp_path):
    result = run_playbook(tmp_path, ROLE, LOCAL)
    assert result.rc == 0, result.stdout
    assert result.changed("localhost") == 0, result.stdout

    default = Path("/etc/nginx/conf.d/dpl-default.conf")
    before = default.read_text()
    result = run_playbook(tmp_path, ROLE, LOCAL, check=True, diff=True,
                          extravars={"nginx_edge_unknown_http": "redirect"})
    assert result.rc == 0, result.stdout
    assert result.changed("localhost") >= 1
    assert "+    return 301 https://$host$request_uri;" in result.stdout
    assert "-    return 444;" in result.stdout
    assert default.read_text() == before

    for name in ("dpl-tls.conf", "dpl-cloudflare.conf", "dpl-proxy.conf", "dpl-default.conf"):
        assert (Path("/etc/nginx/conf.d") / name).is_file()
    assert not os.path.lexists(SITES_ENABLED / "default")
    active = [line.strip() for line in Path("/etc/nginx/nginx.conf").read_text().splitlines()
              if line.strip().startswith(("ssl_protocols", "ssl_prefer_server_ciphers"))]
    assert active == []
    tls = Path("/etc/nginx/conf.d/dpl-tls.conf").read_text()
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in tls
    cloudflare = Path("/etc/nginx/conf.d/dpl-cloudflare.conf").read_text()
    assert "set_real_ip_from 173.245.48.0/20;" in cloudflare
    assert "set_real_ip_from 2606:4700::/32;" in cloudflare
    assert "real_ip_header CF-Connecting-IP;" in cloudflare


def test_unknown_hosts_get_nothing(edge):
    answer = curl("dpltest-unknown.example.test", scheme="http")
    assert answer.rc == 52, answer  # 444: the connection is closed without an answer
    answer = curl("dpltest-unknown.example.test")
    assert answer.rc == 35, answer  # the TLS handshake is rejected
    assert "unrecognized name" in answer.error


def test_default_https_server_of_an_nginx_older_than_1_19_4(edge, tmp_path):
    # Such an nginx (Ubuntu 22.04 has 1.18) cannot refuse the handshake: the role gives the
    # default server a throwaway certificate and closes the connection after the handshake.
    throwaway = TLS_DIR / "default.invalid.crt"
    try:
        result = run_playbook(tmp_path, ROLE, LOCAL, extravars={"nginx_edge_reject_handshake": False})
        assert result.rc == 0, result.stdout
        assert throwaway.is_file()
        assert "return 444;" in Path("/etc/nginx/conf.d/dpl-default.conf").read_text().split("listen 443")[1]
        answer = eventually(lambda: curl("dpltest-unknown.example.test"), lambda a: a.rc == 52)
        assert answer.rc == 52, answer  # handshake done with the throwaway certificate, then no answer
    finally:
        result = run_playbook(tmp_path, ROLE + task_play({"name": "cleanup", "dpl.platform.tls_cert": {
            "name": "default.invalid", "directory": str(TLS_DIR), "state": "absent"}}), LOCAL)
        assert result.rc == 0, result.stdout
    assert not throwaway.exists()
    assert eventually(lambda: curl("dpltest-unknown.example.test"), lambda a: a.rc == 35).rc == 35


# -- vhosts ----------------------------------------------------------------------------------

def test_vhost_serves_the_app_over_https_and_redirects_http(edge, app, domains, tmp_path):
    domain = domains()
    result = serve(tmp_path, app, domain)
    assert result.rc == 0, result.stdout
    assert result.result(VHOST_TASK)["changed"]

    answer = eventually(lambda: curl(domain), lambda a: a.status == 200)
    assert answer.status == 200, answer
    seen = answer.json()
    assert seen["app"] == app.container and seen["path"] == "/"
    headers = seen["headers"]
    assert headers["host"] == domain
    assert headers["x-forwarded-proto"] == "https"
    assert headers["x-forwarded-host"] == domain
    assert headers["x-real-ip"] == "127.0.0.1"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["connection"] == "close"

    upgraded = curl(domain, "/socket", headers=["Upgrade: websocket", "Connection: Upgrade"]).json()["headers"]
    assert upgraded["upgrade"] == "websocket" and upgraded["connection"] == "upgrade"

    # A client that is not one of Cloudflare's addresses cannot pick its own address.
    forged = curl(domain, headers=["CF-Connecting-IP: 203.0.113.7", "X-Forwarded-For: 203.0.113.8"]).json()
    assert forged["headers"]["x-real-ip"] == "127.0.0.1"
    assert forged["headers"]["x-forwarded-for"] == "127.0.0.1"

    redirect = curl(domain, "/some/page?x=1", scheme="http")
    assert (redirect.status, redirect.location) == (301, f"https://{domain}/some/page?x=1")

    available, enabled = SITES_AVAILABLE / f"{domain}.conf", SITES_ENABLED / f"{domain}.conf"
    assert available.is_file() and os.readlink(enabled) == str(available)
    assert oct((TLS_DIR / f"{domain}.key").stat().st_mode & 0o777) == "0o600"


def test_vhost_is_idempotent_and_check_mode_shows_the_diff_without_changing(edge, app, domains, tmp_path):
    domain = domains()
    assert serve(tmp_path, app, domain).rc == 0
    available = SITES_AVAILABLE / f"{domain}.conf"
    before = available.read_text()

    again = serve(tmp_path, app, domain)
    assert again.rc == 0, again.stdout
    assert again.changed("localhost") == 0, again.stdout

    check = vhost_playbook(tmp_path, [{"name": "web", "domains": [domain], "ipv4": app.ipv4, "port": 8081,
                                       "proxy_read_timeout": 300}], check=True, diff=True)
    assert check.rc == 0, check.stdout
    assert check.result(VHOST_TASK)["changed"]
    assert f"-        proxy_pass http://{app.ipv4}:8080;" in check.stdout
    assert f"+        proxy_pass http://{app.ipv4}:8081;" in check.stdout
    assert "+        proxy_read_timeout 300s;" in check.stdout
    assert available.read_text() == before
    assert curl(domain).status == 200


def test_an_invalid_vhost_is_refused_and_the_others_keep_answering(edge, app, domains, tmp_path):
    good, bad = domains(), domains()
    assert serve(tmp_path, app, good).rc == 0
    assert eventually(lambda: curl(good), lambda a: a.status == 200).status == 200
    good_file = SITES_AVAILABLE / f"{good}.conf"
    good_text = good_file.read_text()

    def vhost_with_missing_certificate(domain):
        return task_play({"name": "vhost", "dpl.platform.nginx_vhost": {
            "domain": domain, "upstream_ipv4": app.ipv4, "upstream_port": app.port,
            "tls_certificate": "/nonexistent/dpltest.crt", "tls_certificate_key": "/nonexistent/dpltest.key"}})

    # A new app whose vhost nginx refuses: nothing of it is installed.
    result = run_playbook(tmp_path, vhost_with_missing_certificate(bad), LOCAL)
    assert result.rc != 0
    res = result.result("vhost")
    assert res["msg"].startswith(
        f"the new vhost /etc/nginx/sites-available/{bad}.conf is not valid on its own; nothing was changed and "
        "nginx was not reloaded. nginx -t said:\n")
    assert 'cannot load certificate "/nonexistent/dpltest.crt"' in res["msg"]
    assert res["msg"].endswith(f"nginx: configuration file /etc/nginx/sites-available/{bad}.conf test failed")
    assert "dpl-vhost-" not in res["msg"]
    assert not res["reloaded"]
    assert not os.path.lexists(SITES_AVAILABLE / f"{bad}.conf")
    assert not os.path.lexists(SITES_ENABLED / f"{bad}.conf")

    # An existing app changed into something nginx refuses: its old vhost stays and answers.
    result = run_playbook(tmp_path, vhost_with_missing_certificate(good), LOCAL)
    assert result.rc != 0
    assert result.result("vhost")["msg"].startswith(f"the new vhost {good_file} is not valid on its own;")
    assert good_file.read_text() == good_text

    assert curl(good).status == 200
    assert curl(bad).rc == 35
    assert nginx_test().returncode == 0


@pytest.mark.parametrize("hostile", [
    "evil.example.test;\n    include /etc/shadow",
    "evil.example.test\nserver { listen 8443; }",
    "evil.example.test;",
    "evil{}.example.test",
    "evil.example.test}",
    "$host.example.test",
    "evil .example.test",
    "evil..example.test",
    "../../etc/nginx/nginx",
])
def test_hostile_domains_are_refused_before_anything_touches_nginx(edge, tmp_path, hostile):
    sites_available, sites_enabled = tmp_path / "available", tmp_path / "enabled"
    sites_available.mkdir()
    sites_enabled.mkdir()
    before = tree("/etc/nginx", str(TLS_DIR), str(tmp_path / "available"), str(tmp_path / "enabled"))
    result = run_playbook(tmp_path, task_play(
        {"name": "vhost", "dpl.platform.nginx_vhost": {
            "domain": hostile, "upstream_ipv4": "10.210.0.2", "upstream_port": 80,
            "tls_certificate": "/etc/ssl/dpl/x.crt", "tls_certificate_key": "/etc/ssl/dpl/x.key",
            "sites_available": str(sites_available), "sites_enabled": str(sites_enabled)},
         "ignore_errors": True},
        {"name": "vhost in the real folders", "dpl.platform.nginx_vhost": {
            "domain": hostile, "upstream_ipv4": "10.210.0.2", "upstream_port": 80,
            "tls_certificate": "/etc/ssl/dpl/x.crt", "tls_certificate_key": "/etc/ssl/dpl/x.key"},
         "ignore_errors": True},
        {"name": "cert", "dpl.platform.tls_cert": {"domains": [hostile]}, "ignore_errors": True},
    ), LOCAL)
    assert result.rc == 0, result.stdout
    expected = refusal(validation.domain, hostile, "domain")
    assert result.result("vhost")["msg"] == expected
    assert result.result("vhost in the real folders")["msg"] == expected
    assert result.result("cert")["msg"] == refusal(validation.domain, hostile, "domains[0]")
    assert tree("/etc/nginx", str(TLS_DIR), str(tmp_path / "available"), str(tmp_path / "enabled")) == before


def test_the_vhost_playbook_refuses_a_hostile_domain_before_writing(edge, tmp_path):
    before = tree("/etc/nginx", str(TLS_DIR))
    result = vhost_playbook(tmp_path, [{"name": "evil", "domains": ["evil.example.test;"], "ipv4": "10.210.0.2",
                                        "port": 80}])
    assert result.rc != 0
    [item] = result.result("Make the self-signed origin certificate of each app domain (kept while valid)")[
        "results"]
    assert item["msg"] == refusal(validation.domain, "evil.example.test;", "domains[0]")
    assert tree("/etc/nginx", str(TLS_DIR)) == before


def test_absent_removes_the_vhost_and_reloads(edge, app, domains, tmp_path):
    domain = domains()
    assert serve(tmp_path, app, domain).rc == 0
    assert eventually(lambda: curl(domain), lambda a: a.status == 200).status == 200

    result = serve(tmp_path, app, domain, state="absent")
    assert result.rc == 0, result.stdout
    assert result.result(VHOST_TASK)["results"][0]["reloaded"]
    for path in (SITES_AVAILABLE / f"{domain}.conf", SITES_ENABLED / f"{domain}.conf",
                 TLS_DIR / f"{domain}.crt", TLS_DIR / f"{domain}.key"):
        assert not os.path.lexists(path), path
    assert eventually(lambda: curl(domain), lambda a: a.rc == 35).rc == 35

    again = serve(tmp_path, app, domain, state="absent")
    assert again.rc == 0 and again.changed("localhost") == 0, again.stdout


def test_the_client_address_is_restored_from_trusted_proxies_only(edge, app, domains, tmp_path):
    domain = domains()
    assert serve(tmp_path, app, domain).rc == 0
    try:
        # Trust loopback as if it were Cloudflare (the ranges are an overridable list).
        result = run_playbook(tmp_path, ROLE, LOCAL, extravars={"nginx_edge_real_ip_extra_ranges": ["127.0.0.1/32"]})
        assert result.rc == 0, result.stdout
        answer = eventually(lambda: curl(domain, headers=["CF-Connecting-IP: 203.0.113.7"]),
                            lambda a: a.status == 200 and a.json()["headers"]["x-real-ip"] == "203.0.113.7")
        assert answer.json()["headers"]["x-real-ip"] == "203.0.113.7"
        assert answer.json()["headers"]["x-forwarded-for"] == "203.0.113.7"
    finally:
        result = run_playbook(tmp_path, ROLE, LOCAL)
        assert result.rc == 0, result.stdout
    assert "127.0.0.1" not in Path("/etc/nginx/conf.d/dpl-cloudflare.conf").read_text()
    answer = eventually(lambda: curl(domain, headers=["CF-Connecting-IP: 203.0.113.7"]),
                        lambda a: a.status == 200 and a.json()["headers"]["x-real-ip"] == "127.0.0.1")
    assert answer.json()["headers"]["x-real-ip"] == "127.0.0.1"


def test_the_vhost_playbook_points_cloudflare_at_the_host(edge, domains, tmp_path):
    domain = domains()
    token = "vhost-playbook-token-3b7e1f"
    with FakeCloudflare(token=token) as cf:
        zone = cf.add_zone("example.test")
        settings = dict(nginx_edge_cloudflare_dns=True, nginx_edge_public_ipv4="203.0.113.10",
                        nginx_edge_cloudflare_api_base_url=cf.base_url)
        env = {"CLOUDFLARE_API_TOKEN": token, "no_proxy": "127.0.0.1"}
        # Nothing listens on the bridge's port 9: the vhost is valid all the same.
        apps = [{"name": "web", "domains": [domain], "ipv4": "10.210.0.1", "port": 9}]
        result = vhost_playbook(tmp_path, apps, envvars=env, **settings)
        assert result.rc == 0, result.stdout
        [record] = cf.a_records(zone, domain)
        assert (record["content"], record["proxied"]) == ("203.0.113.10", True)
        assert cf.ssl[zone["id"]] == "flexible", "the zone's SSL mode changes only when asked"
        assert token not in result.stdout

        again = vhost_playbook(tmp_path, apps, envvars=env, **settings)
        assert again.rc == 0 and again.changed("localhost") == 0, again.stdout

        result = vhost_playbook(tmp_path, [dict(apps[0], state="absent")], envvars=env, **settings)
        assert result.rc == 0, result.stdout
        assert cf.a_records(zone, domain) == []


# -- the module on a configuration of its own (temporary folders, nginx -t only) ---------------

@pytest.fixture
def scratch(tmp_path):
    """A main nginx configuration in tmp_path that includes tmp_path/sites-enabled, and a
    certificate; nginx -t runs against it, the running nginx is never involved."""
    (tmp_path / "sites-available").mkdir()
    (tmp_path / "sites-enabled").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path}/nginx.pid;\nevents {{}}\nhttp {{\n"
        "    map $http_upgrade $dpl_connection_upgrade { default upgrade; '' close; }\n"
        f"    include {tmp_path}/sites-enabled/*;\n}}\n")
    result = run_playbook(tmp_path, task_play({"name": "cert", "dpl.platform.tls_cert": {
        "domains": ["scratch.example.test"], "directory": str(tmp_path / "tls")}}), LOCAL)
    assert result.rc == 0, result.stdout
    return tmp_path


def scratch_vhost(scratch, domain="shop.example.test", **args):
    return {"name": "vhost", "register": "vhost", "dpl.platform.nginx_vhost": dict({
        "domain": domain, "upstream_ipv4": "10.210.0.50", "upstream_port": 3000,
        "tls_certificate": str(scratch / "tls" / "scratch.example.test.crt"),
        "tls_certificate_key": str(scratch / "tls" / "scratch.example.test.key"),
        "sites_available": str(scratch / "sites-available"), "sites_enabled": str(scratch / "sites-enabled"),
        "nginx_conf": str(scratch / "nginx.conf"), "reload": False}, **args)}


def test_module_check_mode_diff_and_idempotence(scratch):
    available = scratch / "sites-available" / "shop.example.test.conf"
    enabled = scratch / "sites-enabled" / "shop.example.test.conf"

    result = run_playbook(scratch, task_play(scratch_vhost(scratch)), LOCAL, check=True, diff=True)
    assert result.rc == 0, result.stdout
    assert result.result("vhost")["changed"]
    assert "+        proxy_pass http://10.210.0.50:3000;" in result.stdout
    assert not available.exists() and not os.path.lexists(enabled)

    result = run_playbook(scratch, task_play(scratch_vhost(scratch)), LOCAL)
    assert result.rc == 0, result.stdout
    res = result.result("vhost")
    assert res["changed"] and not res["reloaded"]
    assert res["path"] == str(available) and res["link"] == str(enabled)
    assert os.readlink(enabled) == str(available)
    assert available.read_text().startswith("# Managed by DPL (dpl.platform.nginx_vhost)")
    assert oct(available.stat().st_mode & 0o777) == "0o644"
    # Only the vhost and its link: no staging copy or temporary main file is left behind.
    assert sorted(os.listdir(scratch / "sites-available")) == ["shop.example.test.conf"]
    assert sorted(os.listdir(scratch / "sites-enabled")) == ["shop.example.test.conf"]
    assert not [name for name in os.listdir(scratch) if name.startswith(".dpl-vhost-test-")]

    result = run_playbook(scratch, task_play(scratch_vhost(scratch)), LOCAL)
    assert result.rc == 0 and not result.result("vhost")["changed"]

    result = run_playbook(scratch, task_play(scratch_vhost(scratch, client_max_body_size="100m")), LOCAL,
                          diff=True)
    assert result.result("vhost")["changed"]
    assert "-    client_max_body_size 10m;" in result.stdout
    assert "+    client_max_body_size 100m;" in result.stdout

    # A link removed by hand is put back.
    enabled.unlink()
    result = run_playbook(scratch, task_play(scratch_vhost(scratch, client_max_body_size="100m")), LOCAL)
    assert result.result("vhost")["changed"] and os.readlink(enabled) == str(available)

    result = run_playbook(scratch, task_play(scratch_vhost(scratch, state="absent")), LOCAL, check=True)
    assert result.result("vhost")["changed"] and available.exists()
    result = run_playbook(scratch, task_play(scratch_vhost(scratch, state="absent")), LOCAL)
    assert result.result("vhost")["changed"]
    assert os.listdir(scratch / "sites-available") == [] and os.listdir(scratch / "sites-enabled") == []


def test_module_refuses_a_vhost_the_whole_configuration_rejects(scratch):
    broken = scratch / "sites-enabled" / "broken.conf"
    broken.write_text("server {\n    listen 8080;\n    bogus_directive on;\n}\n")
    result = run_playbook(scratch, task_play(scratch_vhost(scratch)), LOCAL)
    assert result.rc != 0
    msg = result.result("vhost")["msg"]
    assert msg.startswith(
        f"the configuration with the new vhost {scratch}/sites-available/shop.example.test.conf is not valid; "
        "nothing was changed and nginx was not reloaded. nginx -t said:\n")
    assert f'unknown directive "bogus_directive" in {broken}:3' in msg
    assert sorted(os.listdir(scratch / "sites-enabled")) == ["broken.conf"]
    assert os.listdir(scratch / "sites-available") == []


def test_module_refuses_a_domain_another_server_block_answers(scratch):
    (scratch / "sites-enabled" / "hand-written").write_text(
        "server {\n    listen 443 ssl;\n    server_name shop.example.test;\n"
        f"    ssl_certificate {scratch}/tls/scratch.example.test.crt;\n"
        f"    ssl_certificate_key {scratch}/tls/scratch.example.test.key;\n}}\n")
    result = run_playbook(scratch, task_play(scratch_vhost(scratch)), LOCAL)
    assert result.rc != 0
    assert result.result("vhost")["msg"].startswith(
        "another server block already answers for shop.example.test, so nginx would ignore one of them; "
        "remove the other one first; nothing was changed")


def test_module_says_when_the_main_configuration_does_not_include_the_folder(scratch):
    (scratch / "nginx.conf").write_text(f"pid {scratch}/nginx.pid;\nevents {{}}\nhttp {{\n}}\n")
    result = run_playbook(scratch, task_play(scratch_vhost(scratch)), LOCAL)
    assert result.rc != 0
    assert result.result("vhost")["msg"] == (
        f"{scratch}/nginx.conf does not include {scratch}/sites-enabled, so nginx would never load the vhosts "
        f"there: add 'include {scratch}/sites-enabled/*;' to its http block, or set sites_enabled to the "
        "folder it includes")


@pytest.mark.parametrize("state", ["present", "absent"])
def test_module_never_overwrites_or_deletes_an_operators_own_file(scratch, state):
    available = scratch / "sites-available" / "shop.example.test.conf"
    enabled = scratch / "sites-enabled" / "shop.example.test.conf"
    own = "# my own server block\nserver { listen 8080; server_name shop.example.test; }\n"
    available.write_text(own)
    enabled.symlink_to(available)
    result = run_playbook(scratch, task_play(scratch_vhost(scratch, state=state)), LOCAL)
    assert result.rc != 0
    assert result.result("vhost")["msg"].startswith(
        f"{available} was not written by DPL (it does not start with DPL's marker line)")
    assert available.read_text() == own and os.readlink(enabled) == str(available)

    # A file of that name in sites-enabled that is not DPL's link is the operator's too.
    enabled.unlink()
    available.unlink()
    enabled.write_text(own)
    result = run_playbook(scratch, task_play(scratch_vhost(scratch, state=state)), LOCAL)
    assert result.rc != 0 and f"{enabled} was not written by DPL" in result.result("vhost")["msg"]
    assert enabled.read_text() == own and not available.exists()
