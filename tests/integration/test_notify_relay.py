"""The notify relay of queue mode on the local stack, against the machine's real RabbitMQ: the filer's
webhook POST (the JSON SeaweedFS 4.48 sends, captured from a real filer) becomes one persistent message
that the watcher's `RabbitQueue` reads back as the landed key; anything else is refused and publishes
nothing. The whole path (filer -> relay -> RabbitMQ -> triggerer) runs in tests/e2e/test_scaleout_e2e.py.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from fastapi.testclient import TestClient

from journeys import RABBITMQ, ensure_service
from landfall.airflow.triggers.notifications import RabbitQueue
from landfall.ops.stack.notify_relay import create_app
from landfall.ops.stack.provision import declare_exchange_and_queue, delete_exchange_and_queue

AMQP = "amqp://guest:guest@127.0.0.1:5672/"
BUCKET = "landfall-datasets"
TOKEN = "relay-test-token"
KEY = "daily/2026-01-01/features.parquet"


def filer_event(path: str, event_type: str = "create", directory: bool = False) -> dict:
    """The shape of a SeaweedFS filer webhook event (trimmed to the fields that matter)."""
    entry = {"name": path.rsplit("/", 1)[-1], "attributes": {"mtime": 1796614950}}
    if directory:
        entry["is_directory"] = True
    return {
        "event_type": event_type,
        "key": path,
        "message": {"new_entry": entry, "new_parent_path": path.rsplit("/", 1)[0]},
    }


async def _drain(name: str, wait_s: float = 3) -> list[str | None]:
    """The keys the watcher's consumer reads from the queue, each acknowledged."""
    queue = RabbitQueue(AMQP, name, BUCKET)
    await queue.open()
    try:
        notifications = await queue.receive(wait_s=wait_s, max_messages=100)
        await queue.ack([n.token for n in notifications])
        return [n.key for n in notifications]
    finally:
        await queue.close()


@pytest.fixture
def exchange():
    ensure_service(RABBITMQ)
    name = f"landfall-relay-{uuid.uuid4().hex[:8]}"
    asyncio.run(declare_exchange_and_queue(AMQP, name))
    yield name
    asyncio.run(delete_exchange_and_queue(AMQP, name))


@pytest.fixture
def relay(exchange):
    with TestClient(create_app(AMQP, exchange, TOKEN)) as client:
        yield client


def _post(relay, body, token: str | None = TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return relay.post("/events", content=content, headers=headers)


def test_a_filer_event_becomes_one_message_the_watcher_reads_as_the_landed_key(relay, exchange):
    assert relay.get("/health").status_code == 200
    assert _post(relay, filer_event(f"/buckets/{BUCKET}/{KEY}")).status_code == 204
    assert _post(relay, filer_event(f"/buckets/{BUCKET}/{KEY}", "update")).status_code == 204
    assert _post(relay, filer_event(f"/buckets/other-bucket/{KEY}")).status_code == 204
    # A day's folder appearing is answered and not published: the files in it have their own events.
    assert _post(relay, filer_event(f"/buckets/{BUCKET}/daily/2026-01-02", directory=True)).status_code == 204
    # Another bucket's change is delivered and acknowledged unread (None): it starts nothing.
    assert asyncio.run(_drain(exchange)) == [KEY, KEY, None]


@pytest.mark.parametrize(
    ("body", "token", "status"),
    [
        (filer_event(f"/buckets/{BUCKET}/{KEY}"), None, 401),
        (filer_event(f"/buckets/{BUCKET}/{KEY}"), "a-guess", 401),
        (b"not json", TOKEN, 400),
        ({"event_type": "create"}, TOKEN, 400),
        (b"x" * (1 << 21), TOKEN, 413),
    ],
    ids=["no token", "wrong token", "not JSON", "no key", "too big"],
)
def test_anything_but_the_filers_event_is_refused_and_publishes_nothing(relay, exchange, body, token, status):
    assert _post(relay, body, token).status_code == status
    # The relay answers only after RabbitMQ confirmed a publish, so a message would be queued by now.
    assert asyncio.run(_drain(exchange, wait_s=0.5)) == []


def test_a_message_no_queue_would_take_is_not_confirmed_to_the_filer(exchange):
    async def unbind() -> None:
        import aio_pika

        async with await aio_pika.connect(AMQP) as connection:
            channel = await connection.channel()
            await channel.queue_delete(exchange)  # the exchange stays, nothing is bound to it

    asyncio.run(unbind())
    with TestClient(create_app(AMQP, exchange, TOKEN)) as client:
        answer = _post(client, filer_event(f"/buckets/{BUCKET}/{KEY}"))
        assert answer.status_code == 503, answer.text


def test_a_relay_that_cannot_publish_answers_503_so_the_filer_retries(exchange):
    with TestClient(create_app(AMQP, exchange, TOKEN)) as client:
        asyncio.run(
            delete_exchange_and_queue(AMQP, exchange)
        )  # the exchange is gone: RabbitMQ refuses the publish
        answer = _post(client, filer_event(f"/buckets/{BUCKET}/{KEY}"))
        assert answer.status_code == 503, answer.text
    asyncio.run(declare_exchange_and_queue(AMQP, exchange))  # for the fixture's clean-up
