"""`landfall.pipeline.ingest` and `.publish` against a real SeaweedFS S3 server: stage, quarantine, publish
at most once, and the newest landing of a day winning under concurrent publishers."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from hostile_inputs import HOSTILE_INPUTS, TEN_TIMES, key_for
from landfall.pipeline import s3 as s3ops
from landfall.pipeline.datagen import decompression_bomb, make_batch, make_corrupt, to_parquet
from landfall.pipeline.ingest import IngestError, Outcome, examine
from landfall.pipeline.keys import outcome_record
from landfall.pipeline.landing import Landing
from landfall.pipeline.publish import advance_head, claim_outcome, current_head


@pytest.fixture
def day(s3, settings):
    """A unique far-future partition per test; its landing objects are removed afterwards, so that the
    stack the end-to-end tests start later does not find (and ingest) them."""
    value = f"2{uuid.uuid4().int % 900 + 100:03d}-0{uuid.uuid4().int % 9 + 1}-1{uuid.uuid4().int % 9}"
    yield value
    bucket = settings.storage.datasets_bucket
    for prefix in (f"daily/{value}", "daily/not-a-date/"):
        for obj in s3ops.list_keys(s3, bucket, prefix):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])


def _land(s3, settings, key: str, body: bytes) -> Landing:
    bucket = settings.storage.datasets_bucket
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return Landing.from_listing(
        bucket, settings.storage.landing_prefix, {"Key": key, **s3.head_object(Bucket=bucket, Key=key)}
    )


def _exists(s3, bucket, prefix):
    return s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount", 0) > 0


def test_a_valid_landing_is_staged_under_its_own_version_with_its_provenance(s3, settings, day):
    bucket = settings.storage.datasets_bucket
    landing = _land(s3, settings, f"daily/{day}/features.parquet", to_parquet(make_batch(800, seed=5)))
    outcome = examine(s3, settings, landing)
    assert (outcome.status, outcome.partition, outcome.rows) == ("ingested", day, 800)
    key = outcome.uri.removeprefix(f"s3://{bucket}/")
    assert key == f"raw/date={day}/{landing.version}/data.parquet"
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["Metadata"]["source-etag"] == landing.etag and head["Metadata"]["sha256"] == outcome.sha256
    assert _exists(s3, bucket, landing.key)  # the landing copy stays: it is the source for backfills


def test_bad_content_is_moved_to_quarantine_with_a_reason(s3, settings, day):
    bucket = settings.storage.datasets_bucket
    landing = _land(s3, settings, f"daily/{day}/features.parquet", make_corrupt("nulls"))
    outcome = examine(s3, settings, landing)
    assert outcome.status == "quarantined"
    folder = outcome.uri.removeprefix(f"s3://{bucket}/")
    reason = json.loads(s3.get_object(Bucket=bucket, Key=f"{folder}reason.json")["Body"].read())
    assert reason["source"]["key"] == landing.key and [p["code"] for p in reason["problems"]] == ["nulls"]
    assert s3.get_object(Bucket=bucket, Key=f"{folder}object")["Body"].read() == make_corrupt("nulls")
    assert not _exists(s3, bucket, landing.key)  # moved, not copied
    assert not _exists(s3, bucket, f"raw/date={day}/")


def test_a_quarantine_removes_the_emptied_day_folder_so_a_re_landing_is_a_new_folder(s3, settings, day):
    """SeaweedFS keeps listing a folder whose last file was deleted; the watcher would then take a file
    landed there again for one in a known folder and leave it to the next sweep. A folder that still
    holds a file (another hour) stays."""
    bucket, prefix = settings.storage.datasets_bucket, settings.storage.landing_prefix

    def day_folders() -> set[str]:
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/", Delimiter="/")
        return {entry["Prefix"] for entry in listing.get("CommonPrefixes", [])}

    daily = _land(s3, settings, f"{prefix}/{day}/features.parquet", make_corrupt("nulls"))
    assert examine(s3, settings, daily).status == "quarantined"
    assert f"{prefix}/{day}/" not in day_folders()

    kept = _land(s3, settings, f"{prefix}/{day}/08/features.parquet", to_parquet(make_batch(300, seed=9)))
    hourly = _land(s3, settings, f"{prefix}/{day}/07/features.parquet", make_corrupt("nulls"))
    assert examine(s3, settings, hourly).status == "quarantined"
    assert f"{prefix}/{day}/" in day_folders() and _exists(s3, bucket, kept.key)
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/{day}/", Delimiter="/")
    assert [entry["Prefix"] for entry in listing.get("CommonPrefixes", [])] == [f"{prefix}/{day}/08/"]


def test_a_quarantine_never_deletes_a_newer_put_of_the_same_key(s3, settings, day, tmp_path):
    """The landing was replaced between being validated and being moved: the validated bytes are kept
    in quarantine (from the downloaded copy) and the new file stays where it landed."""
    from landfall.pipeline.ingest import quarantine
    from landfall.pipeline.validation import Problem

    bucket, key = settings.storage.datasets_bucket, f"daily/{day}/features.parquet"
    old = _land(s3, settings, key, make_corrupt("schema"))
    downloaded = tmp_path / "old.parquet"
    downloaded.write_bytes(make_corrupt("schema"))
    time.sleep(1.1)  # Last-Modified has one-second resolution
    _land(s3, settings, key, to_parquet(make_batch(300, seed=8)))
    outcome = quarantine(
        s3, settings, old, day, [Problem("schema_mismatch", "test")], downloaded={key: downloaded}
    )
    folder = outcome.uri.removeprefix(f"s3://{bucket}/")
    assert s3.get_object(Bucket=bucket, Key=f"{folder}object")["Body"].read() == make_corrupt("schema")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == to_parquet(make_batch(300, seed=8))


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
    outcome = examine(s3, settings, _land(s3, settings, key.format(day=day), to_parquet(make_batch(200))))
    assert outcome.status == "quarantined" and outcome.problems[0]["code"] == code


def test_nothing_outside_the_landing_prefix_is_ever_touched(s3, settings, day):
    """An event naming a published raw object (what a forged event would): refused, the object stays."""
    bucket = settings.storage.datasets_bucket
    s3.put_object(Bucket=bucket, Key=f"raw/date={day}/keep/data.parquet", Body=b"published")
    target = Landing.from_listing(
        bucket,
        "daily",
        {
            "Key": f"raw/date={day}/keep/data.parquet",
            **s3.head_object(Bucket=bucket, Key=f"raw/date={day}/keep/data.parquet"),
        },
    )
    outcome = examine(s3, settings, target)
    assert outcome.status == "rejected" and outcome.problems[0]["code"] == "outside_landing_prefix"
    assert (
        s3.get_object(Bucket=bucket, Key=f"raw/date={day}/keep/data.parquet")["Body"].read() == b"published"
    )
    assert not _exists(s3, bucket, f"{settings.storage.quarantine_prefix}/{day}/")
    s3.delete_object(Bucket=bucket, Key=f"raw/date={day}/keep/data.parquet")


def test_a_decompression_bomb_is_quarantined_as_too_large(s3, settings, day):
    outcome = examine(
        s3, settings, _land(s3, settings, f"daily/{day}/features.parquet", decompression_bomb())
    )
    assert outcome.status == "quarantined" and [p["code"] for p in outcome.problems] == ["too_large"]


def test_a_repeated_event_for_a_quarantined_landing_reports_the_same_quarantine(s3, settings, day):
    landing = _land(s3, settings, f"daily/{day}/features.parquet", make_corrupt("garbage"))
    first = examine(s3, settings, landing)
    # The landing copy is gone now; the same event again reports the quarantine, not a loss.
    second = examine(s3, settings, landing)
    assert (first.status, second.status) == ("quarantined", "quarantined") and second.uri == first.uri
    claim_outcome(s3, settings.storage, first, "run-1", reprocess=False)
    assert examine(s3, settings, landing).status == "duplicate"  # once recorded, it is done


def test_an_event_whose_object_vanished_unprocessed_fails_loudly(s3, settings, day):
    landing = _land(s3, settings, f"daily/{day}/features.parquet", to_parquet(make_batch(200)))
    s3.delete_object(Bucket=settings.storage.datasets_bucket, Key=landing.key)
    with pytest.raises(IngestError, match="is gone"):
        examine(s3, settings, landing)


def test_an_event_for_an_overwritten_object_is_superseded(s3, settings, day):
    key = f"daily/{day}/features.parquet"
    old = _land(s3, settings, key, to_parquet(make_batch(300, seed=1)))
    _land(s3, settings, key, to_parquet(make_batch(300, seed=2)))
    assert examine(s3, settings, old).status == "superseded"


def test_the_same_bytes_landed_again_later_are_a_new_landing(s3, settings, day):
    """A revert, or a fixed config re-validating a re-landed file: processed again, recorded separately."""
    key, body = f"daily/{day}/features.parquet", to_parquet(make_batch(300, seed=4))
    first = _land(s3, settings, key, body)
    outcome = examine(s3, settings, first)
    assert claim_outcome(s3, settings.storage, outcome, "run-1", reprocess=False)
    time.sleep(1.1)
    again = _land(s3, settings, key, body)
    assert again.etag == first.etag and again.version != first.version
    repeat = examine(s3, settings, again)
    assert repeat.status == "ingested" and claim_outcome(
        s3, settings.storage, repeat, "run-2", reprocess=False
    )


def test_an_outcome_is_published_by_one_run_its_retries_and_backfills_only(s3, settings, day):
    outcome = examine(
        s3, settings, _land(s3, settings, f"daily/{day}/features.parquet", to_parquet(make_batch(300)))
    )
    storage = settings.storage
    assert claim_outcome(s3, storage, outcome, "run-1", reprocess=False)
    assert claim_outcome(s3, storage, outcome, "run-1", reprocess=False)  # its retry publishes again
    assert not claim_outcome(s3, storage, outcome, "run-2", reprocess=False)  # a duplicate event's run
    assert claim_outcome(s3, storage, outcome, "backfill-1", reprocess=True)  # history re-processed
    record = s3ops.get_json(
        s3, storage.datasets_bucket, outcome_record(storage.ledger_prefix, outcome.key, outcome.version)
    )
    assert record[0]["run_id"] == "run-1"


def test_the_newest_landing_wins_the_partition_whatever_order_runs_publish_in(s3, settings, day):
    """Runs for one day race (threads, both orders of start); the head ends on the newer landing. While
    the partition is empty the older one may be current for a moment (it is then superseded); once the
    newer one is current, the older one never moves the head back."""
    key = f"daily/{day}/features.parquet"
    older = examine(s3, settings, _land(s3, settings, key, to_parquet(make_batch(300, seed=1))))
    time.sleep(1.1)
    newer = examine(s3, settings, _land(s3, settings, key, to_parquet(make_batch(300, seed=2))))
    results: list[tuple[str, object]] = []

    def publish(outcome: Outcome) -> None:
        results.append((outcome.version, advance_head(s3, settings.storage, outcome, "r")))

    def race(*outcomes: Outcome) -> None:
        threads = [threading.Thread(target=publish, args=(o,)) for o in outcomes * 3]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(results) == len(threads), "a publish raised (see the thread's traceback)"

    race(older, newer)  # from an empty partition, the older one started first
    assert current_head(s3, settings.storage, day)["version"] == newer.version
    assert all(head is not None for version, head in results if version == newer.version)
    results.clear()
    race(older, newer)  # the newer one is current now: every older publish is refused
    assert current_head(s3, settings.storage, day)["version"] == newer.version
    assert [head for version, head in results if version == older.version] == [None, None, None]


def test_an_outcome_round_trips_through_xcom_json(s3, settings, day):
    outcome = examine(
        s3, settings, _land(s3, settings, f"daily/{day}/features.parquet", make_corrupt("schema"))
    )
    assert Outcome.from_dict(json.loads(json.dumps(outcome.as_dict()))) == outcome


@pytest.mark.parametrize("row", [*HOSTILE_INPUTS, TEN_TIMES], ids=lambda row: row.name)
def test_hostile_and_broken_landings_get_a_specific_diagnosis_and_lose_nothing(s3, settings, day, row):
    """The table in tests/hostile_inputs.py: a specific problem code, the bytes kept under quarantine with
    a reason.json, no raw partition; the valid 10x file is ingested."""
    bucket = settings.storage.datasets_bucket
    body = row.body()
    landing = _land(s3, settings, key_for(row, day), body)
    outcome = examine(s3, settings, landing)
    assert outcome.status == row.outcome, outcome
    if row.outcome == "ingested":
        assert outcome.rows == 50_000
        return
    assert {problem["code"] for problem in outcome.problems} & row.codes, outcome.problems
    folder = outcome.uri.removeprefix(f"s3://{bucket}/")
    assert s3.get_object(Bucket=bucket, Key=f"{folder}object")["Body"].read() == body, "kept whole"
    reason = json.loads(s3.get_object(Bucket=bucket, Key=f"{folder}reason.json")["Body"].read())
    assert reason["source"]["key"] == landing.key and reason["problems"] and reason["what_to_do"]
    assert not _exists(s3, bucket, landing.key), "moved out of the landing folder"
    assert not _exists(s3, bucket, f"{settings.storage.raw_prefix}/date={day}/")
