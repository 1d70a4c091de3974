"""The training window: which processed partitions a day's run trains on, and how they are read in
bounded memory. Pure: the processed heads come in as dicts, files are read from local paths or S3.

A run for day D trains on the days `D - window_days + 1 ... D` (never a later day, so a backfill of an
old day does not see the future). A day with no processed partition is allowed and named. Each split is
read with a stride (every k-th row, k chosen so at most `max_rows` rows are kept), so the rows a window
holds in memory are bounded whatever its size; the held-out split is the same rows for the candidate
and the champion, since both are scored on the one frame read.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from landfall.pipeline.features import SPLITS
from landfall.pipeline.parquet_io import open_streaming

READ_BATCH_ROWS = 262_144


def window_dates(partition: str, days: int) -> list[str]:
    """The `days` partitions ending at `partition`, oldest first."""
    end = date.fromisoformat(partition)
    return [(end - timedelta(days=back)).isoformat() for back in range(days - 1, -1, -1)]


def stride(total_rows: int, max_rows: int) -> int:
    """Keep every k-th row so that at most `max_rows` of `total_rows` are read."""
    return max(1, math.ceil(total_rows / max_rows))


class MixedFeatures(ValueError):
    """The window's days were prepared by different feature functions; the message names the days."""


def mixed_features(window: dict[str, Any], parts: list[dict[str, Any]]) -> None:
    """Raise MixedFeatures when a day of the window was prepared by another features function than the
    run's own day (a day prepared before this was recorded counts as "schema")."""
    own = str(window.get("features_by") or "schema")
    if own.startswith("mixed: "):  # a day rolled up from hours prepared by different functions
        raise MixedFeatures(
            f"{window['partition']} was rolled up from hours prepared by different features ({own[7:]}): "
            "prepare its hours again (land them again, or backfill the ingest DAG over the day)"
        )
    others = {str(p["partition"]): str(p.get("features_by") or "schema") for p in parts}
    differ = {day: by for day, by in others.items() if by != own}
    if differ:
        named = ", ".join(f"{day} ({by})" for day, by in sorted(differ.items()))
        raise MixedFeatures(
            f"the window of {window['partition']} mixes days prepared by other features than its own "
            f"({own}): {named}. Prepare them again (land the days again, or backfill the ingest DAG over "
            "them), or set training.window_days to leave them out"
        )


def training_window(
    dataset: dict[str, Any],
    heads: dict[str, dict[str, Any] | None],
    max_rows: int,
) -> dict[str, Any]:
    """The window of the run's own `dataset` (its processed partition) and the heads of the earlier days
    (`None` for a day with no processed partition): URIs per split, rows, strides, and missing days."""
    partition = str(dataset["partition"])
    included = [dataset] + [
        head for day, head in sorted(heads.items(), reverse=True) if head and day < partition
    ]
    included.sort(key=lambda part: str(part["partition"]))
    mixed_features(dataset, included)
    missing = sorted(day for day, head in heads.items() if head is None and day < partition)
    window: dict[str, Any] = {
        **dataset,
        "window_partitions": [str(part["partition"]) for part in included],
        "window_versions": {str(part["partition"]): part["version"] for part in included},
        "missing_partitions": missing,
    }
    # The window's drift statistics, day by day (an hourly day: its hours'); days prepared before days had
    # statistics have none, and the reference is taken over the others.
    window["statistics_uris"] = [
        str(uri)
        for part in included
        for uri in part.get("statistics_uris") or [part.get("statistics_uri")]
        if uri
    ]
    for split in SPLITS:
        total = sum(int(part.get(f"rows_{split}", 0)) for part in included)
        # A day rolled up from its hours has several files per split.
        window[f"{split}_uris"] = [
            str(uri) for part in included for uri in part.get(f"{split}_uris") or [part[f"{split}_uri"]]
        ]
        window[f"window_rows_{split}"] = total
        window[f"{split}_every"] = stride(total, max_rows)
    return window


def read_sampled(
    uris: Sequence[str], every: int = 1, fetch: Callable[[str, Path], None] | None = None
) -> pd.DataFrame:
    """Rows `0, k, 2k, ...` of the concatenation of `uris` (in order), one file and one batch at a time.
    An `s3://` URI is fetched to a local scratch file first (`fetch(uri, path)`; boto3 by default)."""
    kept: list[pa.RecordBatch] = []
    schema = None
    offset = 0
    with tempfile.TemporaryDirectory(prefix="landfall-window-") as scratch:
        for index, uri in enumerate(uris):
            path = Path(uri)
            if uri.startswith("s3://"):
                path = Path(scratch) / f"{index:05d}.parquet"
                (fetch or _fetch_s3)(uri, path)
            parquet = open_streaming(path)
            schema = schema or parquet.schema_arrow
            for batch in parquet.iter_batches(batch_size=READ_BATCH_ROWS, use_threads=False):
                positions = np.arange(offset, offset + batch.num_rows)
                offset += batch.num_rows
                chosen = batch.filter(pa.array(positions % every == 0)) if every > 1 else batch
                kept.append(chosen.cast(schema) if chosen.schema != schema else chosen)
            if path.parent == Path(scratch):
                path.unlink()
    if schema is None:
        raise ValueError("no files to read")
    return pa.Table.from_batches(kept, schema=schema).to_pandas()


def read_head(uri: str, rows: int, fetch: Callable[[str, Path], None] | None = None) -> pd.DataFrame:
    """The first `rows` rows of one file (the canary's rows of a test split)."""
    with tempfile.TemporaryDirectory(prefix="landfall-head-") as scratch:
        path = Path(uri)
        if uri.startswith("s3://"):
            path = Path(scratch) / "head.parquet"
            (fetch or _fetch_s3)(uri, path)
        parquet = pq.ParquetFile(path)
        batch = next(parquet.iter_batches(batch_size=max(rows, 1)), None)
        table = pa.Table.from_batches([batch]) if batch is not None else parquet.schema_arrow.empty_table()
        return table.to_pandas()


def _fetch_s3(uri: str, path: Path) -> None:
    """Credentials and endpoint from the AWS_* environment (the trainer's contract)."""
    import boto3

    from landfall.pipeline.s3 import download_file

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    download_file(boto3.client("s3"), bucket, key, path)
