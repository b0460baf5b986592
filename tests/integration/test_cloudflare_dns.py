"""dpl.platform.cloudflare_dns through real playbooks, against the local fake v4 API."""

from __future__ import annotations

import json
import sys

import pytest

from ansible_collections.dpl.platform.plugins.module_utils.cloudflare import RECORD_COMMENT
from tests.support.fake_cloudflare import FakeCloudflare
from tests.support.playbooks import run_playbook

LOCAL = {"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                         "ansible_python_interpreter": sys.executable}}}}
TOKEN = "cf-test-token-7Qz2xV9kLm4Np8Rs"
IP = "203.0.113.10"
OTHER_IP = "198.51.100.7"


@pytest.fixture
def cf():
    with FakeCloudflare(token=TOKEN, max_per_page=2, retry_after="1") as server:
        server.zone = server.add_zone("example.test")
        yield server
        # Every request carried the token as a Bearer token, and only there.
        for request in server.requests:
            assert request.headers.get("authorization") == "Bearer " + TOKEN
            assert TOKEN not in request.path + json.dumps(request.query) + request.body


def dns(cf, tmp_path, check=False, diff=False, token_env=True, **args):
    """Run one cloudflare_dns task; return (playbook result, task result)."""
    args.setdefault("api_base_url", cf.base_url)
    task = {"name": "dns", "dpl.platform.cloudflare_dns": args, "register": "dns"}
    plays = [{"name": "cloudflare", "hosts": "all", "gather_facts": False, "tasks": [task]}]
    env = {"CLOUDFLARE_API_TOKEN": TOKEN} if token_env else {}
    env["no_proxy"] = "127.0.0.1,localhost"
    result = run_playbook(tmp_path, plays, LOCAL, check=check, diff=diff, envvars=env)
    assert TOKEN not in result.stdout
    assert TOKEN not in json.dumps(result.events)
    return result, result.result("dns")


def test_creates_the_record_then_changes_nothing(cf, tmp_path):
    result, res = dns(cf, tmp_path, domain="shop.example.test", ipv4=IP)
    assert result.rc == 0, result.stdout
    assert res["changed"] and res["created"] and res["deleted"] == 0
    assert res["zone"] == {"id": cf.zone["id"], "name": "example.test"}
    [record] = cf.a_records(cf.zone, "shop.example.test")
    assert (record["content"], record["proxied"], record["ttl"]) == (IP, True, 1)
    assert res["record"] == {"id": record["id"], "name": "shop.example.test", "type": "A", "content": IP,
                             "proxied": True, "ttl": 1}

    mutations = len(cf.mutations())
    result, res = dns(cf, tmp_path, domain="shop.example.test", ipv4=IP)
    assert result.rc == 0, result.stdout
    assert not res["changed"]
    assert len(cf.mutations()) == mutations, "an unchanged record must not be written again"
    assert len(cf.a_records(cf.zone, "shop.example.test")) == 1


def dpls(cf, name, content, **kwargs):
    """A record as DPL made it (with its comment)."""
    return cf.add_record(cf.zone, name, content, comment=RECORD_COMMENT, **kwargs)


def test_updates_the_record_only_when_the_address_differs(cf, tmp_path):
    old = dpls(cf, "shop.example.test", OTHER_IP)
    result, res = dns(cf, tmp_path, diff=True, domain="shop.example.test", ipv4=IP)
    assert result.rc == 0, result.stdout
    assert res["changed"] and not res["created"]
    [record] = cf.a_records(cf.zone, "shop.example.test")
    assert record["id"] == old["id"] and record["content"] == IP
    [patch] = cf.mutations()
    assert patch.method == "PATCH" and json.loads(patch.body) == {"content": IP}
    assert f"-shop.example.test A {OTHER_IP} proxied=yes ttl=1" in result.stdout
    assert f"+shop.example.test A {IP} proxied=yes ttl=1" in result.stdout


def test_unproxied_record_with_its_own_ttl(cf, tmp_path):
    result, res = dns(cf, tmp_path, domain="shop.example.test", ipv4=IP, proxied=False, ttl=300)
    assert result.rc == 0, result.stdout
    [record] = cf.a_records(cf.zone, "shop.example.test")
    assert (record["proxied"], record["ttl"]) == (False, 300)
    result, res = dns(cf, tmp_path, domain="shop.example.test", ipv4=IP, proxied=True)
    assert res["changed"]
    [record] = cf.a_records(cf.zone, "shop.example.test")
    assert (record["proxied"], record["ttl"]) == (True, 1)


def test_deletes_on_absent(cf, tmp_path):
    dpls(cf, "shop.example.test", IP)
    dpls(cf, "other.example.test", IP)
    result, res = dns(cf, tmp_path, domain="shop.example.test", ipv4=IP, state="absent")
    assert result.rc == 0, result.stdout
    assert res["changed"] and res["deleted"] == 1
    assert cf.a_records(cf.zone, "shop.example.test") == []
    assert len(cf.a_records(cf.zone, "other.example.test")) == 1
    result, res = dns(cf, tmp_path, domain="shop.example.test", ipv4=IP, state="absent")
    assert result.rc == 0 and not res["changed"]


def test_absent_with_an_address_deletes_only_that_hosts_record(cf, tmp_path):
    dpls(cf, "shop.example.test", IP)
    dpls(cf, "shop.example.test", OTHER_IP)
    result, res = dns(cf, tmp_path, domain="shop.example.test", ipv4=IP, state="absent")
    assert result.rc == 0, result.stdout
    assert [r["content"] for r in cf.a_records(cf.zone, "shop.example.test")] == [OTHER_IP]


def test_reads_every_page_and_leaves_no_duplicates(cf, tmp_path):
    # Five A records for the name, two per page: the matching one is on the last page.
    for index in range(4):
        dpls(cf, "shop.example.test", f"198.51.100.{index + 1}")
    keep = dpls(cf, "shop.example.test", IP)
    result, res = dns(cf, tmp_path, domain="shop.example.test", ipv4=IP)
    assert result.rc == 0, result.stdout
    assert res["changed"] and res["deleted"] == 4 and not res["created"]
    assert [r["id"] for r in cf.a_records(cf.zone, "shop.example.test")] == [keep["id"]]
    pages = [r.query.get("page") for r in cf.requests if r.method == "GET" and r.path.endswith("/dns_records")]
    assert pages == ["1", "2", "3"]
    assert all(r.method == "DELETE" for r in cf.mutations())


def test_the_zone_is_found_from_the_domains_parents(cf, tmp_path):
    sub = cf.add_zone("sub.example.test")
    result, res = dns(cf, tmp_path, domain="a.b.sub.example.test", ipv4=IP)
    assert result.rc == 0, result.stdout
    assert res["zone"]["name"] == "sub.example.test"
    assert len(cf.a_records(sub, "a.b.sub.example.test")) == 1
    looked_up = [r.query["name"] for r in cf.requests if r.path.endswith("/zones")]
    assert looked_up == ["a.b.sub.example.test", "b.sub.example.test", "sub.example.test"]


def test_a_domain_in_no_zone_fails_clearly(cf, tmp_path):
    result, res = dns(cf, tmp_path, domain="shop.elsewhere.test", ipv4=IP)
    assert result.rc != 0
    assert res["msg"] == ("no Cloudflare zone of this token holds shop.elsewhere.test (looked for "
                          "shop.elsewhere.test, elsewhere.test): add the domain to Cloudflare, or give the "
                          "token access to its zone")


def test_rate_limit_is_retried(cf, tmp_path):
    cf.rate_limit_next = 1
    result, res = dns(cf, tmp_path, domain="shop.example.test", ipv4=IP)
    assert result.rc == 0, result.stdout
    assert res["changed"] and res["retried"] == 1
    assert len(cf.a_records(cf.zone, "shop.example.test")) == 1


def test_rate_limit_without_retries_left_fails_clearly(cf, tmp_path):
    cf.rate_limit_next = 3
    result, res = dns(cf, tmp_path, domain="shop.example.test", ipv4=IP, retries=2)
    assert result.rc != 0
    assert res["msg"] == ("the Cloudflare API still rate-limits GET /zones (HTTP 429) after 2 retries: try "
                          "again later (971 Please wait and consider throttling your request speed)")


def test_the_error_envelope_becomes_the_message(cf, tmp_path):
    cf.fail_next(400, 81057, "The record already exists.", method="POST")
    result, res = dns(cf, tmp_path, domain="shop.example.test", ipv4=IP)
    assert result.rc != 0
    assert res["msg"] == (f"Cloudflare refused POST /zones/{cf.zone['id']}/dns_records (HTTP 400): 81057 The "
                          "record already exists.")
    assert res["status"] == 400


def test_a_refused_token_says_what_to_check_without_showing_it(cf, tmp_path):
    cf.token = "the-token-cloudflare-knows"
    result, res = dns(cf, tmp_path, domain="shop.example.test", ipv4=IP)
    assert result.rc != 0
    assert res["msg"].startswith("Cloudflare refused GET /zones (HTTP 403): 9109 Invalid access token. Check "
                                 "that the API token (CLOUDFLARE_API_TOKEN or api_token) is valid")
    cf.token = TOKEN  # for the fixture's check of the requests


def test_token_as_a_parameter_is_never_shown(cf, tmp_path):
    result, res = dns(cf, tmp_path, token_env=False, domain="shop.example.test", ipv4=IP, api_token=TOKEN)
    assert result.rc == 0, result.stdout
    assert res["changed"]


def test_no_token_fails_before_any_request(cf, tmp_path):
    result, res = dns(cf, tmp_path, token_env=False, domain="shop.example.test", ipv4=IP)
    assert result.rc != 0
    assert res["msg"] == ("no Cloudflare API token: set CLOUDFLARE_API_TOKEN in the environment of the play or "
                          "pass api_token (from Ansible Vault)")
    assert cf.requests == []


@pytest.mark.parametrize("args, msg", [
    (dict(domain="shop.example.test;", ipv4=IP), "domain: 'shop.example.test;' is not valid: "),
    (dict(domain="shop.example.test", ipv4="203.0.113.300"), "ipv4: '203.0.113.300' is not valid: "),
    (dict(domain="shop.example.test"), "ipv4 (the host's public IPv4 address) is required to point "
                                       "shop.example.test at it"),
    (dict(domain="shop.example.test", zone="other.test", ipv4=IP), "shop.example.test is not inside the zone "
                                                                   "other.test"),
    (dict(domain="shop.example.test", ipv4=IP, api_base_url="http://api.cloudflare.com/client/v4"),
     "api_base_url must be an https:// URL"),
])
def test_bad_arguments_fail_before_any_request(cf, tmp_path, args, msg):
    result, res = dns(cf, tmp_path, **args)
    assert result.rc != 0
    assert res["msg"].startswith(msg), res["msg"]
    assert cf.requests == []


def test_check_mode_reads_but_never_writes(cf, tmp_path):
    result, res = dns(cf, tmp_path, check=True, diff=True, domain="shop.example.test", ipv4=IP, ssl_mode="full")
    assert result.rc == 0, result.stdout
    assert res["changed"] and res["created"]
    assert cf.mutations() == []
    assert cf.a_records(cf.zone, "shop.example.test") == []
    assert cf.ssl[cf.zone["id"]] == "flexible"
    assert f"+shop.example.test A {IP} proxied=yes ttl=1" in result.stdout
    assert "-ssl: flexible" in result.stdout and "+ssl: full" in result.stdout


def test_sets_the_zones_ssl_mode_to_full(cf, tmp_path):
    result, res = dns(cf, tmp_path, zone="example.test", ssl_mode="full")
    assert result.rc == 0, result.stdout
    assert res["changed"] and res["ssl_mode"] == "full"
    assert cf.ssl[cf.zone["id"]] == "full"
    [patch] = cf.mutations()
    assert patch.path.endswith(f"/zones/{cf.zone['id']}/settings/ssl")
    assert json.loads(patch.body) == {"value": "full"}
    result, res = dns(cf, tmp_path, zone="example.test", ssl_mode="full")
    assert not res["changed"]
    assert len(cf.mutations()) == 1


def test_records_dpl_did_not_create_are_never_replaced_or_deleted(cf, tmp_path):
    theirs = cf.add_record(cf.zone, "shop.example.test", OTHER_IP)
    result, res = dns(cf, tmp_path, domain="shop.example.test", ipv4=IP)
    assert result.rc != 0
    assert res["msg"].startswith(f"shop.example.test already has A record(s) DPL did not create ({OTHER_IP})")
    assert cf.mutations() == []
    # Removal names the address, and an operator's record of that address stays too.
    cf.add_record(cf.zone, "shop.example.test", IP)
    result, res = dns(cf, tmp_path, domain="shop.example.test", ipv4=IP, state="absent")
    assert result.rc == 0 and not res["changed"] and len(res["foreign"]) == 2
    assert cf.mutations() == [] and theirs in cf.a_records(cf.zone, "shop.example.test")


def test_what_dpl_creates_carries_its_mark(cf, tmp_path):
    result, _res = dns(cf, tmp_path, domain="shop.example.test", ipv4=IP)
    assert result.rc == 0, result.stdout
    [record] = cf.a_records(cf.zone, "shop.example.test")
    assert record["comment"] == RECORD_COMMENT


def test_removal_without_the_address_is_refused(cf, tmp_path):
    dpls(cf, "shop.example.test", IP)
    result, res = dns(cf, tmp_path, domain="shop.example.test", state="absent")
    assert result.rc != 0 and "ipv4 (the address whose record goes) is required" in res["msg"]
    assert cf.requests == []


def test_the_ssl_mode_is_left_alone_unless_asked(cf, tmp_path):
    cf.ssl[cf.zone["id"]] = "strict"
    result, _res = dns(cf, tmp_path, domain="shop.example.test", ipv4=IP)
    assert result.rc == 0, result.stdout
    assert cf.ssl[cf.zone["id"]] == "strict"
    assert not [r for r in cf.mutations() if "/settings/" in r.path]
