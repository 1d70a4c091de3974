"""The preprocess DAG's drift task: a prepared partition's statistics against the reference the champion's
run logged (its training window's), as a `drift_report` event, a JSON beside the partition, and a
`drift` alert naming the features that moved. It never fails the run: what cannot be computed is
reported as `unknown`, never as no drift."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from landfall.core.settings import get_settings

log = logging.getLogger(__name__)

REFERENCE_ARTIFACT = "drift/reference_statistics.json"
"""Where a trained run keeps its window's statistics (`landfall.airflow.tasks.train`)."""


def drift_report(pipeline: str, published: dict[str, Any], outlet_event: Any) -> dict[str, Any]:
    from landfall.airflow.tasks.ingest import s3_client
    from landfall.pipeline import s3 as s3ops
    from landfall.pipeline.alerts import Alerts
    from landfall.pipeline.drift import compare
    from landfall.pipeline.keys import drift_report_key

    settings = get_settings(pipeline)
    partition, bucket = str(published["partition"]), settings.storage.datasets_bucket
    s3 = s3_client(settings)
    champion: str | None = None
    reference: dict[str, Any] | None = None
    day: dict[str, Any] | None = None
    try:
        uris = published.get("statistics_uris") or [published.get("statistics_uri")]
        day = statistics_at(s3, [uri for uri in uris if uri])  # an hourly day: its hours merged
        champion, reference = _champion_reference(settings.mlflow.model_name)
        if day is None:
            report = {"verdict": "unknown", "reason": "the day has no statistics (see its preprocess log)"}
        elif champion is not None and reference is None:
            reason = f"champion version {champion} was trained before runs kept drift statistics"
            report = {"verdict": "no reference", "reason": reason}
        else:
            report = compare(reference, day, settings.landing, settings.monitoring).as_dict()
    except Exception as error:  # monitoring: reported, never the reason a run fails
        log.exception("Drift of %s not computed", partition)
        report = {
            "verdict": "unknown",
            "reason": f"drift could not be computed: {type(error).__name__}: {error}",
        }
    target = drift_report_key(settings.storage, partition, str(published["version"]))
    s3ops.put_bytes(s3, bucket, target, json.dumps(report).encode(), ContentType="application/json")
    # After the report is in S3: an on_drift train run waiting for it need not wait for MLflow too. Only a
    # day that moved gets a run and its picture: a stable day's figures are in its event and its report,
    # and a run per day would cost every landing an MLflow round trip and a drawing.
    run_id = None
    if report["verdict"] == "drifted" and reference is not None and day is not None:
        run_id = _log_drift_run(settings, partition, champion, reference, day, report)
    features = report.get("features") or {}
    summary = {
        "partition": partition,
        "champion_version": champion,
        "verdict": report["verdict"],
        "reason": report["reason"],
        "drifted": report.get("drifted", []),
        "problems": report.get("problems", {}),
        "psi": {name: figures.get("psi") for name, figures in features.items()},
        "label_psi": (report.get("label") or {}).get("psi"),
        "report_uri": f"s3://{bucket}/{target}",
        "mlflow_run_id": run_id,
    }
    outlet_event.add_partitions([partition])
    outlet_event.extra = summary
    log.info(
        "Drift of %s against champion %s: %s (%s)", partition, champion, report["verdict"], report["reason"]
    )
    if report["verdict"] == "drifted":
        Alerts(settings.notify.webhook_url).send(
            "drift",
            f"{pipeline} {partition} drifted from the training window of champion version {champion}: "
            f"{report['reason']}",
            {"pipeline": pipeline, "day": partition, "drifted": summary["drifted"], "psi": summary["psi"]},
        )
    return summary


def statistics_at(s3: Any, uris: list[str]) -> dict[str, Any] | None:
    """The statistics files at `uris` (days, or an hourly day's hours) merged into one
    (`drift.reference_of`); a missing file is left out and counted."""
    from landfall.pipeline import s3 as s3ops
    from landfall.pipeline.drift import reference_of

    days = []
    for uri in uris:
        bucket, _, key = str(uri).removeprefix("s3://").partition("/")
        found = s3ops.get_json(s3, bucket, key)
        days.append(found[0] if found else None)
    return reference_of(days)


def _champion_reference(model_name: str) -> tuple[str | None, dict[str, Any] | None]:
    """(champion version, its run's reference statistics); a champion trained before runs kept one has
    none, and neither has a model with no champion yet."""
    import mlflow

    from landfall.pipeline import registry

    champion = registry.champion(model_name, registry.client())
    if champion is None:
        return None, None
    try:
        return str(champion.version), mlflow.artifacts.load_dict(
            f"runs:/{champion.run_id}/{REFERENCE_ARTIFACT}"
        )
    except Exception as error:  # no such artifact
        log.warning("Champion version %s has no drift reference (%s)", champion.version, error)
        return str(champion.version), None


def _log_drift_run(
    settings: Any,
    partition: str,
    champion: str | None,
    reference: dict[str, Any],
    day: dict[str, Any],
    report: dict[str, Any],
) -> str | None:
    """One MLflow run per day that drifted, in the pipeline's experiment: the PSI (and KS) of each feature as
    metrics, the verdict, the report, and one picture of the drifting features, reference vs day. Never
    fails the report: a run that cannot be logged is left out and said in the log."""
    import mlflow

    from landfall.pipeline.plots import DRIFT, drift_figure
    from landfall.pipeline.training.models import PIPELINE_TAGS
    from landfall.pipeline.training.trainer import experiment_id

    tags = {
        **PIPELINE_TAGS,
        "landfall.stage": "drift",
        "landfall.partition": partition,
        "landfall.verdict": report["verdict"],
        "landfall.champion_version": str(champion),
    }
    try:
        client = mlflow.MlflowClient()
        run = client.create_run(
            experiment_id(settings.mlflow.experiment), run_name=f"drift {partition}", tags=tags
        )
        run_id = run.info.run_id
        try:
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            metrics = [
                Metric(f"{figure}.{name}", float(figures[figure]), now, 0)
                for name, figures in report["features"].items()
                for figure in ("psi", "ks", "js")
                if isinstance(figures.get(figure), (int, float))
            ]
            client.log_batch(run_id, metrics=metrics[:1000])  # one request (MLflow takes up to 1,000)
            client.log_dict(run_id, report, "drift/drift_report.json")
            client.log_figure(run_id, drift_figure(reference, day, report, partition), DRIFT)
        finally:
            client.set_terminated(run_id)
        return run_id
    except Exception as error:  # monitoring: the picture is not worth failing the report for
        log.warning("Drift run of %s not logged to MLflow: %s", partition, error)
        return None
