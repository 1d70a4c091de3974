"""No S3 call of the watcher outlasts the shared stream's ack timeout, even one to a server that accepts
the connection and never answers."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from landfall.airflow.triggers.aws_clients import SHARE_OF_ACK_TIMEOUT, watcher_bounds
from landfall.airflow.triggers.landing_watch import LandingWatch, WatchedPrefix
from landfall.airflow.triggers.notifications import LONG_POLL_S
from landfall.airflow.triggers.s3_landing import LandingProducer


@pytest.mark.parametrize("ack_s", [5, 10, 30, 60, 120, 300, 600, 3600])
def test_every_attempt_of_a_hung_call_with_its_back_off_fits_in_a_share_of_the_ack_timeout(ack_s):
    bounds = watcher_bounds(ack_s)
    assert bounds.attempts * (bounds.connect_timeout_s + bounds.read_timeout_s) < ack_s
    assert bounds.worst_case_s <= ack_s / SHARE_OF_ACK_TIMEOUT + 1e-9
    assert bounds.attempts >= 1 and bounds.connect_timeout_s > 0 and bounds.read_timeout_s > 0


def test_at_the_default_ack_timeout_a_call_is_retried_and_a_slow_answer_still_arrives():
    bounds = watcher_bounds(300)
    assert bounds.attempts == 3 and bounds.read_timeout_s >= 10 and bounds.connect_timeout_s == 5
    config = bounds.botocore_config()
    assert (config.connect_timeout, config.read_timeout) == (5, bounds.read_timeout_s)
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}


def test_an_sqs_long_poll_waits_inside_its_read_timeout():
    bounds = watcher_bounds(300)
    assert bounds.botocore_config(LONG_POLL_S).read_timeout == bounds.read_timeout_s + LONG_POLL_S


def test_the_watchers_client_gives_up_on_a_server_that_never_answers(monkeypatch):
    """The producer's own client, built through the Airflow connection as in the triggerer."""
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)  # the kernel completes the handshake; nobody ever reads or answers
    endpoint = f"http://127.0.0.1:{hung.getsockname()[1]}"
    extra = {"endpoint_url": endpoint, "region_name": "us-east-1"}
    connection = {"conn_type": "aws", "login": "key", "password": "secret", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_LANDFALL_HUNG", json.dumps(connection))
    monkeypatch.setenv("AIRFLOW__TRIGGERER__SHARED_STREAM_ACK_TIMEOUT", "8")
    watched = WatchedPrefix(pipeline="churn", prefix="daily", ledger_prefix="l")
    watch = LandingWatch(bucket="b", prefixes=(watched,), aws_conn_id="landfall_hung")
    producer = LandingProducer(watch)

    async def list_once():
        async with await producer._connect() as client:
            await client.list_objects_v2(Bucket="b", Prefix="daily/")

    started = time.monotonic()
    try:
        with pytest.raises(Exception, match=r"(?i)timeout|timed out"):
            asyncio.run(asyncio.wait_for(list_once(), 60))
    finally:
        hung.close()
    took = time.monotonic() - started
    print(f"\n  a call to a server that never answers gave up after {took:.1f} s (ack timeout 8 s)")
    assert took < 8
