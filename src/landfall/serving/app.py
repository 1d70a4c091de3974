"""The HTTP API of the scoring service (FastAPI).

    GET  /health             liveness; no credentials
    GET  /ready              readiness (Kubernetes): 200 once the alias was read and its model loaded
    GET  /version            {model, version, run_id} of the model answering /predict; 503 before a champion
    POST /predict            {"rows": [{column: value, ...}]} -> {predictions, probabilities, version, run_id}
    POST /staging            {"run_id": ...}: load a candidate beside the champion (the canary's slot)
    POST /staging/predict    {"run_id": ..., "rows": [...]}: answered by that candidate, loaded into the
                             staging slot first if it is not there (so any replica can answer it)
    POST /activate           serve the current champion now (deploy calls it right after moving the alias)

Every call but /health and /ready needs `Authorization: Bearer <LANDFALL_SERVING_TOKEN>`, checked before
the body is read. A malformed row is a 422 that names the row and the column, never a 500. A model that
cannot score valid rows is a 503 naming the version (`model_failure`), never a 500, and an alert (one per
version and kind of failure). /predict and /staging/predict (the canary) answer through the same function.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.types import ASGIApp, Receive, Scope, Send

from landfall.core.settings import Settings
from landfall.pipeline.alerts import Alerts
from landfall.pipeline.training.models import UntrustedModel
from landfall.serving.follower import ChampionFollower
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


def create_app(
    settings: Settings, follower: ChampionFollower, token: str, alerts: Alerts | None = None
) -> FastAPI:
    slots, landing, name = follower.slots, settings.landing, settings.mlflow.model_name
    alerts = alerts or Alerts(settings.notify.webhook_url)
    # (version, run, kind of failure): one alert each, not one per request
    alerted: set[tuple[str | None, str, str]] = set()
    app = FastAPI(title="Landfall scoring service", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BearerToken, token=token)

    def scored(served: Any, rows: list[Any]) -> dict[str, Any]:
        """The one scoring path of /predict and of the canary's /staging/predict."""
        try:
            return score(served, rows, landing)
        except RowError as error:
            raise HTTPException(422, error.problems) from None
        except ModelFailure:
            raise
        except Exception as error:  # the service's own failure on valid rows: still not a 500
            raise ModelFailure.raised(served, error) from error

    @app.exception_handler(ModelFailure)
    async def model_failed(request: Request, error: ModelFailure) -> JSONResponse:
        served = error.served
        detail = f"{name} {error}"
        log.error("%s %s: %s", request.method, request.url.path, detail)
        key = (served.version, served.run_id, error.kind)
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

    def active() -> Any:
        served = slots.active
        if served is None:
            detail = f"no champion for {name} yet: nothing has been promoted"
            if follower.last_error:
                detail += f" (the last look at the registry failed: {follower.last_error})"
            raise HTTPException(503, detail)
        return served

    @app.get("/health")
    def health() -> dict[str, Any]:
        served = slots.active
        # No error text without the token: it can name hosts and runs.
        return {"status": "ok", "serving": served.version if served else None}

    @app.get("/ready")
    def ready() -> JSONResponse:
        # Not ready before the first look at the alias has loaded its model: a new pod of a rolling
        # update takes no traffic while it downloads the champion.
        if not follower.synced.is_set():
            return JSONResponse({"ready": False}, status_code=503)
        return JSONResponse({"ready": True})

    @app.get("/version")
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
    @app.post("/predict")
    async def predict(body: Rows) -> JSONResponse:
        return JSONResponse(scored(active(), body.rows))

    def staged(run_id: str) -> Any:
        try:
            return follower.stage(run_id)
        except UntrustedModel as error:
            raise HTTPException(422, str(error)) from None
        except Exception as error:  # MLflow or its artifact store away: the caller may retry
            raise HTTPException(
                503, f"could not load run {run_id} from the registry: {type(error).__name__}: {error}"
            ) from None

    @app.post("/staging")
    def stage(body: Stage) -> dict[str, Any]:
        started = time.perf_counter()
        staged(body.run_id)
        return {"staged": body.run_id, "load_s": round(time.perf_counter() - started, 3)}

    @app.post("/staging/predict")
    def staging_predict(body: StagedRows) -> JSONResponse:
        # On a replica other than the one /staging reached, the candidate is loaded first: `load_s`
        # says how long that took, so the canary's latency bound measures answering, not loading.
        held = slots.staging
        started = time.perf_counter()
        served = staged(body.run_id)
        load_s = 0.0 if held is served else time.perf_counter() - started
        return JSONResponse({**scored(served, body.rows), "load_s": round(load_s, 3)})

    @app.post("/activate")
    def activate() -> dict[str, Any]:
        try:
            served = follower.sync()
        except UntrustedModel as error:
            raise HTTPException(422, f"the champion cannot be served: {error}") from None
        if served is None:
            raise HTTPException(503, f"no champion for {name} yet")
        return {"model": name, "version": served.version, "run_id": served.run_id}

    return app
