"""Alerts reach the webhook and never put its URL (a credential for Slack-style hooks) in a log."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from landfall.pipeline.alerts import Alerts, redacted

SECRET_PATH = "/services/T000/B000/s3cr3t-t0ken"


def _receiver(status: int):
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


def test_an_alert_is_delivered_as_json():
    server, received = _receiver(204)
    try:
        url = f"http://127.0.0.1:{server.server_port}{SECRET_PATH}"
        assert Alerts(url).send("quarantine", "bad file", {"key": "daily/x"})
        assert received == [{"kind": "quarantine", "text": "bad file", "details": {"key": "daily/x"}}]
    finally:
        server.shutdown()


def test_a_failing_webhook_is_logged_without_its_url(caplog):
    server, _ = _receiver(500)
    url = f"http://127.0.0.1:{server.server_port}{SECRET_PATH}"
    try:
        with caplog.at_level(logging.INFO):  # what a task log shows (urllib3's DEBUG lines are not)
            assert not Alerts(url).send("failure", "it broke")
            assert not Alerts(f"http://127.0.0.1:1{SECRET_PATH}", timeout_s=1).send("failure", "unreachable")
    finally:
        server.shutdown()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "HTTP 500" in logged and "unreachable" in logged
    assert "s3cr3t" not in logged and SECRET_PATH not in logged
    assert redacted(url) == "http://127.0.0.1/…"
