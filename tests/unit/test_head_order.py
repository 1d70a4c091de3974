"""Which version of a day is its head (`landfall.pipeline.publish.supersedes`): landings by Last-Modified
then ETag, as always; days rolled up from their hours by what they hold, so a rollup missing an hour that
is not the newest never beats the complete one (they share the newest hour's Last-Modified)."""

from __future__ import annotations

import random

from landfall.pipeline import publish
from landfall.pipeline.keys import hours_of
from landfall.pipeline.publish import advance_ordered_head, supersedes
from landfall.pipeline.rollup import day_rollup

DAY = "2026-05-06"


def _hour(hour: str, modified: int) -> dict:
    version = f"{modified}-{hour[-2:]}etag"
    return {
        "partition": hour,
        "version": version,
        "features": ["a"],
        "last_modified": modified,
        **{f"rows_{split}": 1 for split in ("train", "validation", "test")},
        **{
            f"{split}_uri": f"s3://b/{hour}/{version}/{split}.parquet"
            for split in ("train", "validation", "test")
        },
    }


def _heads(modified: dict[str, int]) -> dict:
    return {hour: _hour(hour, when) for hour, when in modified.items()}


class _OneHead:
    """The day's head record in memory, behind the two S3 calls `advance_ordered_head` makes."""

    def __init__(self, head: dict | None) -> None:
        self.head = head

    def get_json(self, s3, bucket, key):
        return None if self.head is None else (self.head, "etag")

    def put_json_if_match(self, s3, bucket, key, value, etag):
        self.head = value
        return True


def test_the_complete_rollup_always_wins_the_days_head_over_any_partial_one(monkeypatch):
    rng = random.Random(20)
    for _ in range(200):
        modified = {hour: 1_000 + index for index, hour in enumerate(hours_of(DAY))}
        complete = day_rollup(DAY, _heads(modified))
        newest = hours_of(DAY)[-1]
        kept = [hour for hour in hours_of(DAY)[:-1] if rng.random() < 0.8] + [newest]
        if len(kept) == 24:
            kept.remove(rng.choice(kept[:-1]))
        partial = day_rollup(DAY, _heads({hour: modified[hour] for hour in kept}))
        assert partial["last_modified"] == complete["last_modified"]  # what used to leave it to the hash
        assert supersedes(complete, partial) and not supersedes(partial, complete)
        for first, second in ((partial, complete), (complete, partial)):  # either run may write first
            store = _OneHead(None)
            monkeypatch.setattr(publish.s3ops, "get_json", store.get_json)
            monkeypatch.setattr(publish.s3ops, "put_json_if_match", store.put_json_if_match)
            advance_ordered_head(None, "b", "k", first)
            advance_ordered_head(None, "b", "k", second)
            assert store.head["version"] == complete["version"]


def test_a_late_hour_or_a_re_landed_hour_wins_and_an_older_hour_version_does_not():
    modified = {hour: 1_000 for hour in hours_of(DAY)}
    at_deadline = day_rollup(DAY, _heads({hour: modified[hour] for hour in hours_of(DAY)[:20]}))
    late = day_rollup(DAY, _heads({hour: modified[hour] for hour in hours_of(DAY)[:21]}))
    assert supersedes(late, at_deadline) and not supersedes(at_deadline, late)
    relanded = day_rollup(DAY, _heads({**modified, f"{DAY}T03": 2_000}))
    complete = day_rollup(DAY, _heads(modified))
    assert supersedes(relanded, complete) and not supersedes(complete, relanded)


def test_when_neither_rollup_holds_the_other_more_hours_win_then_the_newer():
    modified = {hour: 1_000 + index for index, hour in enumerate(hours_of(DAY))}
    hours = hours_of(DAY)
    more = day_rollup(DAY, _heads({hour: modified[hour] for hour in hours[:10]}))
    fewer_but_newer = day_rollup(DAY, _heads({hour: modified[hour] for hour in hours[10:15]}))
    assert supersedes(more, fewer_but_newer) and not supersedes(fewer_but_newer, more)
    older = day_rollup(DAY, _heads({hour: modified[hour] for hour in hours[:5]}))
    newer = day_rollup(DAY, _heads({hour: modified[hour] for hour in hours[5:10]}))
    assert supersedes(newer, older) and not supersedes(older, newer)


def test_daily_heads_and_a_daily_landing_against_a_rollup_keep_the_landing_order():
    daily = {"version": "2000-aaa", "last_modified": 2_000, "etag": "aaa"}
    later = {"version": "2000-bbb", "last_modified": 2_000, "etag": "bbb"}
    assert supersedes(later, daily) and not supersedes(daily, later)
    assert supersedes(daily, dict(daily))  # ties go to the writer, as before
    rollup = day_rollup(DAY, _heads({hour: 1_500 for hour in hours_of(DAY)}))
    assert supersedes(daily, rollup) and not supersedes(rollup, daily)
    legacy = {key: value for key, value in rollup.items() if key != "hour_versions"}  # written before
    assert supersedes(daily, legacy) and not supersedes(legacy, daily)
