"""Push webhooks through Flask's test client, signed as GitHub, Gitea/Forgejo and GitLab sign
them: a good call queues a deploy (one: a second push replaces it while queued); a bad,
missing or replayed signature, another branch, an app whose webhook is off are refused or
ignored, and queue nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

import pytest

from dpl_web import create_app, services

REPO = "https://git.example.com/shop/web.git"


@pytest.fixture
def client(reg, registry_path):
    return create_app({"REGISTRY": str(registry_path), "START_WORKER": False, "TESTING": True}).test_client()


@pytest.fixture
def secret(ctx, stocked):
    stocked.update_app("shop", "web", ref="main")
    return services.set_webhook(ctx, "shop/web").record["secret"]


def push(branch="main", default="main"):
    return json.dumps({"ref": f"refs/heads/{branch}", "after": "a" * 40,
                       "repository": {"default_branch": default}}).encode()


def signed(forge, body, secret, event="push", delivery=None):
    delivery = delivery or str(uuid.uuid4())
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if forge == "github":
        return {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Event": event, "X-GitHub-Delivery": delivery}
    if forge == "gitea":
        return {"X-Gitea-Signature": digest, "X-Gitea-Event": event, "X-Gitea-Delivery": delivery}
    if forge == "forgejo":
        return {"X-Forgejo-Signature": digest, "X-Forgejo-Event": event, "X-Forgejo-Delivery": delivery}
    return {"X-Gitlab-Token": secret, "X-Gitlab-Event": "Push Hook" if event == "push" else event,
            "X-Gitlab-Event-UUID": delivery}


def deploys(reg):
    return [job for job in reg.list_jobs(kind="deploy") if job["status"] == "queued"]


@pytest.mark.parametrize("forge", ["github", "gitea", "forgejo", "gitlab"])
def test_a_signed_push_to_the_apps_branch_queues_one_deploy(client, stocked, secret, forge):
    body = push()
    started = time.monotonic()
    answer = client.post("/hooks/shop/web", data=body, headers=signed(forge, body, secret))
    assert time.monotonic() - started < 1
    assert answer.status_code == 202, answer.get_json()
    assert answer.get_json()["status"] == "queued" and answer.get_json()["commit"] == "a" * 40
    first = deploys(stocked)
    assert [job["who"] for job in first] == ["webhook"]
    # A second push while the first deploy waits: it replaces it (the newest wins).
    again = client.post("/hooks/shop/web", data=body, headers=signed(forge, body, secret)).get_json()
    assert again["replaced"] == [first[0]["id"]] and len(deploys(stocked)) == 1


@pytest.mark.parametrize("forge", ["github", "gitea", "gitlab"])
def test_a_bad_or_missing_signature_is_refused_and_queues_nothing(client, stocked, secret, forge):
    body = push()
    bad = client.post("/hooks/shop/web", data=body, headers=signed(forge, body, "not-the-secret"))
    assert bad.status_code == 401 and bad.get_json()["error"]["code"] == "unauthorized"
    tampered = client.post("/hooks/shop/web", data=push("main") + b" ", headers=signed(forge, body, secret))
    assert tampered.status_code == (202 if forge == "gitlab" else 401)  # GitLab signs nothing: its token is all
    stocked.conn.execute("DELETE FROM job")
    assert client.post("/hooks/shop/web", data=body).status_code == 401
    assert deploys(stocked) == []


def test_a_replayed_delivery_is_ignored(client, stocked, secret):
    body = push()
    headers = signed("github", body, secret, delivery="d-1")
    assert client.post("/hooks/shop/web", data=body, headers=headers).status_code == 202
    replayed = client.post("/hooks/shop/web", data=body, headers=headers)
    assert replayed.status_code == 200 and "received before" in replayed.get_json()["reason"]
    assert len(stocked.list_jobs(kind="deploy")) == 1


def test_a_push_to_another_branch_or_a_tag_or_a_ping_is_acknowledged_and_ignored(client, stocked, secret):
    for body, event in ((push("feature"), "push"), (json.dumps({"ref": "refs/tags/v1"}).encode(), "push"),
                        (b"{}", "ping")):
        answer = client.post("/hooks/shop/web", data=body, headers=signed("github", body, secret, event=event))
        assert answer.status_code == 200 and answer.get_json()["status"] == "ignored", answer.get_json()
    assert stocked.list_jobs(kind="deploy") == []


def test_an_app_on_the_default_branch_deploys_pushes_to_the_one_the_forge_names(client, stocked, ctx, secret):
    stocked.update_app("shop", "web", ref=None)
    body = push("trunk", default="trunk")
    assert client.post("/hooks/shop/web", data=body, headers=signed("gitea", body, secret)).status_code == 202
    other = push("main", default="trunk")
    assert client.post("/hooks/shop/web", data=other, headers=signed("gitea", other, secret)).status_code == 200


def test_no_secret_no_webhook_and_rotation_retires_the_old_secret(client, stocked, ctx, secret):
    body = push()
    new = services.set_webhook(ctx, "shop/web").record["secret"]
    assert client.post("/hooks/shop/web", data=body, headers=signed("github", body, secret)).status_code == 401
    assert client.post("/hooks/shop/web", data=body, headers=signed("github", body, new)).status_code == 202
    assert services.remove_webhook(ctx, "shop/web").changed
    off = client.post("/hooks/shop/web", data=body, headers=signed("github", body, new))
    assert off.status_code == 403 and off.get_json()["error"]["code"] == "forbidden"
    never = client.post("/hooks/blog/site", data=body, headers=signed("github", body, new))
    assert never.status_code == 403
    assert client.post("/hooks/shop/nope", data=body, headers=signed("github", body, new)).status_code == 404
    assert new not in json.dumps(stocked.list_jobs()) and secret not in off.get_data(as_text=True)


def test_deliveries_are_forgotten_after_a_month(stocked, secret):
    assert stocked.record_delivery("shop", "web", "old")
    stocked.conn.execute("UPDATE webhook_delivery SET received_at = '2020-01-01T00:00:00Z'")
    assert stocked.record_delivery("shop", "web", "new")
    left = [row[0] for row in stocked.conn.execute("SELECT delivery FROM webhook_delivery")]
    assert left == ["new"]
    assert stocked.record_delivery("shop", "web", "new") is False
