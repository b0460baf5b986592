"""A deploy's steps and its build's output reach the job's events while the one Ansible task
still runs (the module writes them to a progress file in the container, the job follows it
over the LXD API): each line within a second of being printed, secrets masked, before the
task's own result; and `dpl deploy` prints them as they come."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import pytest

from dpl_web.registry import Registry
from tests.conftest import TEST_PREFIX
from tests.support.apps import AppRepo, GitDaemon, app_files

pytestmark = [pytest.mark.lxd, pytest.mark.slow]

SECRET = "progress-s3cret-Value"
# A build that takes a while and says so: each line carries the time it was printed (the
# containers share the host's clock).
SLOW_BUILD = """\
for n in 1 2 3; do
  echo "line $n at $(date +%s.%N)"
  sleep 1.5
done
echo "the key is $API_KEY"
npm ci --omit=dev --no-audit --no-fund
"""


@pytest.fixture(scope="module")
def slow_repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("slow-repo")
    repo = AppRepo(root, "slow")
    repo.commit("v1", app_files("v1", extra={"slow-build.sh": SLOW_BUILD}), tag="v1")
    daemon = GitDaemon(root)
    yield daemon.url(repo)
    daemon.stop()


def test_the_build_output_arrives_while_the_deploy_runs(dpl, slow_repo):
    project = f"{TEST_PREFIX}{uuid.uuid4().hex[:6]}"
    dpl.made.append(project)
    request = {"name": "web", "project": project, "repo": slow_repo, "ref": "v1", "port": 3000,
               "health_path": "/health", "deploy_script": "slow-build.sh",
               "env": {"API_KEY": {"value": SECRET, "secret": True}}}
    deployed = dpl("deploy", "--from-json", "-", stdin=json.dumps(request))
    assert "     | line 2 at" in deployed.stderr and "  -> deploy script" in deployed.stderr
    assert SECRET not in deployed.stderr

    with Registry.open(dpl.env["DPL_REGISTRY"]) as reg:
        job = reg.list_jobs(kind="deploy")[0]
        events = reg.job_events(job["id"], limit=10000)
    assert job["status"] == "successful", job["summary"]
    steps = [event["step"] for event in events if event["type"] == "step"]
    assert steps[:2] == ["lock", "fetch"] and {"build", "deploy script", "start", "health check"} <= set(steps)
    printed = [event for event in events if event["type"] == "output" and event["line"].startswith("line ")]
    assert [event["line"].split()[1] for event in printed] == ["1", "2", "3"]
    for event in printed:
        lag = datetime.fromisoformat(event["at"].replace("Z", "+00:00")).timestamp() - float(event["line"].split()[3])
        assert 0 <= lag <= 1.0, (event, lag)
    # All of it before the deploy task's own result: it came while the task ran.
    result = next(event["seq"] for event in events
                  if event["type"] == "result" and event.get("module") == "dpl.platform.app_deploy")
    assert max(event["seq"] for event in printed) < result
    said = [event["line"] for event in events if event["type"] == "output" and "the key is" in event["line"]]
    assert said and SECRET not in said[0] and "********" in said[0]

    # What it printed stays readable afterwards: `dpl app logs --deploys`, masked as stored.
    outputs = dpl.json("app", "logs", f"{project}/web", "--deploys", "1")["deploys"]
    assert [(output["job"], output["status"]) for output in outputs] == [(job["id"], "successful")]
    assert [line.split()[1] for line in outputs[0]["lines"] if line.startswith("line ")] == ["1", "2", "3"]
    assert any("the key is ********" in line for line in outputs[0]["lines"])
    text = dpl("app", "logs", f"{project}/web", "--deploys").stdout
    assert f"== job {job['id']}: deploy successful" in text and "line 3 at" in text and SECRET not in text
