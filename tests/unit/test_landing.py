"""What a landing is, and how the watcher's signed reports are told apart from forgeries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from landfall.pipeline.landing import (
    ForgedEvent,
    Landing,
    MissingSigningKey,
    landed_event,
    signing_key,
    verified_batch,
)

KEY = b"k" * 48
ETAG = "0123456789abcdef0123456789abcdef"


def _listing(key="daily/2026-11-20/features.parquet", etag=ETAG, second=0):
    return {
        "Key": key,
        "ETag": f'"{etag}"',
        "Size": 10,
        "LastModified": datetime(2026, 11, 20, 6, 0, second, tzinfo=UTC),
    }


def _landing(**kwargs) -> Landing:
    return Landing.from_listing("landfall-datasets", "daily", _listing(**kwargs))


def _extra(payload):
    return {"from_trigger": True, "payload": payload}


def test_a_landing_is_one_put_the_same_bytes_put_again_are_a_new_landing():
    first, again = _landing(second=0), _landing(second=5)
    assert first.partition_date == "2026-11-20" and first.etag == ETAG
    assert first.identity != again.identity  # a revert or a re-land after a quarantine is processed again
    assert first.identity == _landing(second=0).identity  # the same PUT reported twice is one landing


def test_a_signed_batch_verifies_and_gives_back_its_landings():
    landings = [_landing(), _landing(key="daily/2026-11-21/features.parquet")]
    event = landed_event(KEY, "landfall-datasets", "batch-1", landings)
    batch, found = verified_batch(KEY, _extra(event))
    assert batch == "batch-1" and found == landings


@pytest.mark.parametrize(
    "forge",
    [
        lambda e: {**e, "signature": "0" * 64},  # made up
        lambda e: {k: v for k, v in e.items() if k != "signature"},  # none
        lambda e: {
            **e,
            "objects": [{**e["objects"][0], "key": "raw/date=2026-11-20/x/data.parquet"}],
        },  # retargeted
        lambda e: {**e, "batch": "other"},
        lambda e: {**e, "bucket": "someone-elses"},
    ],
    ids=["made-up", "unsigned", "retargeted-key", "renamed-batch", "other-bucket"],
)
def test_a_forged_or_altered_event_is_refused(forge):
    event = landed_event(KEY, "landfall-datasets", "batch-1", [_landing()])
    with pytest.raises(ForgedEvent):
        verified_batch(KEY, _extra(forge(event)))


def test_a_genuine_event_of_one_pipeline_is_refused_on_another_pipelines_asset():
    event = landed_event(KEY, "landfall-datasets", "batch-1", [_landing()], pipeline="churn")
    assert verified_batch(KEY, _extra(event), "churn")[0] == "batch-1"
    with pytest.raises(ForgedEvent, match="raised for pipeline 'churn', not 'meters'"):
        verified_batch(KEY, _extra(event), "meters")
    for altered in ({**event, "pipeline": "meters"}, {k: v for k, v in event.items() if k != "pipeline"}):
        with pytest.raises(ForgedEvent, match="signature"):  # the pipeline is signed: renamed or dropped
            verified_batch(KEY, _extra(altered), "meters")


def test_an_event_signed_with_another_key_is_refused():
    event = landed_event(b"x" * 48, "landfall-datasets", "batch-1", [_landing()])
    with pytest.raises(ForgedEvent, match="signature"):
        verified_batch(KEY, _extra(event))


def test_an_etag_that_is_not_one_is_refused_even_when_signed():
    event = landed_event(KEY, "landfall-datasets", "b", [_landing(etag="../../raw")])
    with pytest.raises(ForgedEvent, match="ETag"):
        verified_batch(KEY, _extra(event))


def test_a_rest_api_event_without_a_landing_payload_is_refused():
    with pytest.raises(ForgedEvent):
        verified_batch(KEY, {"payload": {"type": "tick"}})
    with pytest.raises(ForgedEvent):
        verified_batch(KEY, {"key": "raw/date=2026-01-01/data.parquet"})


def test_a_process_without_the_signing_key_says_how_to_get_one():
    with pytest.raises(MissingSigningKey, match="LANDFALL_EVENT_SIGNING_KEY"):
        signing_key({})
    with pytest.raises(MissingSigningKey):
        signing_key({"LANDFALL_EVENT_SIGNING_KEY": "short"})
    assert signing_key({"LANDFALL_EVENT_SIGNING_KEY": "s" * 40}) == b"s" * 40


def test_parts_wait_for_their_marker_and_only_a_late_part_is_reported_itself():
    from landfall.pipeline.landing import PartRule

    rule = PartRule("part-*.parquet", "_SUCCESS")

    def landing(key, second):
        return Landing.from_listing("b", "daily", _listing(key, second=second))

    early = [
        landing("daily/2026-11-20/part-00000.parquet", 1),
        landing("daily/2026-11-20/part-00001.parquet", 2),
    ]
    assert rule.reportable(early) == []  # no marker yet: nothing to ingest
    marker = landing("daily/2026-11-20/_SUCCESS", 3)
    one_file = landing("daily/2026-11-21/features.parquet", 3)
    stray = landing("daily/2026-11-21/part-00000.parquet", 9)  # no marker in its own folder
    assert rule.reportable([*early, marker, one_file, stray]) == [marker, one_file]
    late = landing("daily/2026-11-20/part-00002.parquet", 4)
    same_second = landing("daily/2026-11-20/part-00003.parquet", 3)  # covered by the marker's listing
    assert rule.reportable([*early, marker, late, same_second]) == [marker, late]


def test_parts_outside_a_partition_folder_are_reported_to_be_quarantined():
    from landfall.pipeline.landing import PartRule

    rule = PartRule("part-*.parquet", "_SUCCESS")
    stray = [
        Landing.from_listing("b", "daily", _listing(key, second=1))
        for key in ("daily/yesterday/part-0.parquet", "daily/2026-11-20/7/part-0.parquet")
    ]
    hourly = Landing.from_listing("b", "daily", _listing("daily/2026-11-20/07/part-0.parquet", second=1))
    assert rule.reportable([*stray, hourly]) == stray  # the hour's part waits for its marker
