"""Validation of a landed partition (one parquet file, or the part files of a multi-part partition)
against the schema in config (`landing:` section), with pyarrow alone.

The footers first: schema, row count and uncompressed size are checked before a single value is
decoded, so a decompression bomb (a small file that claims millions of rows) is refused unread. Then
the values, one column of one row group at a time, keeping only running statistics: memory does not
grow with the file. Pure functions over a local file: no S3, no Airflow. Each problem is a
`Problem(code, detail, column)`, so the quarantine record is machine-readable.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from landfall.core.pipeline_settings import ColumnSpec, LandingSettings
from landfall.pipeline.parquet_io import open_streaming

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
    part: str | None = None  # the file of a multi-part partition it was found in


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


@dataclass(frozen=True)
class PartFile:
    """One file of a partition: its name in the landing (for messages), a local path or seekable binary
    file, and its size in bytes."""

    name: str
    source: str | Path | BinaryIO
    size_bytes: int


def validate_parquet(
    source: str | Path | BinaryIO, size_bytes: int, landing: LandingSettings
) -> ValidationReport:
    """Validate a one-file partition (a path or a seekable binary file) of `size_bytes` bytes."""
    return validate_partition([PartFile("", source, size_bytes)], landing)


def validate_partition(
    files: Sequence[PartFile], landing: LandingSettings, whole_day: bool = True
) -> ValidationReport:
    """Validate a partition made of one or more parquet files as one table.

    Every footer is read first: each file's schema (a part whose schema differs is named), then the
    partition's declared rows and sizes against the ceilings. Only then are values decoded, one column
    chunk of one file at a time (one file open at a time), into running statistics shared by all the
    files. An hour (`whole_day=False`) is not held to the day-level checks: enough rows, both classes.
    """
    report = ValidationReport(size_bytes=sum(part.size_bytes for part in files))
    opened: list[tuple[PartFile, int]] = []  # each readable file and its row groups
    group_sizes: list[int] = []
    for part in files:
        problems = _open(part, landing, opened, group_sizes, report)
        report.problems.extend(_named(problem, part.name) for problem in problems)
    if report.problems:
        return report  # value checks on a wrong schema would only add noise
    report.columns = [spec.name for spec in landing.columns] if opened else []
    report.uncompressed_bytes = sum(group_sizes)
    if _too_large(report, max(group_sizes, default=0), landing):
        return report
    if report.rows == 0:
        report.problems.append(Problem("empty_data", "the data has the right schema but zero rows"))
        return report
    if whole_day and (few := _too_few_rows(report.rows, landing)):
        report.problems.append(few)

    stats = {
        spec.name: _ColumnStats(spec, spec.allowed is not None or spec.name == landing.label)
        for spec in landing.columns
    }
    for part, groups in opened:
        try:
            with open_streaming(part.source) as parquet:
                # One column of one row group at a time: the most a reader holds is one decoded column
                # chunk (bounded by max_row_group_bytes), not a row group of every column.
                for group in range(groups):
                    for name, column in stats.items():
                        table = parquet.read_row_group(group, columns=[name], use_threads=False)
                        for chunk in table[0].chunks:
                            column.add(chunk)
        except Exception as error:  # a footer that promises more than the pages hold
            if _environmental(error):
                raise
            problem = Problem("unreadable", f"the data pages do not decode: {error}")
            report.problems.append(_named(problem, part.name))
            return report
    for column in stats.values():
        _check_values(column, report.problems)
    labelled = not any(problem.column == landing.label for problem in report.problems)
    if whole_day and labelled and (one := _single_class(stats[landing.label].distinct, landing)):
        report.problems.append(one)
    return report


def day_problems(rows: int, classes: Iterable[object] | None, landing: LandingSettings) -> list[Problem]:
    """The whole-day verdict, the same for a daily file and for a day rolled up from its hours: at least
    `min_rows` rows, and both label classes among `classes` (the label values present; None: not known)."""
    found = [_too_few_rows(rows, landing), _single_class(classes, landing) if classes is not None else None]
    return [problem for problem in found if problem is not None]


def _too_few_rows(rows: int, landing: LandingSettings) -> Problem | None:
    if rows >= landing.min_rows:
        return None
    return Problem("too_few_rows", f"{rows} rows < min_rows {landing.min_rows}")


def _single_class(classes: Iterable[object], landing: LandingSettings) -> Problem | None:
    present = sorted(set(classes))
    if len(present) >= 2:
        return None
    return Problem("single_class_label", f"the label has only {present}: nothing to learn", landing.label)


def _environmental(error: Exception) -> bool:
    """An operating-system failure (no file handle, no disk), not bad data: the caller retries.
    (pyarrow reports a corrupt footer as an OSError too, but without an errno.)"""
    return isinstance(error, OSError) and error.errno is not None


def _open(
    part: PartFile,
    landing: LandingSettings,
    opened: list[tuple[PartFile, int]],
    group_sizes: list[int],
    report: ValidationReport,
) -> list[Problem]:
    """Read one file's footer into the report (and close the file again: a day may have thousands of
    parts); the problems of that file."""
    if part.size_bytes == 0:
        return [Problem("empty_file", "the object has zero bytes")]
    try:
        with open_streaming(part.source) as parquet:
            metadata = parquet.metadata
            schema = parquet.schema_arrow
    except Exception as error:  # pyarrow raises several types for corrupt input
        if _environmental(error):
            raise
        return [Problem("unreadable", f"not a readable parquet file: {error}")]
    problems: list[Problem] = []
    _check_schema(schema, landing, problems)
    report.rows += metadata.num_rows
    report.row_groups += metadata.num_row_groups
    group_sizes.extend(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    opened.append((part, metadata.num_row_groups))
    return problems


def _named(problem: Problem, part: str) -> Problem:
    """A problem of one file of a multi-file partition says which file."""
    return Problem(problem.code, f"{part}: {problem.detail}", problem.column, part) if part else problem


def _too_large(report: ValidationReport, largest_group: int, landing: LandingSettings) -> bool:
    """Limits read from the footers alone, before any value is decoded."""
    decoded = report.rows * 8 * len(landing.columns)
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
    elif decoded > landing.max_expansion * max(report.size_bytes, 1):
        detail = (
            f"{report.rows:,} rows declared in {report.size_bytes:,} bytes would decode to about "
            f"{decoded / max(report.size_bytes, 1):,.0f}x the file > max_expansion {landing.max_expansion:g} "
            "(a decompression bomb)"
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
