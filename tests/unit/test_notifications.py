"""Bucket notifications are hints: what they name is parsed strictly, and nothing else is believed."""

from __future__ import annotations

import json

import pytest

from landfall.airflow.triggers.notifications import _bucket_key, s3_event_keys


def _event(key: str, bucket: str = "landfall-datasets", name: str = "ObjectCreated:Put") -> dict:
    return {"eventName": name, "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 3}}}


def test_an_s3_event_names_its_created_keys_url_decoded():
    body = json.dumps({"Records": [_event("daily/2026-11-25/a+b%C3%BC.parquet"), _event("daily/x")]})
    assert s3_event_keys(body, "landfall-datasets") == ["daily/2026-11-25/a bü.parquet", "daily/x"]


def test_an_event_wrapped_by_sns_is_unwrapped():
    body = json.dumps({"Type": "Notification", "Message": json.dumps({"Records": [_event("daily/k")]})})
    assert s3_event_keys(body, "landfall-datasets") == ["daily/k"]


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"Records": [_event("daily/k", bucket="someone-else")]}),
        json.dumps({"Records": [_event("daily/k", name="ObjectRemoved:Delete")]}),
        json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "landfall-datasets"}),
        "not json",
        json.dumps(["a list"]),
        json.dumps({"Records": ["not a record", {"s3": "nope"}]}),
    ],
)
def test_deletions_other_buckets_test_events_and_garbage_name_nothing(body):
    assert s3_event_keys(body, "landfall-datasets") == []


def test_a_filer_path_names_a_key_of_the_watched_bucket_only():
    assert _bucket_key("/buckets/landfall-datasets/daily/2026-11-25/f.parquet", "landfall-datasets") == (
        "daily/2026-11-25/f.parquet"
    )
    assert _bucket_key("/buckets/landfall-xcom/x", "landfall-datasets") is None
    assert _bucket_key("/buckets/landfall-datasets/", "landfall-datasets") is None
    assert _bucket_key("/etc/passwd", "landfall-datasets") is None


def test_a_queue_url_with_credentials_is_refused_they_would_be_stored_with_the_trigger(monkeypatch):
    from landfall.core.settings import load_settings

    monkeypatch.setenv("LANDFALL_WATCHER__QUEUE_URL", "amqp://user:secret@broker:5672/#q")
    with pytest.raises(Exception, match="LANDFALL_AMQP_PASSWORD"):
        load_settings()
    monkeypatch.setenv("LANDFALL_WATCHER__QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/123/landings")
    assert load_settings().watcher.queue_url.endswith("/landings")
