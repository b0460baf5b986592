"""Apps in a container whose init is OpenRC (the operator's Alpine containers), for real: an
image built offline as the base image is, with Debian's openrc and sysvinit-core (the same
openrc-run scripts and supervise-daemon as Alpine's). Deploy behind nginx, a crash respawned,
a sick and a crashing release refused with the live one serving, rollback, a reboot that
brings the app back, and removal that leaves no service behind."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest

from dpl_web.errors import JobFailed
from tests.conftest import TEST_PREFIX
from tests.support.cli import DPL, in_container, served
from tests.support.playbooks import build_image

pytestmark = [pytest.mark.lxd, pytest.mark.slow]

OPENRC_IMAGE = "dpl-openrc"


@pytest.fixture(scope="module")
def openrc_image(tmp_path_factory):
    """DPL's base recipe with OpenRC for init (built once by the base_image module, then cached)."""
    build_image(tmp_path_factory.mktemp("openrc-image"), OPENRC_IMAGE, init="openrc")
    return OPENRC_IMAGE


def wait_served(domain: str, version: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while served(domain) != version:
        assert time.monotonic() < deadline, f"{domain} does not serve {version} (it serves {served(domain)})"
        time.sleep(0.2)


def app_status(dpl, app: str) -> dict:
    """One monitoring round's figures of ``app`` (other containers on this machine may be drift
    for this test's registry: the exit code says nothing here)."""
    proc = subprocess.run([DPL, "--json", "status", "--record"], capture_output=True, text=True, env=dpl.env,
                          timeout=120, check=False)
    assert proc.returncode in (0, 11), proc.stderr
    return json.loads(proc.stdout)["apps"][app]


def test_an_app_runs_as_an_openrc_service(dpl, repos, lxd_client, openrc_image):
    project = f"{TEST_PREFIX}{uuid.uuid4().hex[:6]}"
    dpl.made.append(project)
    domain, app = f"{project}.dpl.test", f"{project}/web"
    dpl("container", "create", project, "--image", openrc_image)
    assert in_container(lxd_client, project, "cat /proc/1/comm; test -d /run/openrc && echo openrc") == "init\nopenrc"
    request = {"name": "web", "project": project, "repo": repos[1], "ref": "v1", "port": 3000, "domain": domain,
               "health_path": "/health"}
    dpl("deploy", "--from-json", "-", stdin=json.dumps(request))
    assert served(domain) == "v1"
    service = f"dpl-{project}_web.3000"
    assert in_container(lxd_client, project, f"rc-service {service} status") == "* status: started"
    assert in_container(lxd_client, project, f"readlink /etc/init.d/{service}") == f"dpl-{project}_web.slot"
    assert service in in_container(lxd_client, project, "ls /etc/runlevels/default")

    # A crash: supervise-daemon starts the app again, and the monitor counts the restart.
    app_status(dpl, app)  # the first round: the count so far
    status = app_status(dpl, app)
    assert (status["service"], status["restarts"], status["live_commit"]) == ("active", 0, repos[0].commits["v1"][:12])
    in_container(lxd_client, project, "pkill -KILL -x node")
    wait_served(domain, "v1")
    assert in_container(lxd_client, project, f"cat /run/openrc/options/{service}/start_count") == "1"
    status = app_status(dpl, app)
    assert (status["service"], status["restarts"]) == ("active", 1)

    # A release that fails its health check, or keeps dying, never replaces the live one.
    sick = dpl("deploy", app, "--ref", "sick", expect=JobFailed.exit_code)
    assert "did not answer 2xx/3xx" in sick.stdout + sick.stderr
    crash = dpl("deploy", app, "--ref", "crash", expect=JobFailed.exit_code)
    assert "does not stay up" in crash.stdout + crash.stderr, crash.stderr
    assert served(domain) == "v1"

    dpl("deploy", app, "--ref", "v2")
    assert served(domain) == "v2"
    dpl("app", "rollback", app)
    assert served(domain) == "v1"
    # Its output, from the services' log files (OpenRC has no journal).
    logs = [json.loads(line) for line in dpl("--json", "app", "logs", app, "--lines", "20").stdout.splitlines()]
    assert any(entry["text"] == "> node server.js" and entry["unit"].startswith(f"dpl-{project}_web.")
               for entry in logs), logs

    # After a reboot the live slot comes back by itself (it is in the default runlevel).
    dpl("container", "restart", project)
    wait_served(domain, "v1", timeout=60)

    dpl("app", "remove", app)
    assert served(domain) is None
    left = in_container(lxd_client, project, "ls /etc/init.d /etc/runlevels/default | grep dpl- ; "
                                             "ps -eo args | grep -c '[n]ode server.js'; true")
    assert left == "0", left
