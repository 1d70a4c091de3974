"""The scoring service keeps what it answered: every row of predict and invocations (never the canary's),
with the request id the client sees in `X-Request-ID`, written as parquet in the background by rows or
by time, kept through an S3 outage (counted, alerted once), written on a graceful stop."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from journeys import logged_trial
from landfall.pipeline import registry
from landfall.pipeline.canary import as_rows
from landfall.pipeline.datagen import make_batch
from landfall.serving.app import ServedPipeline, create_app
from landfall.serving.follower import ChampionFollower
from landfall.serving.prediction_log import PredictionLog, read_log
from landfall.serving.slots import Slots

NAME = "landfall-churn-log-test"
EXPERIMENT = "landfall-log-test"
TOKEN = "t" * 40
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Store:
    """What S3 would hold; `down` makes every put fail as an unreachable endpoint does."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.down = False
        self.lock = threading.Lock()

    def put(self, key: str, body: bytes) -> None:
        if self.down:
            raise ConnectionError("S3 endpoint unreachable")
        with self.lock:
            self.files[key] = body

    def records(self) -> list[dict]:
        with self.lock:
            return [record for key in sorted(self.files) for record in read_log(self.files[key])]


def _log(
    store: Store, flush_rows: int = 1000, flush_seconds: float = 3600, max_pending: int = 10_000, alert=None
):
    return PredictionLog(
        "churn",
        NAME,
        store.put,
        "churn/predictions",
        "customer_id",
        flush_rows,
        flush_seconds,
        max_pending,
        alert,
    )


def _answer(rows: list[dict], version: str = "3") -> dict:
    return {
        "predictions": [index % 2 for index in range(len(rows))],
        "probabilities": [{"0": 0.25, "1": 0.75} for _ in rows],
        "version": version,
        "run_id": "a" * 32,
    }


def _rows(n: int, seed: int = 7) -> list[dict]:
    return as_rows(make_batch(n, seed=seed).drop(columns=["churned"]))


def _wait(check, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return found


def test_rows_are_written_once_flush_rows_wait_each_with_its_request_and_answer():
    store = Store()
    log = _log(store, flush_rows=50).start()
    try:
        rows = _rows(30)
        log.record("req-1", rows, _answer(rows))
        time.sleep(0.3)
        assert store.files == {}  # 30 < 50 and no time has passed
        log.record("req-2", rows, _answer(rows))
        written = _wait(lambda: store.records())
    finally:
        log.stop()
    assert len(written) == 60 and log.counts.written_rows == 60 and log.counts.pending_rows == 0
    # One file (two when the rows straddle midnight UTC: one per day of answer).
    assert 1 <= len(store.files) <= 2
    assert all(k.startswith("churn/predictions/date=") and k.endswith(".parquet") for k in store.files)
    first = written[0]
    assert (first["request_id"], first["pipeline"], first["model_version"]) == ("req-1", "churn", "3")
    assert first["row"] == rows[0] and first["row_id"] == str(rows[0]["customer_id"])
    assert first["prediction"] == 0 and first["probabilities"] == {"0": 0.25, "1": 0.75}
    assert [r["request_id"] for r in written] == ["req-1"] * 30 + ["req-2"] * 30


def test_a_quiet_service_writes_what_waits_after_flush_seconds():
    store = Store()
    log = _log(store, flush_rows=1000, flush_seconds=0.3).start()
    try:
        started = time.monotonic()
        log.record("r", _rows(2), _answer(_rows(2)))
        _wait(lambda: store.files)
        assert 0.25 <= time.monotonic() - started < 5
    finally:
        log.stop()


def test_an_s3_outage_keeps_the_rows_alerts_once_and_writes_them_when_it_ends():
    store, alerts = Store(), []
    log = _log(store, flush_rows=1000, alert=lambda kind, text, details: alerts.append((kind, text)))
    store.down = True
    for n in range(3):
        log.record(f"r{n}", _rows(10, seed=n), _answer(_rows(10, seed=n)))
        assert log.flush() == 0
    assert log.counts.failed_writes == 3 and log.counts.pending_rows == 30 and log.counts.lost_rows == 0
    assert [kind for kind, _ in alerts] == ["prediction_log_failed"]  # one alert per outage
    assert "S3 endpoint unreachable" in alerts[0][1] and "log_max_pending_rows" in alerts[0][1]
    store.down = False
    assert log.flush() == 30
    assert [r["request_id"] for r in store.records()] == ["r0"] * 10 + ["r1"] * 10 + ["r2"] * 10


def test_during_an_outage_the_writer_waits_flush_seconds_between_tries():
    store = Store()
    store.down = True
    log = _log(store, flush_rows=1, flush_seconds=0.5).start()
    try:
        for n in range(20):  # always "full": a writer without a back-off would try S3 in a loop
            log.record(f"r{n}", _rows(1, seed=n), _answer(_rows(1, seed=n)))
        time.sleep(1.2)
        assert 1 <= log.counts.failed_writes <= 6, log.counts  # up to 3 tries, 2 files each at midnight
        store.down = False
        _wait(lambda: log.counts.written_rows == 20)
    finally:
        log.stop()


def test_beyond_max_pending_rows_the_oldest_are_dropped_and_counted():
    store = Store()
    log = _log(store, max_pending=25)
    store.down = True
    for n in range(3):
        log.record(f"r{n}", _rows(10, seed=n), _answer(_rows(10, seed=n)))
    assert log.counts.lost_rows == 5 and log.counts.pending_rows == 25
    store.down = False
    log.flush()
    ids = [r["request_id"] for r in store.records()]
    assert ids == ["r0"] * 5 + ["r1"] * 10 + ["r2"] * 10  # the newest are the ones kept


def test_a_graceful_stop_writes_every_waiting_row_and_counts_any_recorded_after_it():
    store = Store()
    log = _log(store, flush_rows=10_000, flush_seconds=3600).start()
    log.record("last", _rows(7), _answer(_rows(7)))
    log.stop()
    assert len(store.records()) == 7 and log.counts.written_rows == 7
    log.record("too-late", _rows(2), _answer(_rows(2)))
    assert log.counts.lost_rows == 2 and log.counts.pending_rows == 0


def test_a_batch_larger_than_what_is_kept_is_refused_in_config():
    from pydantic import ValidationError

    from landfall.core.serving_settings import ServingSettings

    with pytest.raises(
        ValidationError, match=r"log_flush_rows \(5000\) must not exceed serving\.log_max_pending_rows"
    ):
        ServingSettings(log_flush_rows=5000, log_max_pending_rows=1000)


@pytest.fixture
def service(local_mlflow, settings):
    settings = settings.model_copy(update={"mlflow": settings.mlflow.model_copy(update={"model_name": NAME})})
    follower = ChampionFollower(Slots(), NAME, lambda: local_mlflow, poll_s=3600, experiment=EXPERIMENT)
    store = Store()
    log = _log(store, flush_rows=1)  # not started: the test flushes
    app = create_app({settings.pipeline: ServedPipeline(settings, follower, log)}, TOKEN)
    return TestClient(app), follower, settings, store, log


def test_the_service_keeps_answered_rows_under_the_request_id_it_sends_back(service, local_mlflow):
    client, follower, settings, store, log = service
    run_id = logged_trial(settings, EXPERIMENT, 1)
    assert registry.promote(NAME, run_id, f"runs:/{run_id}/model", None, run_id, local_mlflow).moved
    follower.sync()
    rows = as_rows(make_batch(4, seed=3)[settings.landing.feature_columns])

    mine = client.post("/predict", json={"rows": rows}, headers={**AUTH, "X-Request-ID": "client-42"})
    assert mine.headers["x-request-id"] == "client-42"
    given = client.post("/invocations", json={"dataframe_records": rows[:2]}, headers=AUTH)
    generated = given.headers["x-request-id"]
    assert len(generated) == 32 and generated != "client-42"
    hostile = client.post(
        "/predict", json={"rows": rows[:1]}, headers={**AUTH, "X-Request-ID": "a b;c=" * 30}
    )
    assert hostile.headers["x-request-id"] != "a b;c=" * 30  # not a sane id: replaced, not echoed
    client.post("/staging/predict", json={"run_id": run_id, "rows": rows}, headers=AUTH)  # the canary's
    assert set(mine.json()) == {"predictions", "probabilities", "version", "run_id"}  # the body as before

    log.flush()
    written = store.records()
    assert [r["request_id"] for r in written] == ["client-42"] * 4 + [generated] * 2 + [
        hostile.headers["x-request-id"]
    ]
    assert [r["prediction"] for r in written[:4]] == mine.json()["predictions"]
    assert [r["row_id"] for r in written[:4]] == [str(row["customer_id"]) for row in rows]
    assert all(r["model_version"] == "1" and r["run_id"] == run_id for r in written)
    counts = client.get("/v1/models", headers=AUTH).json()["models"][settings.pipeline]["prediction_log"]
    assert counts["written_rows"] == 7 and counts["lost_rows"] == 0
    refused = client.post("/predict", json={"rows": rows}, headers={"X-Request-ID": "anon"})
    assert refused.status_code == 401 and refused.headers["x-request-id"] == "anon"


def test_the_service_writes_the_waiting_rows_when_it_stops_gracefully(service, local_mlflow):
    """The lifespan's end (uvicorn's graceful stop on SIGTERM) writes what waits: uvicorn raises the
    signal again after it shut down, so code after `uvicorn.run` would never run."""
    client, follower, settings, store, log = service
    log.flush_rows = 10_000  # nothing is written before the stop
    run_id = logged_trial(settings, EXPERIMENT, 1)
    assert registry.promote(NAME, run_id, f"runs:/{run_id}/model", None, run_id, local_mlflow).moved
    follower.sync()
    rows = as_rows(make_batch(5, seed=4)[settings.landing.feature_columns])
    with TestClient(client.app) as running:
        assert running.post("/predict", json={"rows": rows}, headers=AUTH).status_code == 200
        assert store.files == {}
    assert [r["row_id"] for r in store.records()] == [str(row["customer_id"]) for row in rows]
