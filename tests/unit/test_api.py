"""The JSON API through Flask's test client: tokens and scopes, JSON errors with the error
table's statuses, the records, the simple deploy request (queued, not run: no worker), a
job's events by cursor and as server-sent events, and the OpenAPI document: every route is
in it, and every answer these tests receive validates against it."""

from __future__ import annotations

import json

import jsonschema
import pytest

from dpl_web import api, create_app
from dpl_web.registry import Registry

REPO = "https://git.example.com/shop/web.git"
SECRET = "canary-s3cret-value"


@pytest.fixture
def app(reg, registry_path):
    return create_app({"REGISTRY": str(registry_path), "START_WORKER": False, "TESTING": True})


@pytest.fixture
def tokens(reg):
    return {scope: reg.add_token(f"{scope}-token", scope)[1] for scope in ("read", "write")}


@pytest.fixture
def call(app, tokens):
    """Call the API with a token (write unless told), and check the answer against the
    OpenAPI document: its status is the route's or an error's, its body the declared schema."""
    client = app.test_client()
    document = client.get("/api/v1/openapi.json", headers={"Authorization": f"Bearer {tokens['read']}"}).get_json()

    def request(method, path, json_body=None, token="write", expect=None, raw=None, headers=None, **kwargs):
        headers = dict(headers or {})
        if token in tokens:
            headers["Authorization"] = f"Bearer {tokens[token]}"
        elif token:
            headers["Authorization"] = token
        response = client.open(path, method=method, json=json_body, data=raw, headers=headers, **kwargs)
        if expect is not None:
            assert response.status_code == expect, response.get_data(as_text=True)
        check(document, method, path.split("?")[0], response)
        return response

    request.document = document
    return request


def check(document, method, path, response):
    """The answer validates against the route's schema (or the error schema)."""
    if response.mimetype != "application/json":
        return
    operation = None
    for template, operations in document["paths"].items():
        parts, actual = template.split("/"), path.split("/")
        if len(parts) == len(actual) and all(p == a or p.startswith("{") for p, a in zip(parts, actual, strict=True)):
            operation = operations.get(method.lower(), operation)
    if operation is None:
        assert response.status_code in (404, 405)
        return
    declared = operation["responses"].get(str(response.status_code)) if response.status_code < 400 else None
    schema = (declared or operation["responses"]["default"])["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator({**document, **schema}).validate(response.get_json())


# -- auth --------------------------------------------------------------------------------------


def test_every_route_needs_a_valid_token(call, reg, tokens):
    for token in (None, "Bearer", "Bearer nope", "Basic abc", "Bearer dpl_" + "x" * 40):
        answer = call("GET", "/api/v1/hosts", token=token, expect=401)
        assert answer.get_json()["error"]["code"] == "unauthorized"
    reg.revoke_token("write-token")
    call("GET", "/api/v1/hosts", token="write", expect=401)
    reg.conn.execute("UPDATE api_token SET expires_at = '2020-01-01T00:00:00Z' WHERE name = 'read-token'")
    call("GET", "/api/v1/hosts", token="read", expect=401)


def test_a_read_token_looks_and_may_not_change(call):
    assert call("GET", "/api/v1/hosts", token="read", expect=200).get_json()["hosts"][0]["name"] == "local"
    refused = call("POST", "/api/v1/projects", {"name": "shop", "container": "web1"}, token="read", expect=403)
    assert refused.get_json()["error"]["code"] == "forbidden"


# -- records and errors -------------------------------------------------------------------------


def test_records_through_the_api_and_errors_with_the_tables_statuses(call, reg):
    reg.add_container("web1")
    call("POST", "/api/v1/projects", {"name": "shop", "container": "web1"}, expect=201)
    refused = call("POST", "/api/v1/projects", {"name": "Bad Name", "container": "web1"}, expect=422)
    error = refused.get_json()["error"]
    assert (error["code"], error["field"], error["value"]) == ("invalid", "project", "Bad Name") and error["rule"]
    assert call("POST", "/api/v1/projects", {"name": "shop", "container": "web1"}, expect=409).get_json()[
        "error"]["code"] == "conflict"
    assert call("GET", "/api/v1/projects/nope", expect=404).get_json()["error"]["kind"] == "project"
    call("POST", "/api/v1/projects", raw="not json", content_type="application/json", expect=400)
    call("POST", "/api/v1/projects", raw="[1, 2]", content_type="application/json", expect=400)

    app = call("POST", "/api/v1/apps", {"name": "web", "project": "shop", "repo": REPO, "port": 4000,
                                        "env": {"TOKEN": {"value": SECRET, "secret": True}, "MODE": "prod"}},
               expect=201).get_json()["app"]
    assert (app["port"], app["env"], app["secret_env"]) == (4000, {"MODE": "prod"}, ["TOKEN"])
    shown = call("GET", "/api/v1/apps/shop/web", expect=200)
    assert SECRET not in shown.get_data(as_text=True)
    edited = call("PATCH", "/api/v1/apps/shop/web", {"keep_backups": 10, "notes": "hi"}, expect=200).get_json()
    assert edited["changed"] and edited["app"]["keep_backups"] == 10
    bad = call("PATCH", "/api/v1/apps/shop/web", {"secret_env": {"TOKEN": "ab"}}, expect=422).get_json()["error"]
    assert bad["value"] == "********"
    call("PATCH", "/api/v1/apps/shop/web", {"colour": "blue"}, expect=422)
    domains = call("PATCH", "/api/v1/apps/shop/web", {"add_domains": ["shop.example.com"]}, expect=202).get_json()
    assert domains["job"]["kind"] == "app-domains" and domains["app"]["domains"] == ["shop.example.com"]
    assert call("GET", "/api/v1/apps?project=shop", expect=200).get_json()["apps"][0]["name"] == "web"
    assert call("GET", "/api/v1/containers/web1", expect=200).get_json()["container"]["projects"] == ["shop"]
    call("DELETE", "/api/v1/projects/shop", expect=409)
    removed = call("DELETE", "/api/v1/apps/shop/web?record_only=1", expect=200).get_json()
    assert removed["removed"] == {"apps": ["shop/web"]}
    call("GET", "/api/v1/nothing-here", expect=404)
    call("PUT", "/api/v1/hosts", expect=405)


# -- jobs ----------------------------------------------------------------------------------------


def test_the_simple_deploy_request_queues_a_deploy_and_its_events_follow_by_cursor(call, reg):
    answer = call("POST", "/api/v1/deploy", {"name": "pixel-sushi", "project": "pixel-sushi", "repo": REPO},
                  expect=202).get_json()
    job = answer["job"]
    assert answer["url"] == f"/api/v1/jobs/{job['id']}" and job["kind"] == "deploy"
    assert [j["kind"] for j in reversed(reg.list_jobs())] == ["container-create", "deploy"]
    first = call("GET", answer["url"], expect=200).get_json()
    assert [e["type"] for e in first["events"]] == ["queued"] and first["next"] == 1 and not first["done"]
    assert call("GET", f"{answer['url']}?after=1", expect=200).get_json()["events"] == []
    again = call("POST", "/api/v1/apps/pixel-sushi/pixel-sushi/deploy", {"ref": "v2"}, expect=202).get_json()
    assert again["replaced"] == [job["id"]]
    canceled = call("POST", f"/api/v1/jobs/{again['job']['id']}/cancel", expect=200).get_json()["job"]
    assert canceled["status"] == "canceled"
    call("POST", f"/api/v1/jobs/{again['job']['id']}/cancel", expect=409)
    jobs = call("GET", "/api/v1/jobs?status=canceled", expect=200).get_json()["jobs"]
    assert {j["id"] for j in jobs} == {job["id"], again["job"]["id"]}
    call("GET", "/api/v1/jobs/99999", expect=404)


def test_a_jobs_events_as_server_sent_events_resume_at_last_event_id(call, reg):
    reg.add_container("web1")
    reg.add_app("shop", "web", REPO, container="web1")
    job = reg.create_job("deploy", "app/shop/web", "tester")
    reg.claim_jobs("w:1", 1)
    reg.add_job_event(job, "task", {"task": "Deploy the app"})
    reg.finish_job(job, "successful", summary="done")
    stream = call("GET", f"/api/v1/jobs/{job}/stream", expect=200, buffered=True)
    assert stream.mimetype == "text/event-stream" and stream.headers["X-Accel-Buffering"] == "no"
    blocks = [block for block in stream.get_data(as_text=True).split("\n\n") if block.startswith("id:")]
    assert [block.splitlines()[0] for block in blocks] == ["id: 1", "id: 2", "id: 3", "id: 4"]
    assert json.loads(blocks[-1].splitlines()[2][len("data: "):])["status"] == "successful"
    resumed = call("GET", f"/api/v1/jobs/{job}/stream", expect=200, buffered=True, headers={"Last-Event-ID": "2"})
    ids = [line for line in resumed.get_data(as_text=True).splitlines() if line.startswith("id:")]
    assert ids == ["id: 3", "id: 4"]
    call("GET", f"/api/v1/jobs/{job}/stream", expect=400, headers={"Last-Event-ID": "x"})


# -- the document ---------------------------------------------------------------------------------


def test_every_route_is_in_the_openapi_document(app, call):
    document = call.document
    rules = {(rule.rule, method) for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1")
             for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path.replace("{", "<").replace("}", ">"), method.upper())
                  for path, operations in document["paths"].items() for method in operations}
    assert rules == documented
    assert document["openapi"] == "3.1.0"
    app_schema = document["components"]["schemas"]["app"]
    assert app_schema["properties"]["keep_backups"]["maximum"] == 100  # from the one definition
    jsonschema.Draft202012Validator.check_schema(app_schema)
    assert len(api.ROUTES) == len(documented)


def test_no_secret_in_any_answer(call, reg):
    reg.add_container("web1")
    call("POST", "/api/v1/apps", {"name": "web", "project": "shop", "repo": REPO, "container": "web1",
                                  "env": {"TOKEN": {"value": SECRET, "secret": True}}}, expect=201)
    for path in ("/api/v1/apps", "/api/v1/apps/shop/web", "/api/v1/projects", "/api/v1/containers",
                 "/api/v1/jobs", "/api/v1/openapi.json"):
        assert SECRET not in call("GET", path, expect=200).get_data(as_text=True)
    with Registry.open(reg.path) as other:
        assert other.app_secrets("shop", "web") == {"TOKEN": SECRET}


# -- private repositories ----------------------------------------------------------------------


def test_a_projects_git_access_shows_no_secret_and_changes_need_a_write_token(call, reg):
    reg.add_container("web1")
    reg.add_project("shop", "web1")
    call("POST", "/api/v1/projects/shop/git/key", token="read", expect=403)
    made = call("POST", "/api/v1/projects/shop/git/key", expect=200).get_json()
    public = made["access"]["deploy_key"]["public"]
    assert made["changed"] is True and public.startswith("ssh-ed25519 ")
    assert call("POST", "/api/v1/projects/shop/git/key", expect=200).get_json()["changed"] is False
    rotated = call("POST", "/api/v1/projects/shop/git/key?rotate=1", expect=200).get_json()["access"]
    assert rotated["deploy_key"]["public"] != public
    call("PUT", "/api/v1/projects/shop/git/token", {"token": "short"}, expect=422)
    call("PUT", "/api/v1/projects/shop/git/token", {"token": SECRET, "user": "deployer"}, expect=200)
    shown = call("GET", "/api/v1/projects/shop/git", token="read", expect=200).get_data(as_text=True)
    assert SECRET not in shown and "PRIVATE KEY" not in shown and '"user": "deployer"' in shown.replace('":"', '": "')
    reg.pin_host_keys("shop", ["git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9ok"
                               "Wi0dh2l9GKJl"])
    forgot = call("DELETE", "/api/v1/projects/shop/git/host-keys/git.example.com", expect=200).get_json()
    assert forgot["changed"] is True and forgot["access"]["host_keys"] == []
    assert call("DELETE", "/api/v1/projects/shop/git/token", expect=200).get_json()["access"]["token"] is None
    assert call("DELETE", "/api/v1/projects/shop/git/key", expect=200).get_json()["access"]["deploy_key"] is None
    assert reg.git_credentials("shop") == {"known_hosts": []}
