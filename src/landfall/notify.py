"""Alerts: always logged; POSTed as JSON to `notify.webhook_url` (Slack-style incoming webhook) when set."""

from __future__ import annotations

import logging
from typing import Any

import requests

from landfall.settings import get_settings

log = logging.getLogger("landfall.alerts")


def send_alert(kind: str, message: str, details: dict[str, Any] | None = None) -> bool:
    """Log the alert and deliver it to the webhook; returns whether the webhook accepted it.

    A webhook failure is logged, never raised: an alert must not turn a handled outcome into a failure.
    """
    details = details or {}
    log.error("ALERT [%s] %s %s", kind, message, details)
    url = get_settings().notify.webhook_url
    if not url:
        return False
    try:
        response = requests.post(url, json={"kind": kind, "text": message, "details": details}, timeout=5)
        response.raise_for_status()
        return True
    except requests.RequestException as error:
        log.warning("Alert webhook %s failed: %s", url, error)
        return False


def _notifier_base() -> type:
    from airflow.sdk import BaseNotifier

    return BaseNotifier


class LandfallNotifier(_notifier_base()):
    """Airflow notifier (use as `on_failure_callback` or call it): logs, and posts to the webhook."""

    template_fields = ("message",)

    def __init__(self, kind: str = "failure", message: str = "") -> None:
        super().__init__()
        self.kind = kind
        self.message = message

    def notify(self, context: dict[str, Any]) -> None:
        ti = context.get("ti") or context.get("task_instance")
        where = f"{getattr(ti, 'dag_id', '?')}.{getattr(ti, 'task_id', '?')} (run {context.get('run_id')})"
        error = context.get("exception")
        message = self.message or f"{where} {self.kind}" + (f": {error}" if error else "")
        send_alert(self.kind, message, {"task": where, "error": str(error) if error else None})
