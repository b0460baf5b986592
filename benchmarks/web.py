"""Benchmark: the web app's pages and its live log, in one run (medians).

    .venv/bin/python benchmarks/web.py [--rounds 30] [--no-browser]

Server time (Flask's test client: the app's own time, no network), against a registry of
50 containers, 150 apps and 10,000 jobs, logged in:

- the dashboard (target <= 300 ms; it reads the registry only: no LXD call at all), with a
  week of monitoring's samples for every container and app (a day raw, six days of rollups);
- the job list, first page and a page deep in the history (target <= 100 ms each);
- an app's chart over a week (a day raw, six days of rollups, thinned);
- the login page, the smallest page, as the floor (each time is also printed / floor).

In a real browser (Debian's Chromium, Playwright) against gunicorn, as scripts/setup serves
it: from the click on "Deploy" to the job's first event shown in the live log (target
<= 1 s), and from an event stored by a job to the same event on the page (the live log's
lag, target <= 1 s). Needs /usr/bin/chromium (scripts/test installs it).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dpl_web import create_app  # noqa: E402
from dpl_web.collection import lxd  # noqa: E402
from dpl_web.registry import Registry  # noqa: E402
from tests.support.web import start_gunicorn  # noqa: E402

URL = "https://git.example.com/shop/web.git"
PASSWORD = "benchmark-password"


def stock(path: Path) -> None:
    with Registry.open(path) as reg:
        reg.add_host("local")
        with reg.transaction() as conn:
            for number in range(50):
                reg.add_container(f"c{number:02d}")
                for app in range(3):
                    reg.add_app(f"p{number:02d}", f"a{app}", URL, container=f"c{number:02d}", port=3000 + 2 * app,
                                ref="main", domains=[f"a{app}.p{number:02d}.example.com"])
            conn.executemany(
                "INSERT INTO job (kind, target, container, project, who, status, created_at, started_at, finished_at, "
                "commit_id, params, timeout) VALUES ('deploy', ?, ?, ?, 'bench', 'successful', '2026-01-01T00:00:00Z', "
                "'2026-01-01T00:00:01Z', '2026-01-01T00:00:09Z', ?, '{}', 3600)",
                [(f"app/p{n % 50:02d}/a{n % 3}", f"c{n % 50:02d}", f"p{n % 50:02d}", f"{n:040x}")
                 for n in range(10000)])
        reg.add_user("admin", PASSWORD)
        add_a_week_of_samples(reg)


def add_a_week_of_samples(reg: Registry) -> None:
    """What monitoring leaves after a week: for 50 containers and 150 apps, a day of raw
    samples every 30 s and six days of 5-minute rollups."""
    import json
    import time

    from dpl_web.registry.samples import BUCKET

    now = time.time()
    targets = [f"container/c{n:02d}" for n in range(50)] + [f"app/p{n:02d}/a{a}" for n in range(50) for a in range(3)]
    figures = {"container": {"status": "Running", "cpu": 3.5, "memory": 150e6, "disk": 60e6, "rx": 1e6, "tx": 3e5,
                             "processes": 24},
               "app": {"up": True, "http": 200, "latency_ms": 4.0, "error": None, "edge_http": 200,
                       "edge_latency_ms": 40.0}}
    with reg.transaction() as conn:
        conn.executemany("INSERT INTO sample (at, target, data) VALUES (?, ?, ?)",
                         [(now - 86400 + step * 30, target, json.dumps(figures[target.split("/")[0]]))
                          for step in range(2880) for target in targets])
        rollup = {key: {field: [value, value, 60] for field, value in data.items()
                        if isinstance(value, int | float)} for key, data in figures.items()}
        first = int(now - 7 * 86400) // BUCKET * BUCKET
        conn.executemany("INSERT INTO sample_rollup (target, bucket, data) VALUES (?, ?, ?)",
                         [(target, bucket, json.dumps(rollup[target.split("/")[0]])) for target in targets
                          for bucket in range(first, int(now - 86400), BUCKET)])


def server_times(path: Path, rounds: int) -> None:
    app = create_app({"REGISTRY": str(path), "START_WORKER": False})
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post("/login", data={"user": "admin", "password": PASSWORD, "csrf_token": token}).status_code == 302
    calls = {
        "floor": "/login",
        "dashboard": "/",
        "jobs": "/jobs/",
        "jobs deep": "/jobs/?before=500",
        "jobs filter": "/jobs/?status=successful&target=app/p07/a1",
        "chart week": "/monitoring/series?target=app/p07/a1&range=week",
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    lxd_calls = []
    with mock.patch.object(lxd.LXDClient, "request", side_effect=lambda *a, **k: lxd_calls.append(a)):
        for round_number in range(rounds + 1):
            for name, url in calls.items():
                started = time.perf_counter()
                answer = client.get(url)
                elapsed = time.perf_counter() - started
                assert answer.status_code == 200, (name, answer.status_code)
                if round_number:
                    times[name].append(elapsed)
    dashboard = client.get("/").get_data(as_text=True)
    assert dashboard.count('<tr id="app-') == 150, "the dashboard does not show the 150 apps"
    assert dashboard.count("health: ") == 150, "the dashboard does not show the apps' health"
    med = {name: statistics.median(values) * 1000 for name, values in times.items()}
    print(f"\nmedian server time of {rounds} requests (ms), and / floor:")
    targets = {"dashboard": 300, "jobs": 100, "jobs deep": 100, "jobs filter": 100}
    for name, value in med.items():
        target = f"  (target <= {targets[name]} ms)" if name in targets else ""
        print(f"  {name:12} {value:7.1f} ms   x{value / med['floor']:.1f}{target}")
    print(f"  LXD calls made by all those pages: {len(lxd_calls)}")


def browser_times(path: Path, tmp: Path, rounds: int) -> None:
    from playwright.sync_api import sync_playwright

    # No worker runs: the deploys stay queued, and this process writes the events itself.
    env = dict(os.environ, DPL_REGISTRY=str(path), XDG_STATE_HOME=str(tmp / "state"))
    lock = open(str(path) + ".worker-lock", "w+b")  # noqa: SIM115 - held for the whole run
    import fcntl

    fcntl.flock(lock, fcntl.LOCK_EX)
    server, base = start_gunicorn(env)
    try:
        clicks, lags = [], []
        with sync_playwright() as playwright, Registry.open(path) as reg:
            chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-background-networking", "--disable-component-update"])
            page = chromium.new_page()
            page.goto(base + "/login")
            page.fill("#f-user", "admin")
            page.fill("#f-password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(base + "/")
            for number in range(rounds):
                page.goto(f"{base}/apps/p{number % 50:02d}/a2")
                started = time.perf_counter()
                page.click("button:has-text('Deploy')")
                page.locator("#log").get_by_text("queued by").wait_for(timeout=10_000)
                clicks.append(time.perf_counter() - started)
                job_id = int(re.search(r"/jobs/(\d+)", page.url).group(1))
                marker = f"benchmark event {number}"
                started = time.perf_counter()
                reg.add_job_event(job_id, "note", {"msg": marker})
                page.locator("#log").get_by_text(marker).wait_for(timeout=10_000)
                lags.append(time.perf_counter() - started)
            chromium.close()
        print(f"\nin Chromium, median of {rounds} (s):")
        print(f"  click on Deploy -> first live event shown  {statistics.median(clicks):6.3f} s   "
              f"(max {max(clicks):.3f}; target <= 1 s)")
        print(f"  event stored -> shown in the live log      {statistics.median(lags):6.3f} s   "
              f"(max {max(lags):.3f}; target <= 1 s)")
    finally:
        server.kill()
        server.wait(timeout=30)
        lock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--no-browser", action="store_true", help="server times only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dpl-bench-web-") as tmp:
        path = Path(tmp) / "registry.sqlite3"
        print("set-up: 50 containers, 150 apps, 10,000 jobs, a week of samples ...", flush=True)
        stock(path)
        server_times(path, args.rounds)
        if not args.no_browser:
            browser_times(path, Path(tmp), min(args.rounds, 10))


if __name__ == "__main__":
    main()
