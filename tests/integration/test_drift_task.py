"""The preprocess DAG's drift task against a real SeaweedFS: the report and its event for each verdict,
the `drift` alert, and a failure that is reported as `unknown` instead of failing the run."""

from __future__ import annotations

import pytest

from journeys import RecordedOutlet
from landfall.airflow.tasks import drift as drift_task
from landfall.pipeline import drift, plots
from landfall.pipeline import s3 as s3ops
from landfall.pipeline.datagen import make_batch

pytestmark = pytest.mark.usefixtures("mlflow_beside_s3")


def _reference(settings, drift_by: float = 0.0) -> dict:
    return drift.reference_of(
        [drift.summarise([make_batch(4000, seed=5, drift=drift_by)], settings.landing, "binary")]
    )


def test_a_moved_day_is_reported_with_its_figures_and_alerted(
    s3, settings, prepared_day, alerts, monkeypatch, local_mlflow
):
    monkeypatch.setattr(drift_task, "_champion_reference", lambda name: ("7", _reference(settings)))
    day = prepared_day(make_batch(4000, seed=6, drift=1.5))
    outlet = RecordedOutlet()
    summary = drift_task.drift_report("churn", day, outlet)
    assert outlet.partitions == [day["partition"]] and outlet.extra == summary
    assert summary["verdict"] == "drifted" and summary["champion_version"] == "7" and summary["drifted"]
    bucket, _, key = summary["report_uri"].removeprefix("s3://").partition("/")
    stored = s3ops.get_json(s3, bucket, key)[0]
    assert stored["verdict"] == "drifted" and set(stored["features"]) == set(summary["psi"])
    [alert] = [a for a in alerts.of_kind("drift") if a["details"]["day"] == day["partition"]]
    assert alert["details"]["drifted"] == summary["drifted"] and "champion version 7" in alert["text"]
    # Its MLflow run: the verdict, a PSI per feature, the report and the picture of what moved.
    run = local_mlflow.get_run(summary["mlflow_run_id"])
    assert run.data.tags["landfall.verdict"] == "drifted" and run.data.tags["landfall.stage"] == "drift"
    assert {f"psi.{name}" for name in summary["psi"]} <= set(run.data.metrics)
    artifacts = {a.path for a in local_mlflow.list_artifacts(run.info.run_id, "plots")}
    assert plots.DRIFT in artifacts


def test_a_day_like_the_window_is_stable_and_alerts_nothing(settings, prepared_day, alerts, monkeypatch):
    monkeypatch.setattr(drift_task, "_champion_reference", lambda name: ("7", _reference(settings)))
    day = prepared_day(make_batch(4000, seed=8))
    stable = drift_task.drift_report("churn", day, RecordedOutlet())
    assert stable["verdict"] == "stable" and stable["mlflow_run_id"] is None  # no run: nothing to picture
    assert not [a for a in alerts.of_kind("drift") if a["details"]["day"] == day["partition"]]


def test_no_champion_or_a_champion_without_a_reference_is_said_so(settings, prepared_day, monkeypatch):
    day = prepared_day(make_batch(1000, seed=9))
    monkeypatch.setattr(drift_task, "_champion_reference", lambda name: (None, None))
    first = drift_task.drift_report("churn", day, RecordedOutlet())
    assert first["verdict"] == "no reference" and "no champion" in first["reason"]
    monkeypatch.setattr(drift_task, "_champion_reference", lambda name: ("3", None))
    older = drift_task.drift_report("churn", day, RecordedOutlet())
    assert older["verdict"] == "no reference" and "version 3 was trained before" in older["reason"]
    assert first["mlflow_run_id"] is None and older["mlflow_run_id"] is None  # nothing was compared


def test_a_failure_is_reported_as_unknown_and_never_fails_the_run(settings, prepared_day, monkeypatch):
    def mlflow_down(name):
        raise ConnectionError("MLflow is not answering")

    monkeypatch.setattr(drift_task, "_champion_reference", mlflow_down)
    outlet = RecordedOutlet()
    summary = drift_task.drift_report("churn", prepared_day(make_batch(1000, seed=9)), outlet)
    assert summary["verdict"] == "unknown" and "ConnectionError: MLflow is not answering" in summary["reason"]
    assert outlet.extra == summary
    missing = {"partition": summary["partition"], "version": "v1"}  # prepared before days had statistics
    assert drift_task.drift_report("churn", missing, RecordedOutlet())["verdict"] == "unknown"
