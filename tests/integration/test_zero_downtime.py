"""Deploys without downtime, end to end: `dpl deploy` of an app with a domain while traffic
goes through the host's real nginx every 50 ms. A good deploy, a deploy whose release
answers its health check with HTTP 500 (it listens, so a proxy that sent it traffic would
fail requests), and a rollback: not one request may fail, and afterwards only the live
slot runs.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest

from dpl_web.paths import REPO_ROOT
from tests.support.cli import deploy_web_app, in_container, served
from tests.support.playbooks import VENV_BIN, ansible_env
from tests.support.traffic import Poller

pytestmark = pytest.mark.lxd


def slot_state(lxd_client, container: str, project: str, app: str = "web") -> dict[str, str]:
    """Each slot unit of the app that systemd knows, with its state."""
    listing = in_container(lxd_client, container, f"systemctl list-units --all --plain --no-legend "
                                                  f"'dpl-{project}_{app}@*' | awk '{{print $1, $3}}'")
    return dict(line.split() for line in listing.splitlines())


def answer(address: str, port: int) -> str | None:
    """The version the app answers on its container's address and port (no proxy)."""
    try:
        with urllib.request.urlopen(f"http://{address}:{port}/", timeout=5) as response:
            return json.loads(response.read())["version"]
    except OSError:
        return None


def slot_files(lxd_client, container: str, project: str) -> list[str]:
    return in_container(lxd_client, container, f"ls /etc/dpl/apps | grep '^{project}_web' || true").split()


def test_deploys_failures_and_rollbacks_through_nginx_lose_no_request(dpl, repos, lxd_client):
    project, domain = deploy_web_app(dpl, repos[1])
    assert served(domain) == "v1"
    app = dpl.json("app", "show", f"{project}/web")["app"]
    assert (app["ports"], app["live_port"]) == ([3000, 3001], 3000)

    # A good deploy: v2 starts on 3001 next to v1, nginx moves, v1 stops.
    with Poller(domain) as poller:
        dpl("deploy", f"{project}/web", "--ref", "v2")
    report = poller.report
    assert report.failed == [], report.failed[:5]
    assert report.versions[-1] == "v2" and served(domain) == "v2"
    assert dpl.json("app", "show", f"{project}/web")["app"]["live_port"] == 3001
    assert slot_state(lxd_client, project, project) == {f"dpl-{project}_web@3001.service": "active"}
    assert slot_files(lxd_client, project, project) == [f"{project}_web@3001.env", f"{project}_web@3001.start"]

    # A release that listens but fails its health check never gets a request.
    with Poller(domain) as poller:
        failed = dpl("--json", "deploy", f"{project}/web", "--ref", "sick", expect=7)
    report = poller.report
    assert "health check" in failed.stdout and "kept serving on port 3001" in failed.stdout
    assert report.failed == [], report.failed[:5]
    assert report.versions == ["v2"]
    assert dpl.json("app", "show", f"{project}/web")["app"]["live_port"] == 3001
    assert slot_state(lxd_client, project, project) == {f"dpl-{project}_web@3001.service": "active"}
    assert slot_files(lxd_client, project, project) == [f"{project}_web@3001.env", f"{project}_web@3001.start"]

    # Rollback takes the same path: v1 starts on 3000 again, then takes the traffic.
    with Poller(domain) as poller:
        dpl("app", "rollback", f"{project}/web")
    report = poller.report
    assert report.failed == [], report.failed[:5]
    assert report.versions[-1] == "v1" and served(domain) == "v1"
    assert dpl.json("app", "show", f"{project}/web")["app"]["live_port"] == 3000
    assert slot_state(lxd_client, project, project) == {f"dpl-{project}_web@3000.service": "active"}
    # At boot only the live slot starts.
    assert in_container(lxd_client, project, f"systemctl is-enabled dpl-{project}_web@3000.service") == "enabled"
    assert in_container(lxd_client, project,
                        f"systemctl is-enabled dpl-{project}_web@3001.service || true") != "enabled"

    # Two apps of the container deployed together, one failing: the other still goes live
    # and gets its traffic; the failing one keeps serving its live release; the run fails.
    api = f"api.{domain}"
    request = {"name": "api", "project": project, "repo": repos[1], "ref": "v1", "port": 3002,
               "domain": api, "health_path": "/health"}
    dpl("deploy", "--from-json", "-", stdin=json.dumps(request))
    dpl("app", "edit", f"{project}/web", "--ref", "crash")  # fails fast: it does not stay up
    dpl("app", "edit", f"{project}/api", "--ref", "v2")
    both = subprocess.run([f"{VENV_BIN}/ansible-playbook", "-i", str(REPO_ROOT / "inventory" / "dpl.yml"),
                           str(REPO_ROOT / "playbooks" / "deploy.yml"), "-e", "app=all",
                           "--limit", f"{project}:localhost"],
                          capture_output=True, text=True, timeout=900, check=False, cwd=REPO_ROOT,
                          env=dict(dpl.env, **ansible_env()))
    assert both.returncode != 0, both.stdout[-3000:]
    assert f"{project}/web did not go live" in both.stdout, both.stdout[-3000:]
    assert (served(api), served(domain)) == ("v2", "v1"), both.stdout[-6000:]
    assert slot_state(lxd_client, project, project, "api") == {f"dpl-{project}_api@3003.service": "active"}
    assert slot_state(lxd_client, project, project) == {f"dpl-{project}_web@3000.service": "active"}

    # Its domain taken off, web goes back to one service restarted in place. A release that
    # crashes on the way puts the live slot back; a good one replaces the slots for good.
    address = dpl.json("container", "show", project)["container"]["ipv4"]
    dpl("app", "edit", f"{project}/web", "--remove-domain", domain, "--ref", "crash")
    failed = dpl("--json", "deploy", f"{project}/web", expect=7)
    assert "serves again" in failed.stdout, failed.stdout[-3000:]
    assert answer(address, 3000) == "v1"
    assert slot_state(lxd_client, project, project) == {f"dpl-{project}_web@3000.service": "active"}
    dpl("deploy", f"{project}/web", "--ref", "v2")
    assert answer(address, 3000) == "v2"
    assert slot_state(lxd_client, project, project) == {}
    assert in_container(lxd_client, project, f"systemctl is-active dpl-{project}_web.service") == "active"
    assert slot_files(lxd_client, project, project) == [f"{project}_web.env", f"{project}_web.start"]
