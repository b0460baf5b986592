"""Monitoring on real containers: `dpl status` sees what happens behind DPL's back (a
container stopped, its app down; a container made outside DPL), each within one round, and
sees it clear when fixed; `--record` reports each change of state once."""

from __future__ import annotations

import json
import uuid

import pylxd
import pytest

from tests.conftest import TEST_PREFIX

pytestmark = [pytest.mark.lxd, pytest.mark.slow]

EXIT_ATTENTION = 11


def status(dpl, expect=None) -> dict:
    proc = dpl("--json", "status", "--record", expect=expect) if expect is not None else None
    if proc is None:  # other containers on this machine may be drift for this test's registry
        proc = dpl("--json", "status", "--record", expect=EXIT_ATTENTION)
    return json.loads(proc.stdout)


def kinds(report: dict, target: str) -> set[str]:
    return {problem["kind"] for problem in report["problems"] if problem["target"] == target}


def test_status_sees_what_happens_behind_dpls_back(dpl, repos):
    project = f"{TEST_PREFIX}{uuid.uuid4().hex[:6]}"
    dpl.made.append(project)
    request = {"name": "web", "project": project, "repo": repos[1], "ref": "v1", "port": 3000,
               "domain": f"{project}.dpl.test", "health_path": "/health"}
    dpl("deploy", "--from-json", "-", stdin=json.dumps(request))
    app, container = f"{project}/web", f"container/{project}"

    report = status(dpl)
    assert report["containers"][project]["status"] == "Running" and report["containers"][project]["memory"] > 0
    assert report["apps"][app] | {"up": True, "http": 200, "edge_http": 200} == report["apps"][app]
    assert kinds(report, container) == set() and kinds(report, f"app/{app}") == set()

    # Stopped behind DPL's back: drift, and the app down; said once.
    instance = pylxd.Client().instances.get(project)
    instance.stop(wait=True)
    report = status(dpl)
    assert kinds(report, container) == {"container-stopped"} and kinds(report, f"app/{app}") == {"app-down"}
    changes = {(change["target"], change["state"]) for change in report["changes"]}
    assert {(container, "stopped"), (container, "container-stopped")} <= changes
    # An app's state counts once seen twice in a row (one failed check is not an outage).
    assert (f"app/{app}", "down") not in changes
    assert (f"app/{app}", "down") in {(change["target"], change["state"]) for change in status(dpl)["changes"]}
    assert f"app/{app}" not in {change["target"] for change in status(dpl)["changes"]}  # no second alert

    # Started again: the service comes back with it, and everything clears.
    instance.start(wait=True)
    back = []
    for _attempt in range(30):
        report = status(dpl)
        back += [change for change in report["changes"] if change["target"] == f"app/{app}"]
        if back:
            break
    assert report["apps"][app]["up"] and kinds(report, container) == set()
    assert [change["state"] for change in back] == ["up"]

    # A container made outside DPL is drift until it is gone.
    stranger = f"{TEST_PREFIX}{uuid.uuid4().hex[:6]}"
    dpl.made.append(stranger)
    pylxd.Client().instances.create({"name": stranger, "source": {"type": "image", "alias": "dpl-base"}}, wait=True)
    assert kinds(status(dpl), f"container/{stranger}") == {"unknown-container"}
    pylxd.Client().instances.get(stranger).delete(wait=True)
    report = status(dpl)
    assert kinds(report, f"container/{stranger}") == set()
    assert "unknown-container" in {change["was"] for change in report["changes"]
                                   if change["target"] == f"container/{stranger}"}
