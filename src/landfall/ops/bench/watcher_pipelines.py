"""What watching more pipelines adds to each poll: S3 requests and wall time per poll of the shared
landing stream with 1 and with 10 pipelines.

The producer the triggerer runs (`LandingProducer`) is driven directly against the benchmark stack's S3
server, over landing prefixes of its own that hold one landed day each (already recorded): every poll
then does what a quiet poll of a live pipeline does.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from landfall.core.settings import Settings

POLLS = 10


def requests_per_poll(settings: Settings, s3: Any, counts: tuple[int, ...] = (1, 10)) -> dict[str, Any]:
    from landfall.airflow.triggers.landing_watch import LandingWatch, WatchedPrefix

    root = f"_landfall-bench/watch-{uuid.uuid4().hex[:8]}"
    today = datetime.now(UTC).date().isoformat()
    figures: dict[str, Any] = {"polls": POLLS}
    for count in counts:
        watched = tuple(
            WatchedPrefix(
                pipeline=f"p{number}",
                prefix=f"{root}/{count}/p{number}/landing",
                ledger_prefix=f"{root}/{count}/p{number}/ledger",
            )
            for number in range(count)
        )
        for one in watched:
            s3.put_object(
                Bucket=settings.storage.datasets_bucket,
                Key=f"{one.prefix}/{today}/features.parquet",
                Body=b"x",
            )
        watch = LandingWatch(
            bucket=settings.storage.datasets_bucket,
            prefixes=watched,
            aws_conn_id=settings.storage.aws_conn_id,
            knobs=settings.watcher.model_copy(update={"poll_interval_s": 0.01}),
        )
        figures[f"pipelines_{count}"] = asyncio.run(_quiet_polls(watch))
    fewest, most = figures[f"pipelines_{min(counts)}"], figures[f"pipelines_{max(counts)}"]
    if max(counts) > min(counts):
        added = max(counts) - min(counts)
        figures["requests_per_added_pipeline"] = round(
            (most["requests_per_poll"] - fewest["requests_per_poll"]) / added, 2
        )
    return {"watcher_pipelines": figures}


async def _quiet_polls(watch: Any) -> dict[str, Any]:
    """Start-up (and the one landing reported and recorded), then POLLS polls that find nothing new."""
    from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome

    from landfall.airflow.triggers.landing_stream import TICK, LandingProducer

    producer = LandingProducer(watch)
    stream = producer.open_stream()

    def spent() -> int:
        return sum(w.scanner.stats.poll_requests for w in producer.watchers.values())

    ticks, reports, before, started = 0, [], 0, 0.0
    try:
        async for raw, report in stream:
            if raw != TICK:
                reports.append(report)
                continue
            if reports:  # the start-up poll's events, stored as Airflow would
                await producer.advance([AdvanceItem(r, AdvanceOutcome(acked=1, failed=0)) for r in reports])
                reports = []
            ticks += 1
            if ticks == 2:  # the first quiet poll starts now
                before, started = spent(), time.monotonic()
            if ticks == 2 + POLLS:
                break
    finally:
        await stream.aclose()
    seconds = time.monotonic() - started
    return {
        "pipelines": len(watch.prefixes),
        "requests_per_poll": round((spent() - before) / POLLS, 2),
        "poll_ms": round(1000 * seconds / POLLS, 1),
    }
