"""Publishing a day rolled up from its hours, against a real SeaweedFS: once per set of hours, but again
by the same run (a retry whose event was never committed) and by a backfill; and refusing one that fails
the whole-day checks (quarantined with a reason, never the day's head)."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from landfall.airflow.tasks import rollup as rollup_task
from landfall.airflow.tasks.rollup import publish_rollup
from landfall.pipeline import s3 as s3ops
from landfall.pipeline.keys import hours_of, processed_head_key, rollup_record
from landfall.pipeline.rollup import day_rollup


def _hour(hour: str) -> dict:
    return {
        "partition": hour,
        "version": f"v-{hour}",
        "features": ["a"],
        "last_modified": 100,
        **{f"rows_{split}": 1 for split in ("train", "validation", "test")},
        **{f"{split}_uri": f"s3://b/{hour}/{split}.parquet" for split in ("train", "validation", "test")},
    }


def _day() -> str:
    return (date(6000, 1, 1) + timedelta(days=uuid.uuid4().int % 300_000)).isoformat()


def _clean(s3, storage, day: str) -> None:
    for prefix in (f"{storage.processed_prefix}/date={day}", f"{storage.quarantine_prefix}/{day}/"):
        for obj in s3ops.list_keys(s3, storage.datasets_bucket, prefix):
            s3.delete_object(Bucket=storage.datasets_bucket, Key=obj["Key"])


def test_a_rollup_is_published_once_but_again_by_its_own_retry_and_by_a_backfill(s3, settings):
    storage = settings.storage
    day = (date(6000, 1, 1) + timedelta(days=uuid.uuid4().int % 300_000)).isoformat()
    rollup = day_rollup(day, {hour: _hour(hour) for hour in hours_of(day)})
    try:
        assert publish_rollup(s3, storage, rollup, "run-a") is None
        assert publish_rollup(s3, storage, rollup, "run-a") is None  # the same run, retried
        assert "already rolled up and published by run run-a" in publish_rollup(s3, storage, rollup, "run-b")
        assert publish_rollup(s3, storage, rollup, "run-c", backfill=True) is None
        older = {**rollup, "version": "hours-older", "last_modified": 50}
        assert "newer version of the day" in publish_rollup(s3, storage, older, "run-d")
    finally:
        for obj in s3ops.list_keys(s3, storage.datasets_bucket, f"{storage.processed_prefix}/date={day}/"):
            s3.delete_object(Bucket=storage.datasets_bucket, Key=obj["Key"])


class _Outlet:
    extra: dict | None = None


def test_a_day_of_one_class_hours_is_refused_once_quarantined_with_its_hours_and_never_trained(
    s3, settings, alerts, monkeypatch
):
    from airflow.sdk.exceptions import AirflowSkipException

    storage, bucket, day = settings.storage, settings.storage.datasets_bucket, _day()
    left: list[dict] = []
    monkeypatch.setattr(rollup_task, "_leave_for_report", left.append)
    heads = {hour: {**_hour(hour), "label_counts": {"0": 3}} for hour in hours_of(day)}  # 72 rows, class 0
    rollup = day_rollup(day, heads)
    try:
        with pytest.raises(AirflowSkipException, match="refused, not trained"):
            rollup_task.publish_day(s3, settings, rollup, "run-a")
        [entry] = left
        reason, _ = s3ops.get_json(
            s3, bucket, f"{storage.quarantine_prefix}/{day}/rollup-{rollup['version']}/reason.json"
        )
        assert reason["partition"] == day and reason["hours"] == hours_of(day)
        assert [p["code"] for p in reason["problems"]] == ["too_few_rows", "single_class_label"]
        assert entry["quarantine_uri"].endswith(
            f"{storage.quarantine_prefix}/{day}/rollup-{rollup['version']}/"
        )
        # Not the day's head, not a published rollup: no training window ever reads it.
        assert s3ops.get_json(s3, bucket, processed_head_key(storage, day)) is None
        assert s3ops.get_json(s3, bucket, rollup_record(storage, day, rollup["version"])) is None
        # Another run rolling up the same hours reports nothing again; the same run (a retry) does.
        with pytest.raises(AirflowSkipException, match="another run reported it"):
            rollup_task.publish_day(s3, settings, rollup, "run-b")
        with pytest.raises(AirflowSkipException, match="refused, not trained"):
            rollup_task.publish_day(s3, settings, rollup, "run-a")
        assert len(left) == 2

        outlet = _Outlet()
        rollup_task.report_refused_day("churn", entry, outlet, "run-a")
        assert outlet.extra["quarantined"] == [entry] and outlet.extra["rejected"] == []
        [alert] = [a for a in alerts.of_kind("quarantine") if a["details"].get("day") == day]
        assert alert["details"]["hours"] == [f"{hour:02d}" for hour in range(24)]
        assert "too_few_rows" in alert["text"] and "single_class_label" in alert["text"]
        with pytest.raises(AirflowSkipException, match="no day was refused"):
            rollup_task.report_refused_day("churn", None, _Outlet(), "run-c")
    finally:
        _clean(s3, storage, day)


def test_a_deadline_rollup_of_too_few_rows_is_refused_the_same_way(s3, settings, monkeypatch):
    from airflow.sdk.exceptions import AirflowSkipException

    storage, bucket, day = settings.storage, settings.storage.datasets_bucket, _day()
    left: list[dict] = []
    monkeypatch.setattr(rollup_task, "_leave_for_report", left.append)
    try:
        for hour in hours_of(day)[:3]:  # three hours of both classes by the deadline: 9 rows
            head = {**_hour(hour), "label_counts": {"0": 2, "1": 1}}
            s3ops.put_json(s3, bucket, processed_head_key(storage, hour), head)
        with pytest.raises(AirflowSkipException, match="refused, not trained"):
            rollup_task.late_rollup("churn", day, "run-late")
        [entry] = left
        assert [p["code"] for p in entry["problems"]] == ["too_few_rows"]
        assert entry["hours"] == ["00", "01", "02"] and len(entry["missing_hours"]) == 21
        assert s3ops.get_json(s3, bucket, processed_head_key(storage, day)) is None
    finally:
        _clean(s3, storage, day)
