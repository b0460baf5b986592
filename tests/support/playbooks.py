"""Run real playbooks from tests through ansible-runner and read their results."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import ansible_runner
import yaml

from dpl_web.paths import REPO_ROOT

VENV_BIN = str(Path(sys.executable).parent)


@dataclass
class PlaybookResult:
    rc: int
    status: str
    stdout: str
    events: list = field(repr=False)
    stats: dict = field(repr=False)

    def results(self, task: str | None = None, host: str | None = None) -> list[dict]:
        """Results (``res``) of finished tasks, optionally of one task name and host."""
        found = []
        for event in self.events:
            if event.get("event") not in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable",
                                          "runner_on_skipped"):
                continue
            data = event["event_data"]
            if task is not None and data.get("task") != task:
                continue
            if host is not None and data.get("host") != host:
                continue
            found.append(dict(data.get("res") or {}, _event=event["event"]))
        return found

    def result(self, task: str, host: str | None = None) -> dict:
        found = self.results(task, host)
        assert len(found) == 1, f"expected one result of {task!r}, got {len(found)}:\n{self.stdout[-3000:]}"
        return found[0]

    def changed(self, host: str) -> int:
        return (self.stats.get("changed") or {}).get(host, 0)

    def failed(self, host: str) -> int:
        return (self.stats.get("failures") or {}).get(host, 0)


def ansible_env(**extra: str) -> dict[str, str]:
    """What Ansible needs to find this checkout's collection and the venv's commands."""
    return {"ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
            "PATH": VENV_BIN + os.pathsep + os.environ.get("PATH", ""), "ANSIBLE_NOCOLOR": "1", **extra}


def run_playbook(tmp_path: Path, plays: list | str | Path, inventory: dict, extravars: dict | None = None,
                 check: bool = False, diff: bool = False, envvars: dict | None = None,
                 limit: str | None = None, timeout: int = 600) -> PlaybookResult:
    """Run ``plays`` (a list of plays, YAML text, or a playbook path) against ``inventory``."""
    private = tmp_path / f"runner-{len(list(tmp_path.glob('runner-*')))}"
    (private / "project").mkdir(parents=True)
    (private / "inventory").mkdir()
    if isinstance(plays, Path):
        playbook = str(plays)
    else:
        text = plays if isinstance(plays, str) else yaml.safe_dump(plays, sort_keys=False)
        (private / "project" / "play.yml").write_text(text)
        playbook = "play.yml"
    (private / "inventory" / "hosts.yml").write_text(yaml.safe_dump(inventory))
    cmdline = " ".join(flag for flag, on in (("--check", check), ("--diff", diff)) if on)
    env = ansible_env(**(envvars or {}))
    runner = ansible_runner.run(
        private_data_dir=str(private), playbook=playbook, inventory=str(private / "inventory" / "hosts.yml"),
        extravars=extravars or {}, cmdline=cmdline or None, envvars=env, quiet=True, limit=limit,
        timeout=timeout,
    )
    with runner.stdout as handle:
        stdout = handle.read()
    return PlaybookResult(rc=runner.rc, status=runner.status, stdout=stdout, events=list(runner.events),
                          stats=runner.stats or {})


def lxd_inventory(*names: str, **hostvars) -> dict:
    """An inventory of containers reached through dpl.platform.lxd."""
    return {"all": {"hosts": {name: dict({"ansible_connection": "dpl.platform.lxd",
                                          "ansible_python_interpreter": "/usr/bin/python3"}, **hostvars)
                              for name in names}}}


def build_image(tmp_path: Path, name: str, **options) -> None:
    """A test-only LXD image ``name`` from DPL's base recipe with ``options`` (the base_image
    module's), built once and then cached like the base image."""
    plays = [{"name": f"image {name}", "hosts": "localhost", "gather_facts": False,
              "tasks": [{"name": "build", "dpl.platform.base_image": dict(options, name=name)}]}]
    localhost = {"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                                 "ansible_python_interpreter": sys.executable}}}}
    result = run_playbook(tmp_path, plays, localhost, timeout=1800)
    assert result.rc == 0, result.stdout
