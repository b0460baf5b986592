"""/metrics: the latest samples in Prometheus' text format, behind a token."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from dpl_web import create_app


def test_metrics_need_a_token_and_say_what_monitoring_saw(reg, stocked, registry_path):
    stocked.add_samples(1000.0, {
        "container/web1": {"status": "Running", "cpu": 12.5, "memory": 2048, "disk": 4096, "rx": 10, "tx": 20,
                           "processes": 7},
        "container/web2": {"status": "Stopped", "memory": 0, "processes": 0},
        "app/shop/web": {"up": True, "http": 200, "latency_ms": 4.0, "edge_http": 200, "edge_latency_ms": 40.0,
                         "service": "active", "restarts": 2, "requests": 30, "errors_4xx": 3, "errors_5xx": 6,
                         "upstream_ms": 12.0},
        "app/blog/site": {"up": False, "http": None, "latency_ms": None, "error": "connection refused",
                          "service": "failed"},
    })
    stocked.set_state("drift/container-stopped/container/web2", "present", "web2 is Stopped")
    stocked.set_state("trouble/app-errors/app/shop/web", "present", "shop/web answered 6 of 30 with a 5xx")
    token = stocked.add_token("prometheus", "read")[1]
    client = create_app({"REGISTRY": str(registry_path), "START_WORKER": False}).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer dpl_not-a-token"}).status_code == 401
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
    values = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
              for family in text_string_to_metric_families(answer.get_data(as_text=True))
              for sample in family.samples}
    assert values[("dpl_container_running", (("container", "web1"),))] == 1
    assert values[("dpl_container_running", (("container", "web2"),))] == 0
    assert values[("dpl_container_cpu_percent", (("container", "web1"),))] == 12.5
    assert values[("dpl_container_memory_bytes", (("container", "web1"),))] == 2048
    assert values[("dpl_app_up", (("app", "shop/web"),))] == 1 and values[("dpl_app_up", (("app", "blog/site"),))] == 0
    assert values[("dpl_app_edge_latency_seconds", (("app", "shop/web"),))] == 0.04
    assert ("dpl_app_health_latency_seconds", (("app", "blog/site"),)) not in values  # no figure, no value
    assert values[("dpl_drift_problems", (("kind", "container-stopped"),))] == 1
    assert values[("dpl_drift_problems", (("kind", "app-errors"),))] == 1  # troubles are counted too
    shop = (("app", "shop/web"),)
    assert values[("dpl_app_service_active", shop)] == 1
    assert values[("dpl_app_service_active", (("app", "blog/site"),))] == 0
    assert (values[("dpl_app_service_restarts", shop)], values[("dpl_app_requests_round", shop)],
            values[("dpl_app_4xx_round", shop)], values[("dpl_app_5xx_round", shop)]) == (2, 30, 3, 6)
    assert values[("dpl_app_upstream_seconds", shop)] == 0.012
