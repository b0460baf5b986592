"""Alerts sent where the operator asked: any URL apprise knows (mailto://, slack://,
discord://, tgram://, matrix://, json:// and many more: https://github.com/caronc/apprise),
one a line in ``paths.alert_urls_path()`` (mode 0600; the control_plane role writes
``control_plane_alert_urls`` there).

Each alert (a change of state that monitoring recorded) is sent once to every URL, in the
background (a slow mail server never delays a monitoring round), tried up to
:data:`TRIES` times with a doubling wait between tries; the alert's record says whether it
went. The URLs may hold tokens: they are never logged or stored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dpl_web import paths
from dpl_web.registry import Registry

TRIES = 4
FIRST_WAIT = 2.0  # seconds before the second try; doubled before each next one


def configured_urls() -> list[str]:
    """The URLs in the alert URLs file (one a line; none when it is missing)."""
    try:
        text = paths.alert_urls_path().read_text()
    except FileNotFoundError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def send(registry_path: Path | str, alerts: list[dict[str, Any]], urls: list[str],
         sleep: Callable[[float], None] = time.sleep) -> list[str]:
    """Send each alert to every URL; returns how each went ("sent", "sent after N tries",
    "failed after N tries"), also written to the alert's record."""
    import apprise  # only the worker sends alerts

    notifier = apprise.Apprise()
    for url in urls:
        if not notifier.add(url):
            # Said without the URL itself: it may carry a token.
            raise ValueError(f"an alert URL is not one apprise knows (#{urls.index(url) + 1} of the alert URLs)")
    outcomes = []
    for alert in alerts:
        kind = apprise.NotifyType.SUCCESS if alert["state"] in ("up", "running", "cleared") else \
            apprise.NotifyType.FAILURE
        wait, outcome = FIRST_WAIT, f"failed after {TRIES} tries"
        for attempt in range(1, TRIES + 1):
            if notifier.notify(title=f"DPL: {alert['message']}", body=_body(alert), notify_type=kind):
                outcome = "sent" if attempt == 1 else f"sent after {attempt} tries"
                break
            if attempt < TRIES:
                sleep(wait)
                wait *= 2
        outcomes.append(outcome)
        if alert.get("id"):
            with Registry.open(registry_path, create=False) as reg:
                reg.alert_notified(alert["id"], outcome)
    return outcomes


def _body(alert: dict[str, Any]) -> str:
    was = f" (was {alert['was']})" if alert.get("was") else ""
    return f"{alert['target']}: {alert['state']}{was}\n{alert['message']}"


def send_in_background(registry_path: Path | str, alerts: list[dict[str, Any]],
                       say: Callable[[str], None]) -> threading.Thread | None:
    urls = configured_urls()
    if not alerts or not urls:
        return None

    def run() -> None:
        try:
            for alert, outcome in zip(alerts, send(registry_path, alerts, urls), strict=True):
                say(f"alert {outcome}: {alert['message']}")
        except Exception as exc:  # noqa: BLE001 - a broken notifier must not stop monitoring
            say(f"alerts could not be sent: {exc}")

    thread = threading.Thread(target=run, name="alerts", daemon=True)
    thread.start()
    return thread
