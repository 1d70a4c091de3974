"""The watcher's ledger manifests against a real SeaweedFS server: two watchers writing one folder's
manifest (a zombie triggerer beside a live one) lose no record, and a restart reads every manifest it
judges by."""

from __future__ import annotations

import asyncio

from journeys import events_of_one_poll, put_in_area, reported_landings, run_with_deadline
from landfall.airflow.triggers.landing_manifests import ManifestStore
from landfall.airflow.triggers.s3_landing import LandingProducer
from landfall.pipeline import s3 as s3ops
from landfall.pipeline.keys import batch_record
from landfall.pipeline.landing import Landing
from watcher_areas import watch_of

DAY = "2024-08-01"


def _landings(s3, area, count):
    for index in range(count):
        s3.put_object(
            Bucket=area["bucket"], Key=f"{area['prefix']}/{DAY}/part-{index:03d}.parquet", Body=b"p"
        )
    listed = s3ops.list_keys(s3, area["bucket"], f"{area['prefix']}/{DAY}/")
    return [Landing.from_listing(area["bucket"], area["prefix"], obj) for obj in listed]


def test_two_watchers_writing_one_folder_manifest_interleaved_lose_no_record(s3, area):
    """Each read the manifest, then records its own landings and writes, in turns and at once: a PUT
    over a version it did not read is refused, and it merges the other's records before writing."""
    landings = _landings(s3, area, 24)

    async def two_watchers():
        async with await LandingProducer(watch_of(area))._connect() as client:
            live, zombie = (ManifestStore(area["bucket"], area["ledger_prefix"]) for _ in range(2))
            await live.load(client, [DAY])
            await zombie.load(client, [DAY])  # both saw no manifest
            for index, landing in enumerate(landings):
                (live if index % 2 else zombie).record(DAY, landing)
                if index % 3 == 2:
                    await (live if index % 6 == 2 else zombie).flush(client)  # one after the other
                if index % 4 == 3:
                    await asyncio.gather(live.flush(client), zombie.flush(client))  # both at once
            await asyncio.gather(live.flush(client), zombie.flush(client))
            assert not live.dirty and not zombie.dirty
            fresh = ManifestStore(area["bucket"], area["ledger_prefix"])
            await fresh.load(client, [DAY])
            return [landing for landing in landings if not fresh.knows(DAY, landing)]

    assert run_with_deadline(two_watchers()) == []


def test_a_restart_with_a_batch_awaiting_its_claim_still_reads_its_folders_manifest(s3, area):
    """The unclaimed batch's landings are known at start from its record; the rest of the folder's
    manifest must not be hidden by them (it was: the folder's ledger held only the batch's landings)."""
    first, _ = put_in_area(s3, area, DAY)
    [(_, report)] = run_with_deadline(events_of_one_poll(LandingProducer(watch_of(area)), _acked()))
    s3.delete_object(Bucket=area["bucket"], Key=batch_record(area["ledger_prefix"], report.batch))  # claimed
    second = f"{area['prefix']}/{DAY}/_SUCCESS"
    s3.put_object(Bucket=area["bucket"], Key=second, Body=b"")
    restarted = LandingProducer(watch_of(area))
    assert [landing.key for landing in _reported(restarted)] == [second]  # its batch awaits a claim
    assert _reported(LandingProducer(watch_of(area))) == []  # after another restart: neither again
    assert first


def _acked():
    from airflow.triggers.shared_stream import AdvanceOutcome

    return AdvanceOutcome(acked=1, failed=0)


def _reported(producer):
    return reported_landings(run_with_deadline(events_of_one_poll(producer, _acked())))
