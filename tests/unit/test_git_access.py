"""Private repositories without a git server: the deploy key (checked by OpenSSH's own
ssh-keygen), the pins' first-use rule in the registry, the files and environment a deploy
gets in the container, the messages of a refused fetch, and the CLI (the token only from
standard input, the secrets never printed)."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys

import pytest

from dpl_web import cli, repo_access
from dpl_web.collection import git_access, validation

ValidationError = validation.ValidationError
HOST_KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
OTHER_KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIBXngPW3SdCdndywM+4BMF4s4Fo4tCOqZhJSffxpnhHX"
SSH_REPO = "git@git.example.com:shop/web.git"


def test_a_deploy_key_is_an_openssh_ed25519_pair_with_the_fingerprint_ssh_keygen_gives(tmp_path):
    private, public = repo_access.new_key_pair("shop")
    key = tmp_path / "key"
    key.write_text(private)
    key.chmod(0o600)
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True, check=True)
    assert derived.stdout.split() == public.split()[:2]
    assert public.split()[2] == "dpl-deploy-shop"
    (tmp_path / "key.pub").write_text(public + "\n")
    listed = subprocess.run(["ssh-keygen", "-l", "-f", str(tmp_path / "key.pub")], capture_output=True, text=True,
                            check=True).stdout.split()
    assert listed[1] == git_access.fingerprint(public.split()[1])
    assert repo_access.new_key_pair("shop")[0] != private


@pytest.mark.parametrize(("repo", "host"), [
    ("git@git.example.com:shop/web.git", ("git.example.com", 22)),
    ("ssh://git@git.example.com:2222/shop/web.git", ("git.example.com", 2222)),
    ("ssh://git@[2001:db8::1]:2222/web.git", ("2001:db8::1", 2222)),
    ("ssh://git.example.com/web.git", ("git.example.com", 22)),
    ("https://git.example.com/shop/web.git", None),
    ("git://10.0.0.1/web.git", None),
])
def test_the_ssh_host_of_a_repository(repo, host):
    validation.repo_url(repo)
    assert validation.ssh_repo_host(repo) == host


def test_host_key_lines_are_checked():
    assert validation.host_key(f"[git.example.com]:2222 ssh-ed25519 {HOST_KEY}") == (
        "[git.example.com]:2222", "ssh-ed25519", HOST_KEY)
    for bad in (f"|1|hashed= ssh-ed25519 {HOST_KEY}", f"git.example.com ssh-dss {HOST_KEY}",
                "git.example.com ssh-ed25519 not*base64*at*all!", "git.example.com ssh-ed25519",
                "git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9o",
                f"@revoked git.example.com ssh-ed25519 {HOST_KEY}", f"a.example\nb.example ssh-ed25519 {HOST_KEY}"):
        with pytest.raises(ValidationError):
            validation.host_key(bad)


def test_a_token_is_never_quoted_in_its_error():
    assert validation.git_token("glpat-abcdefgh1234") == "glpat-abcdefgh1234"
    for bad in ("short", "has a space in it", "new\nline-token", "x" * 4097):
        with pytest.raises(ValidationError) as refused:
            validation.git_token(bad)
        assert bad not in str(refused.value)


def test_credentials_in_an_https_url_are_refused_with_the_way_to_give_a_token():
    with pytest.raises(ValidationError, match="dpl project token PROJECT"):
        validation.repo_url("https://user:secret@git.example.com/shop/web.git")


# -- in the container ------------------------------------------------------------------------


def test_the_files_a_deploy_writes_and_removes(tmp_path):
    private, _public = repo_access.new_key_pair("shop")
    access = git_access.GitAccess("shop", private, [f"git.example.com ssh-ed25519 {HOST_KEY}"], root=tmp_path)
    assert access.prepare(SSH_REPO) is True
    folder = tmp_path / "shop"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "deploy_key").stat().st_mode) == 0o600
    assert (folder / "deploy_key").read_text() == private
    assert (folder / "known_hosts").read_text() == f"git.example.com ssh-ed25519 {HOST_KEY}\n"
    assert access.prepare(SSH_REPO) is False  # as the registry has them already

    removed = git_access.GitAccess("shop", None, [], root=tmp_path)
    assert removed.prepare(SSH_REPO) is True
    assert sorted(os.listdir(folder)) == ["known_hosts"] and (folder / "known_hosts").read_text() == ""
    # A public https repository needs nothing: nothing is written.
    assert git_access.GitAccess("blog", None, [], root=tmp_path).prepare("https://git.example.com/b.git") is False
    assert not (tmp_path / "blog").exists()


def test_a_pinned_host_is_checked_strictly_and_a_new_one_pinned_on_first_use(tmp_path):
    access = git_access.GitAccess("shop", "PRIVATE-KEY-TEXT", [f"git.example.com ssh-ed25519 {HOST_KEY}"],
                                  root=tmp_path)
    pinned = access.env(SSH_REPO)
    assert pinned["DPL_GIT_HOST_KEY_CHECK"] == "yes"
    assert pinned["DPL_GIT_SSH_KEY"] == str(tmp_path / "shop" / "deploy_key")
    assert '-i "$DPL_GIT_SSH_KEY"' in pinned["GIT_SSH_COMMAND"] and "PRIVATE" not in str(pinned)
    assert access.env("ssh://git@git.example.com:2222/web.git")["DPL_GIT_HOST_KEY_CHECK"] == "accept-new"
    # What ssh added on first use is what the registry must pin; the pins already there are not.
    access.prepare(SSH_REPO)
    with open(access.known_hosts_file, "a") as known:
        known.write(f"[git.example.com]:2222 ssh-ed25519 {OTHER_KEY}\n")
    assert access.new_host_keys() == [f"[git.example.com]:2222 ssh-ed25519 {OTHER_KEY}"]


def test_a_token_reaches_git_through_the_environment_only():
    access = git_access.GitAccess("shop", None, [], "glpat-secret-123456", "deployer")
    env = access.env("https://git.example.com/shop/web.git")
    assert env["DPL_GIT_TOKEN"] == "glpat-secret-123456" and env["DPL_GIT_USER"] == "deployer"
    config = {(env[f"GIT_CONFIG_KEY_{n}"], env[f"GIT_CONFIG_VALUE_{n}"]) for n in range(int(env["GIT_CONFIG_COUNT"]))}
    assert ("credential.helper", "") in config and ("core.hooksPath", "/dev/null") in config
    assert "glpat" not in json.dumps(sorted(config)) and env["DPL_GIT_HOST"] == "git.example.com"
    assert access.env(SSH_REPO).get("DPL_GIT_TOKEN") is None  # never sent over ssh
    assert access.secrets() == ["glpat-secret-123456"]


def test_the_credential_helper_answers_get_for_the_repositorys_host_over_https_only(tmp_path):
    """git runs the helper through the shell with its request on stdin: check the fixed
    string with a real sh."""
    env = dict(git_access.GitAccess("shop", None, [], "tok-en/with$pecial'chars", None).env(
        "https://git.example.com:8443/x.git"), PATH="/usr/bin:/bin")
    helper = env["GIT_CONFIG_VALUE_1"][1:]

    def ask(action, request="protocol=https\nhost=git.example.com:8443\n"):
        return subprocess.run(["sh", "-c", helper + ' "$@"', "sh", action], input=request, env=env,
                              capture_output=True, text=True, check=False).stdout

    assert ask("get") == "username=dpl\npassword=tok-en/with$pecial'chars\n"
    assert ask("store") == ""
    # A redirect elsewhere, or to plain http, gets nothing.
    assert ask("get", "protocol=https\nhost=evil.example\n") == ""
    assert ask("get", "protocol=http\nhost=git.example.com:8443\n") == ""


def test_host_names_are_lowercased_and_ipv6_ones_accepted_as_ssh_writes_them():
    assert validation.ssh_repo_host("git@GitHub.COM:o/r.git") == ("github.com", 22)
    assert validation.known_host("GitHub.com") == "github.com"
    for name in ("::1", "[::1]:2222", "[::ffff:10.0.0.1]:2222", "::ffff:10.0.0.1", "[10.0.0.1]:22022"):
        assert validation.known_host(name) == name
    for bad in ("[::1]:70000", "-oProxyCommand=x", "[-x]:22", "a,b"):
        with pytest.raises(ValidationError):
            validation.known_host(bad)
    # A line DPL would not pin is skipped; the others still count.
    assert git_access.parse_known_hosts(f"|1|abc= ssh-ed25519 {HOST_KEY}\n[::1]:2222 ssh-ed25519 {HOST_KEY}\n") == [
        ("[::1]:2222", "ssh-ed25519", HOST_KEY)]


def test_the_key_is_masked_whole_and_line_by_line():
    private, _public = repo_access.new_key_pair("shop")
    masked = git_access.GitAccess("shop", private).secrets()
    body = [line for line in private.splitlines() if not line.startswith("-----")]
    assert private in masked and all(line in masked for line in body)


def test_a_refused_fetch_says_what_to_do():
    pins = [f"git.example.com ssh-ed25519 {HOST_KEY}"]
    with_key = git_access.GitAccess("shop", "KEY", pins)
    changed = with_key.explain(SSH_REPO, "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@", "shop")
    assert git_access.fingerprint(HOST_KEY) in changed
    assert "dpl project host-keys shop --forget git.example.com" in changed
    assert "refused the project's deploy key" in with_key.explain(SSH_REPO, "Permission denied (publickey).", "shop")
    no_key = git_access.GitAccess("shop", None, pins)
    assert "has no deploy key" in no_key.explain(SSH_REPO, "Permission denied (publickey).", "shop")
    https = "https://git.example.com/shop/web.git"
    assert "dpl project token shop" in no_key.explain(
        https, "fatal: could not read Username for 'https://git.example.com': terminal prompts disabled", "shop")
    assert "refused the project's token" in git_access.GitAccess("shop", None, [], "tok-12345678").explain(
        https, "fatal: Authentication failed for 'https://git.example.com/shop/web.git/'", "shop")
    assert no_key.explain(SSH_REPO, "fatal: couldn't find remote ref nope", "shop") is None


# -- the registry ----------------------------------------------------------------------------


def test_pins_are_taken_on_first_use_only_and_forgotten_on_request(reg):
    reg.add_container("web1")
    reg.add_project("shop", "web1")
    first = reg.pin_host_keys("shop", [f"git.example.com ssh-ed25519 {HOST_KEY}"])
    assert first == [{"host": "git.example.com", "type": "ssh-ed25519",
                      "fingerprint": git_access.fingerprint(HOST_KEY)}]
    # A pinned host keeps its pin: a later line for it (another key, another type) changes nothing.
    assert reg.pin_host_keys("shop", [f"git.example.com ssh-ed25519 {OTHER_KEY}",
                                      f"git.example.com ecdsa-sha2-nistp256 {OTHER_KEY}"]) == []
    assert reg.git_credentials("shop")["known_hosts"] == [f"git.example.com ssh-ed25519 {HOST_KEY}"]
    assert reg.forget_host_keys("shop", "git.example.com") == 1
    assert reg.git_credentials("shop")["known_hosts"] == []
    with pytest.raises(ValidationError):
        reg.pin_host_keys("shop", ["|1|hashed ssh-ed25519 " + HOST_KEY])


def test_the_shown_access_holds_no_secret_and_goes_with_its_project(reg):
    reg.add_container("web1")
    reg.add_project("shop", "web1")
    private, public = repo_access.new_key_pair("shop")
    reg.set_deploy_key("shop", private, public)
    reg.set_git_token("shop", "glpat-secret-123456", "deployer")
    shown = json.dumps(reg.git_access("shop"))
    assert "PRIVATE KEY" not in shown and "glpat-secret-123456" not in shown and public in shown
    assert reg.git_credentials("shop") == {"known_hosts": [], "ssh_key": private, "token": "glpat-secret-123456",
                                           "token_user": "deployer"}
    reg.remove_project("shop")
    assert reg.conn.execute("SELECT count(*) FROM project_git").fetchone()[0] == 0


# -- the CLI ---------------------------------------------------------------------------------


def test_the_cli_makes_shows_rotates_and_removes_a_key(registry_path, capsys, monkeypatch):
    def dpl(*argv, stdin=""):
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        assert cli.main(list(argv)) == 0
        return capsys.readouterr().out

    dpl("init")
    dpl("container", "add", "web1")
    dpl("project", "add", "shop", "--container", "web1")
    made = json.loads(dpl("--json", "project", "key", "shop"))
    assert made["changed"] is True and "PRIVATE" not in json.dumps(made)
    public = made["access"]["deploy_key"]["public"]
    assert public in dpl("project", "key", "shop")  # shown again, not made again
    rotated = json.loads(dpl("--json", "project", "key", "shop", "--rotate"))["access"]["deploy_key"]["public"]
    assert rotated != public
    assert "removed" in dpl("project", "key", "shop", "--remove")
    assert "deploy key:      none" in dpl("project", "host-keys", "shop")

    # The token comes from standard input, never from argv, and is never printed.
    out = dpl("project", "token", "shop", "--user", "deployer", stdin="glpat-secret-123456\n")
    assert "deployer" in out and "glpat" not in out
    assert "glpat" not in dpl("--json", "project", "host-keys", "shop")
    pinned = dpl("project", "host-keys", "shop", "--pin", stdin=f"git.example.com ssh-ed25519 {HOST_KEY}\n")
    assert git_access.fingerprint(HOST_KEY) in pinned
    assert "nothing new to pin" in dpl("project", "host-keys", "shop", "--pin",
                                       stdin=f"git.example.com ssh-ed25519 {OTHER_KEY}\n")
    assert "forgotten" in dpl("project", "host-keys", "shop", "--forget", "git.example.com")
    audit = json.loads(dpl("--json", "audit"))
    assert "glpat" not in json.dumps(audit)
