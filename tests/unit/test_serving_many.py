"""One scoring service, two pipelines, against a real MLflow registry (SQLite): each pipeline's champion is
served, staged, promoted and rolled back on its own routes, a client of `mlflow models serve` is
answered at `invocations`, and the root routes of a single-pipeline service are not guessed at."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from journeys import logged_trial
from landfall.pipeline import registry
from landfall.pipeline.canary import as_rows
from landfall.pipeline.datagen import make_batch
from landfall.serving.app import ServedPipeline, create_app, mlflow_rows
from landfall.serving.follower import ChampionFollower
from landfall.serving.slots import Slots

TOKEN = "t" * 40
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXPERIMENT = "landfall-serving-many-test"


@pytest.fixture
def two_pipelines(local_mlflow, settings):
    """churn and meters (the same schema here), each with its own registered model and follower."""
    served = {}
    for name in ("churn", "meters"):
        own = settings.model_copy(
            update={
                "pipeline": name,
                "mlflow": settings.mlflow.model_copy(update={"model_name": f"many-{name}"}),
            }
        )
        follower = ChampionFollower(Slots(), f"many-{name}", lambda: local_mlflow, poll_s=3600)
        served[name] = ServedPipeline(own, follower)
    return TestClient(create_app(served, TOKEN)), served


def _rows(settings, n: int = 5) -> list[dict]:
    return as_rows(make_batch(n, seed=11)[settings.landing.feature_columns])


def _promote(name: str, run_id: str, compared_with: str | None, client) -> None:
    assert registry.promote(
        f"many-{name}", run_id, f"runs:/{run_id}/model", compared_with, run_id, client
    ).moved


def test_each_pipeline_is_served_promoted_and_rolled_back_on_its_own(two_pipelines, local_mlflow, settings):
    client, served = two_pipelines
    runs = {seed: logged_trial(settings, EXPERIMENT, seed) for seed in (1, 2, 3)}
    _promote("churn", runs[1], None, local_mlflow)
    _promote("meters", runs[2], None, local_mlflow)
    for pipeline in served.values():
        pipeline.follower.sync()
    listed = client.get("/v1/models", headers=AUTH).json()["models"]
    assert listed == {  # no prediction log in this test (tests/unit/test_prediction_log.py has one)
        "churn": {"model": "many-churn", "version": "1", "run_id": runs[1], "prediction_log": None},
        "meters": {"model": "many-meters", "version": "1", "run_id": runs[2], "prediction_log": None},
    }
    meters = client.post("/v1/models/meters/predict", json={"rows": _rows(settings)}, headers=AUTH).json()
    assert meters["run_id"] == runs[2]

    # A promotion and a rollback in churn leave meters' alias and served model where they were.
    _promote("churn", runs[3], "1", local_mlflow)
    assert client.post("/v1/models/churn/activate", headers=AUTH).json()["version"] == "2"
    registry.rollback("many-churn", None, "test", "unit", local_mlflow)
    served["churn"].follower.sync()
    assert client.get("/v1/models/churn/version", headers=AUTH).json()["run_id"] == runs[1]
    assert client.get("/v1/models/meters/version", headers=AUTH).json()["run_id"] == runs[2]
    assert str(local_mlflow.get_model_version_by_alias("many-meters", "champion").version) == "1"
    assert client.get("/health").json()["serving"] == {"churn": "1", "meters": "1"}

    # The canary's staging slot is per pipeline too.
    staged = client.post("/v1/models/meters/staging", json={"run_id": runs[3]}, headers=AUTH)
    assert staged.status_code == 200
    assert served["meters"].follower.slots.staging.run_id == runs[3]
    assert served["churn"].follower.slots.staging is None


def test_with_several_pipelines_the_root_routes_do_not_pick_one(two_pipelines, settings):
    client, _ = two_pipelines
    assert client.post("/predict", json={"rows": _rows(settings)}, headers=AUTH).status_code == 404
    assert (
        client.post("/v1/models/nope/predict", json={"rows": _rows(settings)}, headers=AUTH).status_code
        == 404
    )


def test_invocations_answers_each_mlflow_scoring_payload_as_predict_does(
    two_pipelines, local_mlflow, settings
):
    client, served = two_pipelines
    _promote("churn", logged_trial(settings, EXPERIMENT, 4), None, local_mlflow)
    served["churn"].follower.sync()
    rows = _rows(settings)
    expected = client.post("/v1/models/churn/predict", json={"rows": rows}, headers=AUTH).json()
    columns = list(rows[0])
    payloads = [
        {"dataframe_records": rows},
        {"dataframe_split": {"columns": columns, "data": [[row[c] for c in columns] for row in rows]}},
        {"inputs": rows},
        {"inputs": {c: [row[c] for row in rows] for c in columns}},
    ]
    for payload in payloads:
        answer = client.post("/v1/models/churn/invocations", json=payload, headers=AUTH)
        assert answer.status_code == 200, (payload, answer.text)
        assert answer.json()["predictions"] == expected["predictions"]
        assert answer.json()["probabilities"] == expected["probabilities"]
    refused = client.post("/v1/models/churn/invocations", json={"instances": rows}, headers=AUTH)
    assert refused.status_code == 422 and "dataframe_records" in refused.json()["detail"]


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"dataframe_split": {"data": [[1]]}},
        {"dataframe_split": {"columns": ["a"], "data": 5}},
        {"dataframe_split": {"columns": ["a"], "data": [5]}},
        {"dataframe_records": 5},
        {"dataframe_records": None},
        {"inputs": 5},
        {"inputs": {"a": [1, 2], "b": [1]}},
        {"inputs": {}},
    ],
)
def test_a_payload_mlflow_would_not_accept_either_is_refused_naming_the_formats(payload):
    with pytest.raises(ValueError, match=r"JSON object|columns|one length|list of|dataframe_records"):
        mlflow_rows(payload)
