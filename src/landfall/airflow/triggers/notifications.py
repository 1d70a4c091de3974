"""Bucket notifications for queue mode: a message says *which key changed*, nothing more is believed.

The watcher lists the named key's folder and applies the same rules as a poll (`LandingScanner`), so a
duplicated, reordered, stale or forged notification changes nothing: S3 and the ledger decide what is
new. A message is acknowledged only after Airflow persisted the event that reported what it named (or
at once, when it named nothing new); one not acknowledged is delivered again, to this triggerer or to
another one after a crash. The reconciliation sweep still runs: queues drop messages and
notifications get misconfigured.

Two sources, one shape (`NotificationQueue`):

* `RabbitQueue`: SeaweedFS's filer POSTs every change under the landing prefix to the notify relay
  (`landfall.ops.stack.notify_relay`), which publishes it to a fanout exchange; this consumes the
  durable queue bound to it. The object's path is in the message's `key` header
  (`/buckets/<bucket>/<key>`); the body is not read.
* `SqsQueue`: S3 event notifications (`s3:ObjectCreated:*`) sent to an SQS queue, as on AWS. Receiving
  does not delete (unlike the amazon provider's SqsSensorTrigger, which deletes on receipt: at most
  once); acknowledging does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, unquote_plus

log = logging.getLogger(__name__)

BATCH_S = 0.05
"""After the first message, how long to gather the rest of a burst into the same event."""
LONG_POLL_S = 20
"""The longest SQS long poll (SQS's own limit): part of a receive call's read timeout."""


@dataclass(frozen=True)
class Notification:
    key: str | None  # the object key in the watched bucket; None: not about it (acknowledged unread)
    token: Any  # what acknowledging it takes: an AMQP message, an SQS receipt handle


class NotificationQueue(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def receive(self, wait_s: float, max_messages: int) -> list[Notification]: ...
    async def ack(self, tokens: list[Any]) -> None: ...
    async def release(self, tokens: list[Any]) -> None: ...


def _bucket_key(path: str, bucket: str) -> str | None:
    """The key of a filer path `/buckets/<bucket>/<key>`, or None for another bucket or a folder."""
    prefix = f"/buckets/{bucket}/"
    return path[len(prefix) :] if path.startswith(prefix) and len(path) > len(prefix) else None


class RabbitQueue:
    """The durable queue the filer's events reach through RabbitMQ (declared by the launcher)."""

    def __init__(self, url: str, queue: str, bucket: str) -> None:
        self.url, self.queue, self.bucket = url, queue, bucket
        self._connection: Any = None
        self._received: asyncio.Queue[Any] = asyncio.Queue()

    async def open(self) -> None:
        import aio_pika

        self._connection = await aio_pika.connect_robust(self.url)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=2000)
        queue = await channel.declare_queue(self.queue, passive=True)  # the launcher's: must exist
        await queue.consume(self._received.put)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def receive(self, wait_s: float, max_messages: int) -> list[Notification]:
        try:
            first = await asyncio.wait_for(self._received.get(), wait_s)
        except TimeoutError:
            return []
        await asyncio.sleep(BATCH_S)
        messages = [first]
        while len(messages) < max_messages and not self._received.empty():
            messages.append(self._received.get_nowait())
        return [
            Notification(_bucket_key(str((m.headers or {}).get("key", "")), self.bucket), m) for m in messages
        ]

    async def ack(self, tokens: list[Any]) -> None:
        await _each(tokens, lambda message: message.ack(), "acknowledge")

    async def release(self, tokens: list[Any]) -> None:
        await _each(tokens, lambda message: message.nack(requeue=True), "release")


async def _each(messages: list[Any], settle: Callable[[Any], Any], what: str) -> None:
    """Settle every message, each on its own: one that fails (a delivery from before a reconnect) must
    not leave the rest unsettled, holding the consumer's prefetch."""
    failed = 0
    for message in messages:
        try:
            await settle(message)
        except Exception as error:
            failed += 1
            last = error
    if failed:
        log.warning("Could not %s %d message(s) (%s); RabbitMQ redelivers them", what, failed, last)


def s3_event_keys(body: str, bucket: str) -> list[str]:
    """The object keys an S3 event notification names for `bucket` (directly or wrapped by SNS)."""
    try:
        message = json.loads(body)
        if isinstance(message, dict) and isinstance(message.get("Message"), str):  # through SNS
            message = json.loads(message["Message"])
    except ValueError:
        return []
    keys = []
    for record in message.get("Records") or [] if isinstance(message, dict) else []:
        s3 = record.get("s3") if isinstance(record, dict) else None
        if not isinstance(s3, dict) or (s3.get("bucket") or {}).get("name") != bucket:
            continue
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        key = (s3.get("object") or {}).get("key")
        if isinstance(key, str) and key:
            keys.append(unquote_plus(key))  # S3 URL-encodes keys in notifications (a space is '+')
    return keys


class SqsQueue:
    """An SQS queue receiving the bucket's S3 event notifications."""

    def __init__(
        self, queue_url: str, bucket: str, client: Callable[[], Any], visibility_s: int = 300
    ) -> None:
        self.queue_url, self.bucket, self._client_factory = queue_url, bucket, client
        self.visibility_s = visibility_s
        self._context: Any = None
        self._client: Any = None

    async def open(self) -> None:
        self._context = await self._client_factory()
        self._client = await self._context.__aenter__()

    async def close(self) -> None:
        if self._context is not None:
            await self._context.__aexit__(None, None, None)

    async def receive(self, wait_s: float, max_messages: int) -> list[Notification]:
        answer = await self._client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max(1, min(10, max_messages)),
            WaitTimeSeconds=max(1, min(LONG_POLL_S, round(wait_s))),  # long polling: never a tight loop
            VisibilityTimeout=self.visibility_s,
        )
        notifications = []
        for message in answer.get("Messages", []):
            keys = s3_event_keys(message.get("Body", ""), self.bucket)
            handle = message["ReceiptHandle"]
            notifications.extend(Notification(key, handle) for key in keys or [None])
        return notifications

    async def ack(self, tokens: list[Any]) -> None:
        handles = list(dict.fromkeys(tokens))  # one message can name several keys
        for start in range(0, len(handles), 10):
            entries = [{"Id": str(n), "ReceiptHandle": h} for n, h in enumerate(handles[start : start + 10])]
            await self._client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)

    async def release(self, tokens: list[Any]) -> None:
        handles = list(dict.fromkeys(tokens))
        for start in range(0, len(handles), 10):
            entries = [
                {"Id": str(n), "ReceiptHandle": h, "VisibilityTimeout": 0}
                for n, h in enumerate(handles[start : start + 10])
            ]
            await self._client.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)


def queue_for(url: str, bucket: str, aws_conn_id: str | None) -> NotificationQueue:
    """The queue a `watcher.queue_url` names: `amqp://host:port/vhost#queue` or an SQS queue URL."""
    if url.startswith(("amqp://", "amqps://")):
        address, _, queue = url.partition("#")
        return RabbitQueue(_with_credentials(address), queue or "landfall-landings", bucket)

    async def sqs_client() -> Any:
        from airflow.providers.amazon.aws.hooks.sqs import SqsHook

        from landfall.airflow.triggers.aws_clients import bounded_client

        return await bounded_client(SqsHook, aws_conn_id, wait_s=LONG_POLL_S)

    return SqsQueue(url, bucket, sqs_client)


def _with_credentials(address: str) -> str:
    """AMQP credentials come from the triggerer's environment, never from the trigger's stored kwargs."""
    user, password = os.environ.get("LANDFALL_AMQP_USER"), os.environ.get("LANDFALL_AMQP_PASSWORD", "")
    if not user or "@" in address:
        return address
    scheme, _, rest = address.partition("://")
    return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{rest}"
