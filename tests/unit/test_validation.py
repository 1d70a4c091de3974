from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from landfall.datagen import CORRUPTIONS, make_batch, make_corrupt, to_parquet
from landfall.validation import validate_batch


@pytest.fixture
def landing(settings):
    return settings.landing


def _codes(report):
    return {problem.code for problem in report.problems}


def test_a_generated_batch_is_valid(landing):
    report = validate_batch(to_parquet(make_batch(1000, seed=3)), landing)
    assert report.ok, report.problems
    assert report.rows == 1000
    assert len(report.sha256) == 64


@pytest.mark.parametrize(
    ("kind", "code"),
    [("schema", "schema_mismatch"), ("nulls", "nulls"), ("empty", "empty_file"), ("garbage", "unreadable")],
)
def test_each_corruption_of_the_demo_is_caught(landing, kind, code):
    assert kind in CORRUPTIONS
    report = validate_batch(make_corrupt(kind), landing)
    assert not report.ok
    assert code in _codes(report)


def _mutated(change) -> bytes:
    frame = make_batch(500, seed=1)
    frame = change(frame)
    return frame if isinstance(frame, bytes) else to_parquet(frame)


def _truncate(frame):
    data = to_parquet(frame)
    return data[: len(data) // 2]


def _set(column, value):
    def change(frame):
        frame[column] = value
        return frame

    return change


def _single_class(frame):
    frame["churned"] = 0
    return frame


def _nan_at_first_row(frame):
    frame.loc[0, "usage_hours"] = np.nan
    return frame


@pytest.mark.parametrize(
    ("name", "change", "code"),
    [
        ("truncated parquet", _truncate, "unreadable"),
        ("wrong column type", _set("support_calls", "many"), "wrong_type"),
        ("extra column", _set("surprise", 1), "schema_mismatch"),
        ("missing column", lambda f: f.drop(columns=["tenure_months"]), "schema_mismatch"),
        ("all-null label", _set("churned", pd.array([None] * 500, dtype="Int64")), "nulls"),
        ("single-class label", _single_class, "single_class_label"),
        ("infinite feature", _set("monthly_spend", np.inf), "non_finite"),
        ("NaN feature", _nan_at_first_row, "nulls"),
        ("negative tenure", _set("tenure_months", -5.0), "out_of_range"),
        ("unknown category", _set("contract_type", "lifetime"), "unexpected_value"),
        ("zero rows", lambda f: f.iloc[:0], "empty_data"),
        ("too few rows", lambda f: f.iloc[:10], "too_few_rows"),
    ],
)
def test_broken_content_gets_a_specific_problem_code(landing, name, change, code):
    report = validate_batch(_mutated(change), landing)
    assert code in _codes(report), f"{name}: {report.problems}"


def test_too_many_rows_and_too_many_bytes(landing):
    small = landing.model_copy(update={"max_rows": 100})
    assert "too_many_rows" in _codes(validate_batch(to_parquet(make_batch(200)), small))
    tiny = landing.model_copy(update={"max_bytes": 1000})
    assert "too_large" in _codes(validate_batch(to_parquet(make_batch(200)), tiny))


def test_float_columns_written_as_float32_are_accepted(landing):
    frame = make_batch(300, seed=2)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.set_column(1, "tenure_months", table.column("tenure_months").cast(pa.float32()))
    import io

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    assert validate_batch(buffer.getvalue(), landing).ok


def test_problems_are_machine_readable(landing):
    report = validate_batch(make_corrupt("schema"), landing).as_dict()
    assert report["ok"] is False
    assert {"code", "detail", "column"} <= set(report["problems"][0])
