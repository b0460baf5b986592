"""Benchmark: 20 `command` tasks through dpl.platform.lxd vs the same 20 on `local`.

Prints the ratio lxd / local measured in one run (the machine is noisy: compare ratios,
never absolute times from different runs). Target (issue 2): ratio <= 1.05.

    .venv/bin/python benchmarks/connection.py [--rounds 5] [--tasks 20]

Both sides run the tasks with the same interpreter binary (/usr/bin/python3 on the host and
in the container) and the same ansible.cfg; `local` keeps its own defaults (no pipelining),
`dpl.platform.lxd` its own (pipelining on). A pipelined `local` is printed too, for scale.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dpl_web.collection import lxd  # noqa: E402

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
{tasks}
"""


def run_playbook(workdir: Path, inventory: str, extra_env: dict | None = None) -> float:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), **(extra_env or {}))
    started = time.perf_counter()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(workdir / inventory),
         str(workdir / "play.yml")],
        capture_output=True, text=True, env=env, check=False,
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"playbook failed ({inventory}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--image", default="dpl-base")
    args = parser.parse_args()

    client = lxd.LXDClient()
    name = f"dplbench-{uuid.uuid4().hex[:8]}"
    print(f"creating container {name} from {args.image} ...", flush=True)
    client.sync_or_wait("POST", "/1.0/instances", {
        "name": name, "source": {"type": "image", "alias": args.image}, "profiles": ["default"],
    }, timeout=300)
    try:
        client.set_state(name, "start")
        client.wait_for_ipv4(name, timeout=60)
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            tasks = "\n".join(
                f"    - name: command {i}\n"
                "      ansible.builtin.command: /bin/true\n"
                "      changed_when: false"
                for i in range(args.tasks)
            )
            (workdir / "play.yml").write_text(PLAYBOOK.format(tasks=tasks))
            (workdir / "local.yml").write_text(
                "all:\n  hosts:\n    bench:\n      ansible_connection: local\n"
                "      ansible_python_interpreter: /usr/bin/python3\n")
            (workdir / "lxd.yml").write_text(
                f"all:\n  hosts:\n    {name}:\n      ansible_connection: dpl.platform.lxd\n"
                "      ansible_python_interpreter: /usr/bin/python3\n")
            samples: dict[str, list[float]] = {"local": [], "local pipelined": [], "dpl.platform.lxd": []}
            run_playbook(workdir, "lxd.yml")  # warm caches on both sides
            run_playbook(workdir, "local.yml")
            for round_no in range(1, args.rounds + 1):
                # Interleaved, so a noisy moment hurts every side alike.
                samples["local"].append(run_playbook(workdir, "local.yml"))
                samples["local pipelined"].append(
                    run_playbook(workdir, "local.yml", {"ANSIBLE_PIPELINING": "true"}))
                samples["dpl.platform.lxd"].append(run_playbook(workdir, "lxd.yml"))
                print(f"round {round_no}/{args.rounds}: "
                      + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in samples.items()), flush=True)
    finally:
        client.sync_or_wait("PUT", f"/1.0/instances/{name}/state", {"action": "stop", "force": True})
        client.sync_or_wait("DELETE", f"/1.0/instances/{name}")

    medians = {k: statistics.median(v) for k, v in samples.items()}
    print(f"\n{args.tasks} command tasks, median of {args.rounds} rounds:")
    for key, value in medians.items():
        print(f"  {key:18} {value:6.2f} s")
    ratio = medians["dpl.platform.lxd"] / medians["local"]
    print(f"\nratio dpl.platform.lxd / local           = {ratio:.3f}  (target <= 1.05)")
    print(f"ratio dpl.platform.lxd / local pipelined = "
          f"{medians['dpl.platform.lxd'] / medians['local pipelined']:.3f}")


if __name__ == "__main__":
    main()
