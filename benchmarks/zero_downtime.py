"""Benchmark: what clients see through nginx while an app with a domain is deployed.

Two apps of the same container, each with its own domain, served by the host's real nginx
over TLS: one deployed *in place* (the one service restarts: how DPL deployed every app
before, and still deploys an app without domains; forced here with -e '{"dpl_slots_here": false}'),
one *without downtime* (the new release starts on the app's other port, nginx moves to it
once it is healthy, the old one stops). In each round, for each app, in turn:

- a good deploy (v1 <-> v2),
- a failing deploy (a release that listens but answers its health check with HTTP 500,
  until the health check's 30 s run out),
- a rollback,

while a client fetches https://<domain>/ every 50 ms (a new TLS connection each time, SNI
and Host the app's domain, as Cloudflare would). Prints, per app and operation, the failed
requests and the longest time between two good answers (medians and maxima over the
rounds), the deploy times, and the ratio of the good deploys' times (zero-downtime / in
place), all measured in this one run. Target: 0 failed requests for all three operations
without downtime.

    .venv/bin/python benchmarks/zero_downtime.py [--rounds 3]

Set-up (~40 s): the test app's repository served by git daemon on the bridge, a temporary
registry (DPL_REGISTRY), one container `dplbench-<hex>` made by playbooks/container.yml,
and a first deploy of each app. Everything is deleted at the end, the vhosts included.
"""

from __future__ import annotations

import argparse
import os
import signal
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
from dpl_web.registry import Registry  # noqa: E402
from tests.support.apps import BRIDGE_ADDRESS, AppRepo, GitDaemon, app_files, free_addresses  # noqa: E402
from tests.support.traffic import Poller  # noqa: E402

VENV_BIN = Path(sys.executable).parent
PREFIX = "dplbench-"
APPS = {"inplace": 3000, "zero": 3002}  # name -> port (each app owns its port and the next)
OPERATIONS = ("good deploy", "failing deploy", "rollback")


class Bench:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.container = f"{PREFIX}{uuid.uuid4().hex[:8]}"
        self.project = self.container
        self.registry = workdir / "registry.sqlite3"
        self.client = lxd.LXDClient(timeout=60)
        self.daemon: GitDaemon | None = None
        self.live = {name: "v1" for name in APPS}
        self.created = False

    def domain(self, app: str) -> str:
        return f"{app}.{self.container}.dpl.test"

    def setup(self) -> None:
        repo = AppRepo(self.workdir, "zd")
        for version in ("v1", "v2"):
            repo.commit(version, app_files(version), tag=version)
        repo.commit("sick", app_files("sick", health_status=500), tag="sick")
        self.daemon = GitDaemon(self.workdir)
        with Registry.open(self.registry) as registry:
            registry.ensure_host("local", bridge="dplbr0", bridge_ipv4=f"{BRIDGE_ADDRESS}/24")
            registry.add_container(self.container, ipv4=free_addresses(self.client, 1)[0])
            for app, port in APPS.items():
                registry.add_app(self.project, app, self.daemon.url(repo), container=self.container, port=port,
                                 domains=[self.domain(app)], health_path="/health")
        print(f"creating {self.container} through playbooks/container.yml", flush=True)
        self.created = True
        self.ansible("container.yml", "-e", f"container={self.container}", "-e", "operation=create")
        for app in APPS:
            self.run(app, "deploy.yml", "-e", "ref=v1")

    def ansible(self, playbook: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), DPL_REGISTRY=str(self.registry),
                   XDG_STATE_HOME=str(self.workdir / "state"), ANSIBLE_NOCOLOR="1",
                   PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(REPO / "inventory" / "dpl.yml"),
                               str(REPO / "playbooks" / playbook), *args], capture_output=True, text=True,
                              env=env, cwd=REPO, timeout=900, check=False)
        if check and proc.returncode != 0:
            raise SystemExit(f"{playbook} {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
        return proc

    def run(self, app: str, playbook: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        mode = ["-e", '{"dpl_slots_here": false}'] if app == "inplace" else []  # JSON: a real false
        return self.ansible(playbook, "-e", f"app={self.project}/{app}", *mode, *args, check=check)

    def operate(self, app: str, operation: str) -> float:
        """Run ``operation`` on ``app``; its duration."""
        started = time.perf_counter()
        if operation == "good deploy":
            target = "v2" if self.live[app] == "v1" else "v1"
            self.run(app, "deploy.yml", "-e", f"ref={target}")
            self.live[app] = target
        elif operation == "failing deploy":
            proc = self.run(app, "deploy.yml", "-e", "ref=sick", check=False)
            if proc.returncode == 0:
                raise SystemExit("the failing deploy did not fail")
        else:
            self.run(app, "rollback.yml")
            self.live[app] = "v2" if self.live[app] == "v1" else "v1"
        return time.perf_counter() - started

    def cleanup(self) -> None:
        if self.created:
            # The vhosts and certificates go with the container (a forced delete removes them).
            self.ansible("container.yml", "-e", f"container={self.container}", "-e", "operation=delete",
                         "-e", "force=true", check=False)
            try:
                self.client.instance(self.container)
                print(f"warning: {self.container} is still there; delete it with lxc delete --force", flush=True)
            except lxd.LXDNotFound:
                print(f"deleted {self.container} and its vhosts", flush=True)
        if self.daemon:
            self.daemon.stop()
        self.client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    failed = {(app, op): [] for app in APPS for op in OPERATIONS}
    gaps = {(app, op): [] for app in APPS for op in OPERATIONS}
    times = {(app, op): [] for app in APPS for op in OPERATIONS}
    with tempfile.TemporaryDirectory(prefix=PREFIX) as tmp:
        bench = Bench(Path(tmp))
        try:
            started = time.perf_counter()
            bench.setup()
            print(f"set-up done in {time.perf_counter() - started:.1f}s", flush=True)
            for round_no in range(1, args.rounds + 1):
                # Alternate which app goes first, so a slow moment favours neither.
                order = list(APPS) if round_no % 2 else list(reversed(APPS))
                line = []
                for op in OPERATIONS:
                    for app in order:
                        with Poller(bench.domain(app)) as poller:
                            elapsed = bench.operate(app, op)
                        report = poller.report
                        failed[app, op].append(len(report.failed))
                        gaps[app, op].append(report.longest_gap)
                        times[app, op].append(elapsed)
                        line.append(f"{app} {op}: {len(report.failed)} failed, gap {report.longest_gap:.2f}s")
                print(f"round {round_no}/{args.rounds}: " + "; ".join(line), flush=True)
        finally:
            bench.cleanup()

    print(f"\nover {args.rounds} rounds (median / max), polled every 50 ms through nginx over TLS:")
    for app in APPS:
        label = "in place" if app == "inplace" else "without downtime"
        print(f"  {label}:")
        for op in OPERATIONS:
            key = (app, op)
            print(f"    {op:15} failed requests {statistics.median(failed[key]):4.0f} / {max(failed[key]):3d}   "
                  f"longest gap {statistics.median(gaps[key]):5.2f} / {max(gaps[key]):5.2f} s   "
                  f"took {statistics.median(times[key]):5.2f} s")
    ratio = statistics.median(times["zero", "good deploy"]) / statistics.median(times["inplace", "good deploy"])
    print(f"\nratio good deploy time, without downtime / in place = {ratio:.2f}  (for information)")
    worst = max(max(failed["zero", op]) for op in OPERATIONS)
    print(f"failed requests without downtime, worst of all operations and rounds = {worst}  (target 0)  "
          + ("ok" if worst == 0 else "MISSED"))


if __name__ == "__main__":
    main()
