"""The scoring service in-process (FastAPI's test client) against a real MLflow registry (SQLite): it
serves the champion, names the version in every answer, swaps versions without mis-serving a request,
stages candidates for the canary, and answers bad input with a 422 that names the problem."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient

from journeys import logged_trial, positive
from landfall.pipeline import registry
from landfall.pipeline.canary import as_rows
from landfall.pipeline.datagen import make_batch
from landfall.pipeline.features import build_features
from landfall.pipeline.training.models import load_trial_model
from landfall.serving.app import ServedPipeline, create_app
from landfall.serving.follower import ChampionFollower
from landfall.serving.slots import Slots

NAME = "landfall-churn-serving-test"
EXPERIMENT = "landfall-serving-test"
TOKEN = "t" * 40
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def service(local_mlflow, settings):
    settings = settings.model_copy(update={"mlflow": settings.mlflow.model_copy(update={"model_name": NAME})})
    follower = ChampionFollower(Slots(), NAME, lambda: local_mlflow, poll_s=3600, experiment=EXPERIMENT)
    app = create_app({settings.pipeline: ServedPipeline(settings, follower)}, TOKEN)
    return TestClient(app), follower, settings


def _promote(run_id: str, compared_with: str | None, client) -> None:
    assert registry.promote(NAME, run_id, f"runs:/{run_id}/model", compared_with, run_id, client).moved


def _rows(settings, n: int = 20, seed: int = 7) -> list[dict]:
    return as_rows(make_batch(n, seed=seed)[settings.landing.feature_columns])


def test_before_any_promotion_the_service_answers_503_saying_so(service, settings):
    client, _, _ = service
    answer = client.post("/predict", json={"rows": _rows(settings)}, headers=AUTH)
    assert answer.status_code == 503 and "no champion" in answer.json()["detail"]
    assert client.get("/health").json()["serving"] == {settings.pipeline: None}


def test_every_call_but_health_and_ready_needs_the_token_before_its_body_is_read(service, settings):
    client, follower, _ = service
    follower.last_error = "ConnectionError: mlflow.internal:5000 refused"
    health = client.get("/health")
    assert health.status_code == 200 and "mlflow.internal" not in health.text  # no detail without the token
    assert client.get("/ready").status_code == 503  # the alias has not been read yet
    for method, path in (
        ("get", "/version"),
        ("post", "/predict"),
        ("post", "/activate"),
        ("post", "/staging"),
        ("post", "/staging/predict"),
        ("get", "/nowhere"),
    ):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            assert getattr(client, method)(path, headers=headers).status_code == 401
    # A malformed body from an anonymous caller is refused for the token, not parsed.
    anonymous = client.post("/predict", content=b"{not json", headers={"Content-Type": "application/json"})
    assert anonymous.status_code == 401


def test_it_is_ready_once_the_alias_was_read_and_its_model_loaded(service, local_mlflow):
    client, follower, settings = service
    _promote(logged_trial(settings, EXPERIMENT, 1), None, local_mlflow)
    assert client.get("/ready").status_code == 503
    follower.start()
    try:
        assert follower.synced.wait(60)
    finally:
        follower.stop()
    assert client.get("/ready").json() == {"ready": True}
    assert client.get("/version", headers=AUTH).json()["version"] == "1"


def test_it_serves_the_champion_names_its_version_and_follows_promotion_and_rollback(service, local_mlflow):
    client, follower, settings = service
    first, second = logged_trial(settings, EXPERIMENT, 1), logged_trial(settings, EXPERIMENT, 2)
    rows = _rows(settings)
    _promote(first, None, local_mlflow)
    assert client.post("/activate", headers=AUTH).json()["version"] == "1"
    answer = client.post("/predict", json={"rows": rows}, headers=AUTH).json()
    assert (answer["version"], answer["run_id"]) == ("1", first)
    features = build_features(make_batch(20, seed=7), settings.landing)
    expected = load_trial_model(local_mlflow, first, None).predict_proba(features)[:, 1]
    np.testing.assert_allclose(positive(answer), expected, atol=1e-12)
    assert set(answer["probabilities"][0]) == {"0", "1"}
    assert answer["predictions"] == [int(p > 0.5) for p in expected]

    _promote(second, "1", local_mlflow)
    follower.sync()  # what the poll thread does every serving.poll_interval_s
    assert client.get("/version", headers=AUTH).json()["version"] == "2"
    registry.rollback(NAME, None, "test", "unit", local_mlflow)
    follower.sync()
    assert client.post("/predict", json={"rows": rows}, headers=AUTH).json()["version"] == "1"


def test_a_switch_under_load_answers_every_request_with_exactly_one_version(service, local_mlflow):
    """Requests keep coming while the champion moves back and forth: each answer is the old or the new
    version's own predictions, and names the version that computed them."""
    client, follower, settings = service
    runs = [logged_trial(settings, EXPERIMENT, seed) for seed in (3, 4)]
    rows = _rows(settings, 50, seed=9)
    features = build_features(make_batch(50, seed=9), settings.landing)
    truth = {
        run: list(load_trial_model(local_mlflow, run, None).predict_proba(features)[:, 1]) for run in runs
    }
    _promote(runs[0], None, local_mlflow)
    follower.sync()
    answers, errors, stop = [], [], threading.Event()

    def ask() -> None:
        while not stop.is_set():
            response = client.post("/predict", json={"rows": rows}, headers=AUTH)
            (answers if response.status_code == 200 else errors).append(response.json())

    askers = [threading.Thread(target=ask) for _ in range(4)]
    for thread in askers:
        thread.start()
    _promote(runs[1], "1", local_mlflow)
    follower.sync()
    registry.rollback(NAME, None, "flip", "unit", local_mlflow)
    follower.sync()
    stop.set()
    for thread in askers:
        thread.join()
    assert errors == []
    assert {a["version"] for a in answers} == {"1", "2"}
    for answer in answers:
        assert positive(answer) == pytest.approx(truth[runs[int(answer["version"]) - 1]], abs=1e-12)


def test_malformed_rows_get_a_422_naming_the_row_and_the_column(service, local_mlflow):
    client, follower, settings = service
    _promote(logged_trial(settings, EXPERIMENT, 1), None, local_mlflow)
    follower.sync()
    good = _rows(settings, 3)
    bad = [
        good[0],
        {**good[1], "tenure_months": "ten"},
        {k: v for k, v in good[2].items() if k != "monthly_spend"},
        {**good[0], "contract_type": "weekly"},
        "not an object",
        {**good[1], "support_calls": float("nan")},
        {**good[2], "usage_hours": -1.0},  # below the schema's minimum (and a derived ratio's pole)
        {**good[0], "late_payments": 2**70},  # beyond int64 and float's exactness
        {**good[1], "support_calls": 2.5},  # not a whole number
        {**good[2], "tenure_months": True},
        {**good[0], "contract_type": {"nested": "object"}},
        {**good[1], "monthly_spend": 10**400},  # too large for a float at all
    ]
    # NaN is not JSON: a client that sends it gets a 422 too, from the parser.
    response = client.post(
        "/predict", content=_json(bad), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    problems = {
        (p["row"], p["column"]) for p in response.json()["detail"] if isinstance(p, dict) and "row" in p
    }
    assert {
        (1, "tenure_months"),
        (2, "monthly_spend"),
        (3, "contract_type"),
        (4, None),
        (6, "usage_hours"),
        (7, "late_payments"),
        (8, "support_calls"),
        (9, "tenure_months"),
        (10, "contract_type"),
        (11, "monthly_spend"),
    } <= problems
    # Each alone is a 422 too (not hidden behind the others), never a 500.
    for row in bad[6:]:
        alone = client.post(
            "/predict", content=_json([row]), headers={**AUTH, "Content-Type": "application/json"}
        )
        assert alone.status_code == 422, (row, alone.text)
    assert client.post("/predict", json={"rows": []}, headers=AUTH).status_code == 422
    assert client.post("/predict", json={"rows": good * 4000}, headers=AUTH).status_code == 422  # > 10,000
    assert (
        client.post(
            "/predict", content=b"{not json", headers={**AUTH, "Content-Type": "application/json"}
        ).status_code
        == 422
    )


def _json(rows: list) -> bytes:
    import json

    return json.dumps({"rows": rows}).encode()  # json.dumps writes NaN as the bare token NaN


def test_a_candidate_is_staged_beside_the_champion_and_a_foreign_run_is_refused(service, local_mlflow):
    client, follower, settings = service
    champion, candidate = logged_trial(settings, EXPERIMENT, 1), logged_trial(settings, EXPERIMENT, 2)
    foreign = logged_trial(settings, EXPERIMENT, 3, tags={"landfall.stage": "trial"})
    _promote(champion, None, local_mlflow)
    follower.sync()
    rows = _rows(settings)
    staged = client.post("/staging/predict", json={"run_id": candidate, "rows": rows}, headers=AUTH).json()
    assert (staged["run_id"], staged["version"]) == (candidate, None)
    assert staged["load_s"] > 0  # this replica had to load it first: the canary does not count that
    again = client.post("/staging/predict", json={"run_id": candidate, "rows": rows}, headers=AUTH).json()
    assert again["load_s"] == 0
    served = client.post("/predict", json={"rows": rows}, headers=AUTH).json()
    assert served["run_id"] == champion  # staging never touches what /predict answers
    refused = client.post("/staging", json={"run_id": foreign}, headers=AUTH)
    assert refused.status_code == 422 and "not a trial of this pipeline" in refused.json()["detail"]
    # Promoting the staged candidate reuses the loaded model and clears the slot.
    _promote(candidate, "1", local_mlflow)
    follower.sync()
    assert follower.slots.staging is None and follower.slots.active.run_id == candidate
