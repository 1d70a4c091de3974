"""The HTTP API of the scoring service (FastAPI).

    GET  /health             liveness; no credentials
    GET  /version            {model, version, run_id} of the model answering /predict; 503 before a champion
    POST /predict            {"rows": [{column: value, ...}]} -> {predictions, probabilities, version, run_id}
    POST /staging            {"run_id": ...}: load a candidate beside the champion (the canary's slot)
    POST /staging/predict    {"run_id": ..., "rows": [...]}: answered by that candidate, loaded into the
                             staging slot first if it is not there (so any replica can answer it)
    POST /activate           serve the current champion now (deploy calls it right after moving the alias)

Every call but /health needs `Authorization: Bearer <LANDFALL_SERVING_TOKEN>`. A malformed row is a 422
that names the row and the column, never a 500.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from landfall.core.settings import Settings
from landfall.pipeline.training.models import UntrustedModel
from landfall.serving.follower import ChampionFollower
from landfall.serving.slots import RowError, score

MAX_ROWS = 10_000


class Rows(BaseModel):
    rows: list[Any] = Field(min_length=1, max_length=MAX_ROWS)


class Stage(BaseModel):
    run_id: str = Field(pattern=r"^[0-9a-f]{32}$")


class StagedRows(Rows):
    run_id: str = Field(pattern=r"^[0-9a-f]{32}$")


def create_app(settings: Settings, follower: ChampionFollower, token: str) -> FastAPI:
    slots, landing, name = follower.slots, settings.landing, settings.mlflow.model_name
    app = FastAPI(title="Landfall scoring service", docs_url=None, redoc_url=None, openapi_url=None)

    def authorized(authorization: str = Header(default="")) -> None:
        if not hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode()):
            raise HTTPException(
                401, "send Authorization: Bearer <LANDFALL_SERVING_TOKEN> (see `landfall env`)"
            )

    def answer(served: Any, rows: list[Any]) -> JSONResponse:
        try:
            return JSONResponse(score(served, rows, landing))
        except RowError as error:
            return JSONResponse({"detail": error.problems}, status_code=422)

    def active() -> Any:
        served = slots.active
        if served is None:
            detail = f"no champion for {name} yet: nothing has been promoted"
            if follower.last_error:
                detail += f" (the registry is not reachable: {follower.last_error})"
            raise HTTPException(503, detail)
        return served

    @app.get("/health")
    def health() -> dict[str, Any]:
        served = slots.active
        return {
            "status": "ok",
            "serving": served.version if served else None,
            "registry_error": follower.last_error,
        }

    @app.get("/version", dependencies=[Depends(authorized)])
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
    @app.post("/predict", dependencies=[Depends(authorized)])
    async def predict(body: Rows) -> JSONResponse:
        return answer(active(), body.rows)

    def staged(run_id: str) -> Any:
        try:
            return follower.stage(run_id)
        except UntrustedModel as error:
            raise HTTPException(422, str(error)) from None

    @app.post("/staging", dependencies=[Depends(authorized)])
    def stage(body: Stage) -> dict[str, Any]:
        started = time.perf_counter()
        staged(body.run_id)
        return {"staged": body.run_id, "load_s": round(time.perf_counter() - started, 3)}

    @app.post("/staging/predict", dependencies=[Depends(authorized)])
    def staging_predict(body: StagedRows) -> JSONResponse:
        return answer(staged(body.run_id), body.rows)

    @app.post("/activate", dependencies=[Depends(authorized)])
    def activate() -> dict[str, Any]:
        served = follower.sync()
        if served is None:
            raise HTTPException(503, f"no champion for {name} yet")
        return {"model": name, "version": served.version, "run_id": served.run_id}

    return app
