"""The bodies of the train DAG's tasks: the trial grid, each trial's argv, the local backend, the reduce."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from landfall.core.settings import get_settings

log = logging.getLogger(__name__)


def window_of(pipeline: str, dataset: dict[str, Any]) -> dict[str, Any]:
    """The window this run trains on: its own processed partition (from the event) and the current
    processed partitions of the `training.window_days - 1` days before it.

    History landed at once coalesces: when a later day whose window holds this one is processed and its
    training has not run yet, that run trains the newer window (this day in it), so this one skips -
    unless training.coalesce_history is off, or this is a backfill's run (backfills train every day).
    """
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from landfall.airflow.tasks.ingest import s3_client
    from landfall.pipeline.publish import processed_heads
    from landfall.pipeline.window import MixedFeatures, training_window, window_dates

    settings = get_settings(pipeline)
    storage, training = settings.storage, settings.training
    s3, partition = s3_client(settings), str(dataset["partition"])
    # Under on_drift each day is decided on its own drift report: coalesced into a later day's window, a
    # day that drifted would be decided on the later day's report (and could be skipped for good).
    if training.coalesce_history and training.retrain != "on_drift" and not dataset.get("backfill"):
        newer = newer_untrained_partition(s3, storage, partition, training.window_days)
        if newer is not None:
            raise AirflowSkipException(
                f"{partition}: the later day {newer} is processed and waits for its training, which trains "
                f"its window of training.window_days={training.window_days} days, this day in it. To train "
                "every day in order, set training.coalesce_history: false, or backfill the days."
            )
    heads = processed_heads(s3, storage, window_dates(partition, training.window_days)[:-1])
    try:
        window = training_window(dataset, heads, training.max_rows)
    except MixedFeatures as error:  # the same heads would be refused again: fail now, alert, no retry
        raise AirflowFailException(str(error)) from None
    log.info(
        "Window of %s: %d partition(s) %s, missing %s; train rows %d (every %d), test rows %d (every %d)",
        partition,
        len(window["window_partitions"]),
        window["window_partitions"],
        window["missing_partitions"] or "none",
        window["window_rows_train"],
        window["train_every"],
        window["window_rows_test"],
        window["test_every"],
    )
    return window


def newer_untrained_partition(s3: Any, storage: Any, partition: str, window_days: int) -> str | None:
    """The first later day whose window holds `partition` (at most `window_days - 1` days later) and
    whose current processed version no train run has taken yet; None when there is none. A day
    further away would not train this day's data, so it never makes this run skip."""
    from datetime import date, timedelta

    from landfall.pipeline import s3 as s3ops
    from landfall.pipeline.keys import is_hourly, trained_record

    bucket, prefix = storage.datasets_bucket, f"{storage.processed_prefix}/date="
    last = (date.fromisoformat(partition) + timedelta(days=window_days - 1)).isoformat()
    paginator = s3.get_paginator("list_objects_v2")
    start = f"{prefix}{partition}/~"  # '~' sorts after every key of the day itself
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix, StartAfter=start):
        for obj in page.get("Contents", []):
            day = obj["Key"].removeprefix(prefix).split("/", 1)[0]
            if day[:10] > last:
                return None
            if is_hourly(day) or not obj["Key"].endswith(f"{prefix}{day}/_head.json"):
                continue  # an hour's head: its day's own head appears once the day is rolled up
            head = s3ops.get_json(s3, bucket, obj["Key"])
            trained = s3ops.get_json(s3, bucket, trained_record(storage.ledger_prefix, day))
            if head is not None and (trained is None or trained[0].get("version") != head[0].get("version")):
                return day
    return None


def hyperparameter_trials(pipeline: str) -> list[dict[str, Any]]:
    from landfall.pipeline.training.trials import trial_grid

    trials = trial_grid(get_settings(pipeline).training.grid)
    log.info("%d trials: %s", len(trials), [t["trial"] for t in trials])
    return trials


def pick_best(
    pipeline: str, results: list[dict[str, Any] | None], dataset: dict[str, Any], run_id: str
) -> dict[str, Any]:
    """The best trial on the validation split; the test split travels on for the evaluation. The day is
    recorded as trained (its version), so the days before it stop waiting for its window."""
    from landfall.airflow.tasks.ingest import s3_client
    from landfall.pipeline import s3 as s3ops
    from landfall.pipeline.keys import last_search_record, trained_record
    from landfall.pipeline.training.trials import select_best

    settings = get_settings(pipeline)
    metric = settings.training.metric
    best = select_best(results, metric)
    record = {"version": dataset["version"], "run_id": run_id, "window": dataset.get("window_partitions")}
    key = trained_record(settings.storage.ledger_prefix, str(dataset["partition"]))
    s3, bucket = s3_client(settings), settings.storage.datasets_bucket
    s3ops.put_json(s3, bucket, key, record)
    searched = {**record, "partition": str(dataset["partition"]), "at": datetime.now(UTC).isoformat()}
    s3ops.put_json(s3, bucket, last_search_record(settings.storage.ledger_prefix), searched)
    failed = sum(1 for r in results if not r)
    _log_reference(settings, dataset, best["run_id"])
    log.info(
        "Best of %d trials (%d failed): %s validation %s=%.4f",
        len(results),
        failed,
        best["params"],
        metric,
        best["metrics"][metric],
    )
    return {
        **best,
        "metric": metric,
        "version": dataset.get("version"),
        "train_uri": dataset["train_uri"],
        "validation_uri": dataset["validation_uri"],
        "test_uri": dataset["test_uri"],
        "test_uris": dataset.get("test_uris") or [dataset["test_uri"]],
        "test_every": dataset.get("test_every", 1),
        "window_partitions": dataset.get("window_partitions") or [dataset.get("partition")],
        "missing_partitions": dataset.get("missing_partitions") or [],
        "canary_uri": dataset.get("canary_uri"),
        "trials": len(results),
        "failed_trials": failed,
    }


def _log_reference(settings: Any, dataset: dict[str, Any], run_id: str) -> None:
    """The window's drift statistics, merged, logged with the best trial's run: once it is champion, a
    day is compared with them without reading its window again. Never fails the run: a candidate
    without a reference is still a candidate (its days are then compared with nothing)."""
    from landfall.airflow.tasks.drift import REFERENCE_ARTIFACT, statistics_at
    from landfall.airflow.tasks.ingest import s3_client
    from landfall.pipeline import registry

    uris = dataset.get("statistics_uris") or []
    try:
        reference = statistics_at(s3_client(settings), uris)
        if reference is None:
            log.warning("No drift statistics in the window (%d day file(s)): no reference logged", len(uris))
            return
        registry.client().log_dict(run_id, reference, REFERENCE_ARTIFACT)
        log.info(
            "Drift reference of %d day(s) (%d left out) logged with run %s",
            reference["days"],
            reference["days_left_out"],
            run_id,
        )
    except Exception as error:  # the statistics are for monitoring: never the reason a training fails
        log.warning("Drift reference not logged with run %s: %s", run_id, error)
