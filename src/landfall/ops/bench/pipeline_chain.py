"""Landing to champion for every other configured pipeline: one day of sample rows made from the
pipeline's own schema (`datagen.sample_batch`, its task type), landed under its prefix and followed through
its own chain to the deploy run, on the benchmark's stack beside churn."""

from __future__ import annotations

from datetime import date
from typing import Any

from landfall.core.settings import Settings
from landfall.ops.landings import land_day
from landfall.pipeline.datagen import sample_batch, to_parquet


def landing_to_champion_of(bench: Any, settings: Settings, day: date, rows: int) -> dict[str, Any]:
    from landfall.ops.follow import follow_chain, follow_landing

    name, names = settings.pipeline, settings.names
    body = to_parquet(sample_batch(settings.landing, rows, seed=11, task=settings.training.task))
    landed = land_day(bench.s3, settings.storage, day, body)
    bench.echo(f"  {name}: one day ({rows} rows) landed as {landed.key}")

    def quiet(_line: str) -> None:
        pass

    ingest = follow_landing(bench.api, landed.key, landed.etag, timeout_s=600, echo=quiet, chain=names)
    chain = follow_chain(bench.api, day.isoformat(), ingest.queued_at, timeout_s=900, echo=quiet, chain=names)
    if [r.state for r in chain] != ["success"] * 4 or chain[-1].tasks.get("promote") != "success":
        raise RuntimeError(
            f"{name}'s day did not become its champion: {[(r.dag_id, r.state) for r in chain]}"
        )
    runs = [(ingest.dag_id, ingest.run_id), *((r.dag_id, r.run_id) for r in chain)]
    per_dag = {dag_id: bench._run_compute(dag_id, run_id) for dag_id, run_id in runs}
    seconds = chain[-1].ended_at.timestamp() - landed.put_at
    critical = sum(d["critical_path_s"] for d in per_dag.values())
    bench.echo(f"  {name}: landing -> champion {seconds:.1f}s (critical-path compute {critical:.1f}s)")
    return {
        f"{name}_landing_to_champion": {
            "task": settings.training.task,
            "trainer": settings.training.trainer,
            "landing_to_champion_s": round(seconds, 2),
            "critical_path_compute_s": round(critical, 2),
            "overhead_ratio": round(seconds / critical, 2) if critical else None,
            "chain_per_dag": per_dag,
        }
    }
