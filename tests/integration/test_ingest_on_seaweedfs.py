"""`landfall.pipeline.ingest` against a real SeaweedFS S3 server: store, quarantine, and safe repetition."""

from __future__ import annotations

import json
import uuid

import pytest

from hostile_inputs import HOSTILE_INPUTS, TEN_TIMES, key_for
from landfall.pipeline.datagen import make_batch, make_corrupt, to_parquet
from landfall.pipeline.ingest import IngestError, ingest_landed_object


@pytest.fixture
def day(s3, settings):
    """A unique far-future partition per test; its landing objects are removed afterwards, so that the
    stack the end-to-end tests start later does not find (and ingest) them."""
    value = f"2{uuid.uuid4().int % 900 + 100:03d}-0{uuid.uuid4().int % 9 + 1}-1{uuid.uuid4().int % 9}"
    yield value
    bucket = settings.storage.datasets_bucket
    for prefix in (f"daily/{value}", "daily/not-a-date/"):
        for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])


def _land(s3, settings, key, body):
    etag = s3.put_object(Bucket=settings.storage.datasets_bucket, Key=key, Body=body)["ETag"].strip('"')
    return {"bucket": settings.storage.datasets_bucket, "key": key, "etag": etag}


def _exists(s3, bucket, key):
    return s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount", 0) > 0


def test_a_valid_batch_becomes_the_raw_partition_with_its_provenance(s3, settings, day):
    bucket = settings.storage.datasets_bucket
    landed = _land(s3, settings, f"daily/{day}/features.parquet", to_parquet(make_batch(800, seed=5)))
    outcome = ingest_landed_object(s3, settings, landed)
    assert outcome.status == "ingested"
    assert outcome.partition == day and outcome.rows == 800
    head = s3.head_object(Bucket=bucket, Key=f"raw/date={day}/data.parquet")
    assert head["Metadata"]["source-etag"] == landed["etag"]
    assert head["Metadata"]["sha256"] == outcome.sha256
    assert _exists(s3, bucket, landed["key"])  # the landing copy stays: it is the source for backfills


def test_bad_content_is_moved_to_quarantine_with_a_reason(s3, settings, day):
    bucket = settings.storage.datasets_bucket
    landed = _land(s3, settings, f"daily/{day}/features.parquet", make_corrupt("nulls"))
    outcome = ingest_landed_object(s3, settings, landed)
    assert outcome.status == "quarantined"
    folder = outcome.uri.removeprefix(f"s3://{bucket}/")
    reason = json.loads(s3.get_object(Bucket=bucket, Key=f"{folder}reason.json")["Body"].read())
    assert reason["source"]["key"] == landed["key"]
    assert [p["code"] for p in reason["problems"]] == ["nulls"]
    assert s3.get_object(Bucket=bucket, Key=f"{folder}object")["Body"].read() == make_corrupt("nulls")
    assert not _exists(s3, bucket, landed["key"])  # moved, not copied
    assert not _exists(s3, bucket, f"raw/date={day}/")


@pytest.mark.parametrize(
    ("key", "code"),
    [
        ("daily/{day}/features.csv", "bad_suffix"),
        ("daily/not-a-date/features.parquet", "bad_partition"),
        ("daily/{day}/nested/features.parquet", "bad_key"),
        ("daily/{day} x/features.parquet", "bad_partition"),
    ],
)
def test_hostile_keys_are_quarantined_without_reading_the_content(s3, settings, day, key, code):
    landed = _land(s3, settings, key.format(day=day), to_parquet(make_batch(200)))
    outcome = ingest_landed_object(s3, settings, landed)
    assert outcome.status == "quarantined"
    assert outcome.problems[0]["code"] == code


@pytest.mark.parametrize("key", ["daily/{day}/features.parquet", "daily/{day}/features.txt"])
def test_a_repeated_event_for_a_quarantined_object_is_a_duplicate(s3, settings, day, key):
    bucket = settings.storage.datasets_bucket
    landed = _land(s3, settings, key.format(day=day), make_corrupt("garbage"))
    first = ingest_landed_object(s3, settings, landed)
    # The landing copy is gone now; the same event again must neither fail, alert again, nor lose the copy.
    second = ingest_landed_object(s3, settings, landed)
    assert (first.status, second.status) == ("quarantined", "duplicate")
    assert second.uri == first.uri
    folder = first.uri.removeprefix(f"s3://{bucket}/")
    assert _exists(s3, bucket, f"{folder}object")


def test_an_event_whose_object_vanished_unprocessed_fails_loudly(s3, settings, day):
    landed = _land(s3, settings, f"daily/{day}/features.parquet", to_parquet(make_batch(200)))
    s3.delete_object(Bucket=settings.storage.datasets_bucket, Key=landed["key"])
    with pytest.raises(IngestError, match="is gone"):
        ingest_landed_object(s3, settings, landed)


def test_an_event_for_an_overwritten_object_is_superseded(s3, settings, day):
    key = f"daily/{day}/features.parquet"
    old = _land(s3, settings, key, to_parquet(make_batch(300, seed=1)))
    _land(s3, settings, key, to_parquet(make_batch(300, seed=2)))
    assert ingest_landed_object(s3, settings, old).status == "superseded"


def test_ingesting_the_same_event_twice_writes_the_same_raw_partition(s3, settings, day):
    landed = _land(s3, settings, f"daily/{day}/features.parquet", to_parquet(make_batch(300, seed=4)))
    first = ingest_landed_object(s3, settings, landed)
    second = ingest_landed_object(s3, settings, landed)
    assert (first.status, second.status) == ("ingested", "ingested")
    assert first.sha256 == second.sha256 and first.uri == second.uri


@pytest.mark.parametrize("row", [*HOSTILE_INPUTS, TEN_TIMES], ids=lambda row: row.name)
def test_hostile_and_broken_landings_get_a_specific_diagnosis_and_lose_nothing(s3, settings, day, row):
    """The table in tests/hostile_inputs.py: a specific problem code, the bytes kept under quarantine with
    a reason.json, no raw partition; the valid 10x file is ingested."""
    bucket = settings.storage.datasets_bucket
    body = row.body()
    landed = _land(s3, settings, key_for(row, day), body)
    outcome = ingest_landed_object(s3, settings, landed)
    assert outcome.status == row.outcome, outcome
    if row.outcome == "ingested":
        assert outcome.rows == 50_000
        return
    assert {problem["code"] for problem in outcome.problems} & row.codes, outcome.problems
    folder = outcome.uri.removeprefix(f"s3://{bucket}/")
    kept = s3.get_object(Bucket=bucket, Key=f"{folder}object")["Body"].read()
    assert kept == body, "the quarantined copy is the landed bytes, whole"
    reason = json.loads(s3.get_object(Bucket=bucket, Key=f"{folder}reason.json")["Body"].read())
    assert reason["source"]["key"] == landed["key"] and reason["problems"] and reason["what_to_do"]
    assert not _exists(s3, bucket, landed["key"]), "moved out of the landing folder"
    assert not _exists(s3, bucket, f"{settings.storage.raw_prefix}/date={day}/")
