"""The training window (`landfall.pipeline.window`): the days a run trains on, never a later one, missing
days named, and bounded reads that keep every k-th row across the window's files."""

from __future__ import annotations

import pandas as pd
import pytest

from landfall.pipeline.window import read_sampled, stride, training_window, window_dates


def _processed(day: str, rows: int = 100) -> dict:
    return {
        "partition": day,
        "version": f"v-{day}",
        **{f"rows_{split}": rows for split in ("train", "validation", "test")},
        **{
            f"{split}_uri": f"s3://b/processed/date={day}/{split}.parquet"
            for split in ("train", "validation", "test")
        },
    }


def test_a_window_ends_at_its_partition_oldest_first():
    assert window_dates("2026-03-01", 3) == ["2026-02-27", "2026-02-28", "2026-03-01"]
    assert window_dates("2026-03-01", 1) == ["2026-03-01"]


def test_the_window_holds_earlier_days_names_missing_ones_and_never_a_later_day():
    heads = {
        "2026-01-01": _processed("2026-01-01"),
        "2026-01-02": None,
        "2026-01-09": _processed("2026-01-09"),
    }
    window = training_window(_processed("2026-01-03"), heads, max_rows=1_000_000)
    assert window["window_partitions"] == ["2026-01-01", "2026-01-03"]
    assert window["missing_partitions"] == ["2026-01-02"]
    assert window["train_uris"] == [
        "s3://b/processed/date=2026-01-01/train.parquet",
        "s3://b/processed/date=2026-01-03/train.parquet",
    ]
    assert (window["window_rows_train"], window["train_every"]) == (200, 1)
    assert window["partition"] == "2026-01-03" and window["version"] == "v-2026-01-03"


def test_the_window_names_each_days_drift_statistics_an_hourly_days_hour_by_hour():
    hourly = {**_processed("2026-01-02"), "statistics_uris": ["s3://b/h00.json", "s3://b/h01.json"]}
    older = _processed("2026-01-01")  # prepared before days had statistics: left out
    own = {**_processed("2026-01-03"), "statistics_uri": "s3://b/d03.json"}
    window = training_window(own, {"2026-01-01": older, "2026-01-02": hourly}, max_rows=1_000_000)
    assert window["statistics_uris"] == ["s3://b/h00.json", "s3://b/h01.json", "s3://b/d03.json"]


def test_a_window_over_the_row_cap_is_sampled_with_a_stride():
    window = training_window(
        _processed("2026-01-02", 1500), {"2026-01-01": _processed("2026-01-01", 1500)}, 1000
    )
    assert window["window_rows_test"] == 3000 and window["test_every"] == 3
    assert stride(1000, 1000) == 1 and stride(1001, 1000) == 2


@pytest.mark.parametrize("every", [1, 3, 7])
def test_sampled_reads_keep_every_kth_row_across_files(tmp_path, every):
    frames = [pd.DataFrame({"x": range(start, start + 10)}) for start in (0, 10, 20)]
    uris = []
    for index, frame in enumerate(frames):
        path = tmp_path / f"{index}.parquet"
        frame.to_parquet(path, index=False, row_group_size=4)
        uris.append(str(path))
    assert read_sampled(uris, every)["x"].tolist() == list(range(0, 30, every))
