"""`python -m landfall.serving`: the scoring service of every pipeline, on the configured host and port."""

from __future__ import annotations

import logging
import os
from functools import partial

import uvicorn

from landfall.core.settings import Settings, load_project
from landfall.pipeline import registry
from landfall.pipeline.alerts import Alerts
from landfall.pipeline.training.models import load_trial_model
from landfall.pipeline.user_code import use_code_root
from landfall.serving.app import ServedPipeline, create_app
from landfall.serving.follower import ChampionFollower
from landfall.serving.prediction_log import PredictionLog, s3_put
from landfall.serving.slots import Slots


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    project = load_project(strict=False)
    for name, problems in project.broken.items():  # the others are served; `landfall check` says more
        logging.error("pipeline %s is invalid and not served:\n%s", name, "\n".join(problems))
    token = os.environ.get("LANDFALL_SERVING_TOKEN", "")
    if len(token) < 32:
        raise SystemExit("LANDFALL_SERVING_TOKEN (32+ characters) is not set; `landfall up` generates one")
    alerts = Alerts(project.notify.webhook_url)
    pipelines = {}
    for settings in project.all_settings():
        use_code_root(settings.code_root)  # the pipeline's own estimator classes and features
        follower = ChampionFollower(
            Slots(),
            settings.mlflow.model_name,
            registry.client,
            settings.serving.poll_interval_s,
            experiment=settings.mlflow.experiment,
            load=partial(load_trial_model, trusted_types=settings.training.trusted_types),
        )
        follower.start()
        pipelines[settings.pipeline] = ServedPipeline(settings, follower, prediction_log(settings, alerts))
    app = create_app(pipelines, token, alerts)
    # A graceful stop writes the waiting predictions in the app's lifespan (`create_app`).
    uvicorn.run(
        app,
        host=project.stack.host,
        port=project.stack.ports.serving,
        log_level="warning",
        access_log=False,
    )


def prediction_log(settings: Settings, alerts: Alerts) -> PredictionLog | None:
    """The pipeline's prediction log (serving.log_predictions), its writer started."""
    serving, storage = settings.serving, settings.storage
    if not serving.log_predictions:
        return None
    return PredictionLog(
        settings.pipeline,
        settings.mlflow.model_name,
        s3_put(storage.datasets_bucket),
        storage.predictions_prefix,
        settings.landing.id_column,
        serving.log_flush_rows,
        serving.log_flush_seconds,
        serving.log_max_pending_rows,
        alerts.send,
    ).start()


if __name__ == "__main__":
    main()
