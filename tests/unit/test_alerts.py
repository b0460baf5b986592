"""Alerts reach a receiver (apprise's JSON webhook, served on loopback by the test): each
once, retried with a doubling wait when the receiver fails, the outcome kept with the alert;
flapping is damped (a state counts once seen in rounds in a row)."""

from __future__ import annotations

import pytest

from dpl_web import alerts
from dpl_web.registry import Registry


def test_an_alert_is_sent_retried_with_backoff_and_its_outcome_kept(registry_path, reg, receiver):
    url, got, state = receiver
    first = {"target": "app/shop/web", "state": "down", "was": "up", "message": "app shop/web is down: refused"}
    first["id"] = reg.add_alert(first["target"], first["state"], first["message"])
    state["fail"] = 2
    waits = []
    assert alerts.send(registry_path, [first], [url], sleep=waits.append) == ["sent after 3 tries"]
    assert waits == [alerts.FIRST_WAIT, alerts.FIRST_WAIT * 2]
    assert len(got) == 3 and got[-1]["title"] == "DPL: app shop/web is down: refused"
    assert "app/shop/web: down (was up)" in got[-1]["message"] and got[-1]["type"] == "failure"
    # A receiver that never answers well: given up after the last try, and said so.
    state["fail"] = 100
    second = {"target": "app/shop/web", "state": "up", "was": "down", "message": "app shop/web is up again"}
    second["id"] = reg.add_alert(second["target"], second["state"], second["message"])
    assert alerts.send(registry_path, [second], [url], sleep=waits.append) == [f"failed after {alerts.TRIES} tries"]
    with Registry.open(registry_path) as check:
        notified = {alert["id"]: alert["notified"] for alert in check.list_alerts()}
    assert notified == {first["id"]: "sent after 3 tries", second["id"]: f"failed after {alerts.TRIES} tries"}


def test_a_url_apprise_does_not_know_is_refused_without_being_shown(registry_path, reg):
    with pytest.raises(ValueError) as refused:
        alerts.send(registry_path, [], ["nonsense://secret-token@example"])
    assert "secret-token" not in str(refused.value)


def test_the_urls_come_from_a_file_and_none_is_no_alert(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert alerts.configured_urls() == []
    (tmp_path / "dpl").mkdir()
    (tmp_path / "dpl" / "alert-urls").write_text("# where alerts go\njson://127.0.0.1:9/a\n\nmailto://u:p@x.test\n")
    assert alerts.configured_urls() == ["json://127.0.0.1:9/a", "mailto://u:p@x.test"]


def test_flapping_is_damped(reg):
    assert reg.set_state("app/shop/web", "up", confirm=2) is None  # first seen
    assert reg.pending_states() == 0
    assert reg.set_state("app/shop/web", "down", confirm=2) is None  # once: not yet
    assert reg.pending_states() == 1  # the worker looks again in CONFIRM_AFTER seconds
    assert reg.set_state("app/shop/web", "up", confirm=2) is None  # back: nothing happened
    assert reg.pending_states() == 0
    assert reg.set_state("app/shop/web", "down", confirm=2) is None
    assert reg.set_state("app/shop/web", "down", confirm=2)["state"] == "up"  # twice in a row: it counts
    assert reg.pending_states() == 0
    assert reg.states()["app/shop/web"]["state"] == "down"
