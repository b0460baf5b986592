"""Monitoring's history for the pages' charts: a target's figures over the last hour, day or
week (raw samples for the last day, 5-minute rollups before), thinned to what a chart can
show, with the network counters turned into rates."""

from __future__ import annotations

import time

from flask import Blueprint, jsonify, request

from dpl_web.errors import BadRequest
from dpl_web.registry import Registry, parse_target
from dpl_web.web import ctx

bp = Blueprint("monitoring", __name__, url_prefix="/monitoring")

RANGES = {"hour": 3600, "day": 86400, "week": 7 * 86400}
POINTS = 240  # at most this many points per chart
COUNTERS = ("rx", "tx")  # cumulative: shown as bytes per second


def thin(points: list[dict], most: int = POINTS) -> list[dict]:
    """At most ``most`` points: each the average of a run of neighbours (maxima kept)."""
    if len(points) <= most:
        return points
    size = -(-len(points) // most)
    thinned = []
    for start in range(0, len(points), size):
        run = points[start:start + size]
        merged: dict = {"at": sum(point["at"] for point in run) / len(run)}
        for key in {key for point in run for key in point} - {"at"}:
            numbers = [point[key] for point in run if isinstance(point.get(key), int | float)]
            if numbers:
                merged[key] = max(numbers) if key.endswith("_max") else sum(numbers) / len(numbers)
        thinned.append(merged)
    return thinned


def rates(points: list[dict]) -> list[dict]:
    """Counters (rx, tx) as bytes per second between a point and the one before it."""
    for before, point in zip(points, points[1:], strict=False):
        elapsed = point["at"] - before["at"]
        for key in COUNTERS:
            if elapsed > 0 and isinstance(point.get(key), int | float) and isinstance(before.get(key), int | float):
                point[f"{key}_rate"] = max(0.0, (point[key] - before[key]) / elapsed)
    return points


@bp.get("/series")
def series():
    target = request.args.get("target", "")
    parse_target(target)  # a refused target is a 422 from the validation layer
    span = RANGES.get(request.args.get("range", "day"))
    if span is None:
        raise BadRequest(f"range must be one of {', '.join(RANGES)}")
    now = time.time()
    with Registry.open(ctx().registry_path, create=False) as reg:
        points = reg.series(target, since=now - span, until=now)
    for point in points:  # a raw sample's "up": true is a 1 to draw and average (rollups hold numbers)
        point.update({key: int(value) for key, value in point.items() if isinstance(value, bool)})
    points = thin(rates(points))
    for point in points:  # cumulative counters mean nothing on a chart
        for key in COUNTERS:
            point.pop(key, None)
            point.pop(f"{key}_max", None)

    return jsonify(target=target, range=request.args.get("range", "day"), points=points)
