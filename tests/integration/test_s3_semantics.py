"""The S3 behaviour Landfall's records rely on, checked on the SeaweedFS it ships with: conditional
writes, copies and deletes (AWS S3 has them too). A server without them would break the exactly-once
records silently, so this fails loudly instead."""

from __future__ import annotations

import time
import uuid

import pytest

from landfall.pipeline import s3 as s3ops


@pytest.fixture
def area(s3, settings):
    prefix = f"s3-semantics-{uuid.uuid4().hex[:8]}"
    yield settings.storage.datasets_bucket, prefix
    for obj in s3ops.list_keys(s3, settings.storage.datasets_bucket, prefix):
        s3.delete_object(Bucket=settings.storage.datasets_bucket, Key=obj["Key"])


def test_create_if_absent_has_exactly_one_winner(s3, area):
    bucket, prefix = area
    assert s3ops.put_json_if_absent(s3, bucket, f"{prefix}/record", {"run": 1})
    assert not s3ops.put_json_if_absent(s3, bucket, f"{prefix}/record", {"run": 2})
    assert s3ops.get_json(s3, bucket, f"{prefix}/record")[0] == {"run": 1}


def test_compare_and_set_refuses_a_stale_etag(s3, area):
    bucket, prefix = area
    assert s3ops.put_json_if_match(s3, bucket, f"{prefix}/head", {"v": 1}, None)
    _, etag = s3ops.get_json(s3, bucket, f"{prefix}/head")
    assert s3ops.put_json_if_match(s3, bucket, f"{prefix}/head", {"v": 2}, etag)
    assert not s3ops.put_json_if_match(s3, bucket, f"{prefix}/head", {"v": 3}, etag)  # etag is stale now
    assert s3ops.get_json(s3, bucket, f"{prefix}/head")[0] == {"v": 2}


def test_copy_and_delete_act_only_on_the_version_they_name(s3, area):
    bucket, prefix = area
    first = str(s3.put_object(Bucket=bucket, Key=f"{prefix}/landing", Body=b"first")["ETag"]).strip('"')
    time.sleep(1.1)
    s3.put_object(Bucket=bucket, Key=f"{prefix}/landing", Body=b"second")
    assert not s3ops.copy_if_match(s3, bucket, f"{prefix}/landing", f"{prefix}/copy", first)
    assert not s3ops.delete_if_match(s3, bucket, f"{prefix}/landing", first)
    assert s3.get_object(Bucket=bucket, Key=f"{prefix}/landing")["Body"].read() == b"second"
    assert not s3ops.exists(s3, bucket, f"{prefix}/copy")


def test_a_put_of_the_same_bytes_later_has_the_same_etag_and_a_new_last_modified(s3, area):
    bucket, prefix = area
    s3.put_object(Bucket=bucket, Key=f"{prefix}/same", Body=b"same")
    first = s3.head_object(Bucket=bucket, Key=f"{prefix}/same")
    time.sleep(1.1)
    s3.put_object(Bucket=bucket, Key=f"{prefix}/same", Body=b"same")
    again = s3.head_object(Bucket=bucket, Key=f"{prefix}/same")
    assert first["ETag"] == again["ETag"] and first["LastModified"] < again["LastModified"]
