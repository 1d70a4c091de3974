"""Publishing a day rolled up from its hours, against a real SeaweedFS: once per set of hours, but again
by the same run (a retry whose event was never committed) and by a backfill."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from landfall.airflow.tasks.rollup import publish_rollup
from landfall.pipeline import s3 as s3ops
from landfall.pipeline.keys import hours_of
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
