"""Validation of a landed parquet file against the schema in config (`landing:` section).

The footer first: schema, row count and uncompressed size are checked before a single value is
decoded, so a decompression bomb (a small file that claims millions of rows) is refused unread. Then
the values, one batch of rows at a time, keeping only running statistics: memory does not grow with
the file. Pure functions over a local file: no S3, no Airflow. Each problem is a
`Problem(code, detail, column)`, so the quarantine record is machine-readable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from landfall.core.settings import ColumnSpec, LandingSettings

BATCH_ROWS = 65_536
# Distinct values remembered per categorical column: enough to name offenders, bounded in memory.
_MAX_DISTINCT = 1_000

_TYPE_CHECKS = {
    "int64": pa.types.is_integer,
    "float64": pa.types.is_floating,
    "string": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
    "bool": pa.types.is_boolean,
}


@dataclass(frozen=True)
class Problem:
    code: str
    detail: str
    column: str | None = None


@dataclass
class ValidationReport:
    rows: int = 0
    columns: list[str] = field(default_factory=list)
    sha256: str = ""
    size_bytes: int = 0
    uncompressed_bytes: int = 0
    row_groups: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


@dataclass
class _ColumnStats:
    """What the value checks need from a column, accumulated batch by batch."""

    spec: ColumnSpec
    track_distinct: bool = False  # categorical columns and the label
    nulls: int = 0
    non_finite: int = 0
    low: float | int | None = None
    high: float | int | None = None
    distinct: set = field(default_factory=set)

    def add(self, values: pa.Array) -> None:
        self.nulls += values.null_count
        present = values.drop_null()
        if len(present) == 0:
            return
        if self.spec.dtype == "float64":
            finite = np.isfinite(present.to_numpy(zero_copy_only=False))
            self.non_finite += int((~finite).sum())
            if not finite.all():
                present = pa.array(present.to_numpy(zero_copy_only=False)[finite])
                if len(present) == 0:
                    return
        if self.spec.min is not None or self.spec.max is not None:
            low, high = (value.as_py() for value in pc.min_max(present).values())
            self.low = low if self.low is None else min(self.low, low)
            self.high = high if self.high is None else max(self.high, high)
        if self.track_distinct and len(self.distinct) < _MAX_DISTINCT:
            self.distinct.update(pc.unique(present).to_pylist()[:_MAX_DISTINCT])


def validate_parquet(
    source: str | Path | BinaryIO, size_bytes: int, landing: LandingSettings
) -> ValidationReport:
    """Validate a parquet file (a path or a seekable binary file) of `size_bytes` bytes."""
    report = ValidationReport(size_bytes=size_bytes)
    if size_bytes == 0:
        report.problems.append(Problem("empty_file", "the object has zero bytes"))
        return report
    try:
        parquet = pq.ParquetFile(source, memory_map=False, buffer_size=1 << 20)
        metadata = parquet.metadata
        schema = parquet.schema_arrow
    except Exception as error:  # pyarrow raises several types for corrupt input
        report.problems.append(Problem("unreadable", f"not a readable parquet file: {error}"))
        return report

    report.rows = metadata.num_rows
    report.row_groups = metadata.num_row_groups
    report.columns = schema.names
    group_sizes = [metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups)]
    report.uncompressed_bytes = sum(group_sizes)
    _check_schema(schema, landing, report.problems)
    if report.problems:
        return report  # value checks on a wrong schema would only add noise
    if _too_large(report, max(group_sizes, default=0), landing):
        return report
    if report.rows == 0:
        report.problems.append(Problem("empty_data", "the file has the right schema but zero rows"))
        return report
    if report.rows < landing.min_rows:
        report.problems.append(Problem("too_few_rows", f"{report.rows} rows < min_rows {landing.min_rows}"))

    stats = {
        spec.name: _ColumnStats(spec, spec.allowed is not None or spec.name == landing.label)
        for spec in landing.columns
    }
    try:
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=list(stats)):
            for name, column in zip(batch.schema.names, batch.columns, strict=True):
                stats[name].add(column)
    except Exception as error:  # a footer that promises more than the pages hold
        report.problems.append(Problem("unreadable", f"the data pages do not decode: {error}"))
        return report
    for column in stats.values():
        _check_values(column, report.problems)
    _check_label(stats[landing.label], report.problems)
    return report


def _too_large(report: ValidationReport, largest_group: int, landing: LandingSettings) -> bool:
    """Limits read from the footer alone, before any value is decoded."""
    if report.rows > landing.max_rows:
        detail = f"the footer declares {report.rows:,} rows > max_rows {landing.max_rows:,}"
    elif report.uncompressed_bytes > landing.max_uncompressed_bytes:
        detail = (
            f"{report.uncompressed_bytes:,} bytes uncompressed > max_uncompressed_bytes "
            f"{landing.max_uncompressed_bytes:,}"
        )
    elif largest_group > landing.max_row_group_bytes:
        detail = (
            f"a row group of {largest_group:,} bytes uncompressed > max_row_group_bytes "
            f"{landing.max_row_group_bytes:,} (write smaller row groups)"
        )
    else:
        return False
    report.problems.append(Problem("too_large", detail + "; nothing was decoded"))
    return True


def _check_schema(schema: pa.Schema, landing: LandingSettings, problems: list[Problem]) -> None:
    expected = {spec.name: spec for spec in landing.columns}
    present = set(schema.names)
    missing = [name for name in expected if name not in present]
    extra = [name for name in schema.names if name not in expected]
    if len(schema.names) != len(present):
        problems.append(Problem("schema_mismatch", "duplicate column names in the file"))
    if missing:
        problems.append(Problem("schema_mismatch", f"missing columns: {missing}"))
    if extra:
        problems.append(Problem("schema_mismatch", f"unexpected columns: {extra}"))
    for name, spec in expected.items():
        if name in present:
            arrow_type = schema.field(name).type
            if not _TYPE_CHECKS[spec.dtype](arrow_type):
                problems.append(Problem("wrong_type", f"expected {spec.dtype}, found {arrow_type}", name))


def _check_values(column: _ColumnStats, problems: list[Problem]) -> None:
    spec = column.spec
    if column.nulls and not spec.nullable:
        problems.append(Problem("nulls", f"{column.nulls} null values in a non-nullable column", spec.name))
    if column.non_finite:
        problems.append(Problem("non_finite", f"{column.non_finite} NaN/inf values", spec.name))
        return
    if spec.min is not None and column.low is not None and column.low < spec.min:
        problems.append(Problem("out_of_range", f"minimum {column.low} < {spec.min}", spec.name))
    if spec.max is not None and column.high is not None and column.high > spec.max:
        problems.append(Problem("out_of_range", f"maximum {column.high} > {spec.max}", spec.name))
    if spec.allowed is not None:
        unexpected = sorted(column.distinct - set(spec.allowed))
        if unexpected:
            problems.append(
                Problem("unexpected_value", f"values {unexpected[:5]} not in {spec.allowed}", spec.name)
            )


def _check_label(label: _ColumnStats, problems: list[Problem]) -> None:
    if any(problem.column == label.spec.name for problem in problems):
        return
    if len(label.distinct) < 2:
        classes = sorted(label.distinct)
        problems.append(
            Problem("single_class_label", f"the label has only {classes}: nothing to learn", label.spec.name)
        )
