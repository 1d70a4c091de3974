"""The HTTP API of the scoring service (FastAPI): every pipeline's champion, each on its own.

    GET  /health             liveness; no credentials
    GET  /ready              readiness (Kubernetes): 200 once every pipeline's alias was read and loaded
    GET  /v1/models          each pipeline: its registered model, version and run id (null before a champion)

and per pipeline, under /v1/models/<pipeline>:

    GET  /version            {model, version, run_id} of the model answering predict; 503 before a champion
    POST /predict            {"rows": [{column: value, ...}]} -> {predictions, probabilities, version, run_id}
    POST /invocations        the payloads of MLflow's scoring server (`dataframe_records`, `dataframe_split`,
                             `inputs`): a client of `mlflow models serve` needs only the bearer token added
    POST /staging            {"run_id": ...}: load a candidate beside the champion (the canary's slot)
    POST /staging/predict    {"run_id": ..., "rows": [...]}: answered by that candidate, loaded into the
                             staging slot first if it is not there (so any replica can answer it)
    POST /activate           serve the current champion now (deploy calls it right after moving the alias)

Each answer carries an `X-Request-ID` header (the client's own when it sent one). The rows predict and
invocations answered are kept in S3 with that id (`landfall.serving.prediction_log`); the counts of the
log are in `GET /v1/models`.

With one pipeline configured the same routes also answer at the root (`/predict`, `/version`, ...), as
before pipelines.

Every call but /health and /ready needs `Authorization: Bearer <LANDFALL_SERVING_TOKEN>`, checked before
the body is read. A malformed row is a 422 that names the row and the column, never a 500. A model that
cannot score valid rows is a 503 naming the version (`model_failure`), never a 500, and an alert (one per
version and kind of failure). predict, invocations and staging/predict (the canary) answer through the
same function.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import cache
from typing import Any, NamedTuple

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.types import ASGIApp, Receive, Scope, Send

from landfall.core.settings import Settings
from landfall.pipeline.alerts import Alerts
from landfall.pipeline.features import FeatureBuilder, feature_builder
from landfall.pipeline.training.models import UntrustedModel
from landfall.serving.follower import ChampionFollower
from landfall.serving.prediction_log import PredictionLog
from landfall.serving.slots import ModelFailure, RowError, score

log = logging.getLogger(__name__)

MAX_ROWS = 10_000


class Rows(BaseModel):
    rows: list[Any] = Field(min_length=1, max_length=MAX_ROWS)


class Stage(BaseModel):
    run_id: str = Field(pattern=r"^[0-9a-f]{32}$")


class StagedRows(Rows):
    run_id: str = Field(pattern=r"^[0-9a-f]{32}$")


OPEN_PATHS = frozenset({"/health", "/ready"})


class BearerToken:
    """ASGI middleware: every path but OPEN_PATHS needs the token, checked before the body is read (a
    dependency would run after FastAPI parsed the body: an anonymous caller could still send it)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.expected = app, f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            sent = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(sent, self.expected):
                refusal = JSONResponse(
                    {"detail": "send Authorization: Bearer <LANDFALL_SERVING_TOKEN> (see `landfall env`)"},
                    status_code=401,
                )
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


class RequestId:
    """ASGI middleware: each request's id, the client's `X-Request-ID` when it sends a sane one, else a
    new one; kept in `request.state.request_id` (the prediction log) and sent back in the same header, so
    the answer body stays as it was."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = sent if REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        await self.app(scope, receive, with_id)


class ServedPipeline(NamedTuple):
    settings: Settings
    follower: ChampionFollower
    predictions: PredictionLog | None = None  # every answered row kept in S3 (serving.log_predictions)


def mlflow_rows(body: Any) -> list[Any]:
    """The rows of an MLflow scoring-server payload, as records; ValueError naming what is accepted."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    if "dataframe_records" in body:
        return _listed(body["dataframe_records"], "dataframe_records")
    if "dataframe_split" in body:
        split = body["dataframe_split"]
        if not isinstance(split, dict) or not isinstance(split.get("columns"), list):
            raise ValueError("dataframe_split needs `columns` (a list) and `data` (a list of rows)")
        columns = [str(column) for column in split["columns"]]
        data = _listed(split.get("data") or [], "dataframe_split.data")
        if not all(isinstance(row, list) and len(row) == len(columns) for row in data):
            raise ValueError(f"each row of dataframe_split.data must be a list of {len(columns)} values")
        return [dict(zip(columns, row, strict=True)) for row in data]
    if "inputs" in body:
        inputs = body["inputs"]
        if isinstance(inputs, dict):  # column -> values
            lengths = {len(values) if isinstance(values, list) else -1 for values in inputs.values()}
            if len(lengths) != 1 or -1 in lengths:
                raise ValueError("inputs as columns needs one list of values per column, all of one length")
            count = lengths.pop()
            return [{column: values[i] for column, values in inputs.items()} for i in range(count)]
        return _listed(inputs, "inputs")
    raise ValueError("send one of dataframe_records, dataframe_split or inputs (MLflow's scoring formats)")


def _listed(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a list of rows")
    return value


def create_app(pipelines: Mapping[str, ServedPipeline], token: str, alerts: Alerts | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        # The graceful stop (SIGTERM): requests are done; every waiting prediction is written now. Here,
        # not after uvicorn.run returns: uvicorn raises the captured signal again once it has shut down,
        # and the default SIGTERM handler ends the process before any code after it runs.
        logs = [p.predictions for p in pipelines.values() if p.predictions is not None]
        await asyncio.gather(*(asyncio.to_thread(kept.stop) for kept in logs))  # at once, not in turn

    app = FastAPI(
        title="Landfall scoring service", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.add_middleware(BearerToken, token=token)
    app.add_middleware(RequestId)  # outermost: a refused request has an id too
    first = next(iter(pipelines.values()), None)
    alerts = alerts or Alerts(first.settings.notify.webhook_url if first else None)
    # (model, version, run, kind of failure): one alert each, not one per request
    alerted: set[tuple[str, str | None, str, str]] = set()

    @app.exception_handler(ModelFailure)
    async def model_failed(request: Request, error: ModelFailure) -> JSONResponse:
        served, name = error.served, error.model or "?"
        detail = f"{name} {error}"
        log.error("%s %s: %s", request.method, request.url.path, detail)
        key = (name, served.version, served.run_id, error.kind)
        alert = None
        if key not in alerted:
            alerted.add(key)
            # After the answer is sent (in a thread): a slow webhook never holds the event loop.
            alert = BackgroundTask(
                alerts.send,
                "serving_failed",
                f"The scoring service answers 503: {detail}",
                {"model": name, "version": served.version, "run_id": served.run_id, "path": request.url.path},
            )
        body = {"detail": detail, "model_failure": True, "version": served.version, "run_id": served.run_id}
        return JSONResponse(body, status_code=503, background=alert)

    @app.get("/health")
    def health() -> dict[str, Any]:
        # No error text without the token: it can name hosts and runs.
        serving = {name: _version(p.follower) for name, p in pipelines.items()}
        return {"status": "ok", "serving": serving}

    @app.get("/ready")
    def ready() -> JSONResponse:
        # Not ready before the first look at every alias has loaded its model: a new pod of a rolling
        # update takes no traffic while it downloads the champions.
        if not all(p.follower.synced.is_set() for p in pipelines.values()):
            return JSONResponse({"ready": False}, status_code=503)
        return JSONResponse({"ready": True})

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        listed = {}
        for name, served_pipeline in pipelines.items():
            served = served_pipeline.follower.slots.active
            kept = served_pipeline.predictions
            listed[name] = {
                "model": served_pipeline.settings.mlflow.model_name,
                "version": served.version if served else None,
                "run_id": served.run_id if served else None,
                "prediction_log": kept.counts.as_dict() if kept else None,
            }
        return {"models": listed}

    for name, served_pipeline in pipelines.items():
        routes = _pipeline_routes(served_pipeline)
        app.include_router(routes, prefix=f"/v1/models/{name}")
        if len(pipelines) == 1:
            app.include_router(routes)
    return app


def _version(follower: ChampionFollower) -> str | None:
    served = follower.slots.active
    return served.version if served else None


def _pipeline_routes(served_pipeline: ServedPipeline) -> APIRouter:
    """One pipeline's routes: its champion, its staging slot, its schema."""
    settings, follower, predictions = served_pipeline
    slots, landing, name = follower.slots, settings.landing, settings.mlflow.model_name
    router = APIRouter()

    @cache
    def build() -> FeatureBuilder:
        """The pipeline's features function, imported at the first request (its failure is that request's
        503, naming it, and is tried again at the next)."""
        return feature_builder(settings.features, landing, settings.code_root)

    def scored(served: Any, rows: list[Any]) -> dict[str, Any]:
        """The one scoring path of predict, invocations and the canary's staging/predict."""
        try:
            return score(served, rows, landing, settings.training.task, build())
        except RowError as error:
            raise HTTPException(422, error.problems) from None
        except ModelFailure as error:
            error.model = name
            raise
        except Exception as error:  # the service's own failure on valid rows: still not a 500
            failure = ModelFailure.raised(served, error)
            failure.model = name
            raise failure from error

    def active() -> Any:
        served = slots.active
        if served is None:
            detail = f"no champion for {name} yet: nothing has been promoted"
            if follower.last_error:
                detail += f" (the last look at the registry failed: {follower.last_error})"
            raise HTTPException(503, detail)
        return served

    @router.get("/version")
    def version() -> dict[str, Any]:
        served = active()
        return {
            "model": name,
            "version": served.version,
            "run_id": served.run_id,
            "loaded_at": served.loaded_at,
        }

    # Scoring is a few milliseconds of CPU under the GIL: done on the event loop, one request at a time,
    # it is faster than in a thread pool where eight requests fight over two cores.
    def kept(request: Request, rows: list[Any], answer: dict[str, Any]) -> JSONResponse:
        """The answer, its rows queued for the prediction log first (a list append: never S3)."""
        if predictions is not None:
            try:
                predictions.record(request.state.request_id, rows, answer)
            except Exception:  # the answer is computed: a failure to keep it is logged, not a 500
                log.exception("%s: rows of request %s not kept", name, request.state.request_id)
                predictions.counts.lost_rows += len(rows)
        return JSONResponse(answer)

    @router.post("/predict")
    async def predict(body: Rows, request: Request) -> JSONResponse:
        return kept(request, body.rows, scored(active(), body.rows))

    @router.post("/invocations")
    async def invocations(request: Request) -> JSONResponse:
        try:
            rows = mlflow_rows(await request.json())
        except ValueError as error:  # also a body that is not JSON
            raise HTTPException(422, f"not an MLflow scoring payload: {error}") from None
        if not 1 <= len(rows) <= MAX_ROWS:
            raise HTTPException(422, f"send 1 to {MAX_ROWS} rows, not {len(rows)}")
        return kept(request, rows, scored(active(), rows))

    def staged(run_id: str) -> Any:
        try:
            return follower.stage(run_id)
        except UntrustedModel as error:
            raise HTTPException(422, str(error)) from None
        except Exception as error:  # MLflow or its artifact store away: the caller may retry
            raise HTTPException(
                503, f"could not load run {run_id} from the registry: {type(error).__name__}: {error}"
            ) from None

    @router.post("/staging")
    def stage(body: Stage) -> dict[str, Any]:
        started = time.perf_counter()
        staged(body.run_id)
        return {"staged": body.run_id, "load_s": round(time.perf_counter() - started, 3)}

    @router.post("/staging/predict")
    def staging_predict(body: StagedRows) -> JSONResponse:
        # On a replica other than the one /staging reached, the candidate is loaded first: `load_s`
        # says how long that took, so the canary's latency bound measures answering, not loading.
        held = slots.staging
        started = time.perf_counter()
        served = staged(body.run_id)
        load_s = 0.0 if held is served else time.perf_counter() - started
        return JSONResponse({**scored(served, body.rows), "load_s": round(load_s, 3)})

    @router.post("/activate")
    def activate() -> dict[str, Any]:
        try:
            served = follower.sync()
        except UntrustedModel as error:
            raise HTTPException(422, f"the champion cannot be served: {error}") from None
        if served is None:
            raise HTTPException(503, f"no champion for {name} yet")
        return {"model": name, "version": served.version, "run_id": served.run_id}

    return router
