"""Which later days make a day's training coalesce, against a real SeaweedFS listing."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from landfall.airflow.tasks.train import newer_untrained_partition
from landfall.pipeline import s3 as s3ops
from landfall.pipeline.keys import processed_head_key, trained_record


@pytest.fixture
def first_day(s3, settings):
    """A unique far-future day; its processed heads and trained records are removed afterwards."""
    day = date(5000, 1, 1) + timedelta(days=uuid.uuid4().int % 300_000)
    yield day
    storage = settings.storage
    for offset in range(12):
        key = (day + timedelta(days=offset)).isoformat()
        for prefix in (f"{storage.processed_prefix}/date={key}", trained_record(storage.ledger_prefix, key)):
            for obj in s3ops.list_keys(s3, storage.datasets_bucket, prefix):
                s3.delete_object(Bucket=storage.datasets_bucket, Key=obj["Key"])


def _head(s3, settings, day: str, version: str = "v1") -> None:
    s3ops.put_json(
        s3, settings.storage.datasets_bucket, processed_head_key(settings.storage, day), {"version": version}
    )


def test_only_an_untrained_later_day_whose_window_holds_this_one_makes_it_coalesce(s3, settings, first_day):
    storage = settings.storage
    day = first_day.isoformat()

    def later(offset: int) -> str:
        return (first_day + timedelta(days=offset)).isoformat()

    _head(s3, settings, day)
    _head(s3, settings, f"{later(1)}T05")  # an hour of the next day: not a training partition
    _head(s3, settings, later(9))  # processed, untrained, but its 7-day window does not hold `day`
    assert newer_untrained_partition(s3, storage, day, 7) is None
    _head(s3, settings, later(6))  # the last day whose window holds `day`
    assert newer_untrained_partition(s3, storage, day, 7) == later(6)
    assert newer_untrained_partition(s3, storage, day, 6) is None
    # Once trained (this version), it no longer makes `day` skip; a newer version of it does again.
    record = trained_record(storage.ledger_prefix, later(6))
    s3ops.put_json(s3, storage.datasets_bucket, record, {"version": "v1"})
    assert newer_untrained_partition(s3, storage, day, 7) is None
    _head(s3, settings, later(6), version="v2")
    assert newer_untrained_partition(s3, storage, day, 7) == later(6)
