"""What the stack recorded for a set of landed keys, read from the REST API: the `landing` events naming
each key with the runs they created, and how many raw or quarantine records each got. The benchmark and
the exactly-once tests count with these."""

from __future__ import annotations

from typing import Any

from landfall.core.catalog import chain_of
from landfall.ops.airflow_api import AirflowApi
from landfall.pipeline.landing import landings_in
from landfall.pipeline.publish import published_head, quarantine_records

BENCH_PIPELINE = "churn"
"""The pipeline whose table the benchmark lands (churn's columns: `datagen.make_batch`) and whose chain it
follows; every other configured pipeline is measured by `pipeline_chain` alone."""


def landing_runs(api: AirflowApi, keys: set[str]) -> dict[str, list[dict[str, Any]]] | None:
    """For each landed key, the `landing` asset events naming it with the runs they created; None while
    Airflow answers its transient 500 (a created run not started yet)."""
    names = chain_of(BENCH_PIPELINE)
    asset = api.asset_by_name(names.landing)
    if asset is None:
        return {key: [] for key in keys}
    found: dict[str, list[dict[str, Any]]] = {key: [] for key in keys}
    offset = 0
    while True:
        answer = api.get_tolerant(
            "assets/events", asset_id=asset["id"], order_by="-timestamp", limit=1000, offset=offset
        )
        if answer is None:
            return None
        for event in answer["asset_events"]:
            for landed in landings_in(event.get("extra")):
                if landed["key"] in found:
                    found[landed["key"]].append(event)
        if len(answer["asset_events"]) < 1000:
            return found
        offset += 1000


def outcome_counts(api: AirflowApi, keys: set[str]) -> dict[str, int]:
    """How many raw or quarantine records each key got (exactly one when nothing is lost or doubled)."""
    names = chain_of(BENCH_PIPELINE)
    counts = dict.fromkeys(keys, 0)
    for event in api.events_of(names.raw):
        head = published_head(event) or {}
        if head.get("source_key") in counts:
            counts[head["source_key"]] += 1
    for event in api.events_of(names.quarantine):
        for record in quarantine_records(event.get("extra")):
            if record.get("source_key") in counts:
                counts[record["source_key"]] += 1
    return counts
