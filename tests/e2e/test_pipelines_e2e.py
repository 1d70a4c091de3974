"""Two pipelines on one stack, through the real scheduler, triggerer and scoring service.

A pipeline added to the test stack's config file (its own schema, id, label and prefixes; no change to
the package) gets its chain, trains, is promoted and is served after `up` applies the change; a
quarantine in it stays under its own prefix; and the churn pipeline's alias and served version are
where they were.
"""

from __future__ import annotations

import os
from datetime import date

import pytest
import yaml

from config_files import METERS_LANDING
from journeys import CHURN, TIMEOUT_S, partition_events, unique_day
from landfall.core.settings import config_file, load_project
from landfall.ops.follow import follow_chain, follow_landing
from landfall.ops.landings import land_day
from landfall.pipeline import s3 as s3ops
from landfall.pipeline.datagen import make_corrupt, sample_batch, to_parquet
from landfall.pipeline.keys import raw_head_key

pytestmark = pytest.mark.stack

# Its own schema, id, label and prefixes (defaulted under meters/); a gate its model clears.
METERS = {"landing": yaml.safe_load(METERS_LANDING), "deploy": {"min_score": 0.8}}


@pytest.fixture(scope="module")
def meters(launcher):
    """The stack with a `meters` pipeline added to its config and applied by `up`; churn alone after."""
    stack = launcher
    stack.up()
    os.environ.update(stack.environment())
    path = config_file()  # the test stack's own copy (tests/conftest.py), never config/landfall.yaml
    original = path.read_text()
    config = yaml.safe_load(original)
    config["pipelines"]["meters"] = METERS
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        stack.up()  # what `landfall up` does on a running stack: pools, dag-processor, triggerer, serving
        yield load_project().settings_for("meters")
    finally:
        path.write_text(original)
        stack.up()


def _client(stack, pipeline: str | None = None):
    from landfall.serving.client import ServingClient

    return ServingClient(stack.ctx.serving_url, stack.state.secrets().serving_token, pipeline=pipeline)


def _served(stack, pipeline: str) -> dict | None:
    return _client(stack, pipeline).version()


def _champion(name: str) -> str | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return str(MlflowClient().get_model_version_by_alias(name, "champion").version)
    except MlflowException:
        return None


def test_a_pipeline_added_to_the_config_trains_is_promoted_and_served_after_up(launcher, meters, settings):
    stack, names = launcher, meters.names
    api, s3 = stack.api(), stack.s3_client()
    churn_served, churn_champion = _served(stack, "churn"), _champion(settings.mlflow.model_name)

    day = unique_day(2800)
    body = to_parquet(sample_batch(meters.landing, 5000, seed=2801))
    landed = land_day(s3, meters.storage, date.fromisoformat(day), body)
    assert landed.key.startswith("meters/landing/")
    ingest = follow_landing(api, landed.key, landed.etag, timeout_s=TIMEOUT_S, chain=names)
    assert ingest.outcome == "ingested", ingest.tasks
    assert ingest.dag_id == "landfall_meters_ingest"
    chain = follow_chain(api, day, ingest.queued_at, timeout_s=TIMEOUT_S, chain=names)
    assert [run.dag_id for run in chain] == list(names.after_ingest)
    assert chain[-1].tasks["promote"] == "success", [(run.dag_id, run.tasks) for run in chain]

    # Its own model, alias and served version; its data under its own prefixes only.
    served = _served(stack, "meters")
    assert served["model"] == "landfall-meters" and served["version"] == _champion("landfall-meters") == "1"
    bucket = meters.storage.datasets_bucket
    assert s3ops.get_json(s3, bucket, raw_head_key(meters.storage, day)) is not None
    assert s3ops.get_json(s3, bucket, raw_head_key(settings.storage, day)) is None
    assert partition_events(api, CHURN.raw, day) == []
    models = _client(stack).models()
    assert set(models) == {"churn", "meters"} and models["meters"]["version"] == "1"

    # A bad meters file is quarantined under meters' prefix, named in meters' quarantine events.
    bad_day = unique_day(2900)
    bad = land_day(s3, meters.storage, date.fromisoformat(bad_day), make_corrupt("schema", 7, meters.landing))
    refused = follow_landing(api, bad.key, bad.etag, timeout_s=TIMEOUT_S, chain=names)
    assert refused.outcome == "quarantined"
    assert s3ops.list_keys(s3, bucket, f"{meters.storage.quarantine_prefix}/{bad_day}/")
    assert not s3ops.list_keys(s3, bucket, f"{settings.storage.quarantine_prefix}/{bad_day}/")

    # Nothing of churn moved.
    assert _champion(settings.mlflow.model_name) == churn_champion
    assert _served(stack, "churn") == churn_served
