"""What the watcher's polls cost in S3 requests and CPU when a burst lands across 1,000 new day folders,
against a real SeaweedFS server. Run with -s to see the figures."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

from journeys import events_of_one_poll, run_with_deadline
from landfall.airflow.triggers import landing_scan
from landfall.airflow.triggers.s3_landing import LandingProducer
from landfall.pipeline import s3 as s3ops
from watcher_areas import watch_of

FOLDERS = 1000


async def _measured_polls(producer, count):
    """(requests, CPU seconds, landings found) of each of `count` polls of the producer's scanner, on
    one client as in the triggerer (no stream start-up in the figures)."""
    scanner, figures = producer.scanner, []
    async with await producer._connect() as client:
        scanner.attach(client)
        for _ in range(count):
            requests, cpu = scanner.stats.poll_requests, time.process_time()
            found = await scanner.poll(client)
            figures.append((scanner.stats.poll_requests - requests, time.process_time() - cpu, len(found)))
            scanner.record(found)  # as advance() does once Airflow persisted the event
            requests, cpu = scanner.stats.poll_requests, time.process_time()
            await scanner.flush(client)
            if found:
                requests, cpu = scanner.stats.poll_requests - requests, time.process_time() - cpu
                print(
                    f"  writing the manifests of {len(found)} landings: {requests} requests, {cpu:.2f} CPU s"
                )
    return figures


def _put_burst(s3, area, days):
    def put(day):
        s3.put_object(Bucket=area["bucket"], Key=f"{area['prefix']}/{day}/features.parquet", Body=b"x")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, days))


def test_a_burst_across_1000_new_folders_is_found_with_a_few_requests_and_idle_polls_stay_cheap(s3, area):
    """One listing of the range that holds the new folders instead of one listing and one manifest GET
    per folder (2,001 requests before), and an emptied (quarantined) folder is not kept hot."""
    producer = LandingProducer(watch_of(area, max_objects_per_event=FOLDERS))
    run_with_deadline(events_of_one_poll(producer))  # the start-up sweep of an empty prefix
    days = [(date(2020, 1, 1) + timedelta(days=n)).isoformat() for n in range(FOLDERS)]
    _put_burst(s3, area, days)

    [(requests, cpu, found)] = run_with_deadline(_measured_polls(producer, 1))
    print(
        f"\n  the poll that finds {FOLDERS} new folders: {requests} requests, {cpu:.2f} CPU s, {found} found"
    )
    assert found == FOLDERS

    idle = run_with_deadline(_measured_polls(producer, 3))
    print("  idle polls after the burst (files still there, their folders hot): " + _figures(idle))
    for obj in s3ops.list_keys(s3, area["bucket"], area["prefix"] + "/"):
        s3.delete_object(Bucket=area["bucket"], Key=obj["Key"])  # ingest quarantined every file
    # Each poll lists the 32 newest hot folders: an emptied one is no longer hot once listed.
    settling = run_with_deadline(_measured_polls(producer, FOLDERS // landing_scan.MAX_HOT + 2))
    print(f"  the {len(settling)} polls after every file was moved away: " + _figures(settling))
    quiet = run_with_deadline(_measured_polls(producer, 3))
    print("  idle polls after that: " + _figures(quiet))

    assert requests < 50
    assert all(found == 0 for _, _, found in idle + settling + quiet)
    assert all(requests == 1 for requests, _, _ in quiet)  # the top level, and no emptied folder


def _figures(polls):
    return ", ".join(f"{requests} requests / {cpu * 1000:.0f} ms CPU" for requests, cpu, _ in polls)


def test_the_start_up_sweep_after_a_burst_reads_only_the_manifests_that_exist(s3, area):
    """A burst across 1,000 days landed while no watcher ran: one listing of the manifests instead of
    a GET per folder the ledger never wrote (1,001 requests before)."""
    days = [(date(2020, 1, 1) + timedelta(days=n)).isoformat() for n in range(FOLDERS)]
    _put_burst(s3, area, days)
    producer = LandingProducer(watch_of(area, max_objects_per_event=FOLDERS))
    run_with_deadline(events_of_one_poll(producer))  # the start-up sweep
    stats = producer.scanner.stats
    print(f"\n  start-up sweep of {FOLDERS} new folders: {stats.sweep_requests} requests, ", end="")
    print(f"{stats.sweep_cpu_s:.2f} CPU s")
    assert stats.swept_folders == FOLDERS and stats.sweep_requests < 10
