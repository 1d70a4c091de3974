"""The train DAG's `on_drift` decision against a real SeaweedFS: it reads the drift report the drift task
wrote for the same processed version, waits for one written late, and fails open (trains, alerts) when
none comes or the champion cannot be read."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from journeys import RecordedOutlet
from landfall.airflow.tasks import drift as drift_task
from landfall.airflow.tasks import retrain
from landfall.core.catalog import PUBLISH_DATASET_TASK, chain_of
from landfall.pipeline import drift
from landfall.pipeline import s3 as s3ops
from landfall.pipeline.datagen import make_batch

pytestmark = pytest.mark.usefixtures("mlflow_beside_s3")

LAST_TRAINED_AT = retrain.last_trained_at  # the real one: the `on_drift` fixture replaces it


class _TaskInstance:
    def __init__(self) -> None:
        self.xcom: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.xcom[key] = value


@pytest.fixture
def on_drift(settings, monkeypatch):
    """churn's settings with `training.retrain: on_drift`, last trained a day ago, a 30 s wait."""
    changed = settings.model_copy(
        update={
            "training": settings.training.model_copy(update={"retrain": "on_drift", "max_age_days": 30}),
            # Returns as soon as the report is there; long enough for one written late on a loaded machine.
            "monitoring": settings.monitoring.model_copy(update={"report_wait_seconds": 30}),
        }
    )
    monkeypatch.setattr(retrain, "get_settings", lambda pipeline: changed)
    monkeypatch.setattr(drift_task, "get_settings", lambda pipeline: changed)
    monkeypatch.setattr(retrain, "last_trained_at", lambda settings: datetime.now(UTC) - timedelta(days=1))
    return changed


def _champion_window(monkeypatch, settings) -> None:
    reference = drift.reference_of([drift.summarise([make_batch(4000, seed=5)], settings.landing, "binary")])
    monkeypatch.setattr(drift_task, "_champion_reference", lambda name: ("4", reference))


def test_a_day_like_the_champions_window_skips_and_a_moved_day_trains(on_drift, prepared_day, monkeypatch):
    _champion_window(monkeypatch, on_drift)
    stable = prepared_day(make_batch(4000, seed=6))
    drift_task.drift_report("churn", stable, RecordedOutlet())
    ti = _TaskInstance()
    assert retrain.train_or_skip("churn", stable, ti) is False
    decision = ti.xcom[retrain.DECISION_KEY]
    assert decision["verdict"] == "stable" and "no drift" in decision["reason"], decision

    moved = prepared_day(make_batch(4000, seed=6, drift=1.5))  # the same version's report, overwritten
    drift_task.drift_report("churn", moved, RecordedOutlet())
    assert retrain.train_or_skip("churn", moved, ti) is True
    assert ti.xcom[retrain.DECISION_KEY]["verdict"] == "drifted"


def test_a_stable_day_trains_when_the_champion_is_older_than_max_age(on_drift, prepared_day, monkeypatch):
    _champion_window(monkeypatch, on_drift)
    stable = prepared_day(make_batch(4000, seed=6))
    drift_task.drift_report("churn", stable, RecordedOutlet())
    monkeypatch.setattr(retrain, "last_trained_at", lambda settings: datetime.now(UTC) - timedelta(days=31))
    ti = _TaskInstance()
    assert retrain.train_or_skip("churn", stable, ti) is True
    assert "31.0 days ago (training.max_age_days 30)" in ti.xcom[retrain.DECISION_KEY]["reason"]


def test_a_report_written_while_the_run_waits_is_the_one_decided_on(on_drift, prepared_day, monkeypatch):
    _champion_window(monkeypatch, on_drift)
    stable = prepared_day(make_batch(4000, seed=6))
    late = threading.Timer(1.5, drift_task.drift_report, args=("churn", stable, RecordedOutlet()))
    late.start()
    ti = _TaskInstance()
    try:
        assert retrain.train_or_skip("churn", stable, ti) is False
    finally:
        late.join()
    assert ti.xcom[retrain.DECISION_KEY]["verdict"] == "stable"


def test_no_report_within_the_wait_trains_and_alerts(on_drift, prepared_day, alerts, monkeypatch):
    short = on_drift.model_copy(
        update={"monitoring": on_drift.monitoring.model_copy(update={"report_wait_seconds": 2})}
    )
    monkeypatch.setattr(retrain, "get_settings", lambda pipeline: short)
    unreported = prepared_day(make_batch(500, seed=7))  # the drift task never ran for it
    ti = _TaskInstance()
    assert retrain.train_or_skip("churn", unreported, ti) is True
    assert ti.xcom[retrain.DECISION_KEY]["verdict"] == "missing"
    [alert] = [a for a in alerts.of_kind("drift") if a["details"].get("day") == unreported["partition"]]
    assert "no drift report" in alert["text"] and "compare_with_reference" in alert["text"]


def test_a_champion_that_cannot_be_read_means_train(on_drift, prepared_day, monkeypatch):
    _champion_window(monkeypatch, on_drift)
    stable = prepared_day(make_batch(4000, seed=6))
    drift_task.drift_report("churn", stable, RecordedOutlet())

    def mlflow_down(settings):
        raise ConnectionError("MLflow is not answering")

    monkeypatch.setattr(retrain, "last_trained_at", mlflow_down)
    ti = _TaskInstance()
    assert retrain.train_or_skip("churn", stable, ti) is True
    decision = ti.xcom[retrain.DECISION_KEY]
    assert decision["alert"] and "could not be read (MLflow is not answering)" in decision["reason"]


def test_every_landing_trains_without_waiting_for_a_report(settings, prepared_day, monkeypatch):
    monkeypatch.setattr(retrain, "last_trained_at", lambda settings: datetime.now(UTC))
    started = datetime.now(UTC)
    assert retrain.train_or_skip("churn", prepared_day(make_batch(500, seed=7)), _TaskInstance()) is True
    assert settings.training.retrain == "every_landing" and settings.monitoring.report_wait_seconds == 300
    assert datetime.now(UTC) - started < timedelta(seconds=60)


def _event(partition: str, minutes: int, source_task: str = PUBLISH_DATASET_TASK, **extra):
    """A training_dataset event as the accessor gives it, raised by `source_task` of churn's preprocess."""
    return SimpleNamespace(
        source_dag_id=chain_of("churn").preprocess_dag,
        source_task_id=source_task,
        partition_key=partition,
        timestamp=datetime(2026, 12, 1, tzinfo=UTC) + timedelta(minutes=minutes),
        extra={"partition": partition, **extra},
    )


def test_the_daily_check_retrains_a_stale_champion_on_the_newest_day(on_drift, monkeypatch, alerts):
    monkeypatch.setattr(retrain, "last_trained_at", lambda settings: datetime.now(UTC) - timedelta(days=31))
    events = [
        _event("2026-11-29", 1, version="a"),
        _event("2026-11-30", 2, version="b"),
        _event("2026-11-30", 3, version="c"),  # the same day prepared again: its newest version
        _event("2026-12-01", 4, source_task="forged", version="x"),  # not from a producer: never read
    ]
    outlet = RecordedOutlet()
    done = retrain.retrain_stale_champion("churn", events, outlet)
    assert outlet.partitions == ["2026-11-30"] and done["partition"] == "2026-11-30"
    assert outlet.extra == {"partition": "2026-11-30", "version": "c", "retrain": "max_age"}
    [alert] = [a for a in alerts.of_kind("stale_champion") if a["details"]["day"] == "2026-11-30"]
    assert "31.0 days ago (training.max_age_days 30)" in alert["text"]


def test_the_daily_check_skips_a_young_champion_no_champion_and_every_landing(
    on_drift, settings, monkeypatch
):
    from airflow.sdk.exceptions import AirflowSkipException

    events = [_event("2026-11-30", 1, version="b")]
    monkeypatch.setattr(retrain, "last_trained_at", lambda settings: datetime.now(UTC) - timedelta(days=29))
    with pytest.raises(AirflowSkipException, match=r"within training\.max_age_days 30"):
        retrain.retrain_stale_champion("churn", events, RecordedOutlet())
    monkeypatch.setattr(retrain, "last_trained_at", lambda settings: None)
    with pytest.raises(AirflowSkipException, match="no champion yet"):
        retrain.retrain_stale_champion("churn", events, RecordedOutlet())
    monkeypatch.setattr(retrain, "get_settings", lambda pipeline: settings)  # every_landing, as shipped
    with pytest.raises(AirflowSkipException, match="every_landing"):
        retrain.retrain_stale_champion("churn", events, RecordedOutlet())


def test_the_age_counts_from_the_last_search_not_only_from_the_champion(on_drift, s3, local_mlflow):
    """A retrained candidate that lost, or a rollback to an older version, leaves an old champion: the
    age must count from the last search, or every day after would train again."""
    from journeys import logged_trial
    from landfall.pipeline import registry
    from landfall.pipeline.keys import last_search_record

    ledger = f"retrain-test-{uuid.uuid4().hex[:8]}/ledger"
    mine = on_drift.model_copy(
        update={"storage": on_drift.storage.model_copy(update={"ledger_prefix": ledger})}
    )
    assert LAST_TRAINED_AT(mine) is None  # no champion yet
    run_id = logged_trial(mine, "retrain-age-test", 1)
    name = mine.mlflow.model_name
    assert registry.promote(name, run_id, f"runs:/{run_id}/model", None, run_id, local_mlflow).moved
    started = datetime.fromtimestamp(local_mlflow.get_run(run_id).info.start_time / 1000, UTC)
    bucket, key = mine.storage.datasets_bucket, last_search_record(ledger)
    try:
        assert LAST_TRAINED_AT(mine) == started  # no search recorded: the champion's own run
        later = started + timedelta(hours=5)  # a search after it, whose candidate lost
        s3ops.put_json(s3, bucket, key, {"at": later.isoformat(), "partition": "2026-12-01"})
        assert LAST_TRAINED_AT(mine) == later
        s3ops.put_json(s3, bucket, key, {"at": (started - timedelta(days=9)).isoformat()})
        assert LAST_TRAINED_AT(mine) == started  # the newer of the two
    finally:
        s3.delete_object(Bucket=bucket, Key=key)
