"""Benchmark: server time of the JSON API and the push webhook, in one run (medians).

    .venv/bin/python benchmarks/api.py [--rounds 50]

In-process (Flask's test client: the app's own time, no network), against a registry of
50 containers, 150 apps and 10,000 jobs:

- a push webhook that queues a deploy (target <= 100 ms server time);
- GET /api/v1/apps (150 apps), GET /api/v1/jobs (a page of 50 of 10,000) (target <= 100 ms);
- GET /api/v1/hosts, the smallest answer, as the floor (auth, the registry opened).

Each time is also printed as a ratio to the floor.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dpl_web import create_app, services  # noqa: E402
from dpl_web.registry import Registry  # noqa: E402

URL = "https://git.example.com/shop/web.git"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dpl-bench-api-") as tmp:
        path = Path(tmp) / "registry.sqlite3"
        print("set-up: 50 containers, 150 apps, 10,000 jobs ...", flush=True)
        with Registry.open(path) as reg:
            reg.add_host("local")
            with reg.transaction() as conn:
                for number in range(50):
                    reg.add_container(f"c{number:02d}")
                    for app in range(3):
                        reg.add_app(f"p{number:02d}", f"a{app}", URL, container=f"c{number:02d}", port=3000 + 2 * app,
                                    ref="main", domains=[f"a{app}.p{number:02d}.example.com"])
                conn.executemany(
                    "INSERT INTO job (kind, target, container, project, who, status, created_at, params, timeout) "
                    "VALUES ('deploy', ?, ?, ?, 'bench', 'successful', '2026-01-01T00:00:00Z', '{}', 3600)",
                    [(f"app/p{n % 50:02d}/a0", f"c{n % 50:02d}", f"p{n % 50:02d}") for n in range(10000)])
            token = reg.add_token("bench", "write")[1]
        ctx = services.Context(path, "bench", start_worker=False)
        secret = services.set_webhook(ctx, "p00/a0").record["secret"]
        client = create_app({"REGISTRY": str(path), "START_WORKER": False}).test_client()
        headers = {"Authorization": f"Bearer {token}"}
        body = json.dumps({"ref": "refs/heads/main", "after": "a" * 40,
                           "repository": {"default_branch": "main"}}).encode()
        digest = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()

        def hook():
            return client.post("/hooks/p00/a0", data=body, headers={
                "X-Hub-Signature-256": digest, "X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4())})

        calls = {
            "floor": lambda: client.get("/api/v1/hosts", headers=headers),
            "webhook": hook,
            "apps": lambda: client.get("/api/v1/apps", headers=headers),
            "jobs": lambda: client.get("/api/v1/jobs?limit=50", headers=headers),
        }
        times: dict[str, list[float]] = {name: [] for name in calls}
        for round_number in range(args.rounds + 1):
            for name, call in calls.items():
                started = time.perf_counter()
                answer = call()
                elapsed = time.perf_counter() - started
                assert answer.status_code in (200, 202), (name, answer.get_data(as_text=True)[:300])
                if round_number:
                    times[name].append(elapsed)
        med = {name: statistics.median(values) * 1000 for name, values in times.items()}
        print(f"\nmedian server time of {args.rounds} calls (ms), and / floor:")
        targets = {"webhook": 100, "apps": 300, "jobs": 100}
        for name, value in med.items():
            target = f"  (target <= {targets[name]} ms)" if name in targets else ""
            print(f"  {name:8} {value:7.1f} ms   x{value / med['floor']:.1f}{target}")


if __name__ == "__main__":
    main()
