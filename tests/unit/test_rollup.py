"""Hourly partitions rolling up to one day (`landfall.pipeline.rollup`)."""

from __future__ import annotations

from landfall.pipeline.keys import hours_of
from landfall.pipeline.rollup import day_rollup
from landfall.pipeline.window import training_window

DAY = "2026-03-04"


def _hour(hour: str, version: str = "v1", rows: int = 10) -> dict:
    return {
        "partition": hour,
        "version": f"{version}-{hour}",
        "features": ["a", "b"],
        "last_modified": int(hour[-2:]),
        **{f"rows_{split}": rows for split in ("train", "validation", "test")},
        **{
            f"{split}_uri": f"s3://b/processed/date={hour}/{split}.parquet"
            for split in ("train", "validation", "test")
        },
        "canary_uri": f"s3://b/processed/date={hour}/canary.parquet",
    }


def test_a_complete_day_rolls_up_every_hour_in_order():
    heads = {hour: _hour(hour) for hour in hours_of(DAY)}
    rollup = day_rollup(DAY, heads)
    assert rollup["partition"] == DAY and rollup["missing_hours"] == [] and len(rollup["hours"]) == 24
    assert rollup["train_uris"][0].endswith("date=2026-03-04T00/train.parquet")
    assert rollup["train_uris"][-1].endswith("date=2026-03-04T23/train.parquet")
    assert rollup["rows_train"] == 240
    # The canary and its offline expectation come from the same hour's test split.
    assert rollup["canary_uri"].split("/")[-2] == rollup["test_uri"].split("/")[-2] == "date=2026-03-04T23"


def test_missing_hours_are_named_and_the_version_names_exactly_the_hours_held():
    heads = {hour: _hour(hour) for hour in hours_of(DAY)}
    heads[f"{DAY}T05"] = heads[f"{DAY}T17"] = None
    partial = day_rollup(DAY, heads)
    assert partial["missing_hours"] == [f"{DAY}T05", f"{DAY}T17"] and len(partial["hours"]) == 22
    assert day_rollup(DAY, dict(heads)) == partial  # the same hours: the same version, from any run
    heads[f"{DAY}T05"] = _hour(f"{DAY}T05")
    assert day_rollup(DAY, heads)["version"] != partial["version"]
    heads[f"{DAY}T06"] = _hour(f"{DAY}T06", version="v2")  # a re-landed hour is a new day version
    assert len({day_rollup(DAY, heads)["version"], partial["version"]}) == 2
    assert day_rollup(DAY, dict.fromkeys(hours_of(DAY))) is None


def test_a_rolled_up_day_contributes_all_its_hours_to_a_training_window():
    rollup = day_rollup(DAY, {hour: _hour(hour) for hour in hours_of(DAY)[:3]})
    window = training_window(rollup, {"2026-03-03": None}, max_rows=1_000_000)
    assert window["window_partitions"] == [DAY] and window["missing_partitions"] == ["2026-03-03"]
    assert len(window["test_uris"]) == 3 and window["window_rows_test"] == 30
