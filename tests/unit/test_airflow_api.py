"""The REST client's tokens, against a small HTTP server that wants a bearer token as Airflow's does."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from landfall.ops import airflow_api
from landfall.ops.airflow_api import AirflowApi


class JsonHandler(BaseHTTPRequestHandler):
    """Answers JSON as Airflow's API does."""

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


class TokenServer:
    """POST /auth/token hands out tokens; /api/v2/* answers 401 without the newest one."""

    def __init__(self) -> None:
        self.tokens_issued = 0
        server = self

        class Handler(JsonHandler):
            def _handle(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/auth/token":
                    server.tokens_issued += 1
                    self._answer(201, {"access_token": f"t{server.tokens_issued}"})
                elif self.headers.get("Authorization") == f"Bearer t{server.tokens_issued}":
                    self._answer(200, {"ok": True})
                else:
                    self._answer(401, {"detail": "Not authenticated"})

            do_GET = do_POST = do_PATCH = _handle

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"


@pytest.fixture
def server() -> Iterator[TokenServer]:
    running = TokenServer()
    yield running
    running.http.shutdown()


@pytest.mark.parametrize("method", ["get", "post", "patch"])
def test_the_first_request_authenticates_even_minutes_after_boot(server, monkeypatch, method):
    # A CI machine 5 minutes after boot: a "last token at 0.0" looked fresh, and the first POST was a 401.
    monkeypatch.setattr(airflow_api.time, "monotonic", lambda: 300.0)
    api = AirflowApi(server.url, "admin", "secret")
    call = {
        "get": lambda: api.get("dags"),
        "post": lambda: api.post("dags", {}),
        "patch": lambda: api.patch("d", {}),
    }
    assert call[method]() == {"ok": True}
    assert server.tokens_issued == 1


@pytest.mark.parametrize("method", ["get", "post", "patch"])
def test_a_token_the_server_no_longer_knows_is_replaced_once(server, method):
    api = AirflowApi(server.url, "admin", "secret")
    api.get("dags")
    server.tokens_issued += 1  # the api-server restarted with other tokens: the client's is refused
    call = {
        "get": lambda: api.get("dags"),
        "post": lambda: api.post("dags", {}),
        "patch": lambda: api.patch("d", {}),
    }
    assert call[method]() == {"ok": True}


class SlowTriggerServer:
    """Airflow's POST /dags/{id}/dagRuns, where the first request creates its run and then answers too late
    for the client (a busy api-server); 409 for a run id that exists, as Airflow answers."""

    def __init__(self, stall_s: float) -> None:
        self.runs: dict[str, dict] = {}
        self.posts = 0
        server = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path == "/auth/token":
                    return self._answer(201, {"access_token": "t"})
                server.posts += 1
                run_id = body["dag_run_id"]
                if run_id in server.runs:
                    return self._answer(409, {"detail": f"DAG run {run_id} already exists"})
                server.runs[run_id] = {"dag_run_id": run_id, "conf": body["conf"], "state": "queued"}
                if server.posts == 1:
                    threading.Event().wait(stall_s)  # created, but the answer comes after the timeout
                self._answer(200, server.runs[run_id])

            def do_GET(self) -> None:
                run_id = self.path.rsplit("/", 1)[-1]
                self._answer(200, server.runs[run_id]) if run_id in server.runs else self._answer(404, {})

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"


def test_a_trigger_whose_answer_times_out_is_retried_and_makes_one_run():
    server = SlowTriggerServer(stall_s=2.0)
    try:
        run = AirflowApi(server.url, "admin", "secret", timeout=0.5).trigger("d", {"day": "2026-01-01"})
    finally:
        server.http.shutdown()
    assert server.posts == 2
    assert list(server.runs) == [run["dag_run_id"]]
    assert run["conf"] == {"day": "2026-01-01"}


def test_a_run_id_already_taken_on_the_first_try_is_an_error():
    import requests

    server = SlowTriggerServer(stall_s=0)
    try:
        api = AirflowApi(server.url, "admin", "secret")
        api.trigger("d", {}, dag_run_id="mine")
        server.posts = 5  # no stall on the next one
        with pytest.raises(requests.HTTPError) as refused:
            api.trigger("d", {}, dag_run_id="mine")
    finally:
        server.http.shutdown()
    assert refused.value.response.status_code == 409


def test_a_logical_date_without_a_time_zone_is_refused_before_any_request():
    from datetime import datetime

    with pytest.raises(ValueError, match="no time zone"):
        AirflowApi("http://127.0.0.1:9", "admin", "secret").trigger(
            "d", {}, logical_date=datetime(2026, 1, 1)
        )
