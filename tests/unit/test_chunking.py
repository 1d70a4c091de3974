"""A run's landings are checked in bounded chunks, whatever the size of the burst."""

from __future__ import annotations

import pytest

from landfall.airflow.tasks.ingest import MAX_CHUNKS, chunked


@pytest.mark.parametrize("count", [1, 24, 25, 26, 1000, 3200, 100_000])
def test_no_run_maps_more_than_the_chunk_limit_and_nothing_is_dropped(count):
    items = [{"key": f"daily/{n}"} for n in range(count)]
    chunks = chunked(items, 25)
    assert len(chunks) <= MAX_CHUNKS < 256  # the [core] max_map_length the stack sets
    assert [item for chunk in chunks for item in chunk] == items
    assert all(len(chunk) >= 1 for chunk in chunks)
    if count <= 25 * MAX_CHUNKS:
        assert max(len(chunk) for chunk in chunks) == min(25, count)
