"""The S3 landing watcher's logic against a real SeaweedFS server (no S3 mocks).

The triggerer's ack-mode machinery is replaced here by calling `advance()` directly with the outcome
Airflow would report; the end-to-end tests run it inside the real triggerer.
"""

from __future__ import annotations

import time

from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome

from journeys import events_of_one_poll as _events_of_one_poll
from journeys import put_in_area
from journeys import reported_landings as _landings
from journeys import run_with_deadline as _run
from landfall.airflow.triggers import landing_scan, landing_stream
from landfall.airflow.triggers.s3_landing import TICK, LandingProducer
from landfall.pipeline import s3 as s3ops
from landfall.pipeline.keys import batch_claim, batches_prefix, folders_prefix, key_digest, legacy_seen_prefix
from watcher_areas import watch_of

ACKED = AdvanceOutcome(acked=1, failed=0)
FAILED = AdvanceOutcome(acked=0, failed=1)


def _put(s3, area, day, body=b"parquet-bytes"):
    return put_in_area(s3, area, day, body)


def _one_poll(producer):
    return _landings(_run(_events_of_one_poll(producer)))


def _poll_and_ack(producer, outcome=ACKED):
    return _landings(_run(_events_of_one_poll(producer, outcome)))


def test_each_new_landing_is_reported_once_signed_with_key_size_etag_and_partition(s3, area):
    key, etag = _put(s3, area, "2024-03-01", b"x" * 123)
    producer = LandingProducer(watch_of(area))
    [(event, report)] = _run(_events_of_one_poll(producer))
    [landing] = _landings([(event, report)])
    assert (landing.key, landing.etag, landing.size, landing.partition_date) == (key, etag, 123, "2024-03-01")
    assert landing.last_modified > 0 and report.landings == [landing]
    # Not yet acknowledged but on its way: the same producer does not report it again.
    assert _one_poll(producer) == []


def test_acknowledged_landings_are_not_reported_again_after_a_restart(s3, area):
    _put(s3, area, "2024-03-01")
    _put(s3, area, "2024-03-02")
    assert len(_poll_and_ack(LandingProducer(watch_of(area)))) == 2
    # A new producer is what a triggerer restart creates: it knows only the ledger in S3.
    assert _one_poll(LandingProducer(watch_of(area))) == []


def test_landings_made_while_the_watcher_was_down_are_reported_at_start(s3, area):
    _poll_and_ack(LandingProducer(watch_of(area)))  # nothing there yet
    key_a, _ = _put(s3, area, "2024-03-03")
    key_b, _ = _put(s3, area, "2024-03-04")
    assert sorted(landing.key for landing in _poll_and_ack(LandingProducer(watch_of(area)))) == sorted(
        [key_a, key_b]
    )


def test_an_unconfirmed_event_is_reported_again_so_nothing_is_lost(s3, area):
    key, _ = _put(s3, area, "2024-03-05")
    producer = LandingProducer(watch_of(area))
    assert [landing.key for landing in _poll_and_ack(producer, FAILED)] == [key]
    assert [landing.key for landing in _one_poll(producer)] == [key]  # same producer, next poll
    assert [landing.key for landing in _one_poll(LandingProducer(watch_of(area)))] == [key]  # after a restart


def test_new_content_and_the_same_bytes_put_again_are_both_new_landings(s3, area):
    _put(s3, area, "2024-03-06", b"first")
    _poll_and_ack(LandingProducer(watch_of(area)))
    time.sleep(1.1)  # Last-Modified has one-second resolution
    _, new_etag = _put(s3, area, "2024-03-06", b"second version")
    [changed] = _poll_and_ack(LandingProducer(watch_of(area)))
    assert changed.etag == new_etag
    time.sleep(1.1)
    _put(s3, area, "2024-03-06", b"second version")  # a revert to the same bytes, or a re-land
    [again] = _poll_and_ack(LandingProducer(watch_of(area)))
    assert again.etag == changed.etag and again.version != changed.version


def test_every_object_under_the_prefix_is_reported_even_with_a_hostile_name(s3, area):
    key = f"{area['prefix']}/not a date/ünï.csv"
    s3.put_object(Bucket=area["bucket"], Key=key, Body=b"?")
    [landing] = _poll_and_ack(LandingProducer(watch_of(area)))
    assert landing.key == key and landing.partition_date is None  # ingest quarantines it


def test_a_burst_is_reported_in_one_event_per_poll(s3, area):
    keys = sorted(_put(s3, area, f"2024-04-{day:02d}")[0] for day in range(1, 13))
    [(event, _)] = _run(_events_of_one_poll(LandingProducer(watch_of(area)), ACKED))
    assert sorted(o["key"] for o in event["objects"]) == keys
    assert _one_poll(LandingProducer(watch_of(area))) == []  # every landing of the event was acknowledged


def test_a_burst_larger_than_one_event_holds_waits_for_the_next_poll_not_a_second_event(s3, area):
    """Two events back to back would strand the second in Airflow's asset queue."""
    for day in range(1, 13):
        _put(s3, area, f"2024-05-{day:02d}")
    producer = LandingProducer(watch_of(area, max_objects_per_event=5))
    sizes = [len(_run(_events_of_one_poll(producer, ACKED))[0][0]["objects"]) for _ in range(3)]
    assert sizes == [5, 5, 2]


def test_a_failing_manifest_write_neither_raises_nor_reports_the_batch_again(s3, area, monkeypatch):
    key, _ = _put(s3, area, "2024-06-01")
    producer = LandingProducer(watch_of(area))
    items = _run(_events_of_one_poll(producer))

    async def advance_while_markers_fail():
        async with await producer._connect() as client:
            producer._client = client
            real_put = client.put_object

            async def failing_put(**kwargs):
                if "/folders/" in kwargs["Key"]:
                    raise ConnectionError("S3 hiccup")
                return await real_put(**kwargs)

            client.put_object = failing_put
            await producer.advance([AdvanceItem(report, ACKED) for _, report in items])  # must not raise
            client.put_object = real_put

    _run(advance_while_markers_fail())
    assert producer.scanner.manifests.dirty, "the failed manifest waits for the next poll"
    assert _one_poll(producer) == []  # not reported again by this process; the poll wrote the manifest
    assert not producer.scanner.manifests.dirty
    assert s3ops.list_keys(s3, area["bucket"], folders_prefix(area["ledger_prefix"]))
    assert _one_poll(LandingProducer(watch_of(area))) == []  # nor after a restart
    assert key


def test_a_batch_no_ingest_run_claimed_is_reported_again_until_one_does(s3, area):
    """Airflow 3.3 can strand a persisted event in its asset queue; the missing claim shows it."""
    key, _ = _put(s3, area, "2024-07-01")
    producer = LandingProducer(watch_of(area, requeue_after_s=0.2))
    [(_, report)] = _run(_events_of_one_poll(producer, ACKED))
    assert s3ops.exists(s3, area["bucket"], f"{batches_prefix(area['ledger_prefix'])}{report.batch}.json")
    time.sleep(0.3)
    [(again, requeue)] = _run(_events_of_one_poll(producer, ACKED))  # no claim: reported again
    assert [o["key"] for o in again["objects"]] == [key] and requeue.replaces == [report.batch]
    assert requeue.batch != report.batch
    # An ingest run claims the new batch: no more reports, and the batch records are cleaned up.
    s3.put_object(Bucket=area["bucket"], Key=batch_claim(area["ledger_prefix"], requeue.batch), Body=b"{}")
    time.sleep(0.5)  # past the doubled back-off
    assert _run(_events_of_one_poll(producer, ACKED)) == []
    assert not s3ops.list_keys(s3, area["bucket"], batches_prefix(area["ledger_prefix"]))


def test_an_unclaimed_batch_survives_a_triggerer_restart(s3, area):
    key, _ = _put(s3, area, "2024-07-02")
    _poll_and_ack(LandingProducer(watch_of(area)))
    restarted = LandingProducer(watch_of(area, requeue_after_s=0.1))  # reads the batch records at start
    _run(_events_of_one_poll(restarted))  # the first poll loads them (nothing is due yet)
    time.sleep(0.2)
    [landing] = _poll_and_ack(restarted)
    assert landing.key == key


def test_a_long_poll_interval_still_yields_heartbeat_ticks(monkeypatch, s3, area):
    """The shared stream's ack timeout (300 s) fails a subscriber still on an event: ticks keep it moving."""
    monkeypatch.setattr(landing_stream, "HEARTBEAT_S", 0.05)
    producer = LandingProducer(watch_of(area, poll_interval_s=3600))

    async def first_items(count):
        items, stream = [], producer.open_stream()
        try:
            async for raw, _ in stream:
                items.append(raw)
                if len(items) == count:
                    return items
        finally:
            await stream.aclose()

    started = time.monotonic()
    assert _run(first_items(4)) == [TICK] * 4  # end of the first poll, then heartbeats while it sleeps
    assert time.monotonic() - started < 30


def test_an_acknowledged_landing_is_not_reported_again_even_if_its_manifest_is_not_read_back(s3, area):
    """advance() can run while a poll is between its listings; the producer must remember what it
    acknowledged instead of reading the ledger back."""
    key, _ = _put(s3, area, "2024-03-07")
    producer = LandingProducer(watch_of(area))
    assert [landing.key for landing in _poll_and_ack(producer)] == [key]
    for manifest in s3ops.list_keys(s3, area["bucket"], folders_prefix(area["ledger_prefix"])):
        s3.delete_object(Bucket=area["bucket"], Key=manifest["Key"])  # as if the write were not seen
    assert _one_poll(producer) == []


# ---- flat cost: what a poll lists, the reconciliation sweep, the compacted ledger --------------------


def _sweep(producer):
    async def sweep():
        async with await producer._connect() as client:
            await producer.scanner.sweep(client)

    _run(sweep())


def _idle_poll_requests(producer, polls=3):
    _one_poll(producer)  # the first poll of a producer reads its ledger and sweeps
    before, polls_before = producer.scanner.stats.poll_requests, producer.scanner.stats.polls
    for _ in range(polls):
        assert _one_poll(producer) == []
    return (producer.scanner.stats.poll_requests - before) / (producer.scanner.stats.polls - polls_before)


def test_an_idle_poll_costs_the_same_requests_with_an_empty_prefix_and_with_history(s3, area):
    """A poll lists the prefix's top level and the folders that can change, never every old folder."""
    empty = _idle_poll_requests(LandingProducer(watch_of(area)))
    for day in range(1, 41):
        for part in range(5):
            key = f"{area['prefix']}/2023-01-{day % 28 + 1:02d}/{day:02d}-{part}/features.parquet"
            s3.put_object(Bucket=area["bucket"], Key=key, Body=b"x")
    producer = LandingProducer(watch_of(area))
    assert len(_poll_and_ack(producer)) == 200  # the start-up sweep found every one
    assert _idle_poll_requests(producer) == empty == 1  # one delimited listing: no old folder is listed
    assert _one_poll(LandingProducer(watch_of(area))) == []  # the manifests hold them across a restart


def test_a_new_backdated_folder_is_found_by_the_next_poll(s3, area):
    producer = LandingProducer(watch_of(area))
    _poll_and_ack(producer)
    key, _ = _put(s3, area, "2019-05-05")  # years before the open days
    assert [landing.key for landing in _poll_and_ack(producer)] == [key]


def test_a_landing_in_an_old_quiet_folder_is_found_by_the_sweep_not_by_a_poll(s3, area, monkeypatch):
    producer = LandingProducer(watch_of(area))
    _put(s3, area, "2019-06-01")
    _poll_and_ack(producer)
    monkeypatch.setattr(landing_scan, "HOT_S", 0.0)  # the folder's last change is long ago
    key = f"{area['prefix']}/2019-06-01/05/features.parquet"  # an hour landed into it later
    s3.put_object(Bucket=area["bucket"], Key=key, Body=b"late")
    assert _one_poll(producer) == []  # polls do not list quiet old folders ...
    _sweep(producer)
    assert [landing.key for landing in _poll_and_ack(producer)] == [key]  # ... the sweep does


def test_a_quiet_folder_is_compacted_to_a_watermark_and_a_later_put_into_it_is_still_new(s3, area):
    settings = watch_of(area, ledger_retention_days=1 / 86400)  # one second
    key, _ = _put(s3, area, "2019-07-01")
    _put(s3, area, "2019-07-02")
    producer = LandingProducer(settings)
    assert len(_poll_and_ack(producer)) == 2
    time.sleep(1.1)
    _sweep(producer)
    manifest, _ = s3ops.get_json(
        s3, area["bucket"], f"{folders_prefix(area['ledger_prefix'])}2019-07-01.json"
    )
    assert manifest["reported"] == {} and manifest["watermark"] > 0
    restarted = LandingProducer(settings)
    assert _one_poll(restarted) == []  # the watermark accounts for what was there
    time.sleep(1.1)
    _put(s3, area, "2019-07-01")  # the same bytes landed again: a new landing
    _sweep(restarted)  # an old, quiet folder: the sweep finds it
    [again] = _poll_and_ack(restarted)
    assert again.key == key and again.last_modified > manifest["watermark"]


def test_markers_of_the_old_ledger_are_honoured_moved_into_manifests_and_deleted(s3, area):
    key, etag = _put(s3, area, "2019-08-01")
    [listed] = s3ops.list_keys(s3, area["bucket"], key)
    version = f"{int(listed['LastModified'].timestamp())}-{etag}"
    legacy = f"{legacy_seen_prefix(area['ledger_prefix'])}{key_digest(key)}/{version}"
    s3.put_object(Bucket=area["bucket"], Key=legacy, Body=b"{}")
    assert _one_poll(LandingProducer(watch_of(area))) == []  # reported under the old ledger: not again
    assert not s3ops.exists(s3, area["bucket"], legacy)
    assert _one_poll(LandingProducer(watch_of(area))) == []  # the manifest holds it now


def test_a_landing_recorded_by_advance_while_a_poll_lists_is_not_reported_again(s3, area, monkeypatch):
    """`advance()` runs beside the polls: it may record a landing after a poll judged it unknown and
    before the poll filtered what is in flight. The poll must not report it a second time."""
    _put(s3, area, "2024-03-09")
    producer = LandingProducer(watch_of(area))
    [landing] = _one_poll(producer)  # reported, in flight, not yet confirmed
    scan = producer.scanner.poll

    async def poll_meanwhile_confirmed(client):
        found = await scan(client)
        # What `_persisted` does while the poll is still listing other folders.
        producer.scanner.record([landing])
        producer.watcher()._in_flight.discard(landing.identity)
        return found

    monkeypatch.setattr(producer.scanner, "poll", poll_meanwhile_confirmed)
    producer.scanner.report_again([landing])  # so the scan itself still names it
    assert _one_poll(producer) == []


def test_a_new_folder_whose_first_listing_fails_is_listed_again_by_the_next_poll(s3, area, monkeypatch):
    """Not only at the next sweep: a folder counts as known once a listing of it succeeded."""
    producer = LandingProducer(watch_of(area))
    _poll_and_ack(producer)  # the start-up sweep, with nothing there yet
    key, _ = _put(s3, area, "2019-05-06")  # a new folder, years before the open days
    list_folder, failed = producer.scanner._list_folder, []

    async def failing_once(client, folder):
        if not failed:
            failed.append(folder)
            raise ConnectionError("S3 hiccup")
        return await list_folder(client, folder)

    monkeypatch.setattr(producer.scanner, "_list_folder", failing_once)
    assert [landing.key for landing in _poll_and_ack(producer)] == [key]  # the stream polls again
    assert failed == ["2019-05-06"]
