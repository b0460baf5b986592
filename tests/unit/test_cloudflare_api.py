"""The Cloudflare client of dpl.platform.cloudflare_dns: planning, the envelope, pagination,
rate limits, and the token kept out of every message (against the local fake API)."""

from __future__ import annotations

import pytest

from ansible_collections.dpl.platform.plugins.module_utils import cloudflare
from ansible_collections.dpl.platform.plugins.module_utils.cloudflare import CloudflareAPI, CloudflareError
from tests.support.fake_cloudflare import FakeCloudflare

TOKEN = "unit-test-token-5f1d0c2b9a"


@pytest.fixture
def fake():
    with FakeCloudflare(token=TOKEN, max_per_page=2) as server:
        yield server


@pytest.fixture
def api(fake):
    waits = []
    client = CloudflareAPI(TOKEN, fake.base_url, timeout=10, retries=2, max_retry_wait=5, sleep=waits.append)
    client.waits = waits
    return client


def test_zone_candidates_go_from_the_most_specific_parent():
    assert cloudflare.zone_candidates("a.b.example.com") == ["a.b.example.com", "b.example.com", "example.com"]
    assert cloudflare.zone_candidates("example.com") == ["example.com"]


@pytest.mark.parametrize("header, seconds", [("3", 3.0), ("0", 0.0), (None, 1.0), ("soon", 1.0),
                                             ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)])
def test_retry_after(header, seconds):
    assert cloudflare.retry_after(header) == seconds


def test_describe_errors():
    assert cloudflare.describe_errors([{"code": 1004, "message": "DNS Validation Error"},
                                       {"code": 9005, "message": "bad content"}]) == \
        "1004 DNS Validation Error; 9005 bad content"
    assert cloudflare.describe_errors([]) == "no error detail given"


@pytest.mark.parametrize("token, problem", [
    ("", "no Cloudflare API token: set CLOUDFLARE_API_TOKEN in the environment of the play or pass "
         "api_token (from Ansible Vault)"),
    (None, "no Cloudflare API token: set CLOUDFLARE_API_TOKEN in the environment of the play or pass "
           "api_token (from Ansible Vault)"),
    ("abc def\nX-Injected: 1", "the Cloudflare API token contains characters a token never has (spaces, "
                               "newlines, quotes...): check CLOUDFLARE_API_TOKEN or api_token"),
    ("AbC-123_xyz", None),
])
def test_check_token_never_quotes_it(token, problem):
    assert cloudflare.check_token(token) == problem


@pytest.mark.parametrize("url, ok", [
    ("https://api.cloudflare.com/client/v4", True),
    ("http://127.0.0.1:8080/client/v4", True),
    ("http://localhost/client/v4", True),
    ("http://api.cloudflare.com/client/v4", False),
    ("ftp://api.cloudflare.com/", False),
    ("api.cloudflare.com", False),
])
def test_check_base_url_allows_plain_http_to_loopback_only(url, ok):
    assert (cloudflare.check_base_url(url) is None) == ok


def a_record(content, proxied=True, ttl=1, record_id=None):
    return {"id": record_id or content, "name": "a.example.test", "type": "A", "content": content,
            "proxied": proxied, "ttl": ttl}


DESIRED = {"name": "a.example.test", "type": "A", "content": "203.0.113.10", "proxied": True, "ttl": 1}


def test_plan_creates_a_missing_record():
    assert cloudflare.plan_a_records([], DESIRED) == (DESIRED, None, [])


def test_plan_keeps_a_matching_record():
    assert cloudflare.plan_a_records([a_record("203.0.113.10")], DESIRED) == (None, None, [])


def test_plan_updates_only_what_differs():
    record = a_record("198.51.100.1")
    assert cloudflare.plan_a_records([record], DESIRED) == (None, (record, {"content": "203.0.113.10"}), [])
    record = a_record("203.0.113.10", proxied=False, ttl=300)
    assert cloudflare.plan_a_records([record], DESIRED) == (None, (record, {"proxied": True, "ttl": 1}), [])


def test_plan_keeps_the_matching_duplicate_and_deletes_the_others():
    records = [a_record("198.51.100.1"), a_record("203.0.113.10"), a_record("198.51.100.2")]
    create, update, delete = cloudflare.plan_a_records(records, DESIRED)
    assert (create, update) == (None, None)
    assert delete == [records[0], records[2]]
    assert cloudflare.plan_a_records(records, DESIRED, solo=False) == (None, None, [])


def test_paged_follows_every_page(fake, api):
    zone = fake.add_zone("example.test")
    for index in range(5):
        fake.add_record(zone, "a.example.test", f"198.51.100.{index + 1}")
    records = api.records(zone["id"], "a.example.test")
    assert [r["content"] for r in records] == [f"198.51.100.{i + 1}" for i in range(5)]
    pages = [r.query["page"] for r in fake.requests if r.path.endswith("/dns_records")]
    assert pages == ["1", "2", "3"]


def test_find_zone_takes_the_most_specific_parent(fake, api):
    fake.add_zone("example.test")
    sub = fake.add_zone("sub.example.test")
    assert api.find_zone("a.sub.example.test")["id"] == sub["id"]
    assert api.find_zone("b.example.test")["name"] == "example.test"
    with pytest.raises(CloudflareError) as caught:
        api.find_zone("a.other.test")
    assert str(caught.value) == ("no Cloudflare zone of this token holds a.other.test (looked for a.other.test, "
                                 "other.test): add the domain to Cloudflare, or give the token access to its zone")


def test_rate_limited_requests_are_retried_after_retry_after(fake, api):
    fake.add_zone("example.test")
    fake.rate_limit_next = 2
    fake.retry_after = "3"
    assert api.zone("example.test")["name"] == "example.test"
    assert api.waits == [3.0, 3.0]
    assert api.retried == 2


def test_rate_limit_gives_up_after_the_retries(fake, api):
    fake.rate_limit_next = 5
    fake.retry_after = "120"
    with pytest.raises(CloudflareError) as caught:
        api.zone("example.test")
    assert caught.value.status == 429
    assert str(caught.value) == ("the Cloudflare API still rate-limits GET /zones (HTTP 429) after 2 retries: "
                                 "try again later (971 Please wait and consider throttling your request speed)")
    # Never longer than max_retry_wait.
    assert api.waits == [5, 5]


def test_error_envelope_becomes_a_sentence(fake, api):
    zone = fake.add_zone("example.test")
    with pytest.raises(CloudflareError) as caught:
        api.create_record(zone["id"], {"type": "A", "name": "a.example.test", "content": "not-an-ip"})
    assert caught.value.status == 400
    assert str(caught.value) == (f"Cloudflare refused POST /zones/{zone['id']}/dns_records (HTTP 400): 9005 "
                                 "Content for A record is invalid. Must be a valid IPv4 address")


def test_success_false_with_http_200_is_an_error_too(fake, api, monkeypatch):
    def handle(*args):
        return 200, {}, {"success": False, "errors": [{"code": 1000, "message": "odd"}], "result": None}
    monkeypatch.setattr(fake, "handle", handle)
    with pytest.raises(CloudflareError, match=r"^Cloudflare refused GET /zones \(HTTP 200\): 1000 odd$"):
        api.zone("example.test")


def test_the_token_goes_only_into_the_bearer_header(fake, api):
    fake.add_zone("example.test")
    api.zone("example.test")
    request = fake.requests[-1]
    assert request.headers["authorization"] == "Bearer " + TOKEN
    assert TOKEN not in request.path + str(request.query) + request.body


def test_a_wrong_token_is_refused_without_quoting_it(fake):
    api = CloudflareAPI("wrong-token-123", fake.base_url, retries=0)
    with pytest.raises(CloudflareError) as caught:
        api.zone("example.test")
    assert caught.value.status == 403
    assert str(caught.value) == "Cloudflare refused GET /zones (HTTP 403): 9109 Invalid access token"


def test_messages_are_scrubbed_of_the_token(fake, monkeypatch):
    api = CloudflareAPI(TOKEN, fake.base_url, retries=0)

    def handle(*args):
        return 400, {}, {"success": False, "errors": [{"code": 1, "message": "bad token " + TOKEN}]}
    monkeypatch.setattr(fake, "handle", handle)
    with pytest.raises(CloudflareError) as caught:
        api.zone("example.test")
    assert TOKEN not in str(caught.value)
    assert "bad token ********" in str(caught.value)


def test_an_unreachable_api_is_a_sentence():
    # Nothing listens on the discard port of loopback.
    api = CloudflareAPI(TOKEN, "http://127.0.0.1:9/client/v4", timeout=2, retries=0)
    with pytest.raises(CloudflareError, match=r"^cannot reach the Cloudflare API at http://127.0.0.1:9/client/v4 "
                                              r"\(GET /zones\): "):
        api.zone("example.test")


def test_a_body_that_is_not_json_is_explained(fake, monkeypatch):
    api = CloudflareAPI(TOKEN, fake.base_url, retries=0)
    monkeypatch.setattr(fake, "handle", lambda *args: (502, {}, "<html>Bad gateway</html>"))
    with pytest.raises(CloudflareError) as caught:
        api.zone("example.test")
    assert str(caught.value) == ("the Cloudflare API answered GET /zones with HTTP 502 and no JSON envelope: "
                                 f"check api_base_url ({fake.base_url})")
