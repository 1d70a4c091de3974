"""Alerts: always logged; POSTed as JSON to the configured webhook (Slack-style incoming webhook) when set.

A webhook URL is a credential (Slack and Teams put the secret in the path), so it is never logged:
only its scheme and host are, and a delivery error is reported by its type and HTTP status.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

log = logging.getLogger("landfall.alerts")


def redacted(url: str) -> str:
    """`https://hooks.example.com/…`: where an alert goes, without the secret part."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}/…"


@dataclass(frozen=True)
class Alerts:
    webhook_url: str | None = None
    timeout_s: float = 5.0

    def send(self, kind: str, message: str, details: dict[str, Any] | None = None) -> bool:
        """Log the alert and deliver it to the webhook; returns whether the webhook accepted it.

        A webhook failure is logged, never raised: an alert must not turn a handled outcome into a failure.
        """
        details = details or {}
        log.error("ALERT [%s] %s %s", kind, message, details)
        if not self.webhook_url:
            return False
        try:
            response = requests.post(
                self.webhook_url,
                json={"kind": kind, "text": message, "details": details},
                timeout=self.timeout_s,
            )
        except requests.RequestException as error:
            log.warning("Alert webhook %s unreachable (%s)", redacted(self.webhook_url), type(error).__name__)
            return False
        if not response.ok:
            log.warning("Alert webhook %s answered HTTP %s", redacted(self.webhook_url), response.status_code)
            return False
        return True
