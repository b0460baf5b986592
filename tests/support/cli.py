"""The `dpl` command as the integration tests run it: each test with its own registry and
state directory (DPL_REGISTRY, XDG_STATE_HOME), so the user's registry and job history are
never touched; and how to look at what it made (nginx over TLS, a shell in a container)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from dpl_web.collection import lxd

DPL = str(Path(sys.executable).parent / "dpl")


class Dpl:
    def __init__(self, tmp_path: Path):
        # The settings too: a job's alerts never go where the user's alert-urls file says.
        self.env = dict(os.environ, DPL_REGISTRY=str(tmp_path / "registry.sqlite3"),
                        XDG_STATE_HOME=str(tmp_path / "state"), XDG_CONFIG_HOME=str(tmp_path / "config"))
        self.state = tmp_path / "state"

    def __call__(self, *args: str, stdin: str | None = None, expect: int = 0) -> subprocess.CompletedProcess:
        proc = subprocess.run([DPL, *args], input=stdin, capture_output=True, text=True, env=self.env,
                              timeout=900, check=False)
        assert proc.returncode == expect, f"dpl {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def json(self, *args: str, **kwargs) -> dict:
        return json.loads(self("--json", *args, **kwargs).stdout)


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "--silent", "--show-error", "--max-time", "10", *args], capture_output=True,
                          text=True, check=False)


def served(domain: str) -> str | None:
    """The version nginx serves for ``domain`` over TLS, or None when nothing answers it."""
    answer = curl("--insecure", "--resolve", f"{domain}:443:127.0.0.1", f"https://{domain}/")
    try:
        return json.loads(answer.stdout)["version"] if answer.returncode == 0 else None
    except ValueError:
        return None


def in_container(client: lxd.LXDClient, name: str, script: str) -> str:
    rc, out, err = client.execute(name, ["/bin/sh", "-c", script])
    assert rc == 0, err
    return out.decode().strip()


def deploy_web_app(dpl: Dpl, repo_url: str, ref: str = "v1") -> tuple[str, str]:
    """Deploy the test app as ``<new project>/web`` on its own domain (behind the host's
    nginx) in a new container the test's ``dpl`` deletes afterwards: (project, domain)."""
    from tests.conftest import TEST_PREFIX

    project = f"{TEST_PREFIX}{uuid.uuid4().hex[:6]}"
    dpl.made.append(project)
    domain = f"{project}.dpl.test"
    request = {"name": "web", "project": project, "repo": repo_url, "ref": ref, "port": 3000,
               "domain": domain, "health_path": "/health"}
    dpl("deploy", "--from-json", "-", stdin=json.dumps(request))
    return project, domain
