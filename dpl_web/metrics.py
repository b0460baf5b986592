"""``GET /metrics``: what monitoring saw last (dpl_web.monitor), in Prometheus' text format,
for those who already run Prometheus and Grafana. A bearer token of the JSON API (read scope
is enough) is required, like every API route; the figures come from the registry, so a
scrape costs no LXD call.

Made with the well-kept ``prometheus-client`` library (a collector built per scrape), not a
hand-written format.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from dpl_web.errors import DplError, Unauthorized, describe
from dpl_web.registry import Registry

bp = Blueprint("metrics", __name__)

# Container figures: (sample key, metric name, help, scale to the metric's unit).
CONTAINER_FIGURES = (
    ("cpu", "dpl_container_cpu_percent", "CPU used since the previous sample, in percent of one core", 1),
    ("memory", "dpl_container_memory_bytes", "memory in use", 1),
    ("disk", "dpl_container_disk_bytes", "root disk in use", 1),
    ("rx", "dpl_container_network_receive_bytes", "bytes received by its network interfaces", 1),
    ("tx", "dpl_container_network_transmit_bytes", "bytes sent by its network interfaces", 1),
    ("processes", "dpl_container_processes", "processes running", 1),
)
APP_FIGURES = (
    ("http", "dpl_app_http_status", "HTTP status of the health check inside the bridge network", 1),
    ("latency_ms", "dpl_app_health_latency_seconds", "time the health check took inside the bridge network",
     0.001),
    ("edge_http", "dpl_app_edge_http_status", "HTTP status of the health check through nginx over TLS", 1),
    ("edge_latency_ms", "dpl_app_edge_latency_seconds", "time the health check took through nginx over TLS",
     0.001),
    ("service_active", "dpl_app_service_active", "1 when the app's service is active (systemd)", 1),
    ("restarts", "dpl_app_service_restarts", "restarts of the app's service since the previous sample", 1),
    # nginx's figures are counted per round (the lines its log got since the previous one),
    # not since nginx started: gauges, named _round to say so.
    ("requests", "dpl_app_requests_round", "requests nginx passed to the app in the last round", 1),
    ("errors_4xx", "dpl_app_4xx_round", "answers with a 4xx status in the last round", 1),
    ("errors_5xx", "dpl_app_5xx_round", "answers with a 5xx status in the last round", 1),
    ("upstream_ms", "dpl_app_upstream_seconds", "average time the app took to answer nginx in the last round",
     0.001),
)


class RegistryCollector:
    """The latest samples of the registry at ``path``, as metric families."""

    def __init__(self, path: Path):
        self.path = path

    def collect(self) -> Iterator[Metric]:
        with Registry.open(self.path, create=False) as reg, reg.snapshot():
            containers, apps = reg.list_containers(), reg.list_apps()
            samples = reg.latest_samples([f"container/{c['name']}" for c in containers]
                                         + [f"app/{a['project']}/{a['name']}" for a in apps])
            states = reg.states()
        running = GaugeMetricFamily("dpl_container_running", "1 when the container runs", labels=["container"])
        families = {name: GaugeMetricFamily(name, text, labels=["container"])
                    for _key, name, text, _scale in CONTAINER_FIGURES}
        for container in containers:
            sample = samples.get(f"container/{container['name']}")
            if sample is None:
                continue
            running.add_metric([container["name"]], 1 if sample.get("status") == "Running" else 0)
            for key, name, _text, scale in CONTAINER_FIGURES:
                if isinstance(sample.get(key), int | float):
                    families[name].add_metric([container["name"]], sample[key] * scale)
        up = GaugeMetricFamily("dpl_app_up", "1 when the app answers its health check", labels=["app"])
        app_families = {name: GaugeMetricFamily(name, text, labels=["app"]) for _key, name, text, _scale in APP_FIGURES}
        for app in apps:
            name = f"{app['project']}/{app['name']}"
            sample = samples.get(f"app/{name}")
            if sample is None:
                continue
            up.add_metric([name], 1 if sample.get("up") else 0)
            if sample.get("service"):
                sample["service_active"] = 1 if sample["service"] == "active" else 0
            for key, metric, _text, scale in APP_FIGURES:
                if isinstance(sample.get(key), int | float):
                    app_families[metric].add_metric([name], sample[key] * scale)
        drift = GaugeMetricFamily("dpl_drift_problems", "differences between the registry and what runs, and "
                                  "apps' troubles, by kind",
                                  labels=["kind"])
        kinds: dict[str, int] = {}
        for key, state in states.items():
            if key.startswith(("drift/", "trouble/")) and state["state"] == "present":
                kinds[key.split("/")[1]] = kinds.get(key.split("/")[1], 0) + 1
        for kind, count in sorted(kinds.items()):
            drift.add_metric([kind], count)
        yield running
        yield from families.values()
        yield up
        yield from app_families.values()
        yield drift


@bp.errorhandler(DplError)
def dpl_error(exc: DplError) -> tuple[Response, int]:
    return jsonify(error=describe(exc)), exc.http_status


@bp.get("/metrics")
def metrics() -> Response:
    scheme, _sep, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("/metrics needs a token (Authorization: Bearer <token>)")
    path = Path(current_app.config["REGISTRY"])
    with Registry.open(path, create=False) as reg:
        reg.check_token(token.strip())
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(RegistryCollector(path))
    return Response(generate_latest(scrape), mimetype=CONTENT_TYPE_LATEST.split(";")[0],
                    headers={"Content-Type": CONTENT_TYPE_LATEST})
