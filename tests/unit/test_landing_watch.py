"""The watcher's settings travel as one object: from the settings into the trigger's kwargs, through
Airflow's serialization of trigger rows, back into a trigger and a producer in the triggerer."""

from __future__ import annotations

import asyncio
import importlib

import pytest
from airflow.triggers.base import BaseEventTrigger

from landfall.airflow.triggers import s3_landing
from landfall.airflow.triggers.s3_landing import (
    TICK,
    LandingProducer,
    LandingWatch,
    S3LandingTrigger,
    WatchedPrefix,
)
from landfall.core.settings import get_settings
from landfall.core.shared_settings import WatcherSettings


def _watched(**changes) -> WatchedPrefix:
    return WatchedPrefix(**{"pipeline": "churn", "prefix": "/daily/", "ledger_prefix": "l/", **changes})


def _watch(*more: WatchedPrefix, **changes) -> LandingWatch:
    watched = changes.pop("watched", {})
    base = {"bucket": "b", "prefixes": (_watched(**watched), *more), "aws_conn_id": "c"}
    return LandingWatch(**{**base, **changes})


def test_the_watch_is_built_from_the_settings_with_every_watcher_knob():
    settings = get_settings()
    watch = LandingWatch.from_settings(settings)
    assert watch.knobs == settings.watcher
    [watched] = watch.prefixes
    assert (watch.bucket, watched.pipeline, watched.prefix, watched.ledger_prefix) == (
        settings.storage.datasets_bucket,
        settings.pipeline,
        settings.storage.landing_prefix,
        settings.storage.ledger_prefix,
    )
    assert (watched.part_glob, watched.marker) == (
        settings.storage.landing_part_glob,
        settings.storage.landing_marker,
    )


def test_every_pipelines_trigger_carries_one_watch_of_all_of_them_and_so_shares_one_stream():
    watch = _watch(_watched(pipeline="meters", prefix="meters/landing", ledger_prefix="l/meters"))
    churn, meters = (
        S3LandingTrigger(watch=watch, pipeline="churn"),
        S3LandingTrigger(watch=watch, pipeline="meters"),
    )
    assert churn.shared_stream_key() == meters.shared_stream_key()
    assert churn.serialize() != meters.serialize()  # two trigger rows, one per pipeline's asset
    assert S3LandingTrigger(**churn.serialize()[1]).pipeline == "churn"


def test_a_trigger_must_name_a_watched_pipeline():
    two = _watch(_watched(pipeline="meters", prefix="meters/landing", ledger_prefix="l/meters"))
    with pytest.raises(ValueError, match="needs the trigger's pipeline"):
        S3LandingTrigger(watch=two)
    with pytest.raises(KeyError, match="'prices' is not watched here"):
        S3LandingTrigger(watch=two, pipeline="prices")
    assert S3LandingTrigger(watch=_watch()).pipeline == "churn"  # the only one


@pytest.mark.parametrize(
    "other",
    [
        {"pipeline": "churn", "prefix": "meters", "ledger_prefix": "l/m"},
        {"pipeline": "meters", "prefix": "daily/meters", "ledger_prefix": "l/m"},
        {"pipeline": "meters", "prefix": "daily", "ledger_prefix": "l/m"},
    ],
)
def test_a_watch_refuses_a_pipeline_twice_or_prefixes_that_overlap(other):
    with pytest.raises(ValueError, match=r"watched twice|overlap"):
        _watch(WatchedPrefix(**other))


def test_the_trigger_serializes_to_an_importable_class_with_its_kwargs():
    trigger = S3LandingTrigger(watch=_watch(knobs=WatcherSettings(poll_interval_s=3)))
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert isinstance(rebuilt, BaseEventTrigger)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert rebuilt.watch == trigger.watch and rebuilt.watch.prefixes[0].prefix == "daily"
    assert "signing" not in str(kwargs).lower()  # no secret in the DB row
    assert rebuilt.shared_stream_key() == trigger.shared_stream_key()
    producer = S3LandingTrigger.create_shared_stream_producer(kwargs)
    assert isinstance(producer, LandingProducer) and producer.knobs.poll_interval_s == 3


def test_the_trigger_survives_airflows_serialization_of_trigger_rows():
    """What the dag-processor stores and the triggerer reads back: encode_trigger, the encrypted
    kwargs column, and the hash that deduplicates watchers."""
    from airflow.models.trigger import Trigger
    from airflow.serialization.encoders import encode_trigger
    from airflow.serialization.serialized_objects import BaseSerialization

    trigger = S3LandingTrigger(watch=LandingWatch.from_settings(get_settings()))
    encoded = encode_trigger(trigger)
    kwargs = {key: BaseSerialization.deserialize(value) for key, value in encoded["kwargs"].items()}
    stored = Trigger._decrypt_kwargs(Trigger.encrypt_kwargs(kwargs))
    again = S3LandingTrigger(**stored)
    assert again.watch == trigger.watch
    assert again.shared_stream_key() == trigger.shared_stream_key()
    classpath, plain = trigger.serialize()
    assert BaseEventTrigger.hash(classpath, plain) == BaseEventTrigger.hash(*again.serialize())


@pytest.mark.parametrize(
    "change",
    [
        {"bucket": "other"},
        {"watched": {"prefix": "weekly"}},
        {"watched": {"ledger_prefix": "other-ledger"}},
        {"watched": {"pipeline": "other"}},
        {"aws_conn_id": "other"},
        {"watched": {"part_glob": "part-*.parquet", "marker": "_SUCCESS"}},
        *(
            {"knobs": WatcherSettings(**{name: value})}
            for name, value in [
                ("poll_interval_s", 5.0),
                ("max_objects_per_event", 7),
                ("requeue_after_s", 9.0),
                ("mode", "queue"),
                ("queue_url", "https://sqs.eu-west-1.amazonaws.com/1/q"),
                ("open_days", 3),
                ("reconcile_interval_s", 60.0),
                ("ledger_retention_days", 2.0),
            ]
        ),
    ],
)
def test_two_triggers_share_a_stream_only_when_every_setting_is_the_same(change):
    """The triggerer builds a shared stream from the first subscriber's kwargs: a key that left a
    setting out would hand the second trigger a stream built with the first's settings."""
    assert (
        S3LandingTrigger(watch=_watch()).shared_stream_key()
        == S3LandingTrigger(watch=_watch()).shared_stream_key()
    )
    changed = _watch(**change)
    assert (
        S3LandingTrigger(watch=changed, pipeline=changed.prefixes[0].pipeline).shared_stream_key()
        != S3LandingTrigger(watch=_watch()).shared_stream_key()
    )


def test_every_knob_of_the_watcher_settings_is_carried_by_the_watch():
    """A knob added to WatcherSettings travels to the triggerer without being spelled anywhere else."""
    assert set(_watch().as_kwargs()["knobs"]) == set(WatcherSettings.model_fields)


def test_the_queue_url_is_used_only_in_queue_mode():
    assert _watch().queue_url is None
    queue = "https://sqs.eu-west-1.amazonaws.com/1/q"
    assert _watch(knobs=WatcherSettings(mode="queue", queue_url=queue)).queue_url == queue


def test_the_filter_turns_landings_into_trigger_events_and_drops_ticks():
    trigger = S3LandingTrigger(watch=_watch())

    async def stream():
        yield TICK
        yield {"type": "landed", "objects": [{"key": "daily/2024-01-01/features.parquet"}]}
        yield TICK

    async def collect():
        return [event async for event in trigger.filter_shared_stream(stream())]

    [event] = asyncio.run(collect())
    assert event.payload["objects"] == [{"key": "daily/2024-01-01/features.parquet"}]


def test_the_filter_rejects_another_pipelines_events_and_fires_its_own(monkeypatch):
    """A skipped event counts as acknowledged; only a reject keeps another pipeline's trigger from
    vouching for an event its owner never stored."""
    watch = _watch(_watched(pipeline="meters", prefix="meters/landing", ledger_prefix="l/meters"))
    trigger, rejected = S3LandingTrigger(watch=watch, pipeline="meters"), []
    monkeypatch.setattr(s3_landing, "reject_shared_stream_event", lambda: rejected.append(True))
    followed = s3_landing.SUBSCRIPTIONS.of(trigger.shared_stream_key())
    seen_following = []

    async def stream():
        seen_following.append(followed())
        yield {"type": "landed", "pipeline": "churn", "objects": [{"key": "daily/x"}]}
        yield {"type": "landed", "pipeline": "meters", "objects": [{"key": "meters/landing/x"}]}

    async def collect():
        return [event async for event in trigger.filter_shared_stream(stream())]

    [event] = asyncio.run(collect())
    assert event.payload["pipeline"] == "meters" and rejected == [True]
    assert seen_following == [{"meters"}] and followed() == set()  # followed while it listened, then not


@pytest.mark.parametrize(
    ("acked", "failed", "rejected", "stored"),
    [
        (1, 0, 1, True),  # the owner stored it, the other pipeline's trigger rejected it
        (1, 1, 0, True),  # the owner stored it; another trigger left before pulling it
        (1, 0, 0, True),  # one pipeline alone
        (0, 0, 1, False),  # only another pipeline's trigger saw it
        (0, 1, 1, False),  # the owner failed (an ack timeout): reported again
        (0, 0, 0, False),  # nobody followed the stream
    ],
)
def test_an_event_counts_as_stored_only_with_its_owners_ack(acked, failed, rejected, stored):
    from airflow.triggers.shared_stream import AdvanceOutcome

    from landfall.airflow.triggers.landing_stream import persisted

    assert persisted(AdvanceOutcome(acked=acked, failed=failed, rejected=rejected)) is stored
