"""Hourly partitions roll up to one day: the day's training dataset is the processed splits of its hours.

A day landed hour by hour (`daily/<day>/<HH>/...`) is ingested and preprocessed per hour, as the hours
land; training stays daily. When the 24th hour is processed the day is complete and rolls up. An hour
that never arrives must not hold training forever: at the day's deadline (`landing.expected_by`, UTC,
the next day) the hours that are there roll up, and the missing ones are named in the dataset (and so
in the training run) and in an alert.

An hour is not held to the whole-day checks (enough rows, both label classes); the rolled-up day is, as
a daily file is, from the rows and label counts each hour's preprocessing recorded: a refused day is
quarantined (`day_quarantine`), never trained. An hour prepared before label counts were recorded leaves
the day's classes unknown: the dataset names it (`label_counts_unknown_hours`) and the class check is
skipped. Pure: processed heads in, dicts out.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from landfall.core.pipeline_settings import LandingSettings
from landfall.core.shared_settings import StorageSettings
from landfall.pipeline.features import SPLITS
from landfall.pipeline.keys import hours_of
from landfall.pipeline.validation import Problem, day_problems


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
        # What it holds, hour by hour: a rollup that holds every hour of another, each at the same or a
        # newer version, supersedes it as the day's processed head (`landfall.pipeline.publish`).
        "hour_versions": {hour: str(head["version"]) for hour, head in zip(present, heads, strict=True)},
        "features": newest["features"],
        # One function's features, or the hours' different ones: a window refuses a day of mixed hours.
        "features_by": features_by({str(head.get("features_by") or "schema") for head in heads}),
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
    dataset["rows"] = sum(int(dataset[f"rows_{split}"]) for split in SPLITS)
    # Each hour's drift statistics: a window merges them with its other days' (`drift.merged`).
    dataset["statistics_uris"] = [str(head["statistics_uri"]) for head in heads if head.get("statistics_uri")]
    dataset["label_counts"], dataset["label_counts_unknown_hours"] = _label_counts(present, heads)
    return dataset


def features_by(found: set[str]) -> str:
    return next(iter(found)) if len(found) == 1 else "mixed: " + ", ".join(sorted(found))


def _label_counts(hours: list[str], heads: list[dict[str, Any]]) -> tuple[dict[str, int] | None, list[str]]:
    """(rows per label class over the hours, the hours prepared before preprocessing counted them). The
    counts are None when any hour is unknown: the day's both-classes check is then skipped (the trainer
    still refuses a one-class train split), and the unknown hours say why."""
    counts: dict[str, int] = {}
    unknown = []
    for hour, head in zip(hours, heads, strict=True):
        if not isinstance(head.get("label_counts"), dict):
            unknown.append(hour)
            continue
        for value, count in head["label_counts"].items():
            counts[str(value)] = counts.get(str(value), 0) + int(count)
    return (None if unknown else counts), unknown


def rollup_problems(rollup: dict[str, Any], landing: LandingSettings, task: str = "binary") -> list[Problem]:
    """The whole-day verdict on a rolled-up day, the same as a daily file gets (`day_problems`); a
    regression label has no classes to count (the rows are checked, the trainer does the rest)."""
    counts = None if task == "regression" else rollup.get("label_counts")
    classes = None if counts is None else [_label(value) for value, count in counts.items() if int(count) > 0]
    return day_problems(int(rollup.get("rows", 0)), classes, landing)


def _label(value: str) -> int | str:
    try:
        return int(value)
    except ValueError:
        return value


def day_quarantine_folder(storage: StorageSettings, rollup: dict[str, Any]) -> str:
    """Where a refused day's record goes: beside the quarantined landings of that day."""
    return f"{storage.quarantine_prefix}/{rollup['partition']}/rollup-{rollup['version']}"


def day_quarantine(rollup: dict[str, Any], problems: list[Problem], run_id: str) -> dict[str, Any]:
    """The `reason.json` of a refused day: the day, its hours (and versions), the missing hours and the
    problems. The hours' data stays where it is (published per hour); only the day is refused."""
    return {
        "partition": rollup["partition"],
        "kind": "day_rollup",
        "version": rollup["version"],
        "hours": list(rollup["hours"]),
        "hour_versions": dict(rollup.get("hour_versions") or {}),
        "missing_hours": list(rollup.get("missing_hours") or []),
        "problems": [asdict(problem) for problem in problems],
        "rows": rollup.get("rows"),
        "label_counts": rollup.get("label_counts"),
        "label_counts_unknown_hours": list(rollup.get("label_counts_unknown_hours") or []),
        "run_id": run_id,
        "quarantined_at": datetime.now(UTC).isoformat(),
        "what_to_do": (
            "land the day's hours again with enough rows of both label classes (or the day as one daily "
            "file); the hours stay prepared, but the day is not trained"
        ),
    }


def quarantine_entry(storage: StorageSettings, record: dict[str, Any]) -> dict[str, Any]:
    """The refused day in a `quarantine` asset event's extra (like a landing's entry: its partition, its
    quarantine folder and problems; `hours` instead of a source key)."""
    day, hours = str(record["partition"]), [hour[-2:] for hour in record["hours"]]
    return {
        "kind": "day_rollup",
        "source_key": f"{storage.landing_prefix}/{day}/",
        "source_version": record["version"],
        "partition_date": day,
        "hours": hours,
        "missing_hours": [hour[-2:] for hour in record["missing_hours"]],
        "quarantine_uri": f"s3://{storage.datasets_bucket}/{day_quarantine_folder(storage, record)}/",
        "problems": record["problems"],
    }
