"""`python -m landfall.serving`: the scoring service on the configured host and port."""

from __future__ import annotations

import logging
import os

import uvicorn

from landfall.core.settings import load_settings
from landfall.pipeline import registry
from landfall.serving.app import create_app
from landfall.serving.follower import ChampionFollower
from landfall.serving.slots import Slots


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = load_settings()
    token = os.environ.get("LANDFALL_SERVING_TOKEN", "")
    if len(token) < 32:
        raise SystemExit("LANDFALL_SERVING_TOKEN (32+ characters) is not set; `landfall up` generates one")
    follower = ChampionFollower(
        Slots(),
        settings.mlflow.model_name,
        registry.client,
        settings.serving.poll_interval_s,
        experiment=settings.mlflow.experiment,
    )
    follower.start()
    app = create_app(settings, follower, token)
    uvicorn.run(
        app,
        host=settings.stack.host,
        port=settings.stack.ports.serving,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
