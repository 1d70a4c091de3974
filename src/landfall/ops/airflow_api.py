"""A small client for the Airflow REST API v2 (token from POST /auth/token): the fast way to watch runs."""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import requests
from tenacity import Retrying, retry, retry_if_exception, stop_after_attempt, wait_exponential


def _is_server_error(error: BaseException) -> bool:
    """A 5xx answer, the connection dropped mid-request (how uvicorn reports some server errors), or no
    answer within the timeout (a busy api-server on 2 cores)."""
    if isinstance(error, (requests.ConnectionError, requests.Timeout)):
        return True
    response = getattr(error, "response", None)
    return isinstance(error, requests.HTTPError) and response is not None and response.status_code >= 500


# A 5xx, a dropped connection or a timeout is tried again, four tries in all (GETs, and `trigger`).
_RETRY_SERVER_ERRORS: dict[str, Any] = {
    "retry": retry_if_exception(_is_server_error),
    "stop": stop_after_attempt(4),
    "wait": wait_exponential(multiplier=0.5, max=4),
    "reraise": True,
}


class AirflowApi:
    # 30 s: a just-started api-server on a busy 2-core machine took more than 10 s to answer in CI (and
    # once more than 30 s: `trigger` retries, under the run id it chose, so that is not a second run).
    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # 127.0.0.1 must never go through a proxy
        self._token_at: float | None = None  # monotonic time of the last token; None: none yet

    # Airflow's API tokens expire (24 h by default); a new one every 10 minutes stays well inside that.
    TOKEN_REFRESH_S = 600

    @classmethod
    def from_env(cls) -> AirflowApi:
        """Built from the variables `landfall env` exports."""
        try:
            return cls(
                os.environ["LANDFALL_AIRFLOW_URL"],
                os.environ["LANDFALL_AIRFLOW_USER"],
                os.environ["LANDFALL_AIRFLOW_PASSWORD"],
            )
        except KeyError as missing:
            raise RuntimeError(f'{missing} is not set: run `eval "$(landfall env)"` first') from None

    def _authenticate(self) -> None:
        response = self.session.post(
            f"{self.base_url}/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=self.timeout,
        )
        response.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        self._token_at = time.monotonic()

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One API request with a current token: a first token before the first request (not "10 minutes
        after the machine booted", which is what a zero timestamp meant), a new one after 10 minutes, and
        once more on a 401 (a restarted api-server may not know the old one)."""
        if self._token_at is None or time.monotonic() - self._token_at > self.TOKEN_REFRESH_S:
            self._authenticate()
        url = f"{self.base_url}/api/v2/{path.lstrip('/')}"
        response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        if response.status_code == 401:
            self._authenticate()
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        return response

    @retry(**_RETRY_SERVER_ERRORS)
    def get(self, path: str, **params: Any) -> dict[str, Any]:
        """GET /api/v2/<path>; re-authenticates on 401 and retries a 5xx answer a few times."""
        response = self._send("GET", path, params=params)
        response.raise_for_status()
        return response.json()

    def get_tolerant(self, path: str, **params: Any) -> dict[str, Any] | None:
        """GET that answers None on Airflow 3.3's transient 500 for asset events whose created runs include
        one not started yet (AssetEventResponse requires start_date; upstream bug); it clears once that
        run starts.
        One plain request: the retries of `get` would only wait for something that is not coming yet."""
        try:
            response = self._send("GET", path, params=params)
        except requests.ConnectionError:
            return None  # the same failure, when uvicorn drops the connection instead of answering 500
        if response.status_code == 500:
            return None
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._send("POST", path, json=body)
        response.raise_for_status()
        return response.json()

    def patch(self, path: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
        response = self._send("PATCH", path, json=body, params=params)
        response.raise_for_status()
        return response.json()

    def xcom_stored(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """What the metadata DB holds for an XCom: with the object-storage backend, the value's S3 path."""
        path = f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self.get(path)["value"]

    def xcom_value(self, s3: Any, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """An XCom's value: the DB row holds its S3 path (the object-storage backend), read with `s3`."""
        stored = self.xcom_stored(dag_id, run_id, task_id, key)
        if isinstance(stored, str) and not stored.startswith("s3://"):
            stored = json.loads(stored)
        if not (isinstance(stored, str) and stored.startswith("s3://")):
            raise ValueError(
                f"XCom {dag_id}/{run_id}/{task_id} is kept in the DB, not object storage: {stored!r}"
            )
        bucket, _, object_key = stored.removeprefix("s3://").split("@", 1)[-1].partition("/")
        return json.loads(s3.get_object(Bucket=bucket, Key=object_key)["Body"].read())

    def trigger(
        self,
        dag_id: str,
        conf: dict[str, Any],
        dag_run_id: str | None = None,
        logical_date: datetime | None = None,
    ) -> dict[str, Any]:
        """A manual run of `dag_id` with `conf`, named `dag_run_id` (one is made up when None). Without a
        logical date several may be triggered at once.

        Safe to retry: the run id is chosen here, so when a request times out or fails after the server
        created the run, the next attempt's 409 (that id exists) answers with the run already made, and
        never makes a second one. A 409 on the first attempt (the caller's id taken), or on a retry when no
        run has our id (another run holds the logical date), is an error."""
        if logical_date is not None and logical_date.tzinfo is None:
            raise ValueError(f"logical_date {logical_date} has no time zone; Airflow takes aware times only")
        run_id = dag_run_id or f"manual__{datetime.now(UTC).isoformat()}_{uuid.uuid4().hex[:8]}"
        body = {
            "dag_run_id": run_id,
            "logical_date": None if logical_date is None else logical_date.isoformat(),
            "conf": conf,
        }
        for attempt in Retrying(**_RETRY_SERVER_ERRORS):
            with attempt:
                response = self._send("POST", f"dags/{dag_id}/dagRuns", json=body)
                if response.status_code == 409 and attempt.retry_state.attempt_number > 1:
                    found = self._send("GET", f"dags/{dag_id}/dagRuns/{run_id}")
                    if found.status_code == 200:
                        return found.json()
                    # Not ours: another run holds this logical date. The conflict is the answer.
                response.raise_for_status()
                return response.json()
        raise AssertionError("tenacity returns or re-raises")  # for the type checker

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.get(f"dags/{dag_id}/dagRuns/{run_id}")

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        path = f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        content = self.get(path, full_content="true").get("content", [])
        return "\n".join(
            str(line.get("event", line)) if isinstance(line, dict) else str(line) for line in content
        )

    def dag_runs(self, dag_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The newest runs of `dag_id`; none while the dag-processor has not serialized it yet (404)."""
        try:
            return self.get(f"dags/{dag_id}/dagRuns", order_by="-run_after", limit=limit)["dag_runs"]
        except requests.HTTPError as error:
            if error.response is not None and error.response.status_code == 404:
                return []
            raise

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.get(f"dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=1000)["task_instances"]

    def asset_events(self, **filters: Any) -> list[dict[str, Any]]:
        """The newest asset events (all pages, newest first, up to 10,000)."""
        events: list[dict[str, Any]] = []
        while len(events) < 10_000:
            page = self.get("assets/events", order_by="-timestamp", limit=1000, offset=len(events), **filters)
            events += page["asset_events"]
            if len(page["asset_events"]) < 1000:
                break
        return events

    def asset_by_name(self, name: str) -> dict[str, Any] | None:
        for asset in self.get("assets", name_pattern=name, limit=100)["assets"]:
            if asset["name"] == name:
                return asset
        return None

    def events_of(self, asset_name: str) -> list[dict[str, Any]]:
        asset = self.asset_by_name(asset_name)
        return [] if asset is None else self.asset_events(asset_id=asset["id"])
