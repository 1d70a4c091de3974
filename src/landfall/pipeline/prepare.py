"""Preprocessing in bounded memory: a raw partition (one or many parquet files) becomes features and the
train/validation/test splits, one batch of rows at a time. Pure: local files in, local files out.

Each split is written as one parquet file, one row group per input batch, so neither this step nor its
readers hold a whole day. The canary sample (the first `canary_rows` test rows as clients send them) is
collected on the way. The split of a row depends only on its id (`features.split_of`), so the result is
the same whatever the batch size or the number of files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from landfall.core.pipeline_settings import LandingSettings
from landfall.pipeline.canary import CANARY_SPLIT
from landfall.pipeline.drift import Summariser
from landfall.pipeline.features import SPLITS, FeatureBuilder, build_features, label_values, split_of
from landfall.pipeline.parquet_io import open_streaming

BATCH_ROWS = 65_536


@dataclass
class Prepared:
    """What was written: a local file per split (and the canary), rows per split, and rows per label
    class (a day rolled up from its hours is judged on its hours' counts, without reading them again)."""

    files: dict[str, Path]
    rows: dict[str, int] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)
    label_counts: dict[str, int] = field(default_factory=dict)
    # The day's drift statistics (`drift.Summariser`), or {"error": ...}: a day whose statistics cannot be
    # taken is still prepared and published.
    statistics: dict[str, Any] = field(default_factory=dict)


def prepare(
    sources: Sequence[Path],
    landing: LandingSettings,
    validation_fraction: float,
    test_fraction: float,
    canary_rows: int,
    out_dir: Path,
    batch_rows: int = BATCH_ROWS,
    task: str = "binary",
    build: FeatureBuilder | None = None,
) -> Prepared:
    """Stream `sources` (validated raw parquet files, in order) into `<out_dir>/<split>.parquet`. Rows
    per label class are counted for a classifier (a regression label has no classes to count)."""
    prepared = Prepared(files={name: out_dir / f"{name}.parquet" for name in (*SPLITS, CANARY_SPLIT)})
    prepared.rows = dict.fromkeys(SPLITS, 0)
    writers: dict[str, pq.ParquetWriter] = {}
    canary: list[pd.DataFrame] = []
    canary_left = canary_rows
    summariser, statistics_error = Summariser(landing, task), None
    try:
        for source in sources:
            parquet = open_streaming(source)
            for batch in parquet.iter_batches(batch_size=batch_rows, use_threads=False):
                raw = batch.to_pandas()
                if statistics_error is None:
                    try:
                        summariser.add(raw)
                    except Exception as error:  # statistics never stop a day from being prepared
                        statistics_error = f"{type(error).__name__}: {error}"
                which = split_of(raw[landing.id_column], validation_fraction, test_fraction)
                features = build(raw) if build else build_features(raw, landing)
                features[landing.label] = label_values(raw[landing.label], task)
                for value, count in (
                    features[landing.label].value_counts().items() if task != "regression" else ()
                ):
                    key = str(value)  # a JSON key: the counts travel in heads and asset events
                    prepared.label_counts[key] = prepared.label_counts.get(key, 0) + int(count)
                prepared.features = prepared.features or [c for c in features.columns if c != landing.label]
                for name in SPLITS:
                    part = features[which == name]
                    _write(writers, name, prepared.files[name], part)
                    prepared.rows[name] += len(part)
                if canary_left > 0:
                    head = raw[which == "test"].head(canary_left)[landing.feature_columns]
                    canary.append(head)
                    canary_left -= len(head)
    finally:
        for writer in writers.values():
            writer.close()
    for name in SPLITS:
        if name not in writers:  # no row fell in this split: still write the (empty) file
            _empty(prepared.files[name], writers, prepared.features, landing.label, task)
    prepared.statistics = summariser.result() if statistics_error is None else {"error": statistics_error}
    sample = pd.concat(canary, ignore_index=True) if canary else pd.DataFrame(columns=landing.feature_columns)
    sample.to_parquet(prepared.files[CANARY_SPLIT], index=False)
    return prepared


def _write(writers: dict[str, pq.ParquetWriter], name: str, path: Path, frame: pd.DataFrame) -> None:
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    if name not in writers:
        writers[name] = pq.ParquetWriter(path, table.schema, compression="snappy")
    writers[name].write_table(table.cast(writers[name].schema))


def _empty(
    path: Path, writers: dict[str, pq.ParquetWriter], features: list[str], label: str, task: str
) -> None:
    """An empty split with the schema the other splits have (or the label type of the task)."""
    if writers:
        pq.write_table(next(iter(writers.values())).schema.empty_table(), path)
        return
    columns = {name: pa.array([], pa.float64()) for name in features}
    columns[label] = pa.array([], pa.float64() if task == "regression" else pa.int64())
    pq.write_table(pa.table(columns), path)
