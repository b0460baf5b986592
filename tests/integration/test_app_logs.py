"""An app's journal from inside its container: `dpl app logs` (and its page) shows what the
app printed, secret values masked; following picks up what comes after; a bad --since is
refused before anything runs."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from dpl_web import create_app
from dpl_web.registry import Registry
from tests.conftest import TEST_PREFIX
from tests.support.apps import AppRepo, GitDaemon, app_files

pytestmark = [pytest.mark.lxd, pytest.mark.slow]

SECRET = "journal-s3cret-Value"


@pytest.fixture(scope="module")
def chatty_repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("chatty-repo")
    repo = AppRepo(root, "chatty")
    repo.commit("v1", app_files("v1", startup="console.log('starting with key ' + process.env.API_KEY);"
                                              "console.log('marker-for-the-journal');"), tag="v1")
    daemon = GitDaemon(root)
    yield daemon.url(repo)
    daemon.stop()


def test_the_journal_of_an_app_masked_and_followed(dpl, chatty_repo):
    project = f"{TEST_PREFIX}{uuid.uuid4().hex[:6]}"
    dpl.made.append(project)
    request = {"name": "web", "project": project, "repo": chatty_repo, "ref": "v1", "port": 3000,
               "health_path": "/health", "env": {"API_KEY": {"value": SECRET, "secret": True}}}
    dpl("deploy", "--from-json", "-", stdin=json.dumps(request))
    shown = dpl("app", "logs", f"{project}/web", "-n", "50").stdout
    assert "marker-for-the-journal" in shown and "starting with key ********" in shown and SECRET not in shown
    listed = dpl("--json", "app", "logs", f"{project}/web", "-n", "3").stdout
    entries = [json.loads(line) for line in listed.splitlines()]
    assert len(entries) == 3 and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", e["at"]) for e in entries)
    dpl("app", "logs", f"{project}/web", "--since", "$(reboot)", expect=4)

    # The page, then what comes after its last entry (a restart prints the marker again).
    with Registry.open(dpl.env["DPL_REGISTRY"]) as reg:
        reg.add_user("admin", "journal-test-password")
    client = create_app({"REGISTRY": dpl.env["DPL_REGISTRY"], "START_WORKER": False}).test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/login", data={"user": "admin", "password": "journal-test-password", "csrf_token": token})
    page = client.get(f"/apps/{project}/web/logs").get_data(as_text=True)
    assert "marker-for-the-journal" in page and SECRET not in page
    cursor = re.search(r'data-cursor="([^"]+)"', page).group(1)
    assert client.get(f"/apps/{project}/web/logs.json?after={cursor}").get_json()["entries"] == []
    dpl("app", "edit", f"{project}/web", "--env", "MODE=again")
    dpl("deploy", f"{project}/web")  # a new environment: a restart, so the app prints again
    after = client.get(f"/apps/{project}/web/logs.json?after={cursor}").get_json()
    texts = [entry["text"] for entry in after["entries"]]
    assert "marker-for-the-journal" in texts and all(SECRET not in text for text in texts)
