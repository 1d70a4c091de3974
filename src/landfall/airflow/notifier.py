"""The Airflow notifier for task failures: `on_failure_callback=LandfallNotifier("failure")`."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseNotifier

from landfall.pipeline.alerts import Alerts


class LandfallNotifier(BaseNotifier):
    """Logs, and posts to the configured webhook (settings are read when it fires, not at parse time)."""

    template_fields = ("message",)

    def __init__(self, kind: str = "failure", message: str = "") -> None:
        super().__init__()
        self.kind = kind
        self.message = message

    def notify(self, context: dict[str, Any]) -> None:
        from landfall.core.settings import get_project

        ti = context.get("ti") or context.get("task_instance")
        where = f"{getattr(ti, 'dag_id', '?')}.{getattr(ti, 'task_id', '?')} (run {context.get('run_id')})"
        error = context.get("exception")
        message = self.message or f"{where} {self.kind}" + (f": {error}" if error else "")
        alerts = Alerts(get_project(strict=False).notify.webhook_url)  # shared by every pipeline
        alerts.send(self.kind, message, {"task": where, "error": str(error) if error else None})
