"""nginx's traffic log, read a round at a time: counts per domain and per app, the cursor,
a line still being written, rotation, a backlog too big for one round, a missing file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from dpl_web import traffic
from dpl_web.paths import REPO_ROOT


def line(domain: str, status: int, upstream: str = "0.010") -> str:
    return f"1764979200.123\t{domain}\t{status}\t{upstream}\n"


def test_the_roles_default_log_is_the_one_the_control_plane_reads():
    defaults = yaml.safe_load((REPO_ROOT / "roles/nginx_edge/defaults/main.yml").read_text())
    assert defaults["nginx_edge_traffic_log"] == traffic.DEFAULT_LOG
    template = (REPO_ROOT / "roles/nginx_edge/templates/dpl-proxy.conf.j2").read_text()
    assert "'$msec\\t$server_name\\t$status\\t$upstream_response_time'" in template


def test_counts_per_domain_and_per_app():
    lines = [line("a.test", 200, "0.010"), line("a.test", 502, "0.020, 0.030"), line("A.test", 404, "-"),
             line("b.test", 200, "0.100 : 0.002"), "garbage\n", line("c.test", 200)]
    domains = traffic.count(lines)
    assert domains["a.test"]["requests"] == 3 and domains["a.test"]["errors_5xx"] == 1
    assert domains["a.test"]["errors_4xx"] == 1 and domains["a.test"]["upstream_count"] == 2
    assert domains["a.test"]["upstream_ms_max"] == 50.0
    apps = [{"project": "p", "name": "one", "domains": ["a.test", "b.test"]},
            {"project": "p", "name": "quiet", "domains": ["q.test"]},
            {"project": "p", "name": "no-domain", "domains": []}]
    figures = traffic.per_app(domains, apps)
    assert set(figures) == {"p/one", "p/quiet"}
    assert figures["p/one"] | {"requests": 4, "errors_5xx": 1, "errors_4xx": 1, "upstream_ms_max": 102.0} \
        == figures["p/one"]
    assert figures["p/one"]["upstream_ms"] == pytest.approx((0.010 + 0.050 + 0.102) / 3 * 1000, abs=0.1)
    assert figures["p/quiet"] == {"requests": 0, "errors_4xx": 0, "errors_5xx": 0, "upstream_ms": None,
                                  "upstream_ms_max": None}


def test_reads_only_what_is_new_and_waits_for_a_whole_line(tmp_path: Path):
    log = tmp_path / "dpl-traffic.log"
    log.write_text(line("old.test", 200))
    lines, cursor = traffic.read_new(log, None)
    assert lines == [] and cursor["offset"] == log.stat().st_size  # the past is not counted
    with log.open("a") as out:
        out.write(line("a.test", 200) + line("a.test", 500)[:10])  # the second one half written
    lines, cursor = traffic.read_new(log, cursor)
    assert [one.split("\t")[1] for one in lines] == ["a.test"]
    with log.open("a") as out:
        out.write(line("a.test", 500)[10:])
    lines, cursor = traffic.read_new(log, cursor)
    assert [one.split("\t")[2] for one in lines] == ["500"]
    assert traffic.read_new(log, cursor)[0] == []


def test_after_a_rotation_the_rest_of_the_old_file_comes_first(tmp_path: Path):
    log = tmp_path / "dpl-traffic.log"
    log.write_text(line("a.test", 200))
    _lines, cursor = traffic.read_new(log, None)
    with log.open("a") as out:
        out.write(line("a.test", 201))
    os.rename(log, tmp_path / "dpl-traffic.log.1")  # logrotate
    log.write_text(line("a.test", 202))
    lines, cursor = traffic.read_new(log, cursor)
    assert [one.split("\t")[2] for one in lines] == ["201", "202"]
    log.write_text(line("a.test", 203))  # truncated in place (copytruncate): read from the start
    assert [one.split("\t")[2] for one in traffic.read_new(log, {**cursor, "offset": 10**6})[0]] == ["203"]


def test_a_backlog_bigger_than_one_round_keeps_its_newest_whole_lines(tmp_path: Path, monkeypatch):
    log = tmp_path / "dpl-traffic.log"
    log.write_text("")
    _lines, cursor = traffic.read_new(log, None)
    log.write_text("".join(line("a.test", 200 + index % 100) for index in range(1000)))
    monkeypatch.setattr(traffic, "MAX_READ", 10 * len(line("a.test", 200)) + 5)
    lines, cursor = traffic.read_new(log, cursor)
    assert len(lines) == 10 and all(len(one.split("\t")) == 4 for one in lines)
    assert lines[-1].split("\t")[2] == str(200 + 999 % 100) and cursor["offset"] == log.stat().st_size


def test_a_missing_log_is_an_error_to_report(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        traffic.read_new(tmp_path / "nope.log", None)
