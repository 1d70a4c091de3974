"""Queue mode with SQS: the consumer against a local SQS *emulator* (moto in server mode, over HTTP), the
objects in a real SeaweedFS. moto emulates SQS's API (receive, visibility, batch delete); it is not AWS.
The same producer runs end to end through a real broker (RabbitMQ) in tests/e2e/test_scaleout_e2e.py.
"""

from __future__ import annotations

import json
import socket
import time
import uuid

import pytest
from airflow.triggers.shared_stream import AdvanceOutcome

from journeys import events_of_one_poll, put_in_area, reported_landings, run_with_deadline
from landfall.airflow.triggers import landing_stream
from landfall.airflow.triggers.notifications import SqsQueue
from landfall.airflow.triggers.s3_landing import LandingProducer
from watcher_areas import second_area, watch_of

ACKED = AdvanceOutcome(acked=1, failed=0)
FAILED = AdvanceOutcome(acked=0, failed=1)
REGION = "us-east-1"


@pytest.fixture(scope="module")
def sqs_emulator():
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _sqs(endpoint):
    import boto3

    return boto3.client(
        "sqs", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )


@pytest.fixture
def queue(sqs_emulator):
    return _sqs(sqs_emulator).create_queue(QueueName=f"landings-{uuid.uuid4().hex[:8]}")["QueueUrl"]


def _consumer(endpoint, queue_url, bucket):
    from aiobotocore.session import get_session

    async def client():
        return get_session().create_client(
            "sqs", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
        )

    return SqsQueue(queue_url, bucket, client, visibility_s=30)


def _notify(endpoint, queue_url, bucket, *keys):
    records = [
        {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}
        for key in keys
    ]
    _sqs(endpoint).send_message(QueueUrl=queue_url, MessageBody=json.dumps({"Records": records}))


def _visible(endpoint, queue_url) -> int:
    attributes = _sqs(endpoint).get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_receiving_keeps_a_message_acknowledging_deletes_it_releasing_redelivers_it(sqs_emulator, queue):
    consumer = _consumer(sqs_emulator, queue, "b")
    _notify(sqs_emulator, queue, "b", "daily/2026-11-25/a.parquet", "daily/2026-11-25/b.parquet")

    async def scenario():
        await consumer.open()
        try:
            first = await consumer.receive(1, 10)
            assert [n.key for n in first] == ["daily/2026-11-25/a.parquet", "daily/2026-11-25/b.parquet"]
            assert await consumer.receive(0, 10) == []  # invisible while this consumer holds it
            await consumer.release([n.token for n in first])
            again = await consumer.receive(1, 10)
            assert len(again) == 2  # released: delivered again at once
            await consumer.ack([n.token for n in again])  # one message, two keys: deleted once
        finally:
            await consumer.close()

    run_with_deadline(scenario())
    assert _visible(sqs_emulator, queue) == 0


@pytest.fixture
def queued_producer(area, sqs_emulator, queue, monkeypatch):
    """A producer in queue mode whose queue is the emulated SQS queue."""
    monkeypatch.setattr(
        landing_stream, "queue_for", lambda url, bucket, conn: _consumer(sqs_emulator, queue, bucket)
    )
    return LandingProducer(watch_of(area, mode="queue", queue_url=queue))


def _poll(producer, outcome=None):
    return reported_landings(run_with_deadline(events_of_one_poll(producer, outcome)))


def test_a_notified_landing_is_reported_once_and_its_message_deleted_only_when_persisted(
    s3, area, sqs_emulator, queue, queued_producer
):
    _poll(queued_producer, ACKED)  # start-up: reads the ledger, sweeps an empty prefix
    key, _ = put_in_area(s3, area, "2026-11-25")
    _notify(sqs_emulator, queue, area["bucket"], key)
    _notify(sqs_emulator, queue, area["bucket"], key)  # S3 may deliver a notification twice
    [landing] = _poll(queued_producer, FAILED)  # Airflow did not persist the event
    assert landing.key == key
    assert _visible(sqs_emulator, queue) == 2, "released, not deleted: nothing is lost"
    time.sleep(0.2)
    [again] = _poll(queued_producer, ACKED)
    assert again.identity == landing.identity
    assert _visible(sqs_emulator, queue) == 0, "deleted once the event was persisted and recorded"
    _notify(sqs_emulator, queue, area["bucket"], key)  # a late duplicate
    assert _poll(queued_producer, ACKED) == []
    assert _visible(sqs_emulator, queue) == 0, "a notification naming nothing new is acknowledged"


def test_a_notification_before_its_object_or_for_an_older_version_reports_only_what_s3_holds(
    s3, area, sqs_emulator, queue, queued_producer
):
    _poll(queued_producer, ACKED)
    key = f"{area['prefix']}/2026-11-26/features.parquet"
    _notify(sqs_emulator, queue, area["bucket"], key)  # out of order: the object is not there yet
    assert _poll(queued_producer, ACKED) == []
    put_in_area(s3, area, "2026-11-26", b"first")
    time.sleep(1.1)  # Last-Modified has one-second resolution
    _, newest = put_in_area(s3, area, "2026-11-26", b"second")
    _notify(sqs_emulator, queue, area["bucket"], key)  # the second PUT's notification first ...
    _notify(sqs_emulator, queue, area["bucket"], key)  # ... then the first's: both name the same key
    [landing] = _poll(queued_producer, ACKED)
    assert landing.etag == newest  # the version S3 holds, whatever order the messages came in
    assert _poll(queued_producer, ACKED) == [] and _visible(sqs_emulator, queue) == 0


def test_notifications_of_a_poll_that_failed_are_released_not_held(
    s3, area, sqs_emulator, queue, queued_producer, monkeypatch
):
    """S3 fails while the watcher looks at what a message named: the message goes back to the queue at
    once (held, it would stay invisible for its 30 s visibility timeout and the retry would receive
    nothing), so the retry after the back-off reports the landing."""
    _poll(queued_producer, ACKED)
    key, _ = put_in_area(s3, area, "2026-11-27")
    _notify(sqs_emulator, queue, area["bucket"], key)
    look_at, failed = queued_producer.scanner.look_at, []

    async def s3_down_once(client, keys):
        monkeypatch.setattr(queued_producer.scanner, "look_at", look_at)  # back for the retry
        failed.append(keys)
        raise ConnectionError("S3 is not answering")

    monkeypatch.setattr(queued_producer.scanner, "look_at", s3_down_once)
    [landing] = _poll(queued_producer, ACKED)
    assert failed == [[key]], "the first look failed"
    assert landing.key == key and _visible(sqs_emulator, queue) == 0


def test_one_queue_serves_two_pipelines_each_message_deleted_once_its_own_pipeline_stored_it(
    s3, area, sqs_emulator, queue, monkeypatch
):
    """Each notification goes to the pipeline whose prefix holds its key; a message is deleted only
    when that pipeline's event was stored, and released when only the other pipeline's trigger saw it."""
    monkeypatch.setattr(
        landing_stream, "queue_for", lambda url, bucket, conn: _consumer(sqs_emulator, queue, bucket)
    )
    alpha, beta = {**area, "pipeline": "alpha"}, second_area(area, "beta")
    producer = LandingProducer(watch_of(alpha, beta, mode="queue", queue_url=queue))
    _poll(producer, ACKED)  # start-up of both pipelines
    alpha_key, _ = put_in_area(s3, alpha, "2026-12-01")
    beta_key, _ = put_in_area(s3, beta, "2026-12-01")
    _notify(sqs_emulator, queue, area["bucket"], alpha_key)
    _notify(sqs_emulator, queue, area["bucket"], beta_key)
    stored_by = {"alpha": AdvanceOutcome(acked=1, failed=0, rejected=1), "beta": AdvanceOutcome(0, 0, 1)}
    items = run_with_deadline(events_of_one_poll(producer, lambda report: stored_by[report.pipeline]))
    assert {event["pipeline"]: [o["key"] for o in event["objects"]] for event, _ in items} == {
        "alpha": [alpha_key],
        "beta": [beta_key],
    }
    assert _visible(sqs_emulator, queue) == 1, "alpha's message deleted, beta's released"
    time.sleep(0.2)
    [(event, _)] = run_with_deadline(events_of_one_poll(producer, ACKED))
    assert event["pipeline"] == "beta" and [o["key"] for o in event["objects"]] == [beta_key]
    assert _visible(sqs_emulator, queue) == 0
