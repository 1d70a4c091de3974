"""The event-path comparison: PUT -> ingest run start in queue mode beside list mode at 2 s and 1 s polls.

Each configuration gets a fresh benchmark stack of its own (the trigger's arguments are rendered when the
DAG files are parsed, so a mode is a stack's, not a phase's), the same number of single landings, each
at a random phase of the poll, each waiting for its run before the next.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from landfall.core.settings import load_settings
from landfall.ops.bench.phases import BENCH_PIPELINE, Bench, BenchOptions, Echo
from landfall.ops.bench.report import percentiles
from landfall.ops.bench.rss import RssSampler
from landfall.ops.stack import provision


def configurations() -> dict[str, dict[str, str]]:
    queue = f"amqp://127.0.0.1:5672/#landfall-bench-{uuid.uuid4().hex[:8]}"
    return {
        "list_poll_2s": {"LANDFALL_WATCHER__POLL_INTERVAL_S": "2"},
        "list_poll_1s": {"LANDFALL_WATCHER__POLL_INTERVAL_S": "1"},
        "queue_rabbitmq": {"LANDFALL_WATCHER__MODE": "queue", "LANDFALL_WATCHER__QUEUE_URL": queue},
    }


def compare_event_paths(options: BenchOptions, environment: Any, echo: Echo) -> dict[str, Any]:
    """`environment(state_dir, overrides)` points this process at a new benchmark stack."""
    from landfall.ops.stack.launcher import Stack

    results: dict[str, Any] = {}
    saved = dict(os.environ)
    for name, overrides in configurations().items():
        if options.event_paths and name not in options.event_paths:
            continue
        echo(f"  {name}: a fresh stack with {overrides}")
        state_dir = Path(tempfile.mkdtemp(prefix="landfall-bench-path-"))
        os.environ.update(environment(state_dir, {**options.overrides, **overrides}))
        stack = Stack(load_settings(BENCH_PIPELINE), echo=lambda _line: None)
        try:
            stack.up()
            os.environ.update(stack.environment())
            time.sleep(10)  # the watcher's start-up sweep and the first queue consumer
            bench = Bench(stack, stack.api(), options, RssSampler(stack.process_tree), echo)
            latencies = bench.single_landing_latencies(options.event_path_landings)
            results[name] = {"put_to_run_start_s": percentiles(latencies)}
            echo(f"  {name}: p50 {results[name]['put_to_run_start_s']['p50']} s")
        finally:
            stack.down(quiet=True)
            provision.remove_bucket_notifications(stack.ctx)
            shutil.rmtree(state_dir, ignore_errors=True)
            os.environ.clear()
            os.environ.update(saved)
    return {"event_paths": results}
