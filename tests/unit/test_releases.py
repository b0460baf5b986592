"""The deploy pipeline's pieces that need no container: links, pruning, backups, archive
checks, env files, masking, parameter validation."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile

import pytest

from ansible_collections.dpl.platform.plugins.module_utils import app_pipeline, releases
from dpl_web.collection import validation


@pytest.fixture
def paths(tmp_path):
    app = releases.AppPaths("shop", "web", str(tmp_path / "apps"), str(tmp_path / "backups"),
                            str(tmp_path / "deploy"))
    app.ensure()
    return app


def make_release(paths, release_id, commit="c0ffee", files=None):
    directory = paths.release_path(release_id)
    os.makedirs(directory)
    releases.write_release_info(directory, {"commit": commit})
    for name, text in (files or {"server.js": "x"}).items():
        path = os.path.join(directory, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(text)
    return release_id


def test_switch_moves_live_and_previous_links(paths):
    first = make_release(paths, "20260101T000000Z-aaa")
    second = make_release(paths, "20260102T000000Z-bbb")
    assert paths.switch(first) is None
    assert (paths.live_release(), paths.previous_release()) == (first, None)
    assert paths.switch(second) == first
    assert (paths.live_release(), paths.previous_release()) == (second, first)
    # The live path is a relative link into .releases: the seed's path is the live app.
    assert os.readlink(paths.live) == f".releases/web/{second}"
    paths.switch_back(first, None)
    assert (paths.live_release(), paths.previous_release()) == (first, None)


def test_prune_keeps_live_and_previous_whatever_their_age(paths):
    ids = [make_release(paths, f"2026010{day}T000000Z-r{day}") for day in range(1, 7)]
    paths.switch(ids[0])  # the oldest is live...
    paths.switch(ids[1])  # ...then the second: the oldest becomes previous
    os.makedirs(paths.release_path("20260109T000000Z-left") + ".tmp")  # a killed build's leftovers
    removed = paths.prune_releases(keep=2)
    assert set(paths.release_ids()) == {ids[0], ids[1], ids[4], ids[5]}
    assert set(removed) == {ids[2], ids[3]}
    assert not os.path.exists(paths.release_path("20260109T000000Z-left") + ".tmp")


def test_a_legacy_directory_at_the_live_path_becomes_a_release(paths):
    os.makedirs(paths.live)
    with open(os.path.join(paths.live, "index.js"), "w") as handle:
        handle.write("old")
    adopted = paths.adopt_legacy_live_dir()
    assert adopted.endswith("-pre-dpl") and paths.live_release() == adopted
    assert os.path.exists(os.path.join(paths.live, "index.js"))


def test_backup_leaves_node_modules_out_and_keeps_the_newest(paths):
    live = make_release(paths, "20260101T000000Z-aaa", commit="a" * 40,
                        files={"server.js": "x", "node_modules/dep/index.js": "y", "lib/node_modules/z": "z"})
    for old in ("20250101T000000Z-old1.tar.gz", "20250102T000000Z-old2.tar.gz"):
        open(os.path.join(paths.backups, old), "wb").close()
    made = releases.backup(paths, live, keep=2)
    with tarfile.open(made) as archive:
        names = archive.getnames()
    assert "./server.js" in names and not [n for n in names if "node_modules" in n]
    assert os.path.basename(made).endswith("-aaaaaaaaaaaa.tar.gz")
    assert oct(os.stat(made).st_mode & 0o777) == "0o600"
    assert sorted(b["name"] for b in releases.list_backups(paths)) == ["20250102T000000Z-old2.tar.gz",
                                                                       os.path.basename(made)]


def archive_with(*members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def entry(name, kind=tarfile.REGTYPE, data=b"", linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, linkname, len(data)
    return info, (data if kind == tarfile.REGTYPE else None)


@pytest.mark.parametrize("member, problem", [
    (entry("/etc/cron.d/evil", data=b"x"), "path leaves the release"),
    (entry("a/../../evil", data=b"x"), "path leaves the release"),
    (entry("link", tarfile.SYMTYPE, linkname="/etc/passwd"), "points outside the release"),
    (entry("deep/link", tarfile.SYMTYPE, linkname="../../../etc"), "points outside the release"),
    (entry("hard", tarfile.LNKTYPE, linkname="server.js"), "hard link"),
    (entry("dev", tarfile.CHRTYPE), "device, fifo or other special file"),
    (entry("fifo", tarfile.FIFOTYPE), "device, fifo or other special file"),
])
def test_unsafe_archives_are_refused_before_anything_is_extracted(tmp_path, member, problem):
    path = tmp_path / "backup.tar.gz"
    path.write_bytes(archive_with(entry("server.js", data=b"ok"), member))
    target = tmp_path / "release"
    with pytest.raises(releases.StepFailed, match=problem):
        releases.extract_backup(str(path), str(target))
    assert not target.exists()


def test_a_safe_archive_with_an_inner_symlink_is_extracted(tmp_path):
    path = tmp_path / "backup.tar.gz"
    path.write_bytes(archive_with(entry("lib/real.js", data=b"ok"),
                                  entry("lib/alias.js", tarfile.SYMTYPE, linkname="real.js")))
    releases.extract_backup(str(path), str(tmp_path / "release"))
    assert (tmp_path / "release" / "lib" / "alias.js").read_text() == "ok"


def test_env_file_values_reach_a_shell_literally(tmp_path):
    """systemd reads the file with shell-like quoting: every value must come back verbatim.
    sh parses the same quoting, so sourcing it checks the escaping here."""
    env = {"PLAIN": "x", "TRICKY": 'a "quoted" $HOME `date` \\ back', "SPACES": "  two  words "}
    env_file = tmp_path / "app.env"
    env_file.write_text(releases.env_file_text(env))
    for name, value in env.items():
        out = subprocess.run(["sh", "-c", f'set -a; . "{env_file}"; printf %s "${name}"'], capture_output=True,
                             text=True, check=True).stdout
        assert out == value


def test_masker_hides_every_secret_however_short():
    mask = releases.Masker(["s3cret-value", "ab", "s3cret", ""])
    assert mask("token s3cret-value and s3cret, ab goes") == "token ******** and ********, ******** goes"


def params(**overrides):
    base = {"project": "shop", "app": "web", "port": 3000, "start_command": "npm start", "deploy_script": None,
            "env": {}, "secret_env": {}, "health_path": "/", "keep_releases": 5, "keep_backups": 5,
            "health_timeout": 30, "lock_timeout": 60, "script_timeout": 600, "git_timeout": 60,
            "repo": "https://git.example.com/shop.git", "ref": "main"}
    base.update(overrides)
    return base


@pytest.mark.parametrize("field, value", [
    ("project", "../etc"), ("app", "Web"), ("ref", "main; rm -rf /"), ("ref", "-x"), ("repo", "--upload-pack=x"),
    ("start_command", "npm start\nrm -rf /"), ("health_path", "/x' ; rm"), ("port", 70000),
    ("env", {"BAD-NAME": "x"}), ("env", {"OK": "line\nbreak"}), ("backup", "../../etc/passwd.tar.gz"),
])
def test_pipeline_parameters_go_through_the_validation_layer(field, value):
    with pytest.raises(validation.ValidationError):
        app_pipeline.validate_params(params(**{field: value}))


def test_chained_symlinks_that_climb_out_are_refused(tmp_path):
    """Each link looks harmless on its own; followed through each other they leave the release."""
    path = tmp_path / "backup.tar.gz"
    path.write_bytes(archive_with(
        entry("x", tarfile.DIRTYPE),
        entry("x/l0", tarfile.SYMTYPE, linkname=".."),
        entry("x/l1", tarfile.SYMTYPE, linkname="l0/.."),
        entry("x/l2", tarfile.SYMTYPE, linkname="l1/.."),
        entry("x/l2/escaped", data=b"x"),
    ))
    with pytest.raises(releases.StepFailed) as caught:
        releases.extract_backup(str(path), str(tmp_path / "release" / "deep"))
    assert "x/l1: symbolic link points outside the release" in str(caught.value)
    assert "x/l2/escaped: stored below a symbolic link" in str(caught.value)
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "release").exists()


def test_a_script_that_leaves_a_background_process_does_not_hang_the_step(tmp_path):
    runner = releases.Runner(releases.Masker([]))
    started = __import__("time").monotonic()
    rc, text = runner.run("deploy script", ["/bin/sh", "-c", "echo built; sleep 30 & exit 0"], timeout=20)
    assert (rc, text.strip()) == (0, "built")
    assert __import__("time").monotonic() - started < 5
