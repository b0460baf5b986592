"""dpl.platform.daemon: a daemon started directly where systemd is not PID 1 (this
machine), and as a systemd unit where it is (a real container)."""

from __future__ import annotations

import socket
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.playbooks import lxd_inventory, run_playbook

pytestmark = pytest.mark.lxd

LOCAL = {"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                         "ansible_python_interpreter": sys.executable}}}}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def running(pid: int) -> bool:
    """Alive and not a zombie (nothing may reap a detached daemon's old process here)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def daemon_play(task, **params):
    return [{"name": "daemon", "hosts": "all", "gather_facts": False,
             "tasks": [{"name": task, "dpl.platform.daemon": params}]}]


def test_a_daemon_started_without_systemd(tmp_path):
    port = free_port()
    params = {"name": "dpltest-http", "command": [sys.executable, "-m", "http.server", str(port), "--bind",
                                                  "127.0.0.1", "--directory", str(tmp_path)],
              "pidfile": str(tmp_path / "http.pid"), "log": str(tmp_path / "http.log"), "ready_port": port,
              "init": "direct"}
    (tmp_path / "index.html").write_text("served by a detached daemon\n")
    try:
        started = run_playbook(tmp_path, daemon_play("start", **params), LOCAL).result("start")
        assert started["changed"] and started["init"] == "direct"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5) as response:
            assert response.read() == b"served by a detached daemon\n"
        again = run_playbook(tmp_path, daemon_play("again", **params), LOCAL).result("again")
        assert not again["changed"] and again["pid"] == started["pid"]
        # New flags (an upgrade of DPL): the old process goes, one with the new flags takes over.
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "index.html").write_text("started again with new flags\n")
        params["command"] = params["command"][:-1] + [str(tmp_path / "other")]
        upgraded = run_playbook(tmp_path, daemon_play("upgraded", **params), LOCAL).result("upgraded")
        assert upgraded["changed"] and upgraded["restarted"] and upgraded["pid"] != started["pid"]
        assert not running(started["pid"])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5) as response:
            assert response.read() == b"started again with new flags\n"
    finally:
        stopped = run_playbook(tmp_path, daemon_play("stop", state="stopped", **params), LOCAL).result("stop")
    assert stopped["changed"]
    assert sorted(path.name for path in tmp_path.glob("http.*")) == ["http.log"]  # pid and fingerprint gone
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)


def test_a_daemon_that_dies_at_once_fails_with_its_log(tmp_path):
    result = run_playbook(tmp_path, daemon_play(
        "broken", name="dpltest-broken", command=["/bin/sh", "-c", "echo cannot start: no config >&2; exit 3"],
        pidfile=str(tmp_path / "b.pid"), log=str(tmp_path / "b.log"), init="direct"), LOCAL).result("broken")
    assert result["_event"] == "runner_on_failed"
    assert "dpltest-broken exited right after starting (rc=3)" in result["msg"]
    assert "cannot start: no config" in result["msg"]


def test_a_daemon_under_systemd_in_a_container(tmp_path, container, lxd_client):
    params = {"name": "dpltest-sleeper", "command": ["/bin/sleep", "infinity"]}
    started = run_playbook(tmp_path, daemon_play("start", **params), lxd_inventory(container)).result("start")
    assert started["changed"] and started["init"] == "systemd"
    assert started["unit_file"] == "/etc/systemd/system/dpltest-sleeper.service"
    rc, out, _err = lxd_client.execute(container, ["systemctl", "is-active", "dpltest-sleeper.service"])
    assert (rc, out.strip()) == (0, b"active")
    again = run_playbook(tmp_path, daemon_play("again", **params), lxd_inventory(container)).result("again")
    assert not again["changed"]
    stopped = run_playbook(tmp_path, daemon_play("stop", state="stopped", **params),
                           lxd_inventory(container)).result("stop")
    assert stopped["changed"]
    rc, out, _err = lxd_client.execute(container, ["systemctl", "is-active", "dpltest-sleeper.service"])
    assert out.strip() == b"inactive"
