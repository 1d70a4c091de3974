"""Several pipelines share one landing stream: one client and one loop, one event per pipeline per poll,
each pipeline's landings recorded in its own ledger only once its own trigger stored the event.

Against a real SeaweedFS server; the last tests run the producer under Airflow's own `SharedStreamManager`
(the triggerer's ack-mode machinery) with one real `S3LandingTrigger` per pipeline.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from airflow.triggers.shared_stream import AdvanceOutcome

from journeys import events_of_one_poll, put_in_area, reported_landings, run_with_deadline
from landfall.airflow.triggers.s3_landing import LandingProducer, S3LandingTrigger
from landfall.pipeline import s3 as s3ops
from landfall.pipeline.keys import batches_prefix, folders_prefix
from landfall.pipeline.landing import ForgedEvent, signing_key, verified_batch
from watcher_areas import second_area, watch_of

OWNER_STORED = AdvanceOutcome(acked=1, failed=0, rejected=1)  # its trigger stored it, the other rejected it
OWNER_ABSENT = AdvanceOutcome(acked=0, failed=0, rejected=1)  # only the other pipeline's trigger saw it


@pytest.fixture
def areas(area):
    return {**area, "pipeline": "alpha"}, second_area(area, "beta")


def _poll(producer, outcome=None):
    return run_with_deadline(events_of_one_poll(producer, outcome))


def test_each_pipeline_gets_its_own_event_signed_for_it_with_only_its_landings(s3, areas):
    alpha, beta = areas
    alpha_key, _ = put_in_area(s3, alpha, "2026-12-01")
    beta_keys = [put_in_area(s3, beta, day)[0] for day in ("2026-12-01", "2026-12-02")]
    events = {event["pipeline"]: event for event, _ in _poll(LandingProducer(watch_of(alpha, beta)))}
    assert sorted(events) == ["alpha", "beta"]
    assert [o["key"] for o in events["alpha"]["objects"]] == [alpha_key]
    assert sorted(o["key"] for o in events["beta"]["objects"]) == sorted(beta_keys)
    verified_batch(signing_key(), {"payload": events["beta"]}, "beta")
    with pytest.raises(ForgedEvent, match="raised for pipeline 'beta', not 'alpha'"):
        verified_batch(signing_key(), {"payload": events["beta"]}, "alpha")


def test_an_event_its_own_pipeline_did_not_store_is_reported_again_and_the_other_is_recorded(s3, areas):
    """Another pipeline's trigger rejecting an event never counts as storing it."""
    alpha, beta = areas
    put_in_area(s3, alpha, "2026-12-03")
    beta_key, _ = put_in_area(s3, beta, "2026-12-03")
    producer = LandingProducer(watch_of(alpha, beta))
    outcomes = {"alpha": OWNER_STORED, "beta": OWNER_ABSENT}
    assert len(_poll(producer, lambda report: outcomes[report.pipeline])) == 2
    assert s3ops.list_keys(s3, alpha["bucket"], folders_prefix(alpha["ledger_prefix"]))
    assert not s3ops.list_keys(s3, beta["bucket"], folders_prefix(beta["ledger_prefix"]))
    [(event, _)] = _poll(producer, OWNER_STORED)
    assert event["pipeline"] == "beta" and [o["key"] for o in event["objects"]] == [beta_key]
    assert _poll(LandingProducer(watch_of(alpha, beta))) == []  # both recorded, each in its own ledger


def test_the_producer_watches_only_pipelines_whose_triggers_follow_the_stream(s3, areas):
    """With two triggerers, each polls the pipelines it runs the triggers of; a pipeline that comes to
    this one starts with a sweep, so what landed meanwhile is found."""
    alpha, beta = areas
    put_in_area(s3, alpha, "2026-12-04")
    beta_key, _ = put_in_area(s3, beta, "2026-12-04")
    following = {"alpha"}
    producer = LandingProducer(watch_of(alpha, beta), followed=lambda: following)
    assert [event["pipeline"] for event, _ in _poll(producer, OWNER_STORED)] == ["alpha"]
    assert not s3ops.list_keys(s3, beta["bucket"], batches_prefix(beta["ledger_prefix"]))
    following = {"alpha", "beta"}
    [(event, _)] = _poll(producer, OWNER_STORED)
    assert event["pipeline"] == "beta" and [o["key"] for o in event["objects"]] == [beta_key]


def test_each_pipeline_counts_its_own_requests_on_the_shared_client(s3, areas):
    """`Watcher stats` and the benchmark's requests per poll are per pipeline: one pipeline's listings
    are not billed to another."""
    alpha, beta = areas
    alone = LandingProducer(watch_of(alpha))
    shared = LandingProducer(watch_of(alpha, beta))
    for producer in (alone, shared):
        _poll(producer, OWNER_STORED)  # start-up: batch records, ledger, one sweep
    spent = {}
    for label, producer in (("alone", alone), ("shared", shared)):
        before = {name: w.scanner.stats.poll_requests for name, w in producer.watchers.items()}
        for _ in range(3):
            _poll(producer, OWNER_STORED)
        for name, watcher in producer.watchers.items():
            spent[label, name] = watcher.scanner.stats.poll_requests - before[name]
    assert spent["shared", "alpha"] == spent["alone", "alpha"] > 0
    assert spent["shared", "beta"] == spent["alone", "alpha"]  # the same empty layout costs the same


# ---- through Airflow's shared-stream manager ---------------------------------------------------------


async def _follow_with_airflow(watch, pipelines, until, stored_in, timeout_s=60.0):
    """Subscribe one real trigger per pipeline through Airflow's `SharedStreamManager` in ack mode,
    confirm each trigger event as persisted (as the triggerer's supervisor does once it stored it), and
    return what each trigger fired once `until(fired)` holds and the producer recorded every batch
    (`stored_in(fired)` is true)."""
    from airflow.triggers.shared_stream import SharedStreamManager

    manager = SharedStreamManager()
    fired: dict[str, list[dict]] = {name: [] for name in pipelines}

    async def follow(trigger_id: int, trigger: S3LandingTrigger) -> None:
        key = trigger.shared_stream_key()
        raw = manager.subscribe(trigger_id=trigger_id, trigger=trigger, key=key)
        async for event in trigger.filter_shared_stream(raw):
            seq = manager.bind_pending_event(trigger_id=trigger_id, key=key)
            fired[trigger.pipeline].append(event.payload)
            if seq is not None:
                manager.confirm_persisted([seq])

    triggers = [S3LandingTrigger(watch=watch, pipeline=name) for name in pipelines]
    tasks = [asyncio.create_task(follow(number, trigger)) for number, trigger in enumerate(triggers)]
    try:
        deadline = time.monotonic() + timeout_s
        while not (until(fired) and await asyncio.to_thread(stored_in, fired)):
            assert time.monotonic() < deadline, f"what the triggers fired: {fired}"
            for task in tasks:
                if task.done():
                    task.result()  # a trigger that failed says why
            await asyncio.sleep(0.1)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await manager.stop_all()
    return fired


def _keys(events):
    return sorted(o["key"] for event in events for o in event["objects"])


def test_through_airflows_manager_each_trigger_fires_only_its_pipelines_landings(s3, areas):
    alpha, beta = areas
    alpha_keys = [put_in_area(s3, alpha, "2026-12-05")[0]]
    beta_keys = [put_in_area(s3, beta, day)[0] for day in ("2026-12-05", "2026-12-06")]
    watch = watch_of(alpha, beta)

    def recorded(_fired):
        return all(
            s3ops.list_keys(s3, one["bucket"], batches_prefix(one["ledger_prefix"])) for one in (alpha, beta)
        )

    fired = run_with_deadline(
        _follow_with_airflow(watch, ["alpha", "beta"], lambda f: all(f.values()), recorded)
    )
    assert _keys(fired["alpha"]) == alpha_keys and _keys(fired["beta"]) == sorted(beta_keys)
    assert {event["pipeline"] for event in fired["alpha"]} == {"alpha"}
    # Recorded: a restarted stream reports neither again.
    assert _poll(LandingProducer(watch)) == []


def test_through_airflows_manager_a_pipeline_without_its_trigger_is_not_recorded_until_it_follows(s3, areas):
    alpha, beta = areas
    alpha_key, _ = put_in_area(s3, alpha, "2026-12-07")
    beta_key, _ = put_in_area(s3, beta, "2026-12-07")
    watch = watch_of(alpha, beta)

    def alpha_recorded(_fired):
        return bool(s3ops.list_keys(s3, alpha["bucket"], batches_prefix(alpha["ledger_prefix"])))

    fired = run_with_deadline(
        _follow_with_airflow(watch, ["alpha"], lambda f: bool(f["alpha"]), alpha_recorded)
    )
    assert _keys(fired["alpha"]) == [alpha_key]
    assert not s3ops.list_keys(s3, beta["bucket"], folders_prefix(beta["ledger_prefix"])), (
        "beta: nobody stored it"
    )
    [landing] = reported_landings(_poll(LandingProducer(watch)))  # a stream with beta's trigger finds it
    assert landing.key == beta_key


def test_the_benchmark_counts_what_each_added_pipeline_adds_to_a_poll(s3, settings):
    """`make bench` reports this with 1 and 10 pipelines; here 1 and 3, each holding one landed day."""
    from landfall.ops.bench.watcher_pipelines import requests_per_poll

    figures = requests_per_poll(settings, s3, counts=(1, 3))["watcher_pipelines"]
    one, three = figures["pipelines_1"], figures["pipelines_3"]
    alone, shared = one["requests_per_poll"], three["requests_per_poll"]
    print(f"\n  requests per poll: {alone} with 1 pipeline, {shared} with 3")
    assert one["requests_per_poll"] > 0
    assert three["requests_per_poll"] == 3 * one["requests_per_poll"]  # each adds its own listings, no more
    assert figures["requests_per_added_pipeline"] == one["requests_per_poll"]


def test_one_pipeline_that_cannot_be_polled_never_costs_another_its_report(s3, areas, monkeypatch):
    """A throttled listing or an unreadable prefix in one pipeline: the other's landing is reported in the
    same poll, and the failing one's on the poll after."""
    alpha, beta = areas
    alpha_key, _ = put_in_area(s3, alpha, "2026-12-08")
    beta_key, _ = put_in_area(s3, beta, "2026-12-08")
    producer = LandingProducer(watch_of(alpha, beta))
    _poll(producer, OWNER_STORED)  # start-up of both: their sweeps find the two landings
    scanner = producer.watcher("beta").scanner
    real_poll = scanner.poll

    async def throttled_once(client):
        monkeypatch.setattr(scanner, "poll", real_poll)
        raise ConnectionError("SlowDown")

    monkeypatch.setattr(scanner, "poll", throttled_once)
    alpha_again, _ = put_in_area(s3, alpha, "2026-12-09")
    beta_again, _ = put_in_area(s3, beta, "2026-12-09")
    [(event, _)] = _poll(producer, OWNER_STORED)
    assert event["pipeline"] == "alpha" and [o["key"] for o in event["objects"]] == [alpha_again]
    [(event, _)] = _poll(producer, OWNER_STORED)
    assert event["pipeline"] == "beta" and [o["key"] for o in event["objects"]] == [beta_again]
    assert _poll(producer, OWNER_STORED) == []
    assert alpha_key and beta_key


def test_a_pipeline_whose_trigger_leaves_is_forgotten_and_started_afresh_when_it_comes_back(s3, areas):
    alpha, beta = areas
    following = {"alpha", "beta"}
    producer = LandingProducer(watch_of(alpha, beta), followed=lambda: following)
    _poll(producer, OWNER_STORED)
    left = producer.watcher("beta")
    following = {"alpha"}
    _poll(producer, OWNER_STORED)
    assert producer.watcher("beta") is not left and not producer.watcher("beta").started
    counted = left.scanner.stats.poll_requests
    beta_key, _ = put_in_area(s3, beta, "2026-12-10")
    _poll(producer, OWNER_STORED)
    assert left.scanner.stats.poll_requests == counted  # the dropped scanner counts nothing any more
    following = {"alpha", "beta"}
    [(event, _)] = _poll(producer, OWNER_STORED)  # its fresh start-up sweep finds what landed meanwhile
    assert event["pipeline"] == "beta" and [o["key"] for o in event["objects"]] == [beta_key]
