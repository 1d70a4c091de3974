"""Validation of a landed daily batch against the schema in config (`landing:` section).

Pure functions over bytes: no S3, no Airflow, so every rule is unit-tested directly. Each problem is
reported as a `Problem(code, column, detail)` so the quarantine record is machine-readable.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from landfall.settings import ColumnSpec, LandingSettings

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
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def validate_batch(data: bytes, landing: LandingSettings) -> ValidationReport:
    report = ValidationReport(sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))
    if len(data) == 0:
        report.problems.append(Problem("empty_file", "the object has zero bytes"))
        return report
    if len(data) > landing.max_bytes:
        report.problems.append(Problem("too_large", f"{len(data)} bytes > max_bytes {landing.max_bytes}"))
        return report
    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as error:  # pyarrow raises several types for corrupt input
        report.problems.append(Problem("unreadable", f"not a readable parquet file: {error}"))
        return report

    report.rows = table.num_rows
    report.columns = table.column_names
    _check_schema(table, landing, report.problems)
    if report.problems:
        return report  # value checks on a wrong schema would only add noise

    if table.num_rows == 0:
        report.problems.append(Problem("empty_data", "the file has the right schema but zero rows"))
        return report
    if table.num_rows < landing.min_rows:
        report.problems.append(
            Problem("too_few_rows", f"{table.num_rows} rows < min_rows {landing.min_rows}")
        )
    if table.num_rows > landing.max_rows:
        report.problems.append(
            Problem("too_many_rows", f"{table.num_rows} rows > max_rows {landing.max_rows}")
        )
    for spec in landing.columns:
        _check_values(table.column(spec.name), spec, report.problems)
    _check_label(table.column(landing.label), landing.label, report.problems)
    return report


def _check_schema(table: pa.Table, landing: LandingSettings, problems: list[Problem]) -> None:
    expected = {spec.name: spec for spec in landing.columns}
    present = set(table.column_names)
    missing = [name for name in expected if name not in present]
    extra = [name for name in table.column_names if name not in expected]
    if len(table.column_names) != len(present):
        problems.append(Problem("schema_mismatch", "duplicate column names in the file"))
    if missing:
        problems.append(Problem("schema_mismatch", f"missing columns: {missing}"))
    if extra:
        problems.append(Problem("schema_mismatch", f"unexpected columns: {extra}"))
    for name, spec in expected.items():
        if name in present:
            arrow_type = table.schema.field(name).type
            if not _TYPE_CHECKS[spec.dtype](arrow_type):
                problems.append(Problem("wrong_type", f"expected {spec.dtype}, found {arrow_type}", name))


def _check_values(column: pa.ChunkedArray, spec: ColumnSpec, problems: list[Problem]) -> None:
    nulls = column.null_count
    if nulls and not spec.nullable:
        problems.append(Problem("nulls", f"{nulls} null values in a non-nullable column", spec.name))
    values = column.drop_null()
    if len(values) == 0:
        return
    if spec.dtype == "float64":
        finite = np.isfinite(values.to_numpy(zero_copy_only=False))
        if not finite.all():
            problems.append(Problem("non_finite", f"{int((~finite).sum())} NaN/inf values", spec.name))
            return
    if spec.min is not None or spec.max is not None:
        low, high = pc.min_max(values).values()
        if spec.min is not None and low.as_py() < spec.min:
            problems.append(Problem("out_of_range", f"minimum {low.as_py()} < {spec.min}", spec.name))
        if spec.max is not None and high.as_py() > spec.max:
            problems.append(Problem("out_of_range", f"maximum {high.as_py()} > {spec.max}", spec.name))
    if spec.allowed is not None:
        seen = set(pc.unique(values).to_pylist())
        unexpected = sorted(seen - set(spec.allowed))
        if unexpected:
            shown = unexpected[:5]
            problems.append(Problem("unexpected_value", f"values {shown} not in {spec.allowed}", spec.name))


def _check_label(column: pa.ChunkedArray, name: str, problems: list[Problem]) -> None:
    if any(problem.column == name for problem in problems):
        return
    classes = pc.unique(column.drop_null()).to_pylist()
    if len(classes) < 2:
        problems.append(
            Problem("single_class_label", f"the label has only {classes}: nothing to learn", name)
        )
