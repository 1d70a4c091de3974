"""Hourly partitions rolling up to one day (`landfall.pipeline.rollup`)."""

from __future__ import annotations

import logging

import pandas as pd

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
        "statistics_uri": f"s3://b/processed/date={hour}/statistics.json",
    }


def test_a_complete_day_rolls_up_every_hour_in_order():
    heads = {hour: _hour(hour) for hour in hours_of(DAY)}
    rollup = day_rollup(DAY, heads)
    assert rollup["partition"] == DAY and rollup["missing_hours"] == [] and len(rollup["hours"]) == 24
    assert rollup["train_uris"][0].endswith("date=2026-03-04T00/train.parquet")
    assert rollup["train_uris"][-1].endswith("date=2026-03-04T23/train.parquet")
    assert rollup["rows_train"] == 240
    assert len(rollup["statistics_uris"]) == 24  # each hour's drift statistics, merged by the window
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


def _prepared_hour(hour: str, frame, settings, tmp_path) -> dict:
    """An hour's processed head as preprocess records it, from its rows (`prepare` on a local file)."""
    from landfall.pipeline.prepare import prepare

    source, out = tmp_path / f"{hour}.parquet", tmp_path / hour
    out.mkdir()
    frame.to_parquet(source, index=False)
    training = settings.training
    prepared = prepare(
        [source], settings.landing, training.validation_fraction, training.test_fraction, 5, out
    )
    return {
        **_hour(hour),
        **{f"rows_{split}": count for split, count in prepared.rows.items()},
        "rows": sum(prepared.rows.values()),
        "label_counts": prepared.label_counts,
    }


def test_a_day_of_one_class_hours_gets_the_verdict_of_the_same_rows_landed_as_one_daily_file(
    settings, tmp_path
):
    from landfall.pipeline.datagen import make_batch
    from landfall.pipeline.rollup import rollup_problems
    from landfall.pipeline.validation import validate_parquet

    label = settings.landing.label
    frames = []
    for index in range(24):
        frame = make_batch(3, seed=900 + index)
        frame["customer_id"] += index * 1000
        frame[label] = 0
        frames.append(frame)
    heads = {
        hour: _prepared_hour(hour, frame, settings, tmp_path)
        for hour, frame in zip(hours_of(DAY), frames, strict=True)
    }
    rollup = day_rollup(DAY, heads)
    assert rollup["rows"] == 72 and rollup["label_counts"] == {"0": 72}
    daily = tmp_path / "daily.parquet"
    pd.concat(frames, ignore_index=True).to_parquet(daily, index=False)
    as_daily = validate_parquet(daily, daily.stat().st_size, settings.landing).problems
    assert {p.code for p in as_daily} == {"too_few_rows", "single_class_label"}
    assert rollup_problems(rollup, settings.landing) == as_daily


def test_a_rolled_up_day_with_enough_rows_of_both_classes_passes_and_each_check_is_its_own(settings):
    from landfall.pipeline.rollup import rollup_problems

    heads = {hour: {**_hour(hour), "label_counts": {"0": 8, "1": 2}} for hour in hours_of(DAY)}
    rollup = day_rollup(DAY, heads)
    assert rollup["rows"] == 720 and rollup["label_counts"] == {"0": 192, "1": 48}
    assert rollup_problems(rollup, settings.landing) == []
    one_class = day_rollup(DAY, {hour: {**head, "label_counts": {"1": 10}} for hour, head in heads.items()})
    assert [p.code for p in rollup_problems(one_class, settings.landing)] == ["single_class_label"]
    few = day_rollup(DAY, {hour: heads[hour] for hour in hours_of(DAY)[:3]})  # a deadline rollup: 90 rows
    assert [p.code for p in rollup_problems(few, settings.landing)] == ["too_few_rows"]
    # An hour prepared before its label classes were counted: the day is judged on its rows alone.
    heads[f"{DAY}T07"] = _hour(f"{DAY}T07")
    unknown = day_rollup(
        DAY, {**heads, **{h: {**heads[h], "label_counts": {"1": 10}} for h in hours_of(DAY)[:7]}}
    )
    assert unknown["label_counts"] is None and rollup_problems(unknown, settings.landing) == []


def test_a_refused_days_quarantine_record_names_the_day_its_hours_and_the_problems(settings):
    from landfall.pipeline.rollup import day_quarantine, quarantine_entry, rollup_problems

    heads = {hour: {**_hour(hour, rows=1), "label_counts": {"0": 3}} for hour in hours_of(DAY)[:5]}
    rollup = day_rollup(DAY, heads)
    assert rollup["hour_versions"] == {hour: f"v1-{hour}" for hour in hours_of(DAY)[:5]}
    problems = rollup_problems(rollup, settings.landing)
    record = day_quarantine(rollup, problems, "run-1")
    assert record["partition"] == DAY and record["hours"] == hours_of(DAY)[:5]
    assert len(record["missing_hours"]) == 19 and record["run_id"] == "run-1"
    assert [p["code"] for p in record["problems"]] == ["too_few_rows", "single_class_label"]
    entry = quarantine_entry(settings.storage, record)
    assert entry["partition_date"] == DAY and entry["hours"] == ["00", "01", "02", "03", "04"]
    assert (
        entry["quarantine_uri"]
        == f"s3://{settings.storage.datasets_bucket}/{settings.storage.quarantine_prefix}/{DAY}/rollup-{rollup['version']}/"
    )


def test_a_rolled_up_day_names_the_hours_prepared_before_label_counts_were_recorded(settings):
    from landfall.pipeline.rollup import day_quarantine, rollup_problems

    heads = {hour: {**_hour(hour), "label_counts": {"0": 8, "1": 2}} for hour in hours_of(DAY)}
    assert day_rollup(DAY, heads)["label_counts_unknown_hours"] == []
    for hour in (f"{DAY}T03", f"{DAY}T07"):
        heads[hour] = _hour(hour)  # prepared before preprocessing counted the label classes
    rollup = day_rollup(DAY, heads)
    assert rollup["label_counts"] is None and rollup_problems(rollup, settings.landing) == []
    assert rollup["label_counts_unknown_hours"] == [f"{DAY}T03", f"{DAY}T07"]  # why it was not checked
    few = day_rollup(DAY, {hour: heads[hour] for hour in hours_of(DAY)[:4]})  # refused on its rows
    record = day_quarantine(few, rollup_problems(few, settings.landing), "run-1")
    assert record["label_counts_unknown_hours"] == [f"{DAY}T03"]


class _Kept(logging.Handler):
    """The records of one logger (caplog's handler on the root logger is replaced when Airflow configures
    its logging on first import, inside the task function)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_publishing_a_day_of_unknown_label_counts_logs_that_its_class_check_was_skipped(
    settings, monkeypatch
):
    from landfall.airflow.tasks import rollup as rollup_task

    published = []
    monkeypatch.setattr(rollup_task, "publish_rollup", lambda *args, **kwargs: published.append(args) or None)
    kept = _Kept()
    rollup_task.log.addHandler(kept)
    try:
        heads = {hour: {**_hour(hour), "label_counts": {"0": 8, "1": 2}} for hour in hours_of(DAY)}
        heads[f"{DAY}T05"] = _hour(f"{DAY}T05")
        rollup_task.publish_day(object(), settings, day_rollup(DAY, heads), "run-1")
        assert len(published) == 1  # the day is still published: its rows pass
        [record] = [r for r in kept.records if "label counts" in r.getMessage()]
        assert record.levelno == logging.WARNING
        assert f"{DAY}: 1 hour(s) were prepared before label counts were recorded (05)" in record.getMessage()
        assert "both-classes check is skipped" in record.getMessage()

        kept.records.clear()
        heads[f"{DAY}T05"] = {**_hour(f"{DAY}T05"), "label_counts": {"0": 10}}
        rollup_task.publish_day(object(), settings, day_rollup(DAY, heads), "run-2")
        assert len(published) == 2 and not [r for r in kept.records if "label counts" in r.getMessage()]
    finally:
        rollup_task.log.removeHandler(kept)
