"""A labels file is checked against the pipeline's schema cut to its id and label, by the landing
validator itself, and read as the frame live accuracy joins."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pandas as pd
import pytest

from landfall.pipeline.datagen import make_batch, to_parquet
from landfall.pipeline.labels import read_labels
from landfall.pipeline.live import LABEL_COLUMNS

LANDED = datetime(2026, 12, 9, 6, tzinfo=UTC)


@pytest.fixture
def landing(settings):
    return settings.landing  # churn's: customer_id (int64, min 0) and churned (int64, 0..1)


def _read(frame: pd.DataFrame | bytes, landing):
    body = frame if isinstance(frame, bytes) else to_parquet(frame)
    return read_labels(io.BytesIO(body), len(body), landing, LANDED)


def _codes(read) -> set[str]:
    return {problem.code for problem in read.report.problems}


def test_a_labels_file_is_read_as_ids_and_labels_stamped_with_its_landing(landing):
    rows = make_batch(50, seed=1)[["customer_id", "churned"]]
    read = _read(rows, landing)
    assert read.ok and read.repeated_ids == 0
    assert list(read.labels.columns) == list(LABEL_COLUMNS)
    assert read.labels["id"].tolist() == rows["customer_id"].astype(str).tolist()
    assert read.labels["label"].tolist() == rows["churned"].tolist()
    assert set(read.labels["landed_at"]) == {pd.Timestamp(LANDED)}


def test_one_class_and_few_rows_are_fine_for_labels(landing):
    """A day of labels may be all "did not churn", and three rows long: the day-level checks of a training
    day do not apply."""
    rows = make_batch(3, seed=2)[["customer_id", "churned"]].assign(churned=0)
    assert _read(rows, landing).ok


def test_an_id_twice_in_one_file_keeps_its_later_row_and_is_counted(landing):
    rows = pd.DataFrame({"customer_id": [7, 8, 7], "churned": [0, 1, 1]})
    read = _read(rows, landing)
    assert read.repeated_ids == 1
    assert read.labels[["id", "label"]].values.tolist() == [["8", 1], ["7", 1]]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda rows: rows.drop(columns=["churned"]), "schema_mismatch"),
        (lambda rows: rows.assign(tenure_months=1.0), "schema_mismatch"),  # a features row, not labels
        (lambda rows: rows.assign(churned=rows["churned"].astype(float)), "wrong_type"),
        (lambda rows: rows.assign(churned=3), "out_of_range"),
        (lambda rows: rows.assign(customer_id=-rows["customer_id"] - 1), "out_of_range"),
        (lambda rows: rows.iloc[:0], "empty_data"),
    ],
    ids=["no label", "extra column", "label type", "label range", "id range", "empty"],
)
def test_a_labels_file_that_breaks_the_schema_is_refused_whole_naming_why(landing, change, code):
    rows = make_batch(20, seed=3)[["customer_id", "churned"]]
    read = _read(change(rows), landing)
    assert not read.ok and read.labels is None
    assert code in _codes(read), read.report.problems


def test_a_null_label_is_refused(landing):
    rows = pd.DataFrame({"customer_id": [1, 2], "churned": pd.array([1, None], dtype="Int64")})
    assert "nulls" in _codes(_read(rows, landing))


def test_a_labels_bomb_is_refused_from_its_footer_unread(landing):
    """Ids and labels only, 5 million identical rows: a few kilobytes on disk, 80 MB decoded."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    group = pa.table(
        {"customer_id": pa.repeat(pa.scalar(1), 1_000_000), "churned": pa.repeat(pa.scalar(0), 1_000_000)}
    )
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, group.schema, compression="zstd") as writer:
        for _ in range(5):
            writer.write_table(group)
    read = _read(sink.getvalue().to_pybytes(), landing)
    assert _codes(read) == {"too_large"} and read.labels is None
