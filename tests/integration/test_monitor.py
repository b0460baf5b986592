"""Monitoring on real containers: `dpl status` sees what happens behind DPL's back (a
container stopped, its app down; a container made outside DPL), each within one round, and
sees it clear when fixed; `--record` reports each change of state once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pylxd
import pytest

from dpl_web import monitor
from dpl_web.collection import nginx, releases
from dpl_web.jobs.worker import Worker
from dpl_web.paths import REPO_ROOT
from dpl_web.registry import Registry
from tests.conftest import TEST_PREFIX
from tests.support.cli import curl, deploy_web_app, in_container
from tests.support.playbooks import run_playbook

pytestmark = [pytest.mark.lxd, pytest.mark.slow]

EXIT_ATTENTION = 11


def status(dpl, expect=None) -> dict:
    proc = dpl("--json", "status", "--record", expect=expect) if expect is not None else None
    if proc is None:  # other containers on this machine may be drift for this test's registry
        proc = dpl("--json", "status", "--record", expect=EXIT_ATTENTION)
    return json.loads(proc.stdout)


def kinds(report: dict, target: str) -> set[str]:
    return {problem["kind"] for problem in report["problems"] if problem["target"] == target}


def test_status_sees_what_happens_behind_dpls_back(dpl, repos):
    project = f"{TEST_PREFIX}{uuid.uuid4().hex[:6]}"
    dpl.made.append(project)
    request = {"name": "web", "project": project, "repo": repos[1], "ref": "v1", "port": 3000,
               "domain": f"{project}.dpl.test", "health_path": "/health"}
    dpl("deploy", "--from-json", "-", stdin=json.dumps(request))
    app, container = f"{project}/web", f"container/{project}"

    report = status(dpl)
    assert report["containers"][project]["status"] == "Running" and report["containers"][project]["memory"] > 0
    assert report["apps"][app] | {"up": True, "http": 200, "edge_http": 200} == report["apps"][app]
    assert kinds(report, container) == set() and kinds(report, f"app/{app}") == set()

    # Stopped behind DPL's back: drift, and the app down; said once.
    instance = pylxd.Client().instances.get(project)
    instance.stop(wait=True)
    report = status(dpl)
    assert kinds(report, container) == {"container-stopped"} and kinds(report, f"app/{app}") == {"app-down"}
    changes = {(change["target"], change["state"]) for change in report["changes"]}
    assert {(container, "stopped"), (container, "container-stopped")} <= changes
    # An app's state counts once seen twice in a row (one failed check is not an outage).
    assert (f"app/{app}", "down") not in changes
    assert (f"app/{app}", "down") in {(change["target"], change["state"]) for change in status(dpl)["changes"]}
    assert f"app/{app}" not in {change["target"] for change in status(dpl)["changes"]}  # no second alert

    # Started again: the service comes back with it, and everything clears.
    instance.start(wait=True)
    back = []
    for _attempt in range(30):
        report = status(dpl)
        back += [change for change in report["changes"] if change["target"] == f"app/{app}"]
        if back:
            break
    assert report["apps"][app]["up"] and kinds(report, container) == set()
    assert [change["state"] for change in back] == ["up"]

    # A container made outside DPL is drift until it is gone.
    stranger = f"{TEST_PREFIX}{uuid.uuid4().hex[:6]}"
    dpl.made.append(stranger)
    pylxd.Client().instances.create({"name": stranger, "source": {"type": "image", "alias": "dpl-base"}}, wait=True)
    assert kinds(status(dpl), f"container/{stranger}") == {"unknown-container"}
    pylxd.Client().instances.get(stranger).delete(wait=True)
    report = status(dpl)
    assert kinds(report, f"container/{stranger}") == set()
    assert "unknown-container" in {change["was"] for change in report["changes"]
                                   if change["target"] == f"container/{stranger}"}


def changes_of(report: dict, target: str) -> set[tuple[str, str]]:
    return {(change["state"], change["was"]) for change in report["changes"] if change["target"] == target}


def test_troubles_and_drift_of_an_app_behind_nginx_show_and_clear(dpl, repos, lxd_client):
    """Each thing done behind DPL's back shows in `dpl status` (a problem, exit 11) and as an
    alert, within one round (an app's state: two), and clears once it is put right."""
    project, domain = deploy_web_app(dpl, repos[1])
    app, target = f"{project}/web", f"app/{project}/web"
    record = dpl.json("app", "show", app)["app"]
    unit = monitor.service_unit(record)
    paths = releases.AppPaths(project, "web")
    deployed = dpl.json("job", "list", "--app", app)["jobs"][0]
    release_dir = in_container(lxd_client, project, f"readlink -f {paths.live}")
    server_js = f"{release_dir}/server.js"

    def sh(script: str) -> str:
        return in_container(lxd_client, project, script)

    def clean(report: dict) -> bool:
        return kinds(report, target) == set() and kinds(report, f"container/{project}") == set()

    def wait_healthy() -> None:  # (its service restarted) until it answers again
        for _attempt in range(40):
            if curl("-o", "/dev/null", "-w", "%{http_code}", health).stdout == "200":
                return
            time.sleep(0.25)

    report = status(dpl)  # the first round: the service's restart count and nginx's log position
    health = f"http://{report['containers'][project]['ipv4']}:{record['live_port'] or record['port']}" \
             f"{record['health_path']}"
    report = status(dpl)
    figures = report["apps"][app]
    assert figures["service"] == "active" and figures["restarts"] == 0 and figures["up"]
    assert figures["live_commit"] == deployed["commit"][:12] and clean(report)

    # Its process killed: systemd starts it again; a restart is a trouble for one round.
    pid = sh(f"systemctl show --property=MainPID --value {unit}")
    sh(f"kill -9 {pid}")
    for _attempt in range(40):
        if sh(f"systemctl show --property=MainPID --value {unit}") not in ("0", pid):
            break
        time.sleep(0.25)
    wait_healthy()
    report = status(dpl)
    assert report["apps"][app]["restarts"] >= 1 and kinds(report, target) == {"app-restarted"}
    assert ("app-restarted", "") in changes_of(report, target)
    report = status(dpl)
    assert ("cleared", "app-restarted") in changes_of(report, target) and clean(report)

    # It answers 500 to everything but its health path: nginx's figures show it.
    sh(f"sed -i '/application.json/s/writeHead(200/writeHead(500/' {server_js} && systemctl restart {unit}")
    wait_healthy()
    answers = [curl("--insecure", "--resolve", f"{domain}:443:127.0.0.1", "-o", "/dev/null", "-w", "%{http_code}",
                    f"https://{domain}/").stdout for _request in range(12)]
    assert answers == ["500"] * 12
    report = status(dpl)
    assert report["apps"][app]["up"] and report["apps"][app]["errors_5xx"] >= 12
    assert kinds(report, target) == {"app-errors"} and ("app-errors", "") in changes_of(report, target)

    # Its health path broken (and the errors put right): down once seen twice, then back.
    sh(f"sed -i -e '/application.json/s/writeHead(500/writeHead(200/' -e '/text.plain/s/writeHead(200/writeHead(503/' "
       f"{server_js} "
       f"&& systemctl restart {unit}")
    report = status(dpl)
    assert ("cleared", "app-errors") in changes_of(report, target) and not report["apps"][app]["up"]
    report = status(dpl)
    assert kinds(report, target) == {"app-down"} and ("down", "up") in changes_of(report, target)
    sh(f"sed -i '/text.plain/s/writeHead(503/writeHead(200/' {server_js} && systemctl restart {unit}")
    wait_healthy()
    for _attempt in range(10):
        report = status(dpl)
        if ("up", "down") in changes_of(report, target):
            break
    assert clean(report) and report["apps"][app]["up"]

    # Its live link moved by hand to another release: the live commit is not the deployed one.
    sh(f"cp -a {release_dir} {paths.releases}/20990101T000000Z-0123456789ab "
       f"&& ln -sfn {paths.releases}/20990101T000000Z-0123456789ab {paths.live}")
    report = status(dpl)
    assert kinds(report, target) == {"commit-differs"} and report["apps"][app]["live_commit"] == "0123456789ab"
    sh(f"ln -sfn {release_dir} {paths.live} && rm -rf {paths.releases}/20990101T000000Z-0123456789ab")
    report = status(dpl)
    assert ("cleared", "commit-differs") in changes_of(report, target) and clean(report)

    # Its vhost disabled by hand: the domain has no vhost (and nginx does not serve it).
    enabled = Path("/etc/nginx/sites-enabled") / nginx.file_name(domain)
    link = os.readlink(enabled)
    enabled.unlink()
    subprocess.run(["nginx", "-s", "reload"], check=True)
    try:
        report = status(dpl)
        assert kinds(report, target) == {"vhost-missing"}
        assert ("vhost-missing", "") in changes_of(report, target)
    finally:
        os.symlink(link, enabled)
        subprocess.run(["nginx", "-s", "reload"], check=True)
    report = status(dpl)
    assert ("cleared", "vhost-missing") in changes_of(report, target) and clean(report)

    # Its address changed inside the container: the registry's differs.
    recorded = dpl.json("container", "show", project)["container"]["ipv4"]
    sh("ip -4 addr flush dev eth0 && ip addr add 10.210.0.251/24 dev eth0")
    try:
        report = status(dpl)
        assert report["containers"][project]["ipv4"] == "10.210.0.251"
        assert kinds(report, f"container/{project}") == {"address-changed"}
        assert ("address-changed", "") in changes_of(report, f"container/{project}")
    finally:
        sh(f"ip -4 addr flush dev eth0 && ip addr add {recorded}/24 dev eth0 && ip route replace default "
           "via 10.210.0.1 || true")
    report = status(dpl)
    assert ("cleared", "address-changed") in changes_of(report, f"container/{project}")
    assert kinds(report, f"container/{project}") == set()

    # The worker (interval 20 s here) alerts an app that goes down within one interval: a
    # state seen once is confirmed CONFIRM_AFTER seconds later, not a whole interval later
    # (which would take up to two intervals, 40 s).
    registry = Path(dpl.env["DPL_REGISTRY"])
    worker = Worker(registry, monitor_interval=20, say=lambda _line: None)
    running = threading.Thread(target=worker.run, daemon=True)
    started = time.time()
    running.start()
    try:
        for _attempt in range(120):  # its first round (once it holds the registry's worker lock)
            with Registry.open(registry) as reg:
                if reg.latest_samples([target]).get(target, {}).get("at", 0) > started:
                    break
            time.sleep(0.25)
        sh(f"systemctl stop {unit}")
        stopped = time.time()
        while time.time() - stopped < 60:
            with Registry.open(registry) as reg:
                if reg.states()[target]["state"] == "down":
                    break
            time.sleep(0.25)
        said_down = time.time() - stopped
        assert said_down <= 20 + monitor.CONFIRM_AFTER + 6, said_down
    finally:
        worker.stop()
        running.join(timeout=60)
        sh(f"systemctl start {unit}")


def test_a_container_made_outside_dpl_is_imported_and_then_managed(dpl, lxd_client):
    """Drift until imported; a dry run changes nothing; the import records it as LXD has it
    and lays out its directories; deleted like any other, nothing is left."""
    stranger = f"{TEST_PREFIX}{uuid.uuid4().hex[:6]}"
    dpl.made.append(stranger)
    pylxd.Client().instances.create({"name": stranger, "source": {"type": "image", "alias": "dpl-base"},
                                     "config": {"limits.memory": "512MiB"}}, wait=True)
    pylxd.Client().instances.get(stranger).start(wait=True)
    target = f"container/{stranger}"
    for _attempt in range(30):  # its address comes from DHCP
        report = status(dpl)
        if kinds(report, target) == {"unknown-container"} and "import" in str(report["problems"]):
            leased = lxd_client.get(f"/1.0/instances/{stranger}/state")
            if monitor.state_ipv4(leased):
                break
        time.sleep(1)
    address = monitor.state_ipv4(lxd_client.get(f"/1.0/instances/{stranger}/state"))
    # An app laid out by hand, as on the operator's server: a clone with a token in its remote,
    # running; and a folder whose name DPL does not take.
    in_container(lxd_client, stranger, """
        mkdir -p /root/apps/shop/web/.git /root/apps/shop/Bad_Name
        cd /root/apps/shop/web
        printf '%s' '{"name": "shop-web", "scripts": {"start": "node server.js"}}' > package.json
        printf '[remote "origin"]\n\turl = https://deploy:s3cret-token@git.example.test/shop/web.git\n' > .git/config
        systemd-run --unit dpltest-legacy-web --working-directory=/root/apps/shop/web \
            node -e "require('http').createServer((q, s) => s.end('legacy')).listen(4100)"
        for n in $(seq 50); do grep -qi ':1004 ' /proc/net/tcp /proc/net/tcp6 && break; sleep 0.1; done
    """)

    preview = dpl.json("container", "import", stranger, "--dry-run")
    assert preview["changed"] is False
    offers = preview["container"].pop("apps")
    assert preview["container"] | {"ipv4": address, "memory": "512MiB", "status": "Running"} == preview["container"]
    web = next(offer for offer in offers if offer["name"] == "web")
    assert (web["project"], web["package_name"], web["start"], web["port"]) == ("shop", "shop-web", "npm start", 4100)
    assert web["repo"] == "https://git.example.test/shop/web.git" and web["why"] == ""
    assert web["add"] == (f"dpl app add shop/web --container {stranger} --repo https://git.example.test/shop/web.git "
                          "--port 4100")
    assert "s3cret-token" not in json.dumps(preview)  # the remote's token is a secret
    assert "Bad_Name" in next(offer["why"] for offer in offers if offer["name"] == "Bad_Name")
    dpl("container", "show", stranger, expect=5)  # the dry run recorded nothing

    result = dpl.json("container", "import", stranger)
    assert result["status"] == "successful"
    container = dpl.json("container", "show", stranger)["container"]
    assert (container["ipv4"], container["limits"]["memory"], container["status"]) == (address, "512MiB", "Running")
    assert in_container(lxd_client, stranger, "ls -d /root/apps /root/backups /root/deploy").split() == [
        "/root/apps", "/root/backups", "/root/deploy"]
    # The app found is offered, not changed: its files and its process are as they were.
    offered = "found /root/apps/shop/web: record it with: dpl app add shop/web"
    assert [note for note in result["notes"] if offered in note]
    assert in_container(lxd_client, stranger, "cat /root/apps/shop/web/package.json; systemctl is-active "
                                              "dpltest-legacy-web").endswith("active")
    assert lxd_client.get(f"/1.0/instances/{stranger}")["devices"]["eth0"]["ipv4.address"] == address
    report = status(dpl)
    assert kinds(report, target) == set() and ("cleared", "unknown-container") in changes_of(report, target)
    again = dpl.json("container", "import", stranger)  # once is enough: a second import changes nothing
    assert again["changed"] is False and again["container"]["ipv4"] == address

    dpl("container", "delete", stranger)
    dpl("container", "show", stranger, expect=5)
    assert stranger not in {instance["name"] for instance in lxd_client.get("/1.0/instances", {"recursion": 1})}


def test_the_status_playbook_fails_listing_each_problem_and_records_on_demand(dpl, tmp_path):
    missing = f"{TEST_PREFIX}{uuid.uuid4().hex[:6]}"
    dpl("container", "add", missing)  # recorded, never made in LXD
    localhost = {"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                                 "ansible_python_interpreter": sys.executable}}}}
    playbook = REPO_ROOT / "playbooks" / "status.yml"
    look = run_playbook(tmp_path, playbook, localhost, extravars={"dpl_registry": dpl.env["DPL_REGISTRY"]})
    assert look.rc != 0 and look.changed("localhost") == 0
    message = str(look.result("Fail with each problem and its fix")["msg"])
    assert f"the registry has a container {missing} that LXD on local does not have" in message
    assert f"dpl container start {missing}" in message  # with what to do about it
    assert status(dpl)["changes"]  # the look recorded nothing: this round's changes are all new

    another = f"{TEST_PREFIX}{uuid.uuid4().hex[:6]}"
    dpl("container", "add", another)
    recorded = run_playbook(tmp_path, playbook, localhost, extravars={
        "dpl_registry": dpl.env["DPL_REGISTRY"], "status_record": True, "status_fail_on_problems": False})
    assert recorded.rc == 0 and recorded.changed("localhost") == 1
    assert f"container/{another}" not in {change["target"] for change in status(dpl)["changes"]}  # said once
