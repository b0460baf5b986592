"""The audit trail: every change and action through the services is recorded with who asked
for it, what and the job it queued; nothing that changed nothing; never a value (a value
may be a secret). Shown by `dpl audit` and GET /api/v1/audit."""

from __future__ import annotations

import json

from dpl_web import cli, create_app, services

REPO = "https://git.example.com/shop/web.git"
SECRET = "audit-canary-s3cret"


def trail(reg):
    return [(e["who"], e["action"], e["target"]) for e in reversed(reg.list_audit())]


def test_changes_and_actions_are_recorded_with_who_asked(reg, registry_path):
    alice = services.Context(registry_path, "alice", start_worker=False)
    bob = services.Context(registry_path, "token:ci", start_worker=False)
    services.record_container(alice, "web1")
    services.add_app(alice, "shop/web", REPO, container="web1", secret_env={"TOKEN": SECRET})
    services.edit_app(bob, "shop/web", keep_backups=9, secret_env={"TOKEN": SECRET + "2"})
    services.edit_app(bob, "shop/web", keep_backups=9)  # changes nothing: not recorded
    job = services.deploy(bob, "shop/web", ref="v2").job
    services.cancel_job(alice, job["id"])
    services.deploy_request(alice, {"name": "api", "project": "shop", "repo": REPO, "port": 4000})
    services.add_token(alice, "ci", "write")
    assert trail(reg) == [
        ("alice", "container.record", "container/web1"), ("alice", "app.add", "app/shop/web"),
        ("token:ci", "app.edit", "app/shop/web"), ("token:ci", "app.deploy", "app/shop/web"),
        ("alice", "job.cancel", f"job/{job['id']}"), ("alice", "app.request", "app/shop/api"),
        ("alice", "app.deploy", "app/shop/api"), ("alice", "token.add", "token/ci")]
    entries = reg.list_audit()
    edit = next(e for e in entries if e["action"] == "app.edit")
    assert edit["detail"] == {"fields": ["keep_backups", "secret_env"]}
    assert next(e for e in entries if e["action"] == "app.deploy" and e["target"] == "app/shop/web")["job"] == job["id"]
    text = json.dumps(entries)
    assert SECRET not in text and "dpl_" not in text  # no secret value, no token
    assert [e["target"] for e in reg.list_audit(target="app/shop")] == [
        "app/shop/api", "app/shop/api", "app/shop/web", "app/shop/web", "app/shop/web"]
    assert [e["action"] for e in reg.list_audit(who="token:ci")] == ["app.deploy", "app.edit"]
    assert reg.list_audit(target="app/sho") == []  # a prefix of a name is not the name


def test_the_cli_and_the_api_show_it(reg, registry_path, capsys):
    services.record_container(services.Context(registry_path, "alice", start_worker=False), "web1")
    token = reg.add_token("reader", "read")[1]
    assert cli.main(["audit"]) == 0
    assert "container.record" in capsys.readouterr().out
    client = create_app({"REGISTRY": str(registry_path), "START_WORKER": False}).test_client()
    answer = client.get("/api/v1/audit?target=container/web1", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    assert [(e["who"], e["action"]) for e in answer.get_json()["audit"]] == [("alice", "container.record")]
