"""The JSON API end to end: the simple deploy request on a real container, run by a real
worker, followed by the job's cursor, the app answering; then the container deleted
through the API, and nothing left of it in LXD."""

from __future__ import annotations

import json
import time
import uuid

import pylxd
import pytest

from dpl_web import create_app
from dpl_web.registry import Registry
from tests.conftest import TEST_PREFIX
from tests.support.cli import curl

pytestmark = pytest.mark.lxd


def follow(client, headers, url, timeout=600):
    """Read a job's events with the cursor until it is done; returns the job and every event."""
    events, after, deadline = [], 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = client.get(f"{url}?after={after}", headers=headers).get_json()
        events += page["events"]
        after = page["next"]
        if page["done"]:
            return page["job"], events
        time.sleep(0.2)
    raise AssertionError(f"{url} did not finish within {timeout} s")


def test_the_simple_deploy_request_through_the_api(dpl, repos, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(dpl.state))  # the worker the API starts keeps its files there
    registry_path = dpl.env["DPL_REGISTRY"]
    with Registry.open(registry_path) as reg:
        token = reg.add_token("ci", "write")[1]
    client = create_app({"REGISTRY": registry_path, "TESTING": True}).test_client()
    headers = {"Authorization": f"Bearer {token}"}
    project = f"{TEST_PREFIX}{uuid.uuid4().hex[:6]}"
    dpl.made.append(project)

    answer = client.post("/api/v1/deploy", headers=headers, json={
        "name": "web", "project": project, "repo": repos[1], "ref": "v1", "port": 3000, "health_path": "/health"})
    assert answer.status_code == 202, answer.get_data(as_text=True)
    job, events = follow(client, headers, answer.get_json()["url"])
    assert job["status"] == "successful", job["summary"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    deployed = [e for e in events if e["type"] == "result" and e.get("module") == "dpl.platform.app_deploy"]
    assert deployed and deployed[0]["commit"] == repos[0].commits["v1"]

    address = client.get(f"/api/v1/containers/{project}", headers=headers).get_json()["container"]["ipv4"]
    assert json.loads(curl(f"http://{address}:3000/").stdout)["version"] == "v1"

    deleted = client.delete(f"/api/v1/containers/{project}?force=1", headers=headers)
    assert deleted.status_code == 202
    job, _events = follow(client, headers, deleted.get_json()["url"])
    assert job["status"] == "successful", job["summary"]
    assert not pylxd.Client().instances.exists(project)
    assert client.get(f"/api/v1/containers/{project}", headers=headers).status_code == 404
