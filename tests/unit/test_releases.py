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


def test_release_info_replaces_a_link_the_repository_ships_without_following_it(tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text("the operator's file")
    release = tmp_path / "release"
    release.mkdir()
    (release / releases.RELEASE_INFO).symlink_to(outside)
    releases.write_release_info(str(release), {"commit": "c0ffee"})
    assert outside.read_text() == "the operator's file"
    info = release / releases.RELEASE_INFO
    assert not info.is_symlink() and info.read_text() == '{"commit": "c0ffee"}'


def test_release_info_refuses_a_directory_of_that_name(tmp_path):
    (tmp_path / releases.RELEASE_INFO).mkdir()
    with pytest.raises(releases.StepFailed, match="ships a directory named .dpl-release.json"):
        releases.write_release_info(str(tmp_path), {"commit": "c0ffee"})


def archive_of(path, members):
    with tarfile.open(path, "w:gz") as archive:
        for name, data, mode in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            archive.addfile(info, io.BytesIO(data))
    return str(path)


def test_restore_drops_setuid_setgid_and_sticky_bits(tmp_path):
    path = archive_of(tmp_path / "b.tar.gz", [("./run-as-root", b"#!/bin/sh\nid\n", 0o6755),
                                              ("./sticky", b"x", 0o1777), ("./plain", b"x", 0o640)])
    releases.extract_backup(path, str(tmp_path / "release"))
    modes = {name: os.stat(tmp_path / "release" / name).st_mode & 0o7777
             for name in ("run-as-root", "sticky", "plain")}
    assert modes == {"run-as-root": 0o755, "sticky": 0o777, "plain": 0o640}


@pytest.mark.parametrize("limits, too_big", [
    ({"max_bytes": 1000, "max_members": 100}, [(f"./f{n}", b"x" * 300, 0o644) for n in range(4)]),
    ({"max_bytes": 10 ** 6, "max_members": 3}, [(f"./f{n}", b"x", 0o644) for n in range(4)]),
])
def test_restore_refuses_an_archive_over_the_caps_before_writing_anything(tmp_path, limits, too_big):
    path = archive_of(tmp_path / "b.tar.gz", too_big)
    with pytest.raises(releases.StepFailed, match="too big to restore, nothing was extracted"):
        releases.extract_backup(path, str(tmp_path / "release"), **limits)
    assert not (tmp_path / "release").exists()
    # Within the caps, the same archive restores.
    releases.extract_backup(path, str(tmp_path / "fits"))
    assert len(os.listdir(tmp_path / "fits")) == 4


def test_dpls_own_commands_never_see_the_apps_environment():
    params = {key: option.get("default") for key, option in app_pipeline.app_argument_spec().items()}
    params.update(project="shop", app="web", env={"PATH": "/root/apps/shop/web/bin", "LD_PRELOAD": "/evil.so"},
                  secret_env={"API_TOKEN": "s3cr3t-token"})
    pipeline = app_pipeline.Pipeline(params)
    _rc, text = pipeline.runner.run("start", ["/usr/bin/env"])
    seen = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert seen["PATH"] == releases.BASE_PATH
    assert "LD_PRELOAD" not in seen and "API_TOKEN" not in seen and "PORT" not in seen
    # The deploy script is the app's own: it gets the app's variables.
    _rc, text = pipeline.runner.run("deploy script", ["/usr/bin/env"], env=pipeline.env)
    assert "LD_PRELOAD=/evil.so" in text and "API_TOKEN=********" in text


# -- OpenRC ------------------------------------------------------------------------------------


def test_openrc_services_are_named_and_placed_by_app_paths():
    systemd = releases.AppPaths("shop", "web")
    openrc = releases.AppPaths("shop", "web", init="openrc")
    assert (systemd.unit, systemd.slot(3001).unit) == ("dpl-shop_web.service", "dpl-shop_web@3001.service")
    assert (openrc.unit, openrc.unit_file) == ("dpl-shop_web", "/etc/init.d/dpl-shop_web")
    slot = openrc.slot(3001)
    assert (slot.unit, slot.unit_file, slot.instance_file, slot.log_file) == (
        "dpl-shop_web.3001", "/etc/init.d/dpl-shop_web.slot", "/etc/init.d/dpl-shop_web.3001",
        "/var/log/dpl-shop_web.3001.log")
    assert slot.is_slot and not openrc.single(3000).is_slot
    # A slot's own files: its env file, start script and (OpenRC) its link; never the template.
    assert slot.files() == ["/etc/dpl/apps/shop_web@3001.env", "/etc/dpl/apps/shop_web@3001.start",
                            "/etc/init.d/dpl-shop_web.3001"]
    assert systemd.slot(3001).files() == ["/etc/dpl/apps/shop_web@3001.env", "/etc/dpl/apps/shop_web@3001.start"]


def test_the_openrc_script_runs_the_start_script_with_the_env_file_under_supervise_daemon(tmp_path):
    paths = releases.AppPaths("shop", "web", init="openrc")
    script = releases.openrc_script_text(paths, paths.slot(3001))
    assert script.startswith("#!/sbin/openrc-run\n") and "supervisor=supervise-daemon" in script
    assert ". /etc/dpl/apps/shop_web@${RC_SVCNAME##*.}.env" in script
    assert "exec /etc/dpl/apps/shop_web@${RC_SVCNAME##*.}.start" in script
    assert 'rc_cgroup_cleanup="yes"' in script and "respawn_delay=1" in script
    # sh reads it as openrc-run does: the link's name gives the slot's port and files.
    assigned = subprocess.run(["sh", "-c", 'RC_SVCNAME=dpl-shop_web.3001; . "$1"; printf "%s|%s" "$directory" '
                                           '"$command_args"', "sh", "/dev/stdin"], input=script.replace(
                                               "#!/sbin/openrc-run\n", ""), capture_output=True, text=True,
                              check=True).stdout
    assert assigned == ("/root/apps/shop/.releases/web/.slot-3001|-c 'set -a; . /etc/dpl/apps/shop_web@3001.env; "
                        "set +a; exec /etc/dpl/apps/shop_web@3001.start'")


def test_an_env_file_sourced_by_sh_gives_the_values_back_exactly(tmp_path):
    """OpenRC's services source the env file systemd reads as EnvironmentFile."""
    values = {"PLAIN": "x", "QUOTES": "it's \"quoted\"", "DOLLAR": "$HOME and ${PATH}", "TICKS": "`id`",
              "BACKSLASH": "a\\b\\\\c", "SPACES": "  two  spaces "}
    env_file = tmp_path / "app.env"
    env_file.write_text(releases.env_file_text(values))
    for name, value in values.items():
        got = subprocess.run(["sh", "-c", f'set -a; . "$1"; printf %s "${name}"', "sh", str(env_file)],
                             capture_output=True, text=True, check=True).stdout
        assert got == value, name
