"""dpl.platform.tls_cert through real playbooks and the real openssl, in temporary folders."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from tests.support.playbooks import run_playbook

LOCAL = {"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                         "ansible_python_interpreter": sys.executable}}}}
DOMAIN = "dpltest-cert.example.test"


def cert_task(**args):
    return {"name": "cert", "dpl.platform.tls_cert": args, "register": "cert"}


def play(*tasks):
    return [{"name": "tls", "hosts": "all", "gather_facts": False, "tasks": list(tasks)}]


def run(tmp_path, check=False, diff=False, **args):
    result = run_playbook(tmp_path, play(cert_task(**args)), LOCAL, check=check, diff=diff)
    return result, result.result("cert")


def openssl(*args):
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=True,
                          env=dict(os.environ, LC_ALL="C")).stdout


@pytest.fixture
def certs(tmp_path):
    directory = tmp_path / "tls"
    yield directory
    # Everything the tests make lives under tmp_path; nothing is left elsewhere.
    assert not os.path.exists(f"/etc/ssl/dpl/{DOMAIN}.crt")


def test_makes_a_self_signed_certificate_with_a_private_key_only_root_reads(tmp_path, certs):
    result, res = run(tmp_path, domains=[DOMAIN, "www." + DOMAIN], directory=str(certs))
    assert result.rc == 0, result.stdout
    assert res["changed"] and res["generated"] and res["reason"] == "missing"
    crt, key = certs / (DOMAIN + ".crt"), certs / (DOMAIN + ".key")
    assert res["certificate"] == str(crt) and res["private_key"] == str(key)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(crt.stat().st_mode) == 0o644
    assert stat.S_IMODE(certs.stat().st_mode) == 0o700
    assert res["domains"] == [DOMAIN, "www." + DOMAIN]
    text = openssl("x509", "-in", str(crt), "-noout", "-subject", "-ext", "subjectAltName,basicConstraints")
    assert f"CN = {DOMAIN}" in text
    assert f"DNS:{DOMAIN}, DNS:www.{DOMAIN}" in text
    assert "CA:FALSE" in text
    assert openssl("x509", "-in", str(crt), "-noout", "-pubkey") == openssl("pkey", "-in", str(key), "-pubout")
    # Self-signed: it verifies against itself.
    assert "OK" in openssl("verify", "-CAfile", str(crt), str(crt))
    assert not [name for name in os.listdir(certs) if name.startswith(".")]


def test_never_regenerated_while_valid_and_matching(tmp_path, certs):
    result, first = run(tmp_path, domains=[DOMAIN], directory=str(certs))
    assert result.rc == 0, result.stdout
    crt = certs / (DOMAIN + ".crt")
    before = (crt.read_bytes(), (certs / (DOMAIN + ".key")).read_bytes(), crt.stat().st_mtime_ns)
    for attempt in range(2):
        result, again = run(tmp_path, domains=[DOMAIN], directory=str(certs))
        assert result.rc == 0, (attempt, result.stdout)
        assert not again["changed"] and not again["generated"]
        assert again["fingerprint_sha256"] == first["fingerprint_sha256"]
    assert before == (crt.read_bytes(), (certs / (DOMAIN + ".key")).read_bytes(), crt.stat().st_mtime_ns)


def test_renewed_when_it_expires_within_the_threshold(tmp_path, certs):
    result, first = run(tmp_path, domains=[DOMAIN], directory=str(certs), days=3, renew_before_days=0)
    assert result.rc == 0, result.stdout
    result, kept = run(tmp_path, domains=[DOMAIN], directory=str(certs), days=3650, renew_before_days=2)
    assert not kept["changed"], "3 days left is more than the 2-day threshold"
    result, renewed = run(tmp_path, domains=[DOMAIN], directory=str(certs), days=3650, renew_before_days=5)
    assert result.rc == 0, result.stdout
    assert renewed["changed"] and renewed["reason"] == "expiring"
    assert renewed["fingerprint_sha256"] != first["fingerprint_sha256"]
    assert renewed["not_after"] > first["not_after"]


@pytest.mark.parametrize("change, reason", [
    (dict(domains=["other." + DOMAIN]), "names changed"),
    (dict(key_type="rsa"), "key type changed"),
    (dict(force=True), "forced"),
])
def test_regenerated_when_it_no_longer_matches(tmp_path, certs, change, reason):
    args = dict(domains=[DOMAIN], directory=str(certs), name=DOMAIN)
    result, first = run(tmp_path, **args)
    assert result.rc == 0, result.stdout
    result, res = run(tmp_path, **dict(args, **change))
    assert result.rc == 0, result.stdout
    assert res["changed"] and res["reason"] == reason
    assert res["fingerprint_sha256"] != first["fingerprint_sha256"]


def test_regenerated_when_the_key_beside_it_is_not_its_key(tmp_path, certs):
    result, first = run(tmp_path, domains=[DOMAIN], directory=str(certs))
    assert result.rc == 0, result.stdout
    key = certs / (DOMAIN + ".key")
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-out", str(key)], check=True, capture_output=True)
    result, res = run(tmp_path, domains=[DOMAIN], directory=str(certs))
    assert res["changed"] and res["reason"] == "key does not match"
    assert openssl("x509", "-in", res["certificate"], "-noout", "-pubkey") == openssl("pkey", "-in", str(key),
                                                                                      "-pubout")


def test_check_mode_reports_without_writing_and_diff_shows_the_names(tmp_path, certs):
    result, res = run(tmp_path, check=True, diff=True, domains=[DOMAIN], directory=str(certs))
    assert result.rc == 0, result.stdout
    assert res["changed"] and res["generated"]
    assert not certs.exists()
    assert f"+domains: {DOMAIN}" in result.stdout
    assert "(a new certificate, valid 3650 days, ec key)" in result.stdout


def test_absent_removes_both_files(tmp_path, certs):
    result, res = run(tmp_path, domains=[DOMAIN], directory=str(certs))
    assert result.rc == 0, result.stdout
    result, res = run(tmp_path, name=DOMAIN, directory=str(certs), state="absent")
    assert res["changed"]
    assert os.listdir(certs) == []
    result, res = run(tmp_path, name=DOMAIN, directory=str(certs), state="absent")
    assert result.rc == 0 and not res["changed"]


@pytest.mark.parametrize("args, msg", [
    (dict(domains=["a.example.test;rm -rf /"]),
     "domains[0]: 'a.example.test;rm -rf /' is not valid: "),
    (dict(domains=["../../etc/passwd"]), "domains[0]: '../../etc/passwd' is not valid: "),
    (dict(domains=[DOMAIN], name="../x"), "name: '../x' is not valid: "),
    (dict(domains=[DOMAIN], days=10, renew_before_days=10),
     "renew_before_days (10) must be less than days (10), or every run would make a new certificate"),
])
def test_bad_values_are_refused_before_any_file_is_written(tmp_path, certs, args, msg):
    result, res = run(tmp_path, directory=str(certs), **args)
    assert result.rc != 0
    assert res["_event"] == "runner_on_failed"
    assert res["msg"].startswith(msg), res["msg"]
    assert not certs.exists()
