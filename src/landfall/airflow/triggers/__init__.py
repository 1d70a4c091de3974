"""Event triggers that the Airflow triggerer imports from this installed package
(`landfall.airflow.triggers.s3_landing.S3LandingTrigger`), and the shape of the events they fire."""

from __future__ import annotations

from typing import Any


def landed_objects_in(extra: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The object payloads (key, etag, size, ...) a `landing` asset event's extra carries; empty for
    anything else. `s3_landing.LandingProducer` makes the shape; reading it lives here so that readers
    of events (CLI, tests, benchmark) need not import Airflow's trigger machinery."""
    payload = (extra or {}).get("payload") or {}
    return list(payload.get("objects") or []) if payload.get("type") == "landed" else []
