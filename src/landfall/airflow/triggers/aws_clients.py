"""The watcher's AWS clients (S3, SQS), with every call bounded in time.

The shared stream fails a subscriber that has not moved past an event within the ack timeout
(`[triggerer] shared_stream_ack_timeout`, 300 s by default), and a subscriber moves on only when the
stream yields its next item: a call that hangs (a server that accepts the connection and never answers)
would hold the stream past it. So each call gets connect and read timeouts and a number of attempts
whose worst case, back-off included, is a quarter of the ack timeout: a poll awaits a few calls one after
another (the top level, the folders, the manifests, the manifest writes), and a hung one among them
still ends it well inside the timeout, as a failed poll that is retried.

The connection's own botocore settings (`config_kwargs` in its extra) are kept; only the timeouts and
retries are set here.
"""

from __future__ import annotations

from typing import Any

from landfall.pipeline.s3 import CallBounds, call_bounds

SHARE_OF_ACK_TIMEOUT = 4
"""One call's worst case is the ack timeout divided by this."""


def ack_timeout_s() -> float:
    """The triggerer's shared-stream ack timeout."""
    from airflow.configuration import conf
    from airflow.triggers.shared_stream import DEFAULT_ACK_TIMEOUT

    return conf.getfloat("triggerer", "shared_stream_ack_timeout", fallback=DEFAULT_ACK_TIMEOUT)


def watcher_bounds(ack_s: float | None = None) -> CallBounds:
    return call_bounds((ack_timeout_s() if ack_s is None else ack_s) / SHARE_OF_ACK_TIMEOUT)


async def bounded_client(hook_class: Any, aws_conn_id: str | None, wait_s: float = 0.0) -> Any:
    """An aiobotocore client (an async context manager) for the hook's service, with the watcher's bounds;
    `wait_s` is what a call may wait by design (an SQS long poll), added to the read timeout."""
    from asgiref.sync import sync_to_async

    bounds = watcher_bounds()

    def create() -> Any:  # reads the Airflow connection: not on the event loop
        hook = hook_class(aws_conn_id=aws_conn_id)
        config = hook.config.merge(bounds.botocore_config(wait_s))
        return hook.get_client_type(region_name=hook.region_name, config=config, deferrable=True)

    return await sync_to_async(create)()
