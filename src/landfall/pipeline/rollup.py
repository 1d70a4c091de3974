"""Hourly partitions roll up to one day: the day's training dataset is the processed splits of its hours.

A day landed hour by hour (`daily/<day>/<HH>/...`) is ingested and preprocessed per hour, as the hours
land; training stays daily. When the 24th hour is processed the day is complete and rolls up. An hour
that never arrives must not hold training forever: at the day's deadline (`landing.expected_by`, UTC,
the next day) the hours that are there roll up, and the missing ones are named in the dataset (and so
in the training run) and in an alert. Pure: processed heads in, a dataset dict out.
"""

from __future__ import annotations

import hashlib
from typing import Any

from landfall.pipeline.features import SPLITS
from landfall.pipeline.keys import hours_of


def day_rollup(day: str, hour_heads: dict[str, dict[str, Any] | None]) -> dict[str, Any] | None:
    """The day's dataset from the processed heads of its hours (`None` for an hour not processed), or
    None when no hour is there. Its version names exactly the hour versions it holds, so the same hours
    roll up to the same version however many runs compute it."""
    present = [hour for hour in hours_of(day) if hour_heads.get(hour)]
    if not present:
        return None
    heads = [head for hour in present if (head := hour_heads[hour]) is not None]
    identity = ",".join(f"{hour}:{head['version']}" for hour, head in zip(present, heads, strict=True))
    version = f"hours-{hashlib.sha256(identity.encode()).hexdigest()[:24]}"
    newest = heads[-1]
    dataset: dict[str, Any] = {
        "partition": day,
        "version": version,
        "hours": present,
        "missing_hours": [hour for hour in hours_of(day) if hour not in present],
        "features": newest["features"],
        # The canary's rows and its offline expectation come from one hour's own test split.
        "test_uri": newest["test_uri"],
        "canary_uri": newest.get("canary_uri"),
        "train_uri": newest["train_uri"],
        "validation_uri": newest["validation_uri"],
        "backfill": any(bool(head.get("backfill")) for head in heads),
        # Ordered like a landing (compare-and-set of the day's processed head): newest hour wins.
        "last_modified": max(int(head.get("last_modified", 0)) for head in heads),
        "etag": version,
    }
    for split in SPLITS:
        dataset[f"{split}_uris"] = [str(head[f"{split}_uri"]) for head in heads]
        dataset[f"rows_{split}"] = sum(int(head.get(f"rows_{split}", 0)) for head in heads)
    return dataset
