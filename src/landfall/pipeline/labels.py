"""A labels file: the true outcomes of served rows (the row's id and its label), landed after the
predictions, checked before live accuracy reads them (`live.join_labels`).

A labels file is held to the pipeline's own schema, cut to its `id_column` and `label`: the same checks
as a landed day (types, nulls, allowed classes, ranges, the footer ceilings against bombs), by the same
validator, without the day-level ones (a day of labels may hold one class, and any number of rows).
A file with any problem is refused whole; nothing in it is guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import pandas as pd

from landfall.core.pipeline_settings import LandingSettings
from landfall.pipeline.live import LABEL_COLUMNS
from landfall.pipeline.validation import PartFile, ValidationReport, validate_partition


def labels_landing(landing: LandingSettings) -> LandingSettings:
    """The pipeline's landing schema cut to what a labels file holds: the id and the label."""
    kept = [column for column in landing.columns if column.name in (landing.id_column, landing.label)]
    return landing.model_copy(update={"columns": kept, "min_rows": 1})


@dataclass(frozen=True)
class LabelsFile:
    report: ValidationReport  # its problems say why a refused file was refused
    labels: pd.DataFrame | None  # LABEL_COLUMNS; None when refused
    repeated_ids: int = 0  # rows whose id came again later in the same file (the later row counts)

    @property
    def ok(self) -> bool:
        return self.report.ok


def read_labels(
    source: str | Path | BinaryIO, size_bytes: int, landing: LandingSettings, landed_at: datetime
) -> LabelsFile:
    """Validate a labels file and read it as LABEL_COLUMNS, every row stamped `landed_at` (when its
    landing arrived: the newest landing of an id wins)."""
    schema = labels_landing(landing)
    report = validate_partition([PartFile("", source, size_bytes)], schema, whole_day=False)
    if not report.ok:
        return LabelsFile(report, None)
    if hasattr(source, "seek"):
        source.seek(0)
    frame = pd.read_parquet(source, columns=[landing.id_column, landing.label])
    frame = pd.DataFrame(
        {
            "id": frame[landing.id_column].astype(str),
            "label": frame[landing.label],
            "landed_at": pd.Timestamp(landed_at),
        },
        columns=list(LABEL_COLUMNS),
    )
    last = frame.drop_duplicates("id", keep="last").reset_index(drop=True)
    return LabelsFile(report, last, repeated_ids=len(frame) - len(last))
