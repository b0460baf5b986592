"""Push webhooks: each app's secret (made here, rotated, removed) and the deliveries seen."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from dpl_web.collection import validation
from dpl_web.registry.base import RegistryBase
from dpl_web.registry.records import _now

# Deliveries are remembered this long: a forge retries a failed one within hours, not weeks.
KEEP_DELIVERIES_DAYS = 30


class WebhooksTable(RegistryBase):
    """The apps' push webhooks."""

    def set_webhook_secret(self, project: str, name: str) -> str:
        """A new webhook secret for the app (the old one stops working); returns it."""
        secret = secrets.token_urlsafe(32)
        with self.transaction() as conn:
            app_id = self._app_id(validation.name(project, "project"), validation.app_name(name, "app"))
            conn.execute("INSERT INTO app_webhook (app_id, secret, created_at) VALUES (?, ?, ?) ON CONFLICT "
                         "(app_id) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at",
                         (app_id, secret, _now()))
        return secret

    def remove_webhook(self, project: str, name: str) -> bool:
        """Turn the app's webhook off (every call refused from now on); True when it was on."""
        with self.transaction() as conn:
            app_id = self._app_id(validation.name(project, "project"), validation.app_name(name, "app"))
            return conn.execute("DELETE FROM app_webhook WHERE app_id = ?", (app_id,)).rowcount > 0

    def webhook_secret(self, project: str, name: str) -> str | None:
        """The app's webhook secret, None when its webhook is off. Only for checking a call;
        never print or log it."""
        row = self._one("SELECT w.secret FROM app_webhook w WHERE w.app_id = ?", (self._app_id(project, name),))
        return row[0] if row else None

    def record_delivery(self, project: str, name: str, delivery: str) -> bool:
        """Note a delivery; False when the app saw it before (a replay)."""
        delivery = validation.line(delivery, "delivery")[:200]
        cutoff = (datetime.now(UTC) - timedelta(days=KEEP_DELIVERIES_DAYS)).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self.transaction() as conn:
            app_id = self._app_id(project, name)
            conn.execute("DELETE FROM webhook_delivery WHERE received_at < ?", (cutoff,))
            return conn.execute("INSERT OR IGNORE INTO webhook_delivery (app_id, delivery, received_at) "
                                "VALUES (?, ?, ?)", (app_id, delivery, _now())).rowcount > 0

    def delivery_job(self, project: str, name: str, delivery: str, job_id: int) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE webhook_delivery SET job_id = ? WHERE app_id = ? AND delivery = ?",
                         (job_id, self._app_id(project, name), delivery[:200]))
