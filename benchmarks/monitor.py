"""Benchmark: one monitoring round (dpl_web.monitor.collect + record), in one run.

    .venv/bin/python benchmarks/monitor.py [--rounds 5]

A registry of 50 containers and 150 apps with a domain each (and of 17 and 51, to see how
the cost grows); LXD is the real one (one call per host is counted); the apps' health checks
go to an HTTP server on loopback standing in for the apps (their addresses in the registry
are the bridge's, where nothing answers here), one of which answers in 0.5 s, the others at
once. The stand-in containers are not in LXD: each one's service read (one exec, as for a
real container) goes into one real running container (--exec-into, default the example
app's), so 50 execs at once land on one container's systemd. nginx's traffic log and the
vhost folder are the host's real ones.

Prints, medians of the rounds:
- LXD calls per round (target: one per host);
- the round's time, and that time minus the slowest check's (target <= 1 s);
- the cost of 150 apps / the cost of 50 (target <= 3: at most linear);
- CPU time of a round / the default interval (30 s) (target <= 2 %).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dpl_web import monitor  # noqa: E402
from dpl_web.collection import lxd  # noqa: E402
from dpl_web.registry import Registry  # noqa: E402

SLOW = 0.5  # seconds the slowest app takes to answer


class Apps(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the name http.server calls
        if self.path == "/slow":
            time.sleep(SLOW)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


class AppsServer(ThreadingHTTPServer):
    # 32 checks connect at once: with socketserver's backlog of 5, the kernel drops SYNs and
    # a client waits a second to retry, which would be the stand-in's cost, not the monitor's.
    request_queue_size = 128


def serve_apps(ready) -> None:
    server = AppsServer(("127.0.0.1", 0), Apps)
    ready.put(server.server_port)
    server.serve_forever()


def stock(path: Path, containers: int) -> None:
    with Registry.open(path) as reg:
        reg.add_host("local")
        with reg.transaction():
            for number in range(containers):
                reg.add_container(f"c{number:02d}")
                for app in range(3):
                    reg.add_app(f"p{number:02d}", f"a{app}", "https://git.example.com/x.git",
                                container=f"c{number:02d}", port=3000 + 2 * app,
                                domains=[f"a{app}.p{number:02d}.bench.test"],
                                health_path="/slow" if (number, app) == (0, 0) else "/health")


def rounds(path: Path, port: int, count: int, exec_into: str) -> dict[str, float]:
    real_get, calls = monitor._get, []
    real_collect_host, real_services_of = monitor._collect_host, monitor._services_of
    execs = []

    def with_stand_ins(found, host, recorded):
        """The registry's containers as if LXD ran them (in the same one LXD call)."""
        real_collect_host(found, host, recorded)
        found.drift = [problem for problem in found.drift if problem["kind"] != "container-missing"]
        for name in recorded:
            found.containers.setdefault(name, {"status": "Running", "ipv4": None, "cpu_ns": 0, "memory": 0,
                                               "disk": 0, "rx": 0, "tx": 0, "processes": 0})

    def into_the_real_one(host, _container, apps):
        execs.append(len(apps))
        return real_services_of(host, exec_into, apps)

    def to_loopback(address, _port, health_path, timeout, domain=None):
        return real_get("127.0.0.1", port, health_path, timeout)

    real_request = lxd.LXDClient.request

    def counted(self, *args, **kwargs):
        calls.append(args[:2])
        return real_request(self, *args, **kwargs)

    walls, cpus, lxd_calls = [], [], []
    with mock.patch.object(monitor, "_get", to_loopback), mock.patch.object(lxd.LXDClient, "request", counted), \
            mock.patch.object(monitor, "_collect_host", with_stand_ins), \
            mock.patch.object(monitor, "_services_of", into_the_real_one):
        for _round in range(count + 1):
            calls.clear()
            execs.clear()
            cpu, wall = time.process_time(), time.perf_counter()
            monitor.record(path, monitor.collect(path))
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
            # An exec is an LXD call too (its own, per container): counted apart.
            lxd_calls.append(len([call for call in calls if not str(call[1]).endswith("/exec")
                                  and "/operations/" not in str(call[1])]))
    # The first round pays for imports and the registry's first samples: left out.
    return {"wall": statistics.median(walls[1:]), "cpu": statistics.median(cpus[1:]),
            "lxd": statistics.median(lxd_calls[1:]), "execs": len(execs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--exec-into", default="example", help="a running container for the service reads")
    args = parser.parse_args()
    # The stand-in apps run in a process of their own, as apps do: in this one they would
    # compete with the checks for the interpreter's lock.
    ready = multiprocessing.Queue()
    apps = multiprocessing.Process(target=serve_apps, args=(ready,), daemon=True)
    apps.start()
    port = ready.get(timeout=30)
    try:
        with tempfile.TemporaryDirectory(prefix="dpl-bench-monitor-") as tmp:
            found = {}
            for containers in (17, 50):
                path = Path(tmp) / f"registry-{containers}.sqlite3"
                stock(path, containers)
                found[containers] = rounds(path, port, args.rounds, args.exec_into)
    finally:
        apps.terminate()
    big, small = found[50], found[17]
    print(f"median of {args.rounds} rounds, 50 containers and 150 apps (and 17 and 51):")
    print(f"  LXD calls per round               {big['lxd']:.0f}   (target: 1, one host)")
    print(f"  service reads (execs) per round   {big['execs']}   (one per container with apps)")
    print(f"  round                             {big['wall']:.3f} s")
    print(f"  round - the slowest check ({SLOW} s)  {big['wall'] - SLOW:.3f} s   (target <= 1 s)")
    print(f"  150 apps / 51 apps (time)         {big['wall'] / small['wall']:.2f}   (target <= 3: linear)")
    print(f"  150 apps / 51 apps (CPU)          {big['cpu'] / small['cpu']:.2f}")
    print(f"  CPU of a round / {monitor.INTERVAL} s interval      {big['cpu'] / monitor.INTERVAL * 100:.2f} %   "
          "(target <= 2 %)")


if __name__ == "__main__":
    main()
