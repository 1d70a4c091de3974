"""Multi-part partitions on a real SeaweedFS: the marker rules of `landfall.pipeline.ingest`, and a file
larger than the memory budget validated within it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from landfall.pipeline import s3 as s3ops
from landfall.pipeline.datagen import make_batch, make_corrupt, to_parquet
from landfall.pipeline.ingest import examine
from landfall.pipeline.landing import Landing
from landfall.pipeline.publish import advance_head


@pytest.fixture
def day(s3, settings):
    """A unique far-future partition per test, removed afterwards (so a later stack does not ingest it)."""
    value = f"3{uuid.uuid4().int % 900 + 100:03d}-0{uuid.uuid4().int % 9 + 1}-1{uuid.uuid4().int % 9}"
    yield value
    for obj in s3ops.list_keys(s3, settings.storage.datasets_bucket, f"daily/{value}/"):
        s3.delete_object(Bucket=settings.storage.datasets_bucket, Key=obj["Key"])


def _land(s3, settings, key: str, body: bytes) -> Landing:
    bucket = settings.storage.datasets_bucket
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    head = s3.head_object(Bucket=bucket, Key=key)
    return Landing.from_listing(bucket, settings.storage.landing_prefix, {"Key": key, **head})


def _parts(s3, settings, day, bodies) -> list[Landing]:
    return [_land(s3, settings, f"daily/{day}/part-{i:05d}.parquet", body) for i, body in enumerate(bodies)]


def _keys(s3, settings, prefix):
    return sorted(obj["Key"] for obj in s3ops.list_keys(s3, settings.storage.datasets_bucket, prefix))


def test_a_marker_ingests_its_parts_as_one_partition_with_the_sum_of_their_rows(s3, settings, day):
    _parts(
        s3, settings, day, [to_parquet(make_batch(rows, seed=i)) for i, rows in enumerate((300, 400, 500))]
    )
    marker = _land(s3, settings, f"daily/{day}/_SUCCESS", b"")
    outcome = examine(s3, settings, marker)
    assert (outcome.status, outcome.partition, outcome.rows) == ("ingested", day, 1200)
    bucket = settings.storage.datasets_bucket
    version = f"raw/date={day}/{marker.version}/"
    assert outcome.uri == f"s3://{bucket}/{version}"
    assert outcome.files == [f"s3://{bucket}/{version}part-{i:05d}.parquet" for i in range(3)]
    metadata = s3.head_object(Bucket=bucket, Key=f"{version}part-00001.parquet")["Metadata"]
    assert metadata["source-key"] == f"daily/{day}/part-00001.parquet" and metadata["rows"] == "1200"
    assert len(_keys(s3, settings, f"daily/{day}/")) == 4  # the landing copies stay (backfills read them)


def test_a_part_before_its_marker_starts_nothing(s3, settings, day):
    [part] = _parts(s3, settings, day, [to_parquet(make_batch(300))])
    assert examine(s3, settings, part).status == "pending"
    assert _keys(s3, settings, f"raw/date={day}/") == []
    assert _keys(s3, settings, f"quarantine/{day}/") == []


def test_a_marker_with_no_parts_is_quarantined_as_an_empty_partition(s3, settings, day):
    marker = _land(s3, settings, f"daily/{day}/_SUCCESS", b"")
    outcome = examine(s3, settings, marker)
    assert outcome.status == "quarantined" and outcome.problems[0]["code"] == "empty_partition"
    assert _keys(s3, settings, f"daily/{day}/") == []
    folder = outcome.uri.removeprefix(f"s3://{settings.storage.datasets_bucket}/")
    assert _keys(s3, settings, folder) == [f"{folder}object", f"{folder}reason.json"]


def test_parts_with_different_schemas_quarantine_the_partition_and_name_the_part(s3, settings, day):
    bodies = [
        to_parquet(make_batch(300, seed=1)),
        make_corrupt("schema"),
        to_parquet(make_batch(300, seed=2)),
    ]
    _parts(s3, settings, day, bodies)
    marker = _land(s3, settings, f"daily/{day}/_SUCCESS", b"")
    outcome = examine(s3, settings, marker)
    assert outcome.status == "quarantined"
    assert {(p["code"], p["part"]) for p in outcome.problems} == {("schema_mismatch", "part-00001.parquet")}
    assert all(p["detail"].startswith("part-00001.parquet: ") for p in outcome.problems)
    bucket = settings.storage.datasets_bucket
    folder = outcome.uri.removeprefix(f"s3://{bucket}/")
    # Nothing lost: the marker and every part moved beside the reason, none left in the landing folder.
    assert _keys(s3, settings, folder) == sorted(
        [f"{folder}object", f"{folder}reason.json", *(f"{folder}part-{i:05d}.parquet" for i in range(3))]
    )
    assert s3.get_object(Bucket=bucket, Key=f"{folder}part-00001.parquet")["Body"].read() == bodies[1]
    reason = json.loads(s3.get_object(Bucket=bucket, Key=f"{folder}reason.json")["Body"].read())
    assert len(reason["parts"]) == 3
    assert _keys(s3, settings, f"daily/{day}/") == []
    assert _keys(s3, settings, f"raw/date={day}/") == []


def test_a_part_after_its_marker_is_a_new_version_with_every_part(s3, settings, day):
    _parts(s3, settings, day, [to_parquet(make_batch(300, seed=i)) for i in range(2)])
    marker = _land(s3, settings, f"daily/{day}/_SUCCESS", b"")
    first = examine(s3, settings, marker)
    assert advance_head(s3, settings.storage, first, "run-1")["version"] == marker.version
    time.sleep(1.1)  # Last-Modified has one-second resolution
    late = _land(s3, settings, f"daily/{day}/part-00002.parquet", to_parquet(make_batch(500, seed=9)))
    second = examine(s3, settings, late)
    assert (second.status, second.rows, len(second.files)) == ("ingested", 1100, 3)
    assert advance_head(s3, settings.storage, second, "run-2")["version"] == late.version
    # The marker's own version does not take the head back (older landing), whatever runs it again.
    assert advance_head(s3, settings.storage, first, "run-1") is None


# VmHWM: the peak RSS of this process alone.
EXAMINE_IN_A_FRESH_PROCESS = """
import json, re, sys
from landfall.core.settings import load_settings
from landfall.ops.stack.launcher import Stack
from landfall.pipeline.ingest import examine
from landfall.pipeline.landing import Landing

settings = load_settings()
outcome = examine(Stack(settings).s3_client(), settings, Landing.from_payload(json.loads(sys.argv[1])))
peak_kb = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
print(json.dumps({"status": outcome.status, "rows": outcome.rows, "peak_mb": int(peak_kb) // 1024}))
"""


def test_a_day_bigger_than_the_memory_budget_is_validated_within_it(s3, settings, day, tmp_path):
    """About 350 MB of parquet in two parts (12 million rows, full-precision floats) is validated by a
    fresh process whose peak RSS stays under 300 MB: values are read one batch at a time."""
    budget_mb = 300
    bodies = []
    for index in range(2):
        path = tmp_path / f"part-{index}.parquet"
        with pq.ParquetWriter(path, _big_schema()) as writer:
            for chunk in range(6):
                frame = make_batch(1_000_000, seed=100 * index + chunk)
                for column in ("tenure_months", "monthly_spend", "usage_hours"):
                    frame[column] = (
                        frame[column] + frame["customer_id"] % 997 / 9973.0
                    )  # no 2-decimal rounding
                writer.write_table(pa.Table.from_pandas(frame, schema=_big_schema(), preserve_index=False))
        bodies.append(path)
    size_mb = sum(path.stat().st_size for path in bodies) / 2**20
    for index, path in enumerate(bodies):
        s3.upload_file(str(path), settings.storage.datasets_bucket, f"daily/{day}/part-{index:05d}.parquet")
    marker = _land(s3, settings, f"daily/{day}/_SUCCESS", b"")
    done = subprocess.run(
        [sys.executable, "-c", EXAMINE_IN_A_FRESH_PROCESS, json.dumps(marker.as_payload())],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["status"], result["rows"]) == ("ingested", 12_000_000), done.stderr[-2000:]
    assert size_mb > budget_mb, f"the day is only {size_mb:.0f} MB"
    print(f"validated {size_mb:.0f} MB ({result['rows']:,} rows) at a peak RSS of {result['peak_mb']} MB")
    assert result["peak_mb"] < budget_mb, f"peak RSS {result['peak_mb']} MB validating {size_mb:.0f} MB"


def _big_schema() -> pa.Schema:
    return pa.Schema.from_pandas(make_batch(10), preserve_index=False)


def test_an_interrupted_quarantine_is_finished_by_the_retry_never_validated_again(
    s3, settings, day, monkeypatch
):
    """A worker killed after moving the bad part but before the rest: the retry must not find the
    marker with the good parts, validate them and publish two thirds of the day."""
    from landfall.pipeline import ingest

    bodies = [
        make_corrupt("schema"),
        to_parquet(make_batch(300, seed=1)),
        to_parquet(make_batch(300, seed=2)),
    ]
    _parts(s3, settings, day, bodies)
    marker = _land(s3, settings, f"daily/{day}/_SUCCESS", b"")
    deleted = []
    real_delete = ingest.s3ops.delete_if_match

    def delete_then_die(client, bucket, key, etag):
        if deleted:
            raise RuntimeError("worker killed")
        deleted.append(key)
        return real_delete(client, bucket, key, etag)

    monkeypatch.setattr(ingest.s3ops, "delete_if_match", delete_then_die)
    with pytest.raises(RuntimeError, match="worker killed"):
        examine(s3, settings, marker)
    monkeypatch.setattr(ingest.s3ops, "delete_if_match", real_delete)
    assert len(_keys(s3, settings, f"daily/{day}/")) == 3  # one part gone, two parts and the marker left

    retry = examine(s3, settings, marker)
    assert retry.status == "quarantined" and {p["code"] for p in retry.problems} == {"schema_mismatch"}
    assert _keys(s3, settings, f"daily/{day}/") == []
    folder = retry.uri.removeprefix(f"s3://{settings.storage.datasets_bucket}/")
    assert len(_keys(s3, settings, folder)) == 5  # reason.json, the marker (object) and the three parts
    assert _keys(s3, settings, f"raw/date={day}/") == []


def test_of_several_late_parts_only_the_newest_does_the_work(s3, settings, day):
    _parts(s3, settings, day, [to_parquet(make_batch(300, seed=i)) for i in range(2)])
    _land(s3, settings, f"daily/{day}/_SUCCESS", b"")
    time.sleep(1.1)
    older = _land(s3, settings, f"daily/{day}/part-00002.parquet", to_parquet(make_batch(300, seed=5)))
    time.sleep(1.1)
    newer = _land(s3, settings, f"daily/{day}/part-00003.parquet", to_parquet(make_batch(300, seed=6)))
    assert examine(s3, settings, older).status == "superseded"
    outcome = examine(s3, settings, newer)
    assert (outcome.status, outcome.rows, len(outcome.files)) == ("ingested", 1200, 4)
    assert [uri.rsplit("/", 1)[-1] for uri in outcome.files] == [f"part-{i:05d}.parquet" for i in range(4)]
