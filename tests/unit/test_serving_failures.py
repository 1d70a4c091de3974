"""The scoring service never crashes on a valid row: a model that cannot score one answers 503 naming its
version, with one alert per version; and the canary is answered by the same scoring function as /predict,
so a candidate that passes it cannot fail in service (a one-class model fails it)."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from landfall.pipeline.canary import as_rows, run_canary
from landfall.pipeline.datagen import make_batch
from landfall.pipeline.features import build_features
from landfall.serving.app import ServedPipeline, create_app
from landfall.serving.client import ModelFailed, ServingClient, ServingError
from landfall.serving.follower import ChampionFollower
from landfall.serving.slots import Slots

TOKEN = "t" * 40
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CANDIDATE = "c" * 32


class OneClassModel:
    """What an MLP fitted on rows of one class is: two probability columns, but one class. Its larger
    column is the missing class only for some rows (here: many support calls)."""

    classes_ = np.array([0])

    def predict_proba(self, features):
        second = np.where(features["support_calls"].to_numpy() > 500, 0.9, 0.1)
        return np.column_stack([1 - second, second])

    def predict(self, features):
        return self.classes_[self.predict_proba(features).argmax(axis=1)]


class BrokenModel:
    def predict_proba(self, features):
        raise IndexError("index 1 is out of bounds for axis 0 with size 1")


class Recorded:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict]] = []

    def send(self, kind: str, message: str, details: dict | None = None) -> bool:
        self.sent.append((kind, message, details or {}))
        return True


@pytest.fixture
def service(settings):
    follower = ChampionFollower(Slots(), settings.mlflow.model_name, lambda: None, poll_s=3600)
    alerts = Recorded()
    app = create_app({settings.pipeline: ServedPipeline(settings, follower)}, TOKEN, alerts=alerts)
    return TestClient(app), follower.slots, alerts


class _Through(ServingClient):
    """The deploy task's client, talking to the in-process app."""

    app: TestClient | None = None

    def _call(self, method, path, body=None, at_root=False, request_id=None):
        headers = {**AUTH, **({"X-Request-ID": request_id} if request_id else {})}
        answer = self.app.request(method, path, json=body, headers=headers)
        answer.ok = answer.is_success  # the requests.Response attribute the client reads
        return answer


def _rows(settings, n: int, support_calls: int) -> list[dict]:
    frame = make_batch(n, seed=11)[settings.landing.feature_columns]
    frame["support_calls"] = support_calls
    return as_rows(frame)


def test_a_model_that_fails_on_valid_rows_answers_503_naming_the_version_and_alerts_once(service, settings):
    client, slots, alerts = service
    slots.activate(Slots.served(BrokenModel(), "7", "a" * 32))
    for _ in range(3):
        answer = client.post("/predict", json={"rows": _rows(settings, 2, 1)}, headers=AUTH)
        assert answer.status_code == 503
        body = answer.json()
        assert body["model_failure"] is True and body["version"] == "7"
        assert "version 7 could not score the rows: IndexError" in body["detail"]
    [(kind, message, details)] = alerts.sent
    assert kind == "serving_failed" and "version 7" in message and details["version"] == "7"


def test_a_one_class_model_fails_the_canary_and_never_crashes_predict(service, settings):
    client, slots, alerts = service
    model = OneClassModel()
    canary_rows = _rows(settings, 8, 1)  # rows this model answers with its one class
    features = build_features(make_batch(8, seed=11), settings.landing).assign(support_calls=1.0)
    expected = {
        "run_id": CANDIDATE,
        "predictions": [int(p) for p in model.predict(features)],
        "probabilities": [{"0": float(q), "1": float(p)} for q, p in model.predict_proba(features)],
    }
    slots.stage(Slots.served(model, None, CANDIDATE))
    via = _Through("http://testserver", TOKEN)
    object.__setattr__(via, "app", client)
    report = run_canary(canary_rows, expected, lambda rows: via.predict_staged(CANDIDATE, rows), 2, 60_000)
    assert not report.passed and "could not score the rows" in report.reason and "[0]" in report.reason

    # Had it been promoted anyway, no valid row crashes the service: 503 naming the version.
    slots.activate(Slots.served(model, "3", CANDIDATE))
    for support_calls in (1, 900):
        answer = client.post("/predict", json={"rows": _rows(settings, 1, support_calls)}, headers=AUTH)
        assert answer.status_code == 503 and answer.json()["version"] == "3"
    with pytest.raises(ModelFailed, match="version 3"):
        via.predict(_rows(settings, 1, 900))
    assert [kind for kind, _, _ in alerts.sent] == ["serving_failed", "serving_failed"]  # candidate, v3


def test_a_service_without_a_champion_is_not_a_model_failure(service, settings):
    client, _, _ = service
    via = _Through("http://testserver", TOKEN)
    object.__setattr__(via, "app", client)
    with pytest.raises(ServingError) as raised:
        via.predict(_rows(settings, 1, 1))
    assert not isinstance(raised.value, ModelFailed) and "no champion" in str(raised.value)


class NaNModel:
    """A model whose answer is not finite for rows that fit the schema (a diverged MLP, say)."""

    classes_ = np.array([0, 1])

    def predict_proba(self, features):
        answer = np.full((len(features), 2), 0.5)
        answer[0] = [np.nan, np.inf]
        return answer


def test_a_model_answering_non_finite_probabilities_is_a_model_failure_not_bad_rows(service, settings):
    client, slots, alerts = service
    slots.activate(Slots.served(NaNModel(), "5", "b" * 32))
    for _ in range(2):
        answer = client.post("/predict", json={"rows": _rows(settings, 3, 1)}, headers=AUTH)
        assert answer.status_code == 503  # not 422: the caller's rows are fine
        body = answer.json()
        assert body["model_failure"] is True and body["version"] == "5"
        assert "version 5 could not score the rows" in body["detail"] and "non-finite" in body["detail"]
    [(kind, _, details)] = alerts.sent  # one alert, however many requests
    assert kind == "serving_failed" and details["version"] == "5"

    # The canary fails at once (the first batch), not after retrying a ServingError.
    slots.stage(Slots.served(NaNModel(), None, CANDIDATE))
    via = _Through("http://testserver", TOKEN)
    object.__setattr__(via, "app", client)
    asked = []

    def ask(rows):
        asked.append(len(rows))
        return via.predict_staged(CANDIDATE, rows)

    expected = {"run_id": CANDIDATE, "predictions": [0] * 4, "probabilities": [{"0": 0.5, "1": 0.5}] * 4}
    report = run_canary(_rows(settings, 4, 1), expected, ask, 2, 60_000)
    assert not report.passed and "non-finite" in report.reason
    assert asked == [2]
