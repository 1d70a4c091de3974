"""The watcher-scale phase: what the watcher costs with an empty landing prefix and with a big history.

1. On the empty prefix: the watcher's own `Watcher stats` lines (S3 requests and triggerer CPU seconds
   per poll, over windows with no reconciliation sweep), then PUT -> ingest run start of new landings.
2. `objects` already-reported objects are put under the prefix - two years of multi-part days, each
   completed by its marker - with their ledger manifests, while the triggerer is stopped; the
   triggerer's start-up sweep reads them all (its duration is reported).
3. The same measurements again, and the ratios to the empty figures.
4. A backdated landing into one of the old folders: found by the reconciliation sweep; the time until its
   ingest run starts is reported beside the sweep interval.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from landfall.ops.bench.report import percentiles
from landfall.pipeline.datagen import make_corrupt
from landfall.pipeline.keys import folder_manifest, marker_key, part_key
from landfall.pipeline.landing import Landing
from landfall.pipeline.landing_ledger import FolderLedger

STATS_LINE = re.compile(r"Watcher stats (\{[^}]*\})")
SWEEP_LINE = re.compile(
    r"Reconciliation sweep of \S+: (\d+) object\(s\) in (\d+) folder\(s\), (\d+) request\(s\), ([\d.]+)s"
)
FIRST_DAY = date(2020, 1, 1)
FOLDERS = 730  # two years of days


def stats_lines(text: str) -> Iterator[dict[str, Any]]:
    for match in STATS_LINE.finditer(text):
        yield json.loads(match.group(1))


def sweep_lines(text: str) -> Iterator[dict[str, float]]:
    for match in SWEEP_LINE.finditer(text):
        objects, folders, requests, seconds = match.groups()
        yield {
            "objects": int(objects),
            "folders": int(folders),
            "requests": int(requests),
            "s": float(seconds),
        }


def per_poll(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """Requests and CPU seconds per poll over stats windows that held no sweep."""
    polls = sum(w["polls"] for w in windows)
    return {
        "windows": len(windows),
        "polls": polls,
        "requests_per_poll": round(sum(w["poll_requests"] for w in windows) / polls, 3) if polls else None,
        "cpu_s_per_poll": round(sum(w["cpu_s"] for w in windows) / polls, 4) if polls else None,
    }


class TriggererLog:
    """The triggerer's log from a point on: where the watcher writes its stats and sweeps."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def text(self) -> str:
        if not self.path.exists():
            return ""
        with self.path.open("rb") as log:
            log.seek(self.offset)
            return log.read().decode(errors="replace")

    def wait_for(self, what: str, found: Any, timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if result := found(self.text()):
                return result
            time.sleep(2)
        raise TimeoutError(f"no {what} in {self.path} within {timeout_s:.0f}s")


def _quiet_windows(bench: Any, count: int = 2) -> dict[str, Any]:
    log = TriggererLog(bench.stack.state.logs / "triggerer.log")

    def enough(text: str) -> list[dict[str, Any]] | None:
        windows = [w for w in stats_lines(text) if w["sweeps"] == 0 and w["polls"]]
        return windows[:count] if len(windows) >= count else None

    return per_poll(log.wait_for(f"{count} watcher stats windows without a sweep", enough, 600))


def _measure(bench: Any, landings: int) -> dict[str, Any]:
    polls = _quiet_windows(bench)
    latency = percentiles(bench.single_landing_latencies(landings))
    bench.echo(
        f"  {polls['requests_per_poll']} S3 requests and {polls['cpu_s_per_poll']} CPU s per poll; "
        f"PUT -> ingest run start p50 {latency.get('p50')}s p95 {latency.get('p95')}s"
    )
    return {**polls, "put_to_run_start_s": latency}


def _seed(bench: Any, objects: int) -> dict[str, Any]:
    """Multi-part days with their markers and manifests, put while the triggerer is stopped."""
    storage, bucket = bench.stack.settings.storage, bench.bucket
    per_folder = max(1, math.ceil(objects / FOLDERS))
    days = [FIRST_DAY + timedelta(days=n) for n in range(FOLDERS)]
    local = threading.local()

    def client() -> Any:
        if not hasattr(local, "s3"):
            local.s3 = bench.stack.s3_client()
        return local.s3

    def land(day: date) -> None:
        s3 = client()
        for index in range(per_folder - 1):
            s3.put_object(Bucket=bucket, Key=part_key(storage, day, index), Body=b"p")
        marker = marker_key(storage, day)
        s3.put_object(Bucket=bucket, Key=marker, Body=b"")
        head = s3.head_object(Bucket=bucket, Key=marker)
        ledger = FolderLedger(day.isoformat())
        ledger.record(Landing.from_listing(bucket, storage.landing_prefix, {"Key": marker, **head}))
        manifest = folder_manifest(storage.ledger_prefix, day.isoformat())
        s3.put_object(Bucket=bucket, Key=manifest, Body=ledger.to_json())

    bench.stack.stop("triggerer")
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(land, days))
    put_s = time.monotonic() - started
    bench.echo(
        f"  {per_folder * FOLDERS:,} objects in {FOLDERS} folders put in {put_s:.0f}s; "
        "restarting the triggerer"
    )
    log = TriggererLog(bench.stack.state.logs / "triggerer.log")
    restarted = time.monotonic()
    bench.stack.restart("triggerer")

    def swept_all(text: str) -> dict[str, float] | None:
        return next((s for s in sweep_lines(text) if s["objects"] >= per_folder * FOLDERS), None)

    sweep = log.wait_for("start-up sweep of every object", swept_all, 900)
    bench.echo(f"  start-up sweep: {sweep['objects']:,} objects, {sweep['requests']} requests, {sweep['s']}s")
    return {
        "objects": per_folder * FOLDERS,
        "folders": FOLDERS,
        "put_s": round(put_s, 1),
        "triggerer_restart_to_sweep_done_s": round(time.monotonic() - restarted, 1),
        "startup_sweep": sweep,
        "old_day": days[0],
    }


def _backdated(bench: Any, day: date) -> dict[str, Any]:
    """A file landed into an old folder that no poll lists: the reconciliation sweep finds it."""
    interval = bench.stack.settings.watcher.reconcile_interval_s
    key = f"{bench.landing_prefix}/{day.isoformat()}/{bench.filename}"
    put_at = bench._put(key, make_corrupt("schema", seed=99))
    run = bench._wait_for_ingest_run_after(put_at, timeout_s=interval + 240)
    found_after = bench.run_start(run) - put_at
    bench.echo(
        f"  backdated landing into {day}: its run started {found_after:.1f}s after PUT "
        f"(sweep every {interval:.0f}s)"
    )
    return {"key": key, "put_to_run_start_s": round(found_after, 2), "reconcile_interval_s": interval}


def watcher_scale(bench: Any, objects: int, landings: int = 10) -> dict[str, Any]:
    bench.echo("  empty landing prefix: watcher stats windows, then new landings ...")
    empty = _measure(bench, landings)
    seeded = _seed(bench, objects)
    old_day = seeded.pop("old_day")
    at_scale = _measure(bench, landings)
    backdated = _backdated(bench, old_day)

    def ratio(name: str) -> float | None:
        a, b = empty.get(name), at_scale.get(name)
        return round(b / a, 3) if a and b is not None else None

    return {
        "watcher_scale": {
            "empty": empty,
            f"at_{seeded['objects']}_objects": at_scale,
            "seed": seeded,
            "ratio_requests_per_poll": ratio("requests_per_poll"),
            "ratio_cpu_s_per_poll": ratio("cpu_s_per_poll"),
            "ratio_p50_put_to_run_start": round(
                at_scale["put_to_run_start_s"]["p50"] / empty["put_to_run_start_s"]["p50"], 3
            ),
            "backdated_landing": backdated,
        }
    }
