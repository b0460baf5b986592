"""The health page: what it says about the real LXD, nginx and a registry."""

from __future__ import annotations

import pytest

from dpl_web import create_app, registry

pytestmark = pytest.mark.lxd


def test_a_missing_registry_is_reported_with_the_fix(tmp_path, lxd_client):
    client = create_app({"REGISTRY": str(tmp_path / "missing.sqlite3")}).test_client()
    answer = client.get("/api/health")
    assert answer.status_code == 503
    report = answer.get_json()
    assert report["checks"]["registry"] == {"ok": False, "detail": f"{tmp_path / 'missing.sqlite3'} does not exist",
                                            "fix": "run scripts/setup to create it"}
    # LXD and nginx are the real ones scripts/setup started.
    assert report["checks"]["lxd"]["ok"] and "image dpl-base" in report["checks"]["lxd"]["detail"]
    assert report["checks"]["nginx"]["ok"]
    page = client.get("/health")
    assert page.status_code == 503 and b"needs attention" in page.data and b"To fix: run scripts/setup" in page.data


def test_a_migrated_registry_is_healthy(tmp_path, lxd_client):
    path = tmp_path / "registry.sqlite3"
    registry.connect(path).close()
    report = create_app({"REGISTRY": str(path)}).test_client().get("/api/health").get_json()
    assert report["checks"]["registry"]["ok"]
    assert f"schema version {registry.SCHEMA_VERSION}" in report["checks"]["registry"]["detail"]
    assert report["ok"] is True
