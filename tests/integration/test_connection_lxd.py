"""The dpl.platform.lxd connection plugin, on real containers.

Results are read back through pylxd, a client independent of the plugin's own.
"""

from __future__ import annotations

import time

import pylxd
import pytest

from tests.support.playbooks import lxd_inventory, run_playbook

pytestmark = pytest.mark.lxd


@pytest.fixture(scope="module")
def pylxd_client():
    return pylxd.Client()


def play(*tasks, gather_facts=False):
    return [{"name": "test play", "hosts": "all", "gather_facts": gather_facts, "tasks": list(tasks)}]


def stat_through_pylxd(client, name, path):
    """(mode, uid, gid, content) of a file, as LXD's files API reports it through pylxd."""
    response = client.api.instances[name].files.get(params={"path": path})
    headers = response.headers
    mode, uid, gid = int(headers["X-LXD-mode"], 8), int(headers["X-LXD-uid"]), int(headers["X-LXD-gid"])
    return mode, uid, gid, response.content


def test_ping_and_command_output(tmp_path, container):
    result = run_playbook(tmp_path, play(
        {"name": "ping", "ansible.builtin.ping": {}},
        {"name": "hostname", "ansible.builtin.command": "cat /etc/hostname", "register": "out",
         "changed_when": False},
    ), lxd_inventory(container))
    assert result.rc == 0, result.stdout
    assert result.result("ping")["ping"] == "pong"
    # The command really ran inside that container: it knows its own name.
    assert result.result("hostname")["stdout"] == container


def test_nonzero_exit_fails_the_task_with_the_real_rc(tmp_path, container):
    result = run_playbook(tmp_path, play(
        {"name": "exit 7", "ansible.builtin.shell": "echo to-stderr >&2; exit 7"},
    ), lxd_inventory(container))
    assert result.rc != 0
    res = result.result("exit 7")
    assert res["_event"] == "runner_on_failed"
    assert res["rc"] == 7
    assert res["stderr"] == "to-stderr"


def test_copy_sets_mode_and_owner(tmp_path, container, pylxd_client):
    source = tmp_path / "payload.txt"
    source.write_text("copied through LXD\n")
    result = run_playbook(tmp_path, play(
        {"name": "copy", "ansible.builtin.copy": {
            "src": str(source), "dest": "/srv/payload.txt", "mode": "0640", "owner": "nobody",
            "group": "nogroup"}},
    ), lxd_inventory(container))
    assert result.rc == 0, result.stdout
    mode, uid, gid, content = stat_through_pylxd(pylxd_client, container, "/srv/payload.txt")
    assert (mode & 0o7777, uid, gid) == (0o640, 65534, 65534)
    assert content == b"copied through LXD\n"


def test_fetch_brings_the_file_back(tmp_path, container, pylxd_client):
    data = bytes(range(256)) * 4000  # binary, ~1 MB
    pylxd_client.instances.get(container).files.put("/root/blob.bin", data)
    result = run_playbook(tmp_path, play(
        {"name": "fetch",
         "ansible.builtin.fetch": {"src": "/root/blob.bin", "dest": f"{tmp_path}/got/", "flat": True}},
    ), lxd_inventory(container))
    assert result.rc == 0, result.stdout
    assert (tmp_path / "got" / "blob.bin").read_bytes() == data


def test_large_output_and_input_round_trip(tmp_path, container):
    big = "x" * 300_000
    result = run_playbook(tmp_path, play(
        {"name": "echo big stdin",
         "ansible.builtin.command": {"cmd": "wc -c", "stdin": big, "stdin_add_newline": False},
         "changed_when": False},
        {"name": "big stdout", "ansible.builtin.shell": "head -c 2000000 /dev/zero | tr '\\0' y",
         "changed_when": False, "register": "big"},
        # ansible-runner trims large results in its events: measure on the controller instead.
        {"name": "measure", "ansible.builtin.debug": {
            "msg": "{{ big.stdout | length }} {{ big.stdout | unique | join }}"}},
    ), lxd_inventory(container))
    assert result.rc == 0, result.stdout
    assert result.result("echo big stdin")["stdout"].strip() == str(len(big))
    assert result.result("measure")["msg"] == "2000000 y"


def test_remote_user_runs_as_that_user(tmp_path, container, pylxd_client, lxd_client):
    rc, _out, err = lxd_client.execute(container, ["useradd", "--create-home", "--uid", "1234", "deploy"])
    assert rc == 0, err
    result = run_playbook(tmp_path, play(
        {"name": "who", "ansible.builtin.command": "id -un", "changed_when": False},
        {"name": "home", "ansible.builtin.command": "pwd", "changed_when": False},
        {"name": "write",
         "ansible.builtin.copy": {"content": "mine\n", "dest": "/home/deploy/mine.txt", "mode": "0600"}},
    ), lxd_inventory(container, ansible_user="deploy"))
    assert result.rc == 0, result.stdout
    assert result.result("who")["stdout"] == "deploy"
    assert result.result("home")["stdout"] == "/home/deploy"
    mode, uid, gid, _content = stat_through_pylxd(pylxd_client, container, "/home/deploy/mine.txt")
    assert (mode & 0o777, uid) == (0o600, 1234)


def test_unknown_remote_user_is_a_clear_error(tmp_path, container):
    result = run_playbook(tmp_path, play({"name": "ping", "ansible.builtin.ping": {}}),
                          lxd_inventory(container, ansible_user="nosuchuser"))
    res = result.result("ping")
    assert res["_event"] == "runner_on_unreachable"
    assert "user 'nosuchuser' does not exist" in res["msg"]


def test_missing_container_is_a_clear_error(tmp_path, lxd_client):
    result = run_playbook(tmp_path, play({"name": "ping", "ansible.builtin.ping": {}}),
                          lxd_inventory("dpltest-does-not-exist"))
    res = result.result("ping")
    assert res["_event"] == "runner_on_unreachable"
    assert "LXD instance 'dpltest-does-not-exist' does not exist" in res["msg"]
    assert "Traceback" not in result.stdout


def test_stopped_container_is_a_clear_error(tmp_path, containers):
    name = containers.create(start=False)
    result = run_playbook(tmp_path, play({"name": "ping", "ansible.builtin.ping": {}}),
                          lxd_inventory(name))
    res = result.result("ping")
    assert res["_event"] == "runner_on_unreachable"
    assert f"LXD instance '{name}' is stopped" in res["msg"]


def test_second_run_changes_nothing(tmp_path, container):
    plays = play(
        {"name": "dir", "ansible.builtin.file": {"path": "/srv/app", "state": "directory", "mode": "0755"}},
        {"name": "file",
         "ansible.builtin.copy": {"content": "v1\n", "dest": "/srv/app/VERSION", "mode": "0644"}},
        {"name": "line",
         "ansible.builtin.lineinfile": {"path": "/srv/app/env", "line": "PORT=3000", "create": True,
                                        "mode": "0600"}},
    )
    first = run_playbook(tmp_path, plays, lxd_inventory(container))
    assert first.rc == 0 and first.changed(container) == 3, first.stdout
    second = run_playbook(tmp_path, plays, lxd_inventory(container))
    assert second.rc == 0 and second.changed(container) == 0, second.stdout


@pytest.mark.parametrize("persist", ["0", "60"], ids=["one-exec-per-command", "session"])
def test_both_command_paths_agree(tmp_path, container, persist):
    result = run_playbook(tmp_path, play(
        {"name": "env", "ansible.builtin.shell": "echo $HOME $USER; pwd; echo err >&2; exit 3",
         "ignore_errors": True},
    ), lxd_inventory(container), envvars={"DPL_LXD_PERSIST_TIMEOUT": persist})
    res = result.result("env")
    assert (res["rc"], res["stdout_lines"], res["stderr"]) == (3, ["/root root", "/root"], "err")


def test_a_timed_out_task_does_not_wedge_the_session(tmp_path, container):
    started = time.monotonic()
    result = run_playbook(tmp_path, play(
        {"name": "slow", "ansible.builtin.command": "sleep 60", "timeout": 2, "ignore_errors": True},
        {"name": "after", "ansible.builtin.command": "echo alive", "changed_when": False},
    ), lxd_inventory(container))
    assert result.result("slow")["_event"] == "runner_on_failed"
    assert result.result("after")["stdout"] == "alive"
    assert time.monotonic() - started < 45, "the second task waited for the killed one"


def test_a_container_without_python_still_runs_raw_commands(tmp_path, container, lxd_client):
    """No Python for a session runner: every command falls back to its own LXD exec."""
    rc, _out, err = lxd_client.execute(container, ["/bin/sh", "-c", "mv /usr/bin/python3.11 /usr/bin/python3.11.off"])
    assert rc == 0, err
    result = run_playbook(tmp_path, play(
        {"name": "raw", "ansible.builtin.raw": "echo no python here", "changed_when": False},
    ), lxd_inventory(container))
    assert result.rc == 0, result.stdout
    assert result.result("raw")["stdout"].strip() == "no python here"
