"""The `dpl` commands that run jobs, end to end: registry -> inventory plugin -> playbooks ->
real containers, real git, the host's real nginx.

Each test has its own registry and state directory (DPL_REGISTRY, XDG_STATE_HOME), so
the user's registry and job history are never touched.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from pathlib import Path

import pylxd
import pytest

from tests.conftest import TEST_PREFIX
from tests.support.cli import curl, in_container, served

pytestmark = pytest.mark.lxd

SECRET = "Zq9-secret-Value-77"


def files_containing(root: Path, needle: str) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and needle.encode() in path.read_bytes():
            found.append(str(path))
    return found


def test_container_lifecycle_through_the_cli(dpl):
    name = f"{TEST_PREFIX}{uuid.uuid4().hex[:8]}"
    dpl.made.append(name)
    created = dpl.json("container", "create", name, "--memory", "384MB")
    assert created["status"] == "successful"
    record = dpl.json("container", "show", name)["container"]
    assert record["status"] == "Running" and record["ipv4"].startswith("10.210.0.")
    instance = pylxd.Client().instances.get(name)
    assert instance.config["limits.memory"] == "384MB"
    assert instance.devices["eth0"]["ipv4.address"] == record["ipv4"]

    # The layout, and a directory per project/app once the registry has them.
    dpl("app", "add", "dpltest-proj/site", "--container", name, "--repo", "https://git.example.com/site.git")
    assert dpl.json("container", "reconfigure", name)["status"] == "successful"
    api = pylxd.Client().api.instances[name].files
    for path in ("/root/apps", "/root/backups", "/root/deploy", "/root/apps/dpltest-proj",
                 "/root/backups/dpltest-proj/site", "/root/deploy/dpltest-proj/site"):
        response = api.get(params={"path": path})
        assert response.headers["X-LXD-type"] == "directory", path

    assert dpl.json("container", "stop", name)["status"] == "successful"
    assert dpl.json("container", "show", name)["container"]["status"] == "Stopped"
    assert dpl.json("container", "start", name)["status"] == "successful"
    again = dpl.json("container", "show", name)["container"]
    assert (again["status"], again["ipv4"]) == ("Running", record["ipv4"])

    refused = dpl("container", "delete", name, expect=7)
    assert "still has 1 app(s) (dpltest-proj/site)" in refused.stderr
    assert pylxd.Client().instances.exists(name)
    dpl("container", "delete", name, "--force")
    assert not pylxd.Client().instances.exists(name)
    dpl("container", "show", name, expect=5)


def test_a_failed_create_leaves_no_record_and_no_container(dpl):
    name = f"{TEST_PREFIX}{uuid.uuid4().hex[:8]}"
    dpl.made.append(name)
    failed = dpl("container", "create", name, "--image", "dpltest-no-such-image", expect=7)
    assert "image 'dpltest-no-such-image' is not in the local image store" in failed.stderr
    dpl("container", "show", name, expect=5)
    assert not pylxd.Client().instances.exists(name)


def test_the_seeds_request_deploys_and_nginx_serves_it(dpl, repos):
    project = f"{TEST_PREFIX}{uuid.uuid4().hex[:6]}"
    domain = f"{project}.dpl.test"
    dpl.made.append(project)
    request = {"name": "web", "project": project, "repo": repos[1], "ref": "v1", "port": 3000, "domain": domain,
               "health_path": "/health", "env": {"PLAIN": "plain", "API_TOKEN": {"value": SECRET, "secret": True}}}
    deployed = dpl("deploy", "--from-json", "-", stdin=json.dumps(request))
    # Progress lines while it ran, the result at the end.
    assert "==> Deploy the app" in deployed.stderr and "changed" in deployed.stderr
    assert "deploy: successful" in deployed.stdout

    # Through the host's nginx, over TLS, as Cloudflare would reach it.
    answer = curl("--insecure", "--resolve", f"{domain}:443:127.0.0.1", f"https://{domain}/")
    assert answer.returncode == 0, answer.stderr
    body = json.loads(answer.stdout)
    assert (body["version"], body["secret_length"], body["plain"]) == ("v1", len(SECRET), "plain")
    redirect = curl("--include", "--resolve", f"{domain}:80:127.0.0.1", f"http://{domain}/")
    assert redirect.stdout.startswith("HTTP/1.1 301") and f"Location: https://{domain}/" in redirect.stdout

    dpl("deploy", f"{project}/web", "--ref", "v2")
    answer = curl("--insecure", "--resolve", f"{domain}:443:127.0.0.1", f"https://{domain}/")
    assert json.loads(answer.stdout)["version"] == "v2"
    jobs = dpl.json("job", "list", "--app", f"{project}/web")["jobs"]
    assert [job["status"] for job in jobs] == ["successful", "successful"]
    assert jobs[0]["commit"] == repos[0].commits["v2"]

    # The secret is nowhere: not in the job logs, the runner's files, the registry's text output.
    for job in jobs:
        assert SECRET not in dpl("job", "show", str(job["id"])).stdout
    assert files_containing(dpl.state, SECRET) == []
    assert SECRET not in dpl("app", "show", f"{project}/web").stdout

    releases = dpl.json("app", "releases", f"{project}/web")["releases"]
    assert [r["live"] for r in releases] == [False, True]
    backups = dpl.json("app", "backups", f"{project}/web")["backups"]
    assert backups[0]["commit"] == repos[0].commits["v1"][:12]
    dpl("app", "rollback", f"{project}/web")
    assert json.loads(curl("--insecure", "--resolve", f"{domain}:443:127.0.0.1",
                           f"https://{domain}/").stdout)["version"] == "v1"

    # Removing the app takes its vhost away (and nginx keeps serving the others).
    dpl("app", "remove", f"{project}/web")
    gone = curl("--insecure", "--resolve", f"{domain}:443:127.0.0.1", f"https://{domain}/")
    assert gone.returncode != 0
    assert not Path(f"/etc/nginx/sites-available/{domain}.conf").exists()
    dpl("container", "delete", project)


def vhost_files(domain: str) -> list[str]:
    return [str(path) for path in (Path(f"/etc/nginx/sites-available/{domain}.conf"),
                                   Path(f"/etc/nginx/sites-enabled/{domain}.conf"),
                                   Path(f"/etc/ssl/dpl/{domain}.crt"), Path(f"/etc/ssl/dpl/{domain}.key"))
            if os.path.lexists(path)]


def test_domains_follow_the_registry_and_removal_leaves_nothing_running(dpl, repos, lxd_client):
    project = f"{TEST_PREFIX}{uuid.uuid4().hex[:6]}"
    dpl.made.append(project)
    web, web2, api = (f"{project}.dpl.test", f"www.{project}.dpl.test", f"api.{project}.dpl.test")
    for name, port, domain in (("web", 3000, web), ("api", 3002, api)):
        request = {"name": name, "project": project, "repo": repos[1], "ref": "v1", "port": port,
                   "domain": domain, "health_path": "/health", "env": {"API_TOKEN": {"value": SECRET, "secret": True}}}
        dpl("deploy", "--from-json", "-", stdin=json.dumps(request))
    dpl("deploy", f"{project}/web", "--ref", "v2")
    assert (served(web), served(api)) == ("v2", "v1")

    # A domain taken off stops proxying at once, with its vhost and certificate; one added is served.
    dpl("app", "edit", f"{project}/web", "--remove-domain", web, "--add-domain", web2)
    assert served(web) is None and vhost_files(web) == []
    assert served(web2) == "v2"

    # Removal: the service stops for good, every file but the backups goes, the neighbour stays.
    # (web has a domain: it ran in slots, dpl-<project>_web@<port>.service, on 3000 then 3001.)
    units = f"systemctl list-units --all --plain --no-legend 'dpl-{project}_web*' | wc -l"
    assert in_container(lxd_client, project, units) == "1"
    dpl("app", "remove", f"{project}/web")
    assert served(web2) is None and vhost_files(web2) == []
    assert served(api) == "v1"
    assert in_container(lxd_client, project, units) == "0"
    leftovers = f"ls /etc/dpl/apps /etc/systemd/system | grep -c '{project}_web' || true"
    assert in_container(lxd_client, project, leftovers) == "0"
    assert in_container(lxd_client, project, f"ls -A /root/apps/{project}") == ".releases\napi"
    assert in_container(lxd_client, project, f"ls /root/backups/{project}/web | wc -l") == "1"
    address = dpl.json("container", "show", project)["container"]["ipv4"]
    for port in (3000, 3001):
        with socket.socket() as probe:
            probe.settimeout(5)
            assert probe.connect_ex((address, port)) != 0, f"the removed app's port {port} still answers"

    # A new app on the freed port passes its own health check and answers with its own version.
    request = {"name": "new", "project": project, "repo": repos[1], "ref": "v3", "port": 3000,
               "domain": web, "health_path": "/health"}
    dpl("deploy", "--from-json", "-", stdin=json.dumps(request))
    assert served(web) == "v3"

    # The project, with cascade: every app out of service, then the records.
    removed = dpl.json("project", "remove", project, "--cascade")
    assert sorted(removed["removed"]["apps"]) == [f"{project}/api", f"{project}/new"]
    assert served(web) is None and served(api) is None and vhost_files(api) == vhost_files(web) == []
    assert in_container(lxd_client, project, "systemctl list-units --all --plain --no-legend 'dpl-*' | wc -l") == "0"
    assert in_container(lxd_client, project, f"ls -A /root/apps/{project}/.releases") == ""
    dpl("project", "show", project, expect=5)


def test_a_forced_container_delete_takes_its_vhosts_and_certificates(dpl, repos):
    project = f"{TEST_PREFIX}{uuid.uuid4().hex[:6]}"
    dpl.made.append(project)
    domain = f"{project}.dpl.test"
    request = {"name": "web", "project": project, "repo": repos[1], "ref": "v1", "domain": domain,
               "health_path": "/health"}
    dpl("deploy", "--from-json", "-", stdin=json.dumps(request))
    assert served(domain) == "v1"
    dpl("container", "delete", project, expect=7)
    assert served(domain) == "v1"
    dpl("container", "delete", project, "--force")
    assert served(domain) is None and vhost_files(domain) == []
    assert not pylxd.Client().instances.exists(project)
    dpl("app", "show", f"{project}/web", expect=5)
