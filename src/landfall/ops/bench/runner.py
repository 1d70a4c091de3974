"""Run the benchmark: a fresh stack of its own (own state folder, ports shifted away from the developer's
and the test suite's), the phases in order, results written after each phase."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from landfall.core.settings import load_project, load_settings
from landfall.core.stack_settings import PortSettings
from landfall.ops.bench.big_day import big_day
from landfall.ops.bench.event_paths import compare_event_paths
from landfall.ops.bench.history import history
from landfall.ops.bench.phases import BENCH_PIPELINE, CLASSIC_DAGS_FOLDER, Bench, BenchOptions, Echo
from landfall.ops.bench.pipeline_chain import landing_to_champion_of
from landfall.ops.bench.report import add_comparison, format_table, write
from landfall.ops.bench.retrain_policy import trainings_under_on_drift
from landfall.ops.bench.rss import RssSampler
from landfall.ops.bench.serving_load import LoadOptions, serving_phase
from landfall.ops.bench.trainer_fit import trainer_fit_times
from landfall.ops.bench.watcher_pipelines import requests_per_poll
from landfall.ops.bench.watcher_scale import watcher_scale
from landfall.ops.bench.window_quality import window_vs_one_day

PORT_SHIFT = 10_000
"""Benchmark ports are the configured ones + 10,000 (18080, 15000, 18333, ...): SeaweedFS's gRPC ports
(+10,000 again) stay below Linux's ephemeral range and clear of the test suite's 2xxxx."""


def bench_environment(state_dir: Path, ports: PortSettings, overrides: dict[str, str]) -> dict[str, str]:
    """The env that points settings, the launcher and every component at the benchmark's own stack."""
    bundles = [
        {
            "name": "dags-folder",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {},
        },
        {
            "name": "landfall-bench",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(CLASSIC_DAGS_FOLDER)},
        },
    ]
    env = {f"LANDFALL_STACK__PORTS__{name.upper()}": str(port) for name, port in ports.model_dump().items()}
    env["LANDFALL_STACK__STATE_DIR"] = str(state_dir)
    env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(bundles)
    return {**env, **overrides}


Phase = tuple[str, Callable[[], dict[str, Any]]]


def run_phases(phases: list[Phase], results: dict[str, Any], out: Path, echo: Echo = print) -> None:
    """Run the phases in order, adding each one's figures to `results` and writing them to `out` after
    each. A phase that raises is recorded under `failed_phases` (its name: the error and how long it
    ran), written and printed, and the phases after it still run."""
    for name, phase in phases:
        echo(f"[{name}]")
        started = time.monotonic()
        try:
            figures = phase()
        except Exception as error:  # any failure of one phase is reported, never fatal to the others
            seconds = round(time.monotonic() - started, 1)
            reason = f"{type(error).__name__}: {error}"
            results.setdefault("failed_phases", {})[name] = {"error": reason, "after_s": seconds}
            echo(f"  FAILED after {seconds:.0f}s: {reason}")
            echo("".join(traceback.format_exception(error)).rstrip())
        else:
            results.update(figures)
            echo(f"  done in {time.monotonic() - started:.0f}s")
        write(out, results)  # what was measured so far, whatever comes next


def run_bench(options: BenchOptions, echo: Echo = print) -> dict[str, Any]:
    from landfall.ops.stack.launcher import Stack

    state_dir = Path(tempfile.mkdtemp(prefix="landfall-bench-"))
    ports = load_settings(BENCH_PIPELINE).stack.ports.shifted(PORT_SHIFT)
    os.environ.update(bench_environment(state_dir, ports, options.overrides))
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_TRACKING_URI"):
        os.environ.pop(name, None)
    project = load_project()
    settings = project.settings_for(BENCH_PIPELINE)  # the phases land its table and follow its chain
    others = [project.settings_for(name) for name in project.names() if name != BENCH_PIPELINE]
    stack = Stack(settings, echo=echo)
    sampler = RssSampler(stack.process_tree)
    results: dict[str, Any] = {
        "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1)},
        "settings": {
            "watcher_poll_interval_s": settings.watcher.poll_interval_s,
            "watcher_reconcile_interval_s": settings.watcher.reconcile_interval_s,
            "parallelism": settings.stack.parallelism,
            "ingest_chunk_size": settings.ingest.chunk_size,
            "overrides": options.overrides,
        },
    }
    try:
        echo(f"Starting a benchmark stack in {state_dir} (ports {ports.airflow_api}, ...)")
        results["stack_up_s"] = round(stack.up(), 1)
        os.environ.update(stack.environment())
        sampler.start()
        time.sleep(5)
        results["idle_rss_mb"] = round(sampler.sample() / 2**20)
        bench = Bench(stack, stack.api(), options, sampler, echo)
        phases: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("DAG parse", bench.dag_parse),
            (
                "watcher: requests per poll with 1 and 10 pipelines",
                lambda: requests_per_poll(settings, stack.s3_client()),
            ),
            # First, on the empty landing prefix; the phases after it run beside its history.
            *(
                [(f"watcher at {objects:,} objects", lambda: watcher_scale(bench, objects))]
                if (objects := options.watcher_objects)
                else []
            ),
            ("one day, landing to champion", bench.landing_to_champion),
            *(
                (
                    f"one day, landing to champion: {other.pipeline}",
                    lambda other=other: landing_to_champion_of(
                        bench, other, bench.next_day(), options.day_rows
                    ),
                )
                for other in others
            ),
            *(
                [
                    (
                        "scoring service under load",
                        lambda: serving_phase(bench, LoadOptions(options.serving_requests)),
                    )
                ]
                if options.serving_requests
                else []
            ),
            (f"{options.landings} single landings", bench.event_latency),
            *((f"burst of {count}", lambda count=count: bench.burst(count)) for count in options.bursts),
            (f"decompression bomb ({options.bomb_rows:,} rows)", bench.bomb),
            *(
                (f"big day of {gib:g} GiB", lambda gib=gib: big_day(bench, gib))
                for gib in options.big_days_gib
                if gib > 0
            ),
            *(
                [(f"{days} days of history at once", lambda: history(bench, days))]
                if (days := options.history_days)
                else []
            ),
            ("classic S3KeySensor DAGs", bench.classic),
            ("training window vs one day", lambda: window_vs_one_day(settings)),
            ("fit time per trainer and task", trainer_fit_times),
            ("trainings under retrain: on_drift over 30 days", lambda: trainings_under_on_drift(settings)),
        ]
        run_phases(phases, results, options.out, echo)
        results["peak_rss_mb"] = round(sampler.peak_bytes / 2**20)
    finally:
        sampler.stop()
        if options.keep_stack:
            echo(f"Benchmark stack kept running: LANDFALL_STACK__STATE_DIR={state_dir} landfall down")
        else:
            stack.down(quiet=True)
            shutil.rmtree(state_dir, ignore_errors=True)
    if options.event_path_landings:

        def event_paths() -> dict[str, Any]:
            return compare_event_paths(options, lambda d, o: bench_environment(d, ports, o), echo)

        name = "event paths: queue mode beside list mode at 2 s and 1 s polls, a fresh stack each"
        run_phases([(name, event_paths)], results, options.out, echo)
    add_comparison(results)
    write(options.out, results)
    echo(format_table(results))
    echo(f"Written to {options.out}")
    return results
