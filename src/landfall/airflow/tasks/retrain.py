"""The train DAG's retraining decision under `training.retrain: on_drift` (`train_or_skip`).

The preprocess DAG's drift task writes each published version's drift report beside it, seconds after
the `training_dataset` event that started this run; the decision waits for that file (at most
`monitoring.report_wait_seconds`) rather than for a second partitioned asset, so the train DAG stays
scheduled on one. The rule itself is pure (`landfall.pipeline.drift.training_decision`). It fails open:
no report, or no way to tell the champion's age, means train, and an alert says why.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from landfall.core.settings import get_settings

log = logging.getLogger(__name__)

DECISION_KEY = "retrain_decision"
"""The XCom key of the decision (`{"train", "reason", ...}`), read by `landfall status`."""


def train_or_skip(pipeline: str, dataset: dict[str, Any], ti: Any = None) -> bool:
    """Whether this run's search runs; False skips every task after it (a short circuit)."""
    from landfall.airflow.tasks.ingest import s3_client
    from landfall.pipeline.alerts import Alerts
    from landfall.pipeline.drift import TrainingDecision, training_decision
    from landfall.pipeline.keys import drift_report_key

    settings = get_settings(pipeline)
    partition, version = str(dataset["partition"]), str(dataset["version"])
    key = drift_report_key(settings.storage, partition, version)
    where = f"s3://{settings.storage.datasets_bucket}/{key}"
    report = None
    if settings.training.retrain == "on_drift":
        wait_s = settings.monitoring.report_wait_seconds
        report = wait_for_report(s3_client(settings), settings.storage.datasets_bucket, key, wait_s)
    try:
        trained_at = last_trained_at(settings)
    except Exception as error:  # fail open: a champion we cannot see is no reason to stop training
        log.warning("Champion of %s not read: %s", settings.mlflow.model_name, error)
        decision = TrainingDecision(True, f"the champion could not be read ({error}): training", alert=True)
    else:
        decision = training_decision(
            settings.training.retrain, report, trained_at, datetime.now(UTC), settings.training.max_age_days
        )
        if decision.alert and report is None:
            decision = TrainingDecision(
                True,
                f"{decision.reason} (none at {where} after {settings.monitoring.report_wait_seconds}s: "
                "see the preprocess run's compare_with_reference log)",
                alert=True,
            )
    record = {**asdict(decision), "partition": partition, "version": version, "verdict": _verdict(report)}
    if ti is not None:
        ti.xcom_push(key=DECISION_KEY, value=record)
    log.info("%s %s: %s (%s)", pipeline, partition, "train" if decision.train else "skip", decision.reason)
    if decision.alert:
        Alerts(settings.notify.webhook_url).send(
            "drift",
            f"{pipeline} {partition}: {decision.reason}",
            {"pipeline": pipeline, "day": partition, "version": version},
        )
    return decision.train


def wait_for_report(s3: Any, bucket: str, key: str, wait_s: float, every_s: float = 2.0) -> dict | None:
    """The drift report at `key` once it is there; None when `wait_s` passed without it."""
    from landfall.pipeline import s3 as s3ops

    deadline = time.monotonic() + wait_s
    while True:
        try:
            found = s3ops.get_json(s3, bucket, key)
        except Exception as error:  # S3 away: as if not written yet; none by the deadline means train
            log.warning("Drift report %s not read (%s); trying again", key, error)
            found = None
        if found is not None:
            return found[0]
        if time.monotonic() >= deadline:
            return None
        time.sleep(min(every_s, max(deadline - time.monotonic(), 0.0)))


def last_trained_at(settings: Any) -> datetime | None:
    """When the pipeline last trained: its last search (`keys.last_search_record`), or its champion's run
    when none is recorded (a champion from before the record); None with no champion yet. Counted from
    the last search, not the champion, so a retrained candidate that lost its evaluation or a rollback to
    an older version does not make every day train again."""
    from landfall.airflow.tasks.ingest import s3_client
    from landfall.pipeline import registry
    from landfall.pipeline import s3 as s3ops
    from landfall.pipeline.keys import last_search_record

    mlflow_client = registry.client()
    champion = registry.champion(settings.mlflow.model_name, mlflow_client)
    if champion is None:
        return None
    started_ms = mlflow_client.get_run(champion.run_id).info.start_time
    trained = datetime.fromtimestamp(started_ms / 1000, UTC)
    storage = settings.storage
    found = s3ops.get_json(
        s3_client(settings), storage.datasets_bucket, last_search_record(storage.ledger_prefix)
    )
    if found is not None and found[0].get("at"):
        trained = max(trained, datetime.fromisoformat(found[0]["at"]))
    return trained


def _verdict(report: dict | None) -> str:
    return "missing" if report is None else str(report.get("verdict"))


def retrain_stale_champion(pipeline: str, events: Iterable[Any], outlet_event: Any) -> dict[str, Any]:
    """The freshness DAG's daily check under `on_drift`: a champion trained more than
    `training.max_age_days` ago is retrained even when no day drifted or landed. The newest trusted
    `training_dataset` event (the newest day, its newest version) is raised again, marked
    `retrain: max_age`, so the train DAG searches that day's window; its decision sees the age and trains.
    Skips (no event) when the pipeline trains every landing, has no champion, or the champion is young."""
    from airflow.sdk.exceptions import AirflowSkipException

    from landfall.airflow.tasks.events import trusted_events
    from landfall.pipeline.alerts import Alerts

    settings = get_settings(pipeline)
    training = settings.training
    if training.retrain != "on_drift":
        raise AirflowSkipException("training.retrain is every_landing: each landing trains")
    trained_at = last_trained_at(settings)
    if trained_at is None:
        raise AirflowSkipException("no champion yet: the next landing trains")
    age_days = (datetime.now(UTC) - trained_at).total_seconds() / 86400
    if age_days <= training.max_age_days:
        raise AirflowSkipException(
            f"the pipeline last trained {age_days:.1f} days ago, within training.max_age_days "
            f"{training.max_age_days}"
        )
    trusted = [e for e in trusted_events(events, settings.names.training_dataset) if e.partition_key]
    if not trusted:
        raise AirflowSkipException("the champion is stale, but no processed day is there to train on")
    newest = max(trusted, key=lambda event: (str(event.partition_key), event.timestamp))
    extra = {**dict(newest.extra or {}), "retrain": "max_age"}
    outlet_event.add_partitions([str(newest.partition_key)])
    outlet_event.extra = extra
    text = (
        f"{pipeline}: last trained {age_days:.1f} days ago (training.max_age_days "
        f"{training.max_age_days}); retraining on the window of {newest.partition_key}"
    )
    Alerts(settings.notify.webhook_url).send(
        "stale_champion", text, {"pipeline": pipeline, "day": str(newest.partition_key)}
    )
    return {"partition": str(newest.partition_key), "age_days": round(age_days, 1), "reason": text}
