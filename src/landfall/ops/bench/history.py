"""The history phase: a year (or any number) of consecutive days landed at once, as a team does when it
points Landfall at an existing bucket. Timed from the last PUT until the newest day's deploy run ends;
counts how many training runs trained and how many coalesced into a newer window."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from landfall.core.catalog import chain_of
from landfall.ops.bench.landing_records import BENCH_PIPELINE
from landfall.ops.follow import follow_partition
from landfall.ops.landings import land_day
from landfall.pipeline.datagen import make_batch, to_parquet


def history(bench: Any, days: int, rows: int = 1000) -> dict[str, Any]:
    names = bench.stack.settings.names
    api, s3, storage = bench.api, bench.s3, bench.stack.settings.storage
    dates = [next(bench._days) for _ in range(days)]
    bodies = [to_parquet(make_batch(rows, seed=3000 + n)) for n in range(min(days, 20))]
    started_at = datetime.now(UTC) - timedelta(seconds=1)
    started = time.time()
    for index, day in enumerate(dates):
        land_day(s3, storage, day, bodies[index % len(bodies)])
    last_put = time.time()
    bench.echo(f"  {days} days PUT in {last_put - started:.1f}s; following the newest day to its deploy ...")

    def quiet(_line: str) -> None:
        pass

    newest = dates[-1].isoformat()
    timeout = 600 + 30 * days
    deploy = follow_partition(api, names.deploy_dag, newest, started_at, timeout, quiet)
    done_s = deploy.ended_at.timestamp() - last_put if deploy.ended_at else -1.0
    wanted = {day.isoformat() for day in dates}
    train_runs = [r for r in _all_runs(api, names.train_dag) if r.get("partition_key") in wanted]
    trained = [r for r in train_runs if _state(api, r["dag_run_id"], "select_best") == "success"]
    preprocess_runs = [r for r in _all_runs(api, names.preprocess_dag) if r.get("partition_key") in wanted]
    return {
        f"history_{days}_days": {
            "days": days,
            "rows_per_day": rows,
            "put_s": round(last_put - started, 1),
            "last_put_to_newest_deploy_end_s": round(done_s, 1),
            "newest_deploy": {"state": deploy.state, "promoted": deploy.tasks.get("promote") == "success"},
            "preprocess_runs": len(preprocess_runs),
            "train_runs": len(train_runs),
            "trained": len(trained),
            "coalesced": len(train_runs) - len(trained),
        }
    }


def _all_runs(api: Any, dag_id: str) -> list[dict[str, Any]]:
    """Every run of `dag_id`, page by page (the REST API returns at most 100 at a time)."""
    runs: list[dict[str, Any]] = []
    while True:
        page = api.get(f"dags/{dag_id}/dagRuns", order_by="-run_after", limit=100, offset=len(runs))
        runs.extend(page["dag_runs"])
        if len(page["dag_runs"]) < 100:
            return runs


def _state(api: Any, run_id: str, task_id: str) -> str | None:
    names = chain_of(BENCH_PIPELINE)
    states = {ti["task_id"]: ti.get("state") for ti in api.task_instances(names.train_dag, run_id)}
    return states.get(task_id)
