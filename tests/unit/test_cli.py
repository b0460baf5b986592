"""The ``dpl`` command line: round trips, JSON output, exit codes, and secrets never shown.

Commands run in-process through ``dpl_web.cli.main(argv)``; two run as the installed
``dpl`` script. Every test has its own registry (DPL_REGISTRY points into tmp_path).
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dpl_web import cli
from dpl_web.errors import Unauthorized
from dpl_web.jobs import worker
from dpl_web.registry import Registry

REPO = "https://git.example.com/shop/web.git"
DPL = str(Path(sys.executable).parent / "dpl")


class Run:
    """Call ``dpl`` in-process; keep the exit code, stdout and stderr."""

    def __init__(self, capsys):
        self.capsys = capsys

    def __call__(self, *argv: str, stdin: str | None = None, expect: int = 0):
        if stdin is not None:
            self.stdin(stdin)
        code = cli.main(list(argv))
        out, err = self.capsys.readouterr()
        assert code == expect, f"dpl {' '.join(argv)} exited {code}, expected {expect}\n{out}\n{err}"
        self.out, self.err = out, err
        return self

    def stdin(self, text: str) -> None:
        sys.stdin = io.StringIO(text)

    @property
    def json(self):
        return json.loads(self.out)


@pytest.fixture
def dpl(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    return Run(capsys)


@pytest.fixture
def ready(dpl):
    dpl("init")
    dpl("container", "add", "web1")
    return dpl


# -- init ----------------------------------------------------------------------------------


def test_init_creates_then_reports_no_change(dpl, registry_path):
    first = dpl("--json", "init").json
    assert first["created"] is True and first["changed"] is True and first["host_changed"] is True
    assert first["path"] == str(registry_path) and first["host"]["endpoint"] == "unix:"
    second = dpl("--json", "init").json
    assert second["changed"] is False and second["created"] is False and second["migrated"] is False


def test_init_sets_the_local_hosts_network(dpl):
    dpl("init")
    report = dpl("init", "--json", "--bridge", "dplbr1", "--bridge-ipv4", "10.99.0.1/24",
                 "--public-ipv4", "203.0.113.9").json
    assert report["changed"] is True
    assert (report["host"]["bridge"], report["host"]["bridge_ipv4"], report["host"]["public_ipv4"]) == (
        "dplbr1", "10.99.0.1/24", "203.0.113.9")
    assert dpl("--json", "init", "--bridge", "dplbr1").json["changed"] is False
    dpl("init", "--bridge-ipv4", "10.99.0.0/24", expect=4)


def test_init_migrates_a_v1_registry(dpl, registry_path):
    import sqlite3

    conn = sqlite3.connect(registry_path)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    report = dpl("--json", "init").json
    assert report["migrated"] is True and report["changed"] is True and report["schema_version"] >= 2


def test_init_text_output(dpl, registry_path):
    assert f"registry {registry_path}: created" in dpl("init").out
    assert "up to date" in dpl("init").out


# -- hosts ---------------------------------------------------------------------------------


def test_host_round_trip(dpl):
    dpl("init")
    added = dpl("--json", "host", "add", "remote", "--endpoint", "https://lxd.example.com:8443",
                "--client-cert", "/etc/dpl/c.crt", "--client-key", "/etc/dpl/c.key", "--server-cert", "/etc/dpl/s.crt",
                "--public-ipv4", "203.0.113.20", "--bridge-ipv4", "10.220.0.1/24").json
    assert added["changed"] is True and added["host"]["endpoint"] == "https://lxd.example.com:8443"
    assert [h["name"] for h in dpl("host", "list", "--json").json["hosts"]] == ["local", "remote"]
    assert "https://lxd.example.com:8443" in dpl("host", "list").out
    assert dpl("host", "show", "remote", "--json").json["host"]["public_ipv4"] == "203.0.113.20"
    edited = dpl("--json", "host", "edit", "remote", "--public-ipv4", "").json
    assert edited["changed"] is True and edited["host"]["public_ipv4"] is None
    assert dpl("--json", "host", "edit", "remote", "--bridge", "dplbr0").json["changed"] is False
    assert dpl("--json", "host", "remove", "remote").json["removed"]["hosts"] == ["remote"]
    dpl("host", "show", "remote", expect=5)


def test_https_host_without_certificates_is_refused(dpl):
    dpl("init")
    dpl("host", "add", "remote", "--endpoint", "https://lxd.example.com:8443", expect=4)
    assert "client_cert, client_key and server_cert" in dpl.err


# -- containers ----------------------------------------------------------------------------


def test_container_round_trip(ready):
    dpl = ready
    added = dpl("--json", "container", "add", "web2", "--memory", "1GiB", "--cpu", "2", "--profile", "default",
                "--profile", "dpl", "--notes", "second").json["container"]
    assert added["ipv4"] == "10.210.0.11" and added["limits"]["memory"] == "1GiB"
    assert added["profiles"] == ["default", "dpl"]
    listing = dpl("container", "list").out
    assert "web1" in listing and "10.210.0.11" in listing and "memory=1GiB" in listing
    assert dpl("container", "show", "web2", "--json").json["container"]["notes"] == "second"
    edited = dpl("--json", "container", "edit", "web2", "--memory", "").json
    assert edited["changed"] is True and edited["container"]["limits"]["memory"] is None
    status = dpl("--json", "container", "set-status", "web2", "Running").json
    assert status["changed"] is True and status["container"]["status"] == "Running"
    assert dpl("--json", "container", "set-status", "web2", "Running").json["changed"] is False
    dpl("container", "remove", "web2")
    assert "removed containers: web2" in dpl.out


def test_container_errors_have_their_exit_codes(ready):
    dpl = ready
    dpl("container", "add", "web1", expect=6)
    assert "already exists" in dpl.err
    dpl("container", "add", "web2", "--ipv4", "10.210.0.10", expect=6)
    dpl("container", "add", "web2", "--host", "nope", expect=5)
    assert "dpl host list" in dpl.err
    dpl("container", "add", "Web2", expect=4)
    dpl("container", "add", "web2", "--memory", "lots", expect=4)
    dpl("container", "show", "nope", expect=5)
    assert [c["name"] for c in dpl("--json", "container", "list").json["containers"]] == ["web1"]


def test_remove_with_children_needs_cascade(ready):
    dpl = ready
    dpl("app", "add", "shop/web", "--repo", REPO, "--container", "web1")
    dpl("container", "remove", "web1", expect=6)
    assert "--cascade" in dpl.err
    dpl("project", "remove", "shop", expect=6)
    removed = dpl("--json", "container", "remove", "web1", "--cascade").json["removed"]
    assert removed == {"containers": ["web1"], "projects": ["shop"], "apps": ["shop/web"]}


# -- projects ------------------------------------------------------------------------------


def test_project_round_trip(ready):
    dpl = ready
    dpl("container", "add", "web2")
    assert dpl("--json", "project", "add", "shop", "--container", "web1").json["project"]["container"] == "web1"
    dpl("project", "add", "shop", "--container", "web2", expect=6)
    dpl("project", "add", "blog", "--container", "nope", expect=5)
    assert "shop" in dpl("project", "list").out
    assert dpl("project", "list", "--container", "web2", "--json").json["projects"] == []
    assert dpl("--json", "project", "edit", "shop", "--container", "web2").json["project"]["container"] == "web2"
    assert dpl("--json", "project", "show", "shop").json["project"]["apps"] == []
    dpl("project", "remove", "shop")
    dpl("project", "show", "shop", expect=5)


# -- apps ----------------------------------------------------------------------------------


def test_app_round_trip_with_options(ready):
    dpl = ready
    app = dpl("--json", "app", "add", "shop/web", "--repo", REPO, "--container", "web1", "--ref", "v1.2",
              "--port", "4000", "--domain", "shop.example.com", "--domain", "www.shop.example.com",
              "--start", "node server.js", "--deploy-script", "scripts/deploy.sh", "--env", "NODE_ENV=production",
              "--env", "EMPTY=", "--secret", "DB_PASSWORD=hunter2", "--health-path", "/healthz",
              "--keep-releases", "3", "--keep-backups", "7").json["app"]
    assert (app["ref"], app["port"], app["start_command"], app["deploy_script"], app["health_path"]) == (
        "v1.2", 4000, "node server.js", "scripts/deploy.sh", "/healthz")
    assert app["domains"] == ["shop.example.com", "www.shop.example.com"]
    assert app["env"] == {"EMPTY": "", "NODE_ENV": "production"} and app["secret_env"] == ["DB_PASSWORD"]
    assert (app["keep_releases"], app["keep_backups"]) == (3, 7)

    listing = dpl("app", "list").out
    assert "shop/web" in listing and "4000" in listing
    assert [a["name"] for a in dpl("--json", "app", "list", "--container", "web1").json["apps"]] == ["web"]

    edited = dpl("--json", "app", "edit", "shop/web", "--add-domain", "api.shop.example.com", "--remove-domain",
                 "www.shop.example.com", "--deploy-script", "", "--unset-env", "EMPTY", "--record-only").json
    assert edited["changed"] is True
    assert edited["app"]["domains"] == ["shop.example.com", "api.shop.example.com"]
    assert edited["app"]["deploy_script"] is None and "EMPTY" not in edited["app"]["env"]
    assert dpl("--json", "app", "edit", "shop/web", "--ref", "v1.2").json["changed"] is False
    assert dpl("--json", "app", "edit", "shop/web", "--domain", "only.example.com",
               "--record-only").json["app"]["domains"] == ["only.example.com"]
    dpl("app", "edit", "shop/web", "--remove-domain", "nope.example.com", expect=5)
    dpl("app", "remove", "shop/web", "--record-only")
    dpl("app", "show", "shop/web", expect=5)


def test_secrets_are_never_printed(ready):
    dpl = ready
    dpl("app", "add", "shop/web", "--repo", REPO, "--container", "web1", "--secret", "DB_PASSWORD=hunter2",
        "--env", "PLAIN=visible")
    outputs = [dpl("app", "show", "shop/web").out, dpl("--json", "app", "show", "shop/web").out,
               dpl("app", "list").out, dpl("--json", "app", "list").out,
               dpl("--json", "app", "edit", "shop/web", "--secret", "DB_PASSWORD=hunter3").out]
    for output in outputs:
        assert "hunter" not in output
    assert "DB_PASSWORD=******** (secret)" in outputs[0] and "PLAIN=visible" in outputs[0]
    # A secret that changed is a change, though its value is not shown.
    assert json.loads(outputs[4])["changed"] is True
    # A refused secret is not echoed in the error either.
    dpl("--json", "app", "edit", "shop/web", "--secret", "DB_PASSWORD=hunter4\x00", expect=4)
    assert "hunter" not in dpl.out + dpl.err and dpl.json["error"]["value"] == "********"
    with Registry.open() as reg:
        assert reg.get_secret("shop", "web", "DB_PASSWORD") == "hunter3"


def test_secret_value_from_standard_input(ready):
    dpl = ready
    dpl("app", "add", "shop/web", "--repo", REPO, "--container", "web1", "--secret", "A", "--secret", "B",
        stdin="first value\nsecond value\n")
    with Registry.open() as reg:
        assert reg.app_secrets("shop", "web") == {"A": "first value", "B": "second value"}


def test_app_from_json_file_in_the_seed_shape(ready, tmp_path):
    dpl = ready
    dpl("project", "add", "shop", "--container", "web1")
    request = tmp_path / "app.json"
    request.write_text(json.dumps({
        "name": "web", "project": "shop", "repo": REPO, "ref": "main", "port": 4000, "domain": "shop.example.com",
        "start": "npm run serve", "env": {"NODE_ENV": "production", "DB_PASSWORD": {"value": "s3cr3t", "secret": True}},
    }))
    app = dpl("--json", "app", "add", "--from-json", str(request)).json["app"]
    assert app["port"] == 4000 and app["domains"] == ["shop.example.com"] and app["start_command"] == "npm run serve"
    assert app["env"] == {"NODE_ENV": "production"} and app["secret_env"] == ["DB_PASSWORD"]
    assert "s3" not in dpl.out


def test_app_from_json_on_standard_input(ready):
    dpl = ready
    request = json.dumps({"name": "web", "project": "shop", "repo": REPO})
    dpl("app", "add", "--from-json", "-", stdin=request, expect=5)
    assert "dpl project add NAME --container CONTAINER" in dpl.err and "--container with the app" in dpl.err
    app = dpl("--json", "app", "add", "--from-json", "-", "--container", "web1", stdin=request).json["app"]
    assert (app["project"], app["name"], app["container"]) == ("shop", "web", "web1")
    # The container may come with the request too.
    dpl("container", "add", "web2")
    request = json.dumps({"name": "site", "project": "blog", "repo": REPO, "container": "web2"})
    # Two different containers: a rule of the service, so the same refusal for every client.
    dpl("app", "add", "--from-json", "-", "--container", "web1", stdin=request, expect=4)
    assert "differs from the container asked for (web1)" in dpl.err
    app = dpl("--json", "app", "add", "--from-json", "-", stdin=request).json["app"]
    assert (app["project"], app["container"]) == ("blog", "web2")


def test_app_from_bad_json(ready, tmp_path):
    dpl = ready
    dpl("app", "add", "--from-json", "-", stdin="{not json", expect=4)
    assert "not valid JSON" in dpl.err
    dpl("app", "add", "--from-json", "-", stdin='{"name": "web", "project": "shop", "repo": "-x"}', expect=4)
    dpl("app", "add", "--from-json", "-", stdin=json.dumps({"name": "web", "project": "shop", "repo": REPO, "x": 1}),
        expect=4)
    dpl("app", "add", "--from-json", str(tmp_path / "missing.json"), expect=1)
    assert "cannot read" in dpl.err


def test_app_usage_errors(ready):
    dpl = ready
    dpl("app", "add", "shop/web", expect=2)
    dpl("app", "add", "shop/web", "--repo", REPO, "--from-json", "-", expect=2)
    dpl("app", "add", "web", "--repo", REPO, "--container", "web1", expect=4)  # not PROJECT/APP
    assert "PROJECT/APP" in dpl.err
    dpl("app", "frobnicate", expect=2)


def test_hostile_values_are_refused_with_field_value_and_rule(ready):
    dpl = ready
    dpl("app", "add", "shop/web", "--repo", REPO, "--container", "web1")
    for option, value in (("--ref", "main;rm -rf /"), ("--domain", "a.example.com;\n}"), ("--repo", "--upload-pack=x"),
                          ("--health-path", "/{{ x }}"), ("--port", "٣٠٠٠"), ("--start", "a\nb"),
                          ("--env", "A-B=1"), ("--keep-releases", "0")):
        error = dpl("--json", "app", "edit", "shop/web", f"{option}={value}", expect=4).json["error"]
        assert error["type"] == "invalid" and error["field"] and error["rule"]
        assert "nothing was changed" in dpl.err
    app = dpl("--json", "app", "show", "shop/web").json["app"]
    assert app["ref"] is None and app["domains"] == [] and app["port"] == 3000


# -- jobs ----------------------------------------------------------------------------------


def test_job_list_and_show(ready):
    dpl = ready
    dpl("app", "add", "shop/web", "--repo", REPO, "--container", "web1")
    with Registry.open() as reg:
        deploy = reg.create_job("deploy", "app/shop/web", "cli:root")
        reg.start_job(deploy)
        reg.finish_job(deploy, "failed", summary="health check failed\nsecond line", log="step 1\nstep 2\n")
        reg.create_job("container-create", "container/web1", "web:admin")
    jobs = dpl("--json", "job", "list").json["jobs"]
    assert [j["kind"] for j in jobs] == ["container-create", "deploy"]
    assert [j["id"] for j in dpl("--json", "job", "list", "--app", "shop/web").json["jobs"]] == [deploy]
    assert len(dpl("--json", "job", "list", "--container", "web1").json["jobs"]) == 2
    assert dpl("--json", "job", "list", "--status", "queued", "--limit", "5").json["jobs"][0]["kind"] == \
        "container-create"
    text = dpl("job", "list").out
    assert "health check failed" in text and "second line" not in text
    shown = dpl("job", "show", str(deploy)).out
    assert "step 2" in shown and "failed" in shown
    assert dpl("--json", "job", "show", str(deploy)).json["job"]["log"] == "step 1\nstep 2\n"
    dpl("job", "show", "999", expect=5)
    dpl("job", "list", "--status", "done", expect=2)


@pytest.fixture
def busy_worker(registry_path):
    """This test holds the worker's lock, as a worker would: jobs stay queued (no worker is
    started for them), and no pid is there to wake."""
    Registry.open(registry_path).close()
    with open(worker.lock_path(registry_path), "w+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def test_detach_queues_and_returns_cancel_and_follow(ready, busy_worker):
    dpl = ready
    dpl("app", "add", "shop/web", "--repo", REPO, "--container", "web1")
    first = dpl("--json", "deploy", "shop/web", "--detach").json
    assert (first["status"], first["replaced"]) == ("queued", [])
    second = dpl("--json", "deploy", "shop/web", "--ref", "v2", "--detach").json
    assert second["replaced"] == [first["job"]]
    assert f"follow it: dpl job follow {second['job'] + 1}" in dpl("deploy", "shop/web", "--detach").out
    replaced = dpl("--json", "job", "show", str(second["job"])).json["job"]
    assert (replaced["status"], replaced["replaced_by"]) == ("canceled", second["job"] + 1)
    canceled = dpl("--json", "job", "cancel", str(second["job"] + 1)).json["job"]
    assert canceled["status"] == "canceled"
    dpl("job", "cancel", str(second["job"] + 1), expect=6)
    assert "already finished" in dpl.err
    # Following a finished job prints its whole stream (one JSON event per line) and its outcome.
    lines = [json.loads(line) for line in dpl("--json", "job", "follow", str(second["job"] + 1), expect=7).out
             .splitlines()]
    assert [event["type"] for event in lines] == ["queued", "finished"] and lines[-1]["status"] == "canceled"
    text = dpl("job", "follow", str(second["job"] + 1), expect=7)
    assert "canceled" in text.out and "job_failed" not in text.out


def test_api_tokens_are_shown_once_and_stored_hashed(ready, registry_path):
    dpl = ready
    made = dpl("--json", "token", "add", "ci", "--scope", "write", "--expires", "30").json
    token = made["token"]
    assert token.startswith("dpl_") and made["record"]["scope"] == "write" and made["record"]["expires_at"]
    assert token not in registry_path.read_bytes().decode("latin-1")
    listed = dpl("--json", "token", "list").json["tokens"]
    assert [t["name"] for t in listed] == ["ci"] and token not in dpl.out
    dpl("token", "add", "ci", expect=6)
    dpl("token", "add", "ro", "--scope", "admin", expect=2)
    assert dpl("--json", "token", "revoke", "ci").json["changed"] is True
    assert dpl("--json", "token", "revoke", "ci").json["changed"] is False
    with Registry.open() as reg, pytest.raises(Unauthorized, match="not valid"):
        reg.check_token(token)
    dpl("token", "revoke", "nope", expect=5)


def test_an_apps_webhook_is_turned_on_rotated_and_off(ready):
    dpl = ready
    dpl("app", "add", "shop/web", "--repo", REPO, "--container", "web1")
    first = dpl("--json", "app", "webhook", "shop/web").json["webhook"]
    assert first["path"] == "/hooks/shop/web" and len(first["secret"]) >= 40
    text = dpl("app", "webhook", "shop/web").out
    assert "/hooks/shop/web" in text and first["secret"] not in text and "shown this once" in text
    with Registry.open() as reg:
        assert reg.webhook_secret("shop", "web") not in (None, first["secret"])
    assert dpl("--json", "app", "webhook", "shop/web", "--off").json["changed"] is True
    assert "was off already" in dpl("app", "webhook", "shop/web", "--off").out
    dpl("app", "webhook", "shop/nope", expect=5)


def test_job_show_strips_terminal_escapes_from_repository_output(ready):
    dpl = ready
    hostile = ("npm ok\x1b]0;pwned title\x07 \x1b]52;c;Y3VybCBldmlsfHNo\x1b\\ \x1b[2J\x1b[31mred\x1b[0m\r\n"
               "fake\rreal\x08\x9b31m\tend\n")
    with Registry.open() as reg:
        job = reg.create_job("deploy", "container/web1", "cli:root")
        reg.start_job(job)
        reg.finish_job(job, "failed", summary="build failed", log=hostile)
    shown = dpl("job", "show", str(job)).out
    assert "\x1b" not in shown and "\r" not in shown and "\x08" not in shown and "\x9b" not in shown
    assert "npm ok" in shown and "red\nfakereal31m\tend" in shown and "build failed" in shown
    assert "pwned title" not in shown and "Y3VybCBldmlsfHNo" not in shown
    # JSON keeps the log as it was recorded: JSON escapes it.
    assert dpl("--json", "job", "show", str(job)).json["job"]["log"] == hostile


def test_a_secret_too_short_to_mask_is_refused_without_being_echoed(ready):
    dpl = ready
    dpl("--json", "app", "add", "shop/web", "--repo", REPO, "--container", "web1", "--secret", "TOKEN=ab7",
        expect=4)
    error = dpl.json["error"]
    assert "at least 4 characters" in error["rule"] and "ab7" not in dpl.out + dpl.err
    dpl("app", "show", "shop/web", expect=5)


# -- the registry itself -------------------------------------------------------------------


def test_commands_refuse_a_missing_registry_and_say_what_to_do(dpl, registry_path):
    dpl("--json", "host", "list", expect=3)
    assert "dpl init" in dpl.err and dpl.json["error"]["type"] == "registry"
    assert not registry_path.exists()


def test_a_corrupt_registry_is_exit_3(dpl, registry_path):
    registry_path.write_bytes(b"\x00garbage" * 1000)
    dpl("container", "list", expect=3)
    assert "not a usable DPL registry" in dpl.err


def test_registry_option_overrides_the_environment(dpl, tmp_path):
    other = tmp_path / "other.sqlite3"
    dpl("--registry", str(other), "init")
    dpl("--registry", str(other), "container", "add", "web1")
    assert other.exists()
    dpl("container", "list", expect=3)  # $DPL_REGISTRY was never created


def test_help_and_usage_exit_codes(dpl):
    dpl("--help")
    assert "exit codes" in dpl.out
    dpl(expect=2)
    dpl("nope", expect=2)


# -- the installed script ------------------------------------------------------------------


def test_installed_dpl_script(registry_path):
    env = dict(os.environ, DPL_REGISTRY=str(registry_path))
    proc = subprocess.run([DPL, "--json", "init"], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["changed"] is True
    proc = subprocess.run([DPL, "--json", "container", "show", "nope"], capture_output=True, text=True, env=env,
                          check=False)
    assert proc.returncode == 5
    assert json.loads(proc.stdout)["error"]["type"] == "not_found"
    assert "container 'nope' does not exist" in proc.stderr


# -- users of the web app ----------------------------------------------------------------------


def test_users_are_added_with_a_password_made_once_and_changed(dpl, tmp_path, registry_path):
    dpl("init")
    saved = tmp_path / "secrets" / "admin-password"
    dpl("user", "add", "admin", "--first", "--save", str(saved))
    assert "admin-password (mode 0600)" in dpl.out and oct(saved.stat().st_mode & 0o777) == "0o600"
    password = saved.read_text().split("password: ")[1].strip()
    assert len(password) >= 20 and password not in dpl.out
    # --first again: there is a user, nothing is done, the file is left as it was.
    assert dpl("--json", "user", "add", "admin", "--first", "--save", str(saved)).json["changed"] is False
    assert saved.read_text().split("password: ")[1].strip() == password
    with Registry.open(registry_path) as reg:
        assert reg.login("admin", password, "test")["name"] == "admin"
    # A user with a password of their own, from stdin; a short one is refused, nothing made.
    dpl("user", "add", "bob", "--password-stdin", stdin="short\n", expect=4)
    assert "12 to 1024 characters" in dpl.err and "short" not in dpl.err
    dpl("user", "add", "bob", "--password-stdin", stdin="bobs-own-long-password\n")
    made = dpl("--json", "user", "passwd", "bob").json["password"]
    with Registry.open(registry_path) as reg:
        with pytest.raises(Unauthorized):
            reg.login("bob", "bobs-own-long-password", "test")
        assert reg.login("bob", made, "test")["name"] == "bob"
    assert [user["name"] for user in dpl("--json", "user", "list").json["users"]] == ["admin", "bob"]
    dpl("user", "remove", "bob")
    assert [user["name"] for user in dpl("--json", "user", "list").json["users"]] == ["admin"]
    dpl("user", "remove", "bob", expect=5)
    assert password not in dpl("audit").out and made not in dpl.out
