"""The README's set-up command on a machine it has already prepared changes nothing.

CI runs scripts/setup before the tests, so this is at least its second run. It runs the
real playbook against this machine: LXD, nginx, the registry, the web front end and the
example app must all be found as they should be.
"""

from __future__ import annotations

import re
import subprocess
import urllib.request

import pytest

from dpl_web.paths import REPO_ROOT

pytestmark = pytest.mark.lxd


def test_setup_again_changes_nothing_and_everything_answers(lxd_client):
    proc = subprocess.run([str(REPO_ROOT / "scripts" / "setup")], capture_output=True, text=True, timeout=900,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    recap = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=0\s+failed=0", proc.stdout)
    assert recap, proc.stdout[-3000:]
    assert recap.group(2) == "0", "a second set-up changed something:\n" + proc.stdout[-5000:]
    # Every step said what it did, and the end says where things are.
    assert "==> Prepare the host and start DPL (playbooks/setup.yml)" in proc.stdout
    assert "curl --insecure --resolve hello.dpl.test:443:127.0.0.1 https://hello.dpl.test/" in proc.stdout
    with urllib.request.urlopen("http://127.0.0.1:8470/api/health", timeout=10) as response:
        assert response.status == 200
    served = subprocess.run(["curl", "--silent", "--insecure", "--max-time", "10", "--resolve",
                             "hello.dpl.test:443:127.0.0.1", "https://hello.dpl.test/"],
                            capture_output=True, text=True, check=False)
    assert served.stdout.startswith("Hello from DPL")
