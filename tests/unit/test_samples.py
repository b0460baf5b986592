"""Monitoring's history stays bounded: raw samples for a day, 5-minute averages and maxima
for 30 days; a simulated month of samples leaves the expected rollups and a file that stops
growing."""

from __future__ import annotations

import os

from dpl_web.registry import Registry
from dpl_web.registry.samples import BUCKET, RAW_KEEP, ROLLUP_KEEP

START = 1_790_000_000 // BUCKET * BUCKET  # a bucket boundary
STEP = 60  # one sample a minute (the default is every 30 s: half as many rows, same bounds)
TARGETS = ("container/web1", "app/shop/web")


def simulate(reg, first_day: int, days: int) -> None:
    """Samples for ``days`` days from ``first_day``, compacting once a simulated hour (as the
    worker does). cpu is the minute of the hour (0..59): in each 5-minute bucket m..m+4, its
    average is m+2 and its maximum m+4; up is false one minute in five."""
    for hour in range(first_day * 24, (first_day + days) * 24):
        base = START + hour * 3600
        with reg.transaction():
            for minute in range(60):
                at = base + minute * STEP
                reg.add_samples(at, {target: {"cpu": minute, "up": minute % 5 != 0, "status": "Running"}
                                     for target in TARGETS})
        reg.compact_samples(now=base + 3600)


def test_a_month_of_samples_is_folded_into_rollups_and_the_file_stops_growing(tmp_path):
    path = tmp_path / "registry.sqlite3"
    with Registry.open(path) as reg:
        simulate(reg, 0, 31)
        now = START + 31 * 86400
        raw = reg.conn.execute("SELECT count(*), min(at) FROM sample").fetchone()
        # Raw: only the last day (and the buckets not yet whole).
        assert raw[1] >= now - RAW_KEEP - BUCKET
        assert raw[0] <= len(TARGETS) * (RAW_KEEP + BUCKET) // STEP
        rollups = reg.conn.execute("SELECT count(*), min(bucket) FROM sample_rollup").fetchone()
        assert rollups[1] >= now - ROLLUP_KEEP  # older than 30 days: gone
        assert rollups[0] <= len(TARGETS) * ROLLUP_KEEP // BUCKET
        # The values: each bucket's average and maximum of what was sampled in it.
        points = reg.series("container/web1", since=now - 3 * 86400, until=now - 2 * 86400)
        assert len(points) == 86400 // BUCKET
        for point in points:
            first_minute = (int(point["at"] - BUCKET / 2) - START) % 3600 // 60
            assert (point["cpu"], point["cpu_max"]) == (first_minute + 2, first_minute + 4), point
            assert point["up"] == 0.8 and "status" not in point
        # The newest hours are still raw, one a minute.
        recent = reg.series("app/shop/web", since=now - 600)
        assert [point["at"] for point in recent] == list(range(int(now - 600), int(now), STEP))
        reg.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size_after_a_month = os.path.getsize(path)
    # Another ten days: what goes frees the pages what comes takes.
    with Registry.open(path) as reg:
        simulate(reg, 31, 10)
        reg.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert os.path.getsize(path) <= size_after_a_month * 1.1, (os.path.getsize(path), size_after_a_month)


def test_a_state_change_is_reported_once(tmp_path):
    with Registry.open(tmp_path / "registry.sqlite3") as reg:
        assert reg.set_state("app/shop/web", "up") is None  # first seen: no change to report
        assert reg.set_state("app/shop/web", "up") is None
        was = reg.set_state("app/shop/web", "down", "connection refused")
        assert was["state"] == "up"
        assert reg.set_state("app/shop/web", "down", "timed out") is None  # still down: no second alert
        state = reg.states()["app/shop/web"]
        assert (state["state"], state["detail"]) == ("down", "timed out")
        assert reg.set_state("app/shop/web", "up")["state"] == "down"
