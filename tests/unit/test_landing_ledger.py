"""The watcher's per-folder ledger: membership, compaction to a watermark, and what a poll must list."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from landfall.pipeline.landing import Landing
from landfall.pipeline.landing_ledger import ROOT, FolderLedger, folder_of, open_days

ETAG = "0123456789abcdef0123456789abcdef"
DAY = 86400


def _landing(key="daily/2026-11-20/features.parquet", modified=1_700_000_000, etag=ETAG) -> Landing:
    listing = {"Key": key, "ETag": etag, "Size": 1, "LastModified": datetime.fromtimestamp(modified, UTC)}
    return Landing.from_listing("bucket", "daily", listing)


@pytest.mark.parametrize(
    ("key", "folder"),
    [
        ("daily/2026-11-20/features.parquet", "2026-11-20"),
        ("daily/2026-11-20/07/part-00001.parquet", "2026-11-20"),
        ("daily/stray.parquet", ROOT),
        ("daily/not a date/x", "not a date"),
    ],
)
def test_each_key_belongs_to_its_top_level_folder(key, folder):
    assert folder_of(key, "daily") == folder


def test_the_open_days_run_from_days_back_to_tomorrow():
    assert open_days(date(2026, 11, 25), 2) == ["2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26"]
    assert open_days(date(2026, 12, 31), 0) == ["2026-12-31", "2027-01-01"]


def test_a_recorded_landing_is_known_and_another_put_of_the_same_key_is_not():
    ledger = FolderLedger("2026-11-20")
    first = _landing()
    ledger.record(first)
    assert ledger.knows(first)
    assert not ledger.knows(_landing(modified=first.last_modified + 1))  # the same key PUT again
    assert not ledger.knows(_landing(key="daily/2026-11-20/_SUCCESS"))


def test_a_quiet_folder_compacts_to_its_newest_second_and_still_tells_a_later_put_apart():
    ledger = FolderLedger("2026-11-20")
    old = _landing(modified=1_700_000_000)
    ledger.record(old)
    assert not ledger.compact(
        newest_listed=old.last_modified, now=old.last_modified + DAY, retention_s=7 * DAY
    )
    assert ledger.compact(
        newest_listed=old.last_modified, now=old.last_modified + 8 * DAY, retention_s=7 * DAY
    )
    assert ledger.reported == {} and ledger.watermark == old.last_modified
    assert ledger.knows(old)
    assert ledger.knows(_landing(key="daily/2026-11-20/part-00001.parquet", modified=old.last_modified - 5))
    assert not ledger.knows(_landing(modified=old.last_modified + 8 * DAY))  # a PUT after compaction
    # Nothing changed since: compacting again writes nothing.
    assert not ledger.compact(old.last_modified, old.last_modified + 9 * DAY, 7 * DAY)


def test_the_watermark_covers_the_newest_object_listed_even_one_never_reported():
    """A part waiting for its marker is listed but not reported: the watermark must cover it, and the
    marker that lands later (newer) is still new."""
    ledger = FolderLedger("2026-11-20")
    assert ledger.compact(newest_listed=1_700_000_500, now=1_700_000_500 + 8 * DAY, retention_s=7 * DAY)
    assert ledger.watermark == 1_700_000_500
    assert not ledger.knows(_landing(key="daily/2026-11-20/_SUCCESS", modified=1_700_000_501))


def test_a_manifest_round_trips_and_refuses_another_folders_manifest():
    ledger = FolderLedger("2026-11-20", watermark=5)
    ledger.record(_landing())
    again = FolderLedger.from_json("2026-11-20", ledger.to_json())
    assert again == ledger and again.entries == 1
    with pytest.raises(ValueError, match="expected"):
        FolderLedger.from_json("2026-11-21", ledger.to_json())


def test_two_copies_of_a_manifest_merge_into_one_that_knows_what_either_knew():
    """Two watchers (a zombie triggerer and a live one) each recorded landings in their own copy."""
    old, mine, theirs = (
        _landing(modified=1_700_000_000),
        _landing(modified=1_800_000_000),
        _landing(key="daily/2026-11-20/_SUCCESS", modified=1_800_000_100),
    )
    compacted = FolderLedger("2026-11-20", watermark=old.last_modified)
    compacted.record(mine)
    other = FolderLedger("2026-11-20")
    other.record(old)
    other.record(theirs)
    compacted.merge(other)
    assert all(compacted.knows(landing) for landing in (old, mine, theirs))
    assert compacted.watermark == old.last_modified  # the later watermark wins
    assert not compacted.knows(_landing(modified=1_800_000_200))
