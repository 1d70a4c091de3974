"""The S3 landing watcher's logic against a real SeaweedFS server (no S3 mocks).

The triggerer's ack-mode machinery is replaced here by calling `advance()` directly with the outcome
Airflow would report; the end-to-end tests run it inside the real triggerer.
"""

from __future__ import annotations

import asyncio
import importlib
import uuid

import pytest
from airflow.triggers.base import BaseEventTrigger
from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome

from landfall.airflow.triggers import landed_objects_in
from landfall.airflow.triggers.s3_landing import LandingProducer, S3LandingTrigger

ACKED = AdvanceOutcome(acked=1, failed=0)
FAILED = AdvanceOutcome(acked=0, failed=1)


@pytest.fixture
def area(s3_server, settings):
    """A private landing prefix and ledger for one test, in the real datasets bucket."""
    run = uuid.uuid4().hex[:8]
    return {
        "bucket": settings.storage.datasets_bucket,
        "prefix": f"trigger-test-{run}/daily",
        "ledger_prefix": f"trigger-test-{run}/ledger",
        "aws_conn_id": settings.storage.aws_conn_id,
        "poll_interval": 0.05,
    }


def _put(s3, area, day, body=b"parquet-bytes"):
    key = f"{area['prefix']}/{day}/features.parquet"
    return key, s3.put_object(Bucket=area["bucket"], Key=key, Body=body)["ETag"].strip('"')


POLL_TIMEOUT_S = 60


def _run(coroutine):
    """Run a poll with a deadline: a producer that cannot reach S3 retries forever by design."""
    return asyncio.run(asyncio.wait_for(coroutine, POLL_TIMEOUT_S))


async def _events_of_one_poll(producer, outcome=None):
    """Run the producer's stream until its end-of-poll tick and return the (event, broker) pairs;
    with an `outcome`, advance them like the triggerer does, while the S3 connection is still open."""
    items = []
    stream = producer.open_stream()
    try:
        async for raw, broker in stream:
            if raw.get("type") == "tick":
                break
            items.append((raw, broker))
        if outcome is not None and items:
            await producer.advance([AdvanceItem(broker, outcome) for _, broker in items])
    finally:
        await stream.aclose()
    return items


async def _one_poll(producer):
    """The objects one poll reported, without acknowledging them."""
    return [
        obj
        for event, _ in await _events_of_one_poll(producer)
        for obj in landed_objects_in({"payload": event})
    ]


async def _poll_and_ack(producer, outcome=ACKED):
    return [
        obj
        for event, _ in await _events_of_one_poll(producer, outcome)
        for obj in landed_objects_in({"payload": event})
    ]


def test_each_new_object_is_reported_once_with_key_size_etag_and_partition(s3, area):
    key, etag = _put(s3, area, "2024-03-01", b"x" * 123)
    producer = LandingProducer(**area)
    [(event, broker)] = _run(_events_of_one_poll(producer))
    [payload] = event["objects"]
    assert broker == [payload]
    assert payload["key"] == key and payload["etag"] == etag and payload["size"] == 123
    assert payload["partition_date"] == "2024-03-01"
    assert payload["bucket"] == area["bucket"] and payload["last_modified"]
    # Not yet acknowledged but on its way: the same producer does not report it again.
    assert _run(_one_poll(producer)) == []


def test_acknowledged_objects_are_not_reported_again_after_a_restart(s3, area):
    _put(s3, area, "2024-03-01")
    _put(s3, area, "2024-03-02")
    first = _run(_poll_and_ack(LandingProducer(**area)))
    assert len(first) == 2
    # A new producer is what a triggerer restart creates: it knows only the ledger in S3.
    assert _run(_one_poll(LandingProducer(**area))) == []


def test_objects_landed_while_the_watcher_was_down_are_reported_at_start(s3, area):
    _run(_poll_and_ack(LandingProducer(**area)))  # nothing there yet
    key_a, _ = _put(s3, area, "2024-03-03")
    key_b, _ = _put(s3, area, "2024-03-04")
    reported = _run(_poll_and_ack(LandingProducer(**area)))
    assert sorted(p["key"] for p in reported) == sorted([key_a, key_b])


def test_an_unconfirmed_event_is_reported_again_so_nothing_is_lost(s3, area):
    key, _ = _put(s3, area, "2024-03-05")
    producer = LandingProducer(**area)
    assert [p["key"] for p in _run(_poll_and_ack(producer, FAILED))] == [key]
    # Same producer, next poll: the failed event comes back ...
    assert [p["key"] for p in _run(_one_poll(producer))] == [key]
    # ... and after a restart too, since no ledger marker was written.
    assert [p["key"] for p in _run(_one_poll(LandingProducer(**area)))] == [key]


def test_a_re_uploaded_object_with_new_content_is_reported_again(s3, area):
    _put(s3, area, "2024-03-06", b"first")
    _run(_poll_and_ack(LandingProducer(**area)))
    _, new_etag = _put(s3, area, "2024-03-06", b"second version")
    [payload] = _run(_poll_and_ack(LandingProducer(**area)))
    assert payload["etag"] == new_etag


def test_every_object_under_the_prefix_is_reported_even_with_a_hostile_name(s3, area):
    key = f"{area['prefix']}/not a date/ünï.csv"
    s3.put_object(Bucket=area["bucket"], Key=key, Body=b"?")
    [payload] = _run(_poll_and_ack(LandingProducer(**area)))
    assert payload["key"] == key and payload["partition_date"] is None  # ingest quarantines it


def test_a_burst_is_reported_in_one_event_so_airflow_starts_one_run_for_it(s3, area):
    """One event per object lost work in Airflow 3.3 (see the trigger's docstring); one per poll does not."""
    keys = sorted(_put(s3, area, f"2024-04-{day:02d}")[0] for day in range(1, 13))
    producer = LandingProducer(**area)
    [(event, broker)] = _run(_events_of_one_poll(producer, ACKED))
    assert sorted(o["key"] for o in event["objects"]) == keys and broker == event["objects"]
    assert _run(_one_poll(LandingProducer(**area))) == []  # every object of the event was acknowledged


def test_a_burst_larger_than_one_event_holds_is_split(s3, area, monkeypatch):
    from landfall.airflow.triggers import s3_landing

    monkeypatch.setattr(s3_landing, "MAX_OBJECTS_PER_EVENT", 5)
    for day in range(1, 13):
        _put(s3, area, f"2024-05-{day:02d}")
    events = _run(_events_of_one_poll(LandingProducer(**area)))
    assert [len(event["objects"]) for event, _ in events] == [5, 5, 2]


def test_the_filter_turns_landings_into_trigger_events_and_drops_ticks():
    trigger = S3LandingTrigger(bucket="b", prefix="daily", ledger_prefix="ledger")

    async def stream():
        yield {"type": "tick"}
        yield {"type": "landed", "objects": [{"key": "daily/2024-01-01/features.parquet"}]}
        yield {"type": "tick"}

    async def collect():
        return [event async for event in trigger.filter_shared_stream(stream())]

    [event] = asyncio.run(collect())
    assert landed_objects_in({"payload": event.payload}) == [{"key": "daily/2024-01-01/features.parquet"}]


def test_the_trigger_serializes_to_an_importable_class_with_its_kwargs():
    trigger = S3LandingTrigger(
        bucket="b", prefix="/daily/", ledger_prefix="l", aws_conn_id="c", poll_interval=3
    )
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert isinstance(rebuilt, BaseEventTrigger)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs["prefix"] == "daily"
    assert rebuilt.shared_stream_key() == trigger.shared_stream_key()
    assert isinstance(S3LandingTrigger.create_shared_stream_producer(kwargs), LandingProducer)


def test_an_acknowledged_object_is_not_reported_again_even_if_its_marker_is_not_listed_yet(s3, area):
    """advance() can run while a poll is between its ledger and landing listings; the producer must
    remember what it acknowledged instead of trusting that listing."""
    key, _ = _put(s3, area, "2024-03-07")
    producer = LandingProducer(**area)
    assert [p["key"] for p in _run(_poll_and_ack(producer))] == [key]
    for marker in s3.list_objects_v2(Bucket=area["bucket"], Prefix=area["ledger_prefix"])["Contents"]:
        s3.delete_object(Bucket=area["bucket"], Key=marker["Key"])  # as if the listing lagged
    assert _run(_one_poll(producer)) == []
