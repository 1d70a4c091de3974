"""A client for the scoring service (deploy's canary and activation, `landfall rollback`, the load test)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests

from landfall.pipeline.canary import ModelCannotScore


class ServingError(RuntimeError):
    pass


class ModelFailed(ServingError, ModelCannotScore):
    """The service is up but the model could not score the rows (its 503 with `model_failure`): not a
    service that is away, so not worth retrying."""


@dataclass(frozen=True)
class ServingClient:
    url: str
    token: str
    timeout_s: float = 30.0
    # The pipeline whose model this client talks to (its routes are under /v1/models/<pipeline>); None:
    # the routes at the root, which a service with one pipeline answers.
    pipeline: str | None = None

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        at_root: bool = False,
        request_id: str | None = None,
    ) -> requests.Response:
        base = self.url.rstrip("/") + (f"/v1/models/{self.pipeline}" if self.pipeline and not at_root else "")
        headers = {"Authorization": f"Bearer {self.token}"}
        if request_id:  # kept with the answered rows in the prediction log
            headers["X-Request-ID"] = request_id
        try:
            return requests.request(
                method, f"{base}{path}", json=body, headers=headers, timeout=self.timeout_s
            )
        except requests.RequestException as error:
            raise ServingError(
                f"the scoring service at {self.url} does not answer: {type(error).__name__}"
            ) from None

    def _ok(self, response: requests.Response) -> dict[str, Any]:
        if response.status_code == 503 and _model_failure(response):
            raise ModelFailed(str(response.json().get("detail")))
        if not response.ok:
            raise ServingError(
                f"{response.request.method} {response.url} -> {response.status_code}: {response.text[:500]}"
            )
        return response.json()

    def version(self) -> dict[str, Any] | None:
        """What the service serves; None while it has no champion."""
        response = self._call("GET", "/version")
        return None if response.status_code == 503 else self._ok(response)

    def models(self) -> dict[str, Any]:
        """Every pipeline the service serves: its model, version and run id (`GET /v1/models`)."""
        return self._ok(self._call("GET", "/v1/models", at_root=True))["models"]

    def predict(self, rows: list[dict[str, Any]], request_id: str | None = None) -> dict[str, Any]:
        return self._ok(self._call("POST", "/predict", {"rows": rows}, request_id=request_id))

    def predict_staged(self, run_id: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Answered by the candidate of `run_id` in the staging slot (the canary)."""
        return self._ok(self._call("POST", "/staging/predict", {"run_id": run_id, "rows": rows}))

    def stage(self, run_id: str) -> dict[str, Any]:
        return self._ok(self._call("POST", "/staging", {"run_id": run_id}))

    def activate(self) -> dict[str, Any]:
        return self._ok(self._call("POST", "/activate"))

    def wait_for_version(self, version: str, timeout_s: float) -> float:
        """Seconds until the service answers with `version`; ServingError after `timeout_s`."""
        started = time.monotonic()
        while True:
            served = self.version()
            if served is not None and served["version"] == version:
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                raise ServingError(f"the service still serves {served and served['version']}, not {version}")
            time.sleep(0.2)


def _model_failure(response: requests.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("model_failure") is True
