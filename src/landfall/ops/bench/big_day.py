"""The big-day phase: a multi-part day of a gigabyte or more, generated on the fly, from its `_SUCCESS`
marker to its `training_dataset`; rows, seconds, MB/s and the peak memory of every task process.

Training is paused during the phase (a day this big would train for a long while on the 2-core machine
and bury the next size's figures); the phase measures ingestion and preprocessing, which is what grows
with the size of a day.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from landfall.core.catalog import DRIFT_TASK
from landfall.ops.follow import follow_landing, follow_partition
from landfall.pipeline.datagen import make_batch
from landfall.pipeline.keys import marker_key, part_key

ROWS_PER_CHUNK = 1_000_000  # one row group of a part file
CHUNKS_PER_PART = 4  # about 115 MB parts


def generated_parts(target_bytes: int, scratch: Path, seed: int) -> Iterator[tuple[Path, int]]:
    """Part files of full-precision data (as a feature table is, not the demo's rounded values) until
    `target_bytes` of parquet are written; each yielded as (path, rows) to be uploaded and removed."""
    schema = pa.Schema.from_pandas(make_batch(10), preserve_index=False)
    written, index = 0, 0
    while written < target_bytes:
        path = scratch / f"part-{index:05d}.parquet"
        rows = 0
        with pq.ParquetWriter(path, schema, compression="snappy") as writer:
            for chunk in range(CHUNKS_PER_PART):
                frame = make_batch(ROWS_PER_CHUNK, seed=seed * 10_000 + index * CHUNKS_PER_PART + chunk)
                for column in ("tenure_months", "monthly_spend", "usage_hours"):
                    frame[column] = frame[column] + (frame["customer_id"] % 997) / 9973.0
                writer.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False))
                rows += len(frame)
        written += path.stat().st_size
        index += 1
        yield path, rows


def big_day(bench: Any, gib: float) -> dict[str, Any]:
    """Land a multi-part day of `gib` GiB and follow it to its training dataset."""
    names = bench.stack.settings.names
    api, s3, bucket = bench.api, bench.s3, bench.bucket
    storage = bench.stack.settings.storage
    day = next(bench._days)
    label = f"big_day_{gib:g}gib"
    api.patch(f"dags/{names.train_dag}", {"is_paused": True})
    try:
        known = set(bench.sampler.peak_by_pid)
        rows = size = parts = 0
        generate_s = upload_s = 0.0
        with tempfile.TemporaryDirectory(prefix="landfall-bigday-") as scratch:
            started = time.monotonic()
            for path, part_rows in generated_parts(int(gib * 2**30), Path(scratch), seed=parts + 77):
                generated = time.monotonic()
                generate_s += generated - started
                s3.upload_file(str(path), bucket, part_key(storage, day, parts))
                upload_s += time.monotonic() - generated
                rows, size, parts = rows + part_rows, size + path.stat().st_size, parts + 1
                path.unlink()
                started = time.monotonic()
        bench.echo(f"  {parts} parts, {rows:,} rows, {size / 2**30:.2f} GiB landed; now the marker")
        marker = marker_key(storage, day)
        put_at = time.time()
        s3.put_object(Bucket=bucket, Key=marker, Body=b"")

        def quiet(_line: str) -> None:
            pass

        ingest = follow_landing(api, marker, timeout_s=1800, echo=quiet)
        if ingest.outcome != "ingested":
            raise RuntimeError(f"the big day was not ingested: {ingest.outcome} ({ingest.tasks})")
        preprocess = follow_partition(
            api, names.preprocess_dag, day.isoformat(), ingest.queued_at, timeout_s=1800, echo=quiet
        )
        if preprocess.state != "success":
            raise RuntimeError(f"the big day's preprocessing ended {preprocess.state}: {preprocess.tasks}")
        done_s = preprocess.ended_at.timestamp() - put_at
        peaks = bench.sampler.task_peaks_since(known)
        uss = bench.sampler.task_uss_peaks_since(known)
        # A task process's command line names its task instance id: name the task instead.
        tasks = {
            ti.get("id"): f"{dag_id}.{ti['task_id']}"
            for dag_id, run in ((names.ingest_dag, ingest), (names.preprocess_dag, preprocess))
            for ti in api.task_instances(dag_id, run.run_id)
        }
        by_process = sorted(
            (
                (
                    round(rss / 2**20),
                    round(bench.sampler.peak_uss_by_pid.get(pid, 0) / 2**20),
                    next((name for ti, name in tasks.items() if ti and ti in command), command.strip()[:80]),
                )
                for pid, (rss, command) in bench.sampler.peak_by_pid.items()
                if pid not in known and rss in peaks
            ),
            reverse=True,
        )
        drift = next(
            (
                ti
                for ti in api.task_instances(names.preprocess_dag, preprocess.run_id)
                if ti["task_id"] == DRIFT_TASK
            ),
            {},
        )
        drift_rss = [rss for rss, _uss, process in by_process if process.endswith(f".{DRIFT_TASK}")]
        return {
            label: {
                # The day's drift report (its statistics were taken in preprocessing's own pass).
                "drift_report_s": drift.get("duration") and round(float(drift["duration"]), 1),
                "drift_report_peak_rss_mb": max(drift_rss, default=None),
                "rows": rows,
                "bytes": size,
                "gib": round(size / 2**30, 3),
                "parts": parts,
                "generate_s": round(generate_s, 1),
                "upload_s": round(upload_s, 1),
                "marker_to_ingest_start_s": round(ingest.started_at.timestamp() - put_at, 2),
                "ingest_run_s": round(ingest.ended_at.timestamp() - ingest.started_at.timestamp(), 1),
                "preprocess_run_s": round(
                    preprocess.ended_at.timestamp() - preprocess.started_at.timestamp(), 1
                ),
                "marker_to_training_dataset_s": round(done_s, 1),
                "mb_per_s": round(size / 2**20 / done_s, 1),
                "task_processes": len(peaks),
                "task_peak_rss_mb": round(max(peaks, default=0) / 2**20),
                "task_peak_uss_mb": round(max(uss, default=0) / 2**20),
                "task_peaks_mb": [{"rss": r, "uss": u, "process": c} for r, u, c in by_process],
            }
        }
    finally:
        api.patch(f"dags/{names.train_dag}", {"is_paused": False})
