"""The deploy pipeline on a real container: app_deploy, app_rollback, app_restore, app_info.

One container and one git daemon serve the whole module; every test deploys its own app
(a fresh name), so tests do not see each other's releases. The app answers with its
version, which is how each test tells which release is serving.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.conftest import ContainerFactory
from tests.support.apps import AppRepo, GitDaemon, app_files
from tests.support.playbooks import ansible_env, lxd_inventory, run_playbook

pytestmark = pytest.mark.lxd

SECRET = "s3cr3t-Token-value"
# systemd reads the env file with shell-like quoting: these must reach the app verbatim.
TRICKY = 'plain $HOME "quoted" `date` back\\slash'

PORTS = itertools.count(3100)


@pytest.fixture(scope="module")
def box(lxd_client):
    factory = ContainerFactory(lxd_client)
    name = factory.create()
    yield name, lxd_client.ipv4_addresses(name)[0]
    factory.cleanup()


class App:
    """One app in the shared container, deployed through real playbooks."""

    def __init__(self, tmp_path, container, address, url, port):
        self.tmp_path = tmp_path
        self.container = container
        self.address = address
        self.name = f"a{uuid.uuid4().hex[:8]}"
        self.params = {"project": "tests", "app": self.name, "repo": url, "port": port,
                       "env": {"PLAIN": TRICKY}, "secret_env": {"API_TOKEN": SECRET},
                       "health_path": "/health", "health_timeout": 8}

    def run(self, module, check=False, **params):
        params = dict(self.params, **params)
        if module != "app_deploy":
            del params["repo"]
        task = {"name": module, f"dpl.platform.{module}": params}
        plays = [{"name": "app", "hosts": "all", "gather_facts": False, "tasks": [task]}]
        result = run_playbook(self.tmp_path, plays, lxd_inventory(self.container), check=check)
        assert SECRET not in result.stdout
        outcome = result.result(module)
        # A module that did not answer in JSON is a harness failure, never an expected outcome.
        assert "module_stdout" not in outcome, (outcome.get("msg"), outcome.get("module_stdout"),
                                                outcome.get("module_stderr"), result.stdout[-3000:])
        return outcome

    def deploy(self, ref, **params):
        return self.run("app_deploy", ref=ref, **params)

    def ok(self, module, **params):
        """Run ``module`` and insist it succeeded, showing its message when it did not."""
        result = self.run(module, **params)
        assert result["_event"] == "runner_on_ok", result.get("msg")
        return result

    def serving(self):
        with urllib.request.urlopen(f"http://{self.address}:{self.params['port']}/", timeout=5) as response:
            return json.load(response)["version"]


@pytest.fixture
def app(tmp_path, box, repos):
    container, address = box
    # Every app of the shared container gets its own port: apps of earlier tests keep running,
    # and a health check must never be answered by another test's app.
    port = next(PORTS)
    return App(tmp_path, container, address, repos[1], port)


def sh(lxd_client, container, script):
    rc, out, err = lxd_client.execute(container, ["/bin/sh", "-c", script])
    assert rc == 0, err
    return out.decode()


def test_deploy_redeploy_and_rollback(app, lxd_client):
    first = app.ok("app_deploy", ref="v1")
    assert first["changed"] and not first["skipped_build"] and first["deploy_step"] == "npm"
    assert app.serving() == "v1"
    live = f"/root/apps/tests/{app.name}"
    # The seed's path is the live app; npm ci really installed the local package; npm run build ran.
    assert sh(lxd_client, app.container, f"readlink {live}").strip() == f".releases/{app.name}/{first['release']}"
    assert sh(lxd_client, app.container, f"test -f {live}/node_modules/greeting/index.js && cat {live}/BUILT") \
        == "production"
    assert sh(lxd_client, app.container, f"stat -c %a /etc/dpl/apps/tests_{app.name}.env").strip() == "600"

    again = app.ok("app_deploy", ref="v1")
    assert not again["changed"] and again["skipped_build"] and again["release"] == first["release"]

    second = app.ok("app_deploy", ref="v2")
    assert second["changed"] and second["replaced_release"] == first["release"]
    assert app.serving() == "v2"
    # The backup of v1: a tar.gz without node_modules, named <time>-<commit>.
    backup = second["backup"]
    assert backup.startswith(f"/root/backups/tests/{app.name}/") and backup.endswith(f"-{first['commit'][:12]}.tar.gz")
    members = sh(lxd_client, app.container, f"tar tzf {backup}").split()
    assert "./server.js" in members and not [m for m in members if "node_modules" in m]

    back = app.ok("app_rollback")
    assert back["changed"] and back["release"] == first["release"] and app.serving() == "v1"
    forth = app.ok("app_rollback")
    assert forth["release"] == second["release"] and app.serving() == "v2"

    info = app.run("app_info")
    assert [r["commit"] for r in info["releases"]] == [first["commit"], second["commit"]]
    assert [r["live"] for r in info["releases"]] == [False, True]
    assert info["backups"][0]["commit"] == first["commit"][:12]


def test_secrets_reach_the_app_but_no_log(app):
    result = app.deploy("v1", deploy_script="echo token is $API_TOKEN && npm ci --omit=dev")
    assert "token is ********" in result["log"]
    assert SECRET not in json.dumps(result)
    with urllib.request.urlopen(f"http://{app.address}:{app.params['port']}/", timeout=5) as response:
        body = json.load(response)
    assert body["secret_length"] == len(SECRET) and body["plain"] == TRICKY


@pytest.mark.parametrize("ref, params, step, message", [
    ("crash", {}, "start", "the app does not stay up"),
    ("sick", {}, "health check", "did not answer 2xx/3xx within 8s (last: HTTP 500)"),
    ("v3", {"deploy_script": "echo building; exit 4"}, "deploy script", "deploy script failed (exit code 4)"),
    ("no-such-ref", {}, "fetch", "ref 'no-such-ref' is not a branch, tag or commit of the repository "
                                 "(its branches: main)"),
])
def test_a_failed_deploy_leaves_the_previous_version_serving(app, ref, params, step, message):
    assert app.ok("app_deploy", ref="v2")["changed"]
    failed = app.deploy(ref, **params)
    assert failed["_event"] == "runner_on_failed"
    assert failed["failed_step"] == step
    assert message in failed["msg"]
    assert app.serving() == "v2"
    info = app.run("app_info")
    assert [r["live"] for r in info["releases"]] == [True], "the failed release must not stay on disk"


def test_a_failed_start_quotes_the_app_output(app):
    app.ok("app_deploy", ref="v1")
    failed = app.deploy("crash")
    assert "--- last lines ---" in failed["msg"]
    assert "switched back to" in failed["rolled_back"]


def test_unknown_repository_fails_clearly(app):
    app.params["repo"] = app.params["repo"].replace("demo.git", "missing.git")
    failed = app.deploy("main")
    assert failed["failed_step"] == "fetch" and "the live release was not touched" in failed["msg"]


def test_bad_input_is_refused_before_anything_runs(app):
    failed = app.deploy("v1; rm -rf /")
    assert failed["msg"].startswith("ref: 'v1; rm -rf /' is not valid")
    failed = app.deploy("v1", start_command="node server.js\nrm -rf /")
    assert failed["msg"].startswith("start_command: 'node server.js\\nrm -rf /' is not valid")


def run_async(app, ref, **params):
    """Start a deploy playbook in the background; return the process."""
    task = {"name": "app_deploy", "dpl.platform.app_deploy": dict(app.params, ref=ref, **params)}
    workdir = app.tmp_path / f"bg-{uuid.uuid4().hex[:6]}"
    workdir.mkdir()
    (workdir / "play.yml").write_text(json.dumps([{"hosts": "all", "gather_facts": False, "tasks": [task]}]))
    (workdir / "hosts.yml").write_text(json.dumps(lxd_inventory(app.container)))
    env = dict(os.environ, **ansible_env())
    with open(workdir / "output.log", "wb") as log:
        return subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i",
                                 str(workdir / "hosts.yml"), str(workdir / "play.yml")],
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_for(lxd_client, container, script, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lxd_client.execute(container, ["/bin/sh", "-c", script])[0] == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for: {script}")


def test_two_deploys_of_one_app_never_interleave(app, lxd_client):
    app.ok("app_deploy", ref="v1")
    marker = f"/tmp/{app.name}-slow"
    slow = run_async(app, "v2", deploy_script=f"touch {marker}; sleep 6; npm ci --omit=dev")
    wait_for(lxd_client, app.container, f"test -f {marker}")
    second = app.deploy("v3", lock_timeout=2)
    assert second["failed_step"] == "lock"
    assert "another deploy of this app is still running (pid" in second["msg"]
    assert slow.wait(timeout=120) == 0
    assert app.serving() == "v2"


def kill_tree(pid):
    """SIGKILL a process and all its descendants (Ansible's workers run in sessions of their
    own, so killing the process group of ansible-playbook would spare them)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(stat[1]), []).append(int(entry))
    doomed, queue = [], [pid]
    while queue:
        current = queue.pop()
        doomed.append(current)
        queue.extend(children.get(current, []))
    for victim in doomed:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_killed_deploy_does_not_block_the_next(app, lxd_client):
    app.ok("app_deploy", ref="v1")
    marker = f"/tmp/{app.name}-killed"
    doomed = run_async(app, "v2", deploy_script=f"touch {marker}; sleep 300")
    wait_for(lxd_client, app.container, f"test -f {marker}")
    kill_tree(doomed.pid)
    doomed.wait(timeout=30)
    # The deploy script went down with its deploy, not left running in the container.
    wait_for(lxd_client, app.container, "! grep -qs 'slee[p] 300' /proc/[0-9]*/cmdline", timeout=30)
    assert app.serving() == "v1"
    after = app.deploy("v3", lock_timeout=30)
    assert after["changed"] and app.serving() == "v3"


def test_restore_from_a_backup(app):
    app.ok("app_deploy", ref="v1")
    app.ok("app_deploy", ref="v2")
    app.ok("app_deploy", ref="v3")
    backups = app.run("app_info")["backups"]
    assert len(backups) == 2
    restored = app.run("app_restore", backup=backups[0]["name"])
    assert restored["changed"] and app.serving() == "v1"
    assert restored["deploy_step"] == "npm"


def hostile_archive(kind):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        good = tarfile.TarInfo("./server.js")
        good.size = 3
        archive.addfile(good, io.BytesIO(b"x=1"))
        if kind == "dotdot":
            evil = tarfile.TarInfo("../../../../tmp/dpltest-escaped")
            evil.size = 4
            archive.addfile(evil, io.BytesIO(b"evil"))
        elif kind == "absolute-symlink":
            evil = tarfile.TarInfo("./etc-link")
            evil.type, evil.linkname = tarfile.SYMTYPE, "/etc"
            archive.addfile(evil)
        elif kind == "device":
            evil = tarfile.TarInfo("./null")
            evil.type, evil.devmajor, evil.devminor = tarfile.CHRTYPE, 1, 3
            archive.addfile(evil)
    return buffer.getvalue()


@pytest.mark.parametrize("kind, problem", [
    ("dotdot", "path leaves the release"),
    ("absolute-symlink", "symbolic link points outside the release (/etc)"),
    ("device", "device, fifo or other special file"),
])
def test_restore_refuses_a_hostile_archive(app, lxd_client, kind, problem):
    app.ok("app_deploy", ref="v1")
    name = f"20260101T000000Z-{kind}.tar.gz"
    lxd_client.push_file(app.container, f"/root/backups/tests/{app.name}/{name}", hostile_archive(kind))
    failed = app.run("app_restore", backup=name)
    assert failed["failed_step"] == "restore"
    assert "the backup archive is unsafe, nothing was extracted" in failed["msg"] and problem in failed["msg"]
    assert lxd_client.execute(app.container, ["test", "-e", "/tmp/dpltest-escaped"])[0] != 0
    assert app.serving() == "v1"
    assert len(app.run("app_info")["releases"]) == 1


def test_a_broken_start_command_for_the_live_commit_is_put_back(app):
    app.ok("app_deploy", ref="v1")
    failed = app.deploy("v1", start_command="node no-such-file.js")
    assert failed["failed_step"] == "start"
    assert "switched back to" in failed["rolled_back"]
    assert app.serving() == "v1"
    # The service files are the old ones again: the same deploy as before changes nothing.
    assert app.ok("app_deploy", ref="v1")["changed"] is False


def port_answers(address, port):
    try:
        with urllib.request.urlopen(f"http://{address}:{port}/", timeout=3) as response:
            return json.load(response)["version"]
    except OSError:
        return None


def test_remove_takes_everything_but_the_backups_and_frees_the_port(app, box, repos, tmp_path, lxd_client):
    app.ok("app_deploy", ref="v1")
    app.ok("app_deploy", ref="v2")
    unit = f"dpl-tests_{app.name}.service"
    backups = f"/root/backups/tests/{app.name}"
    gone = [f"/etc/systemd/system/{unit}", f"/etc/systemd/system/multi-user.target.wants/{unit}",
            f"/etc/dpl/apps/tests_{app.name}.env", f"/etc/dpl/apps/tests_{app.name}.start",
            f"/root/apps/tests/{app.name}", f"/root/apps/tests/.releases/{app.name}",
            f"/root/deploy/tests/{app.name}", f"/root/deploy/tests/.{app.name}.lock"]
    for path in gone[:3]:
        assert lxd_client.execute(app.container, ["test", "-e", path])[0] == 0, path

    planned = app.run("app_remove", check=True)
    assert planned["changed"] and set(planned["removed"]) <= set(gone)
    assert app.serving() == "v2", "check mode must not touch the app"

    removed = app.ok("app_remove")
    assert removed["changed"] and removed["kept_backups"] == backups
    assert sh(lxd_client, app.container, f"systemctl is-active {unit} || true").strip() == "inactive"
    assert sh(lxd_client, app.container, f"systemctl is-enabled {unit} 2>&1 || true").strip() != "enabled"
    assert port_answers(app.address, app.params["port"]) is None, "the old process still answers"
    left = [path for path in gone if lxd_client.execute(app.container, ["test", "-e", path])[0] == 0]
    assert left == []
    assert sh(lxd_client, app.container, f"ls {backups}").split() != [], "the backups must stay"
    assert app.ok("app_remove")["changed"] is False

    # A new app on the freed port deploys, passes its own health check, and answers itself.
    newcomer = App(tmp_path, app.container, app.address, repos[1], app.params["port"])
    assert newcomer.ok("app_deploy", ref="v3")["changed"]
    assert port_answers(app.address, app.params["port"]) == "v3"


@pytest.mark.parametrize("branch", ["master", "trunk"])
def test_without_a_ref_the_repositorys_default_branch_is_deployed(app, tmp_path, branch):
    repo = AppRepo(tmp_path / "repos", f"only-{branch}", default_branch=branch)
    repo.commit("first", app_files(f"{branch}-1"))
    daemon = GitDaemon(tmp_path / "repos")
    try:
        app.params["repo"] = daemon.url(repo)
        first = app.ok("app_deploy")
        assert (first["ref"], first["default_branch"], first["commit"]) == (branch, branch, repo.commits["first"])
        assert app.serving() == f"{branch}-1"
        # Asked again at each deploy: a new commit on the default branch is what goes live.
        repo.commit("second", app_files(f"{branch}-2"))
        assert app.ok("app_deploy")["commit"] == repo.commits["second"]
        assert app.serving() == f"{branch}-2"
        info = app.run("app_info")
        assert [release["ref"] for release in info["releases"]] == [branch, branch]
        missing = app.deploy("main")
        assert missing["failed_step"] == "fetch" and f"(its branches: {branch})" in missing["msg"]
    finally:
        daemon.stop()
