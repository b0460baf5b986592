"""Benchmark: what the job queue and the worker cost (issue 10's "Performance").

Prints ratios measured in one run (interleaved rounds, medians; the machine is noisy:
compare ratios, never absolute times from different runs):

- S / V   ``dpl deploy --detach`` (queue a job, wake the worker) against ``dpl --version``
          (Python start-up and the CLI's imports): submitting is instant. Target <= 2.
- L       how long a queued job waits once its slot is free: from the event that ends the
          job before it (same target) to its own start event (ms timestamps). Target <= 0.5 s.
- W / P   a job through the queue, the worker (already running), ansible-runner and a
          follower reading its event stream, against ``ansible-playbook`` of the same playbook
          (tests/support/sleep.yml with 0 s: a playbook that does nothing, so the ratio shows
          the job machinery's whole overhead; on a real deploy it is spread over seconds).
- I1000 / I1   ``ansible-inventory --list`` as a job on one app runs it (DPL_INVENTORY_CONTAINER)
          over a registry of 1,000 containers x 3 apps, against a registry holding only that
          app: the only part of a deploy that reads the registry. Target (a deploy) <= 1.15.
          The unscoped read of the big registry is shown for information.

    .venv/bin/python benchmarks/jobs.py [--rounds 7]

No LXD needed: the worker is the real one with the ``test-sleep`` kind of the tests
(tests/support/worker.py), on a temporary registry and state directory.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dpl_web.jobs import follow, worker  # noqa: E402
from dpl_web.registry import Registry  # noqa: E402

BIN = Path(sys.executable).parent
URL = "https://git.example.com/shop/web.git"


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, cwd=REPO)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def big_registry(path: Path, containers: int) -> None:
    with Registry.open(path) as reg:
        reg.add_host("local", bridge_ipv4="10.0.0.1/16")
        with reg.transaction():
            for number in range(containers):
                name = "web1" if number == 0 else f"c{number:04d}"
                reg.add_container(name)
                for app in range(3):
                    reg.add_app(f"p{number:04d}" if number else "shop", "web" if app == 0 else f"a{app}", URL,
                                container=name, port=3000 + 2 * app, domains=[f"d{app}.{name}.example.com"],
                                env={"NODE_ENV": "production"}, secret_env={"TOKEN": "s3cret-token"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dpl-bench-jobs-") as tmp:
        tmp = Path(tmp)
        small, large, queue = tmp / "small.sqlite3", tmp / "large.sqlite3", tmp / "queue.sqlite3"
        print("set-up: registries of 1 and 1,000 containers (3 apps each), a worker ...", flush=True)
        big_registry(small, 1)
        big_registry(large, 1000)
        big_registry(queue, 1)
        base = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), XDG_STATE_HOME=str(tmp / "state"))

        # S / V: a registry whose "worker" is this process (it holds the lock and ignores the
        # wake-up): the jobs stay queued, nothing runs beside the measurement.
        submit_env = dict(base, DPL_REGISTRY=str(small))
        signal.signal(signal.SIGUSR1, lambda *_: None)
        lock = open(worker.lock_path(small), "w+b")  # noqa: SIM115 - held for the whole run
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.write(f"{os.getpid()}\n".encode())
        lock.flush()

        # The real worker for L and W, on its own registry.
        queue_env = dict(base, DPL_REGISTRY=str(queue))
        proc = subprocess.Popen([sys.executable, "-m", "tests.support.worker", str(queue), "2", "3600", "0.5"],
                                cwd=REPO, env=queue_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not worker.worker_running(queue):
                time.sleep(0.1)
            times: dict[str, list[float]] = {key: [] for key in ("S", "V", "W", "P", "I1000", "I1", "I1000all")}
            waits: list[float] = []
            inventory = ["ansible-inventory", "-i", str(REPO / "inventory" / "dpl.yml"), "--list"]
            for round_number in range(args.rounds + 1):
                sample = {
                    "S": lambda: timed([str(BIN / "dpl"), "deploy", "--detach", "shop/web"], submit_env),
                    "V": lambda: timed([str(BIN / "dpl"), "--version"], submit_env),
                    "P": lambda: timed([str(BIN / "ansible-playbook"), "-i", str(REPO / "inventory" / "dpl.yml"),
                                        "tests/support/sleep.yml", "-e", "seconds=0"], queue_env),
                    "W": lambda: job_through_the_worker(queue),
                    "I1000": lambda: timed([str(BIN / inventory[0]), *inventory[1:]],
                                           dict(base, DPL_REGISTRY=str(large), DPL_INVENTORY_CONTAINER="web1")),
                    "I1": lambda: timed([str(BIN / inventory[0]), *inventory[1:]],
                                        dict(base, DPL_REGISTRY=str(small), DPL_INVENTORY_CONTAINER="web1")),
                    "I1000all": lambda: timed([str(BIN / inventory[0]), *inventory[1:]],
                                              dict(base, DPL_REGISTRY=str(large))),
                }
                order = list(sample)
                shift = round_number % len(order)
                for key in order[shift:] + order[:shift]:
                    value = sample[key]()
                    if round_number:  # the first round warms up
                        times[key].append(value)
                if round_number:
                    waits.append(wait_for_free_slot(queue))
                print(f"  round {round_number}{' (warm-up)' if not round_number else ''} done", flush=True)
        finally:
            proc.terminate()
            proc.wait()
        med = {key: statistics.median(values) for key, values in times.items()}
        print(f"\nmedians of {args.rounds} rounds (s): " + ", ".join(f"{k} {v:.3f}" for k, v in med.items()))
        print(f"S / V          = {med['S'] / med['V']:.2f}   (target <= 2: submitting is instant)")
        print(f"L              = {statistics.median(waits):.3f} s median, {max(waits):.3f} s max "
              "(target <= 0.5 s from a free slot to the start)")
        print(f"W / P          = {med['W'] / med['P']:.2f}   (a do-nothing playbook: the job machinery's whole "
              f"overhead, {med['W'] - med['P']:.2f} s here)")
        print(f"I1000 / I1     = {med['I1000'] / med['I1']:.2f}   (target <= 1.15: a job's inventory does not "
              "grow with the registry)")
        print(f"I1000all / I1  = {med['I1000all'] / med['I1']:.2f}   (for information: the whole registry)")


def job_through_the_worker(registry_path: Path) -> float:
    """Queue a do-nothing job as a service does (record, wake the worker) and follow it."""
    started = time.perf_counter()
    with Registry.open(registry_path) as reg:
        job = reg.create_job("test-sleep", "app/shop/web", "bench", params={"seconds": 0})
    worker.wake(registry_path)
    done = follow.follow(registry_path, job, keep_worker=False)
    elapsed = time.perf_counter() - started
    if done["status"] != "successful":
        raise SystemExit(f"job {job} {done['status']}: {done['summary']}")
    return elapsed


def wait_for_free_slot(registry_path: Path) -> float:
    """Two jobs for one target: how long after the first ends does the second start?"""
    with Registry.open(registry_path) as reg:
        first = reg.create_job("test-sleep", "app/shop/web", "bench", params={"seconds": 1})
        second = reg.create_job("test-sleep", "app/shop/web", "bench", params={"seconds": 0})
    worker.wake(registry_path)
    follow.follow(registry_path, second, keep_worker=False)
    with Registry.open(registry_path) as reg:
        ended = [e for e in reg.job_events(first) if e["type"] == "finished"][0]["at"]
        began = [e for e in reg.job_events(second) if e["type"] == "started"][0]["at"]
    return stamp(began) - stamp(ended)


if __name__ == "__main__":
    main()
