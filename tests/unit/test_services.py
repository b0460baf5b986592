"""The service layer: what each operation records, which job it queues, what it refuses
(and that nothing was recorded then). Jobs are queued here, not run (no worker starts):
the worker's own tests and the integration tests run them."""

from __future__ import annotations

import pytest

from dpl_web import errors, services
from dpl_web.errors import Conflict, DplError, JobFailed, NotFound, RegistryUnusable, ValidationError

REPO = "https://git.example.com/shop/web.git"


def queued(reg):
    return [(job["kind"], job["target"], job["status"]) for job in reversed(reg.list_jobs())]


def test_the_json_request_records_the_app_and_creates_its_container_before_the_deploy(ctx, reg):
    outcome = services.deploy_request(ctx, {"name": "pixel-sushi", "project": "pixel-sushi", "repo": REPO,
                                            "domain": "sushi.example.com",
                                            "env": {"TOKEN": {"value": "s3cret-value", "secret": True}}})
    app = reg.get_app("pixel-sushi", "pixel-sushi")
    assert (app["container"], app["domains"], app["secret_env"]) == ("pixel-sushi", ["sushi.example.com"], ["TOKEN"])
    # The create job is older: the deploy (same container) waits for it.
    assert queued(reg) == [("container-create", "container/pixel-sushi", "queued"),
                           ("deploy", "app/pixel-sushi/pixel-sushi", "queued")]
    assert outcome.job["kind"] == "deploy" and outcome.job["params"] == {"app": "pixel-sushi/pixel-sushi"}
    assert any("creating it" in note for note in outcome.notes)
    assert "s3cret-value" not in repr(outcome) and "s3cret-value" not in repr(reg.list_jobs())
    # Asked again: the app is updated, no second container, and the queued deploy is replaced.
    again = services.deploy_request(ctx, {"name": "pixel-sushi", "project": "pixel-sushi", "repo": REPO,
                                          "port": 4000})
    assert reg.get_app("pixel-sushi", "pixel-sushi")["port"] == 4000
    assert again.replaced == [outcome.job["id"]]
    assert [kind for kind, _target, status in queued(reg) if status == "queued"] == ["container-create", "deploy"]


def test_a_refused_request_records_nothing_and_queues_nothing(ctx, reg):
    with pytest.raises(ValidationError, match="port"):
        services.deploy_request(ctx, {"name": "web", "project": "shop", "repo": REPO, "port": 70000})
    with pytest.raises(ValidationError, match="repo"):
        services.deploy_request(ctx, {"name": "web", "project": "shop"})
    assert reg.list_containers() == [] and reg.list_projects() == [] and reg.list_jobs() == []


def test_a_request_for_a_project_in_a_known_container_goes_there(ctx, stocked):
    services.deploy_request(ctx, {"name": "api", "project": "shop", "repo": REPO, "port": 4000})
    assert stocked.get_app("shop", "api")["container"] == "web1"
    assert queued(stocked) == [("deploy", "app/shop/api", "queued")]


def test_container_create_records_it_and_queues_its_creation(ctx, reg):
    outcome = services.create_container(ctx, "web9", memory="1GiB")
    assert outcome.record["limits"]["memory"] == "1GiB" and reg.get_container("web9")["status"] == "unknown"
    assert outcome.job["params"] == {"container": "web9", "operation": "create"}
    with pytest.raises(Conflict, match="already exists"):
        services.create_container(ctx, "web9")
    assert len(reg.list_jobs()) == 1
    with pytest.raises(ValidationError):
        services.container_action(ctx, "web9", "explode")
    with pytest.raises(NotFound):
        services.container_action(ctx, "nope", "start")


def test_editing_domains_queues_the_vhosts_unless_only_the_record_changes(ctx, stocked):
    outcome = services.edit_app(ctx, "shop/web", add_domains=["a.example.com", "b.example.com"])
    assert outcome.changed and outcome.record["domains"] == ["a.example.com", "b.example.com"]
    params = outcome.job["params"]["nginx_edge_apps"]
    assert params == [{"name": "shop-web", "domains": ["a.example.com", "b.example.com"], "ipv4": "10.210.0.10",
                       "port": 3000, "backup_ports": [3001]}]
    removed = services.edit_app(ctx, "shop/web", remove_domains=["a.example.com"])
    assert removed.job["params"]["nginx_edge_apps"] == [{"name": "shop-web", "domains": ["a.example.com"],
                                                         "state": "absent"}]
    unchanged = services.edit_app(ctx, "shop/web", notes="")
    assert (unchanged.changed, unchanged.job) == (False, None)
    record_only = services.edit_app(ctx, "shop/web", domains=[], record_only=True)
    assert record_only.changed and record_only.job is None and record_only.record["domains"] == []
    with pytest.raises(NotFound, match="domain 'x.example.com'"):
        services.edit_app(ctx, "shop/web", remove_domains=["x.example.com"])


def test_removing_a_project_with_apps_is_one_job_unless_only_the_records_go(ctx, stocked):
    with pytest.raises(Conflict, match="still has apps: web") as refused:
        services.remove_project(ctx, "shop")
    assert refused.value.remedy == "cascade"
    outcome = services.remove_project(ctx, "shop", cascade=True)
    assert outcome.job["params"] == {"project": "shop", "apps": ["shop/web"]}
    assert stocked.get_project("shop")  # its job removes the records, once the apps are gone
    services.remove_project(ctx, "blog", cascade=True, record_only=True)
    with pytest.raises(NotFound):
        stocked.get_project("blog")


def test_cancel_through_the_services(ctx, stocked):
    job = services.deploy(ctx, "shop/web", ref="v2").job
    assert job["params"] == {"app": "shop/web", "ref": "v2"}
    assert services.cancel_job(ctx, job["id"]).record["status"] == "canceled"
    with pytest.raises(Conflict, match="already finished"):
        services.cancel_job(ctx, job["id"])
    with pytest.raises(ValidationError):
        services.deploy(ctx, "shop/web", ref="--upload-pack=evil")
    with pytest.raises(ValidationError, match=r"must not contain '\.\.'"):
        services.restore(ctx, "shop/web", "../etc/passwd.tar.gz")
    with pytest.raises(ValidationError, match="backup's file name"):
        services.restore(ctx, "shop/web", "shop/web.tar.gz")


# -- the error table -------------------------------------------------------------------


def test_every_error_kind_has_its_own_code_exit_status_and_http_status():
    kinds = errors.KINDS
    assert all(issubclass(kind, DplError) for kind in kinds)
    assert len({kind.code for kind in kinds}) == len(kinds)
    assert len({kind.exit_code for kind in kinds}) == len(kinds)
    assert {kind.code: (kind.exit_code, kind.http_status) for kind in kinds} == {
        "failure": (1, 500), "bad_request": (2, 400), "registry": (3, 503), "invalid": (4, 422),
        "not_found": (5, 404), "conflict": (6, 409), "job_failed": (7, 500), "unauthorized": (8, 401),
        "forbidden": (9, 403), "throttled": (10, 429)}


def test_hints_name_no_client(ctx, stocked):
    """A registry error's hint must suit an API client as well as the CLI."""
    refusals = []
    for call in (lambda: services.get_host(ctx, "nope"), lambda: services.get_app(ctx, "shop/nope"),
                 lambda: services.remove_project(ctx, "shop"), lambda: services.forget_container(ctx, "web1"),
                 lambda: services.add_project(ctx, "shop", "web1"), lambda: services.get_job(ctx, 999),
                 lambda: services.add_app(ctx, "nope/web", REPO)):
        with pytest.raises(DplError) as refused:
            call()
        refusals.append(refused.value)
    for refusal in refusals:
        text = f"{refusal} {refusal.hint}"
        assert "dpl " not in text and "--" not in text and "`" not in text, text


def test_describe_gives_the_json_of_an_error_without_secret_values(ctx, stocked):
    with pytest.raises(ValidationError) as refused:
        services.edit_app(ctx, "shop/web", secret_env={"TOKEN": "x"})
    body = errors.describe(refused.value)
    assert body["code"] == body["type"] == "invalid" and body["field"].startswith("secret_env")
    assert "x" != body["value"] and body["value"] == "********"
    with pytest.raises(NotFound) as missing:
        services.get_container(ctx, "nope")
    assert errors.describe(missing.value) == {
        "type": "not_found", "code": "not_found", "message": "container 'nope' does not exist",
        "hint": "list the containers to see which exist", "remedy": "list:container", "kind": "container",
        "name": "nope"}
    failed = JobFailed("deploy of app/shop/web: job 7 failed", {"id": 7})
    assert errors.describe(failed)["job"] == 7
    assert RegistryUnusable("gone").exit_code == 3
