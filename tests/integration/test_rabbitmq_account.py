"""Queue mode's RabbitMQ account, against the machine's real RabbitMQ: the launcher's start-up step that
declares the watcher's queue first makes the stack's own vhost and user (generated password, permissions on
that vhost only), so `guest` - RabbitMQ's default administrator - gets nothing there. A throw-away state
folder per test; its vhost and user are deleted at the end."""

from __future__ import annotations

import asyncio
import subprocess
import uuid

import pytest

from journeys import RABBITMQ, ensure_service, logs_in_to_rabbitmq
from landfall.core.settings import load_settings
from landfall.ops.stack import accounts, provision
from landfall.ops.stack.components import Context
from landfall.ops.stack.state import StackState


@pytest.fixture
def ctx(monkeypatch, tmp_path):
    ensure_service(RABBITMQ)
    queue = f"landfall-acct-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("LANDFALL_STACK__STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LANDFALL_WATCHER__MODE", "queue")
    monkeypatch.setenv("LANDFALL_WATCHER__QUEUE_URL", f"amqp://127.0.0.1:5672/#{queue}")
    for name in ("LANDFALL_AMQP_USER", "LANDFALL_AMQP_PASSWORD", "LANDFALL_RABBITMQCTL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    context = Context(settings, StackState(settings))
    provision.bucket_notifications(context)
    yield context
    provision.remove_bucket_notifications(context)


def _url(user: str, password: str, vhost: str) -> str:
    return f"amqp://{user}:{password}@127.0.0.1:5672/{vhost.replace('/', '%2F')}"


async def _queue_exists(url: str, name: str) -> bool:
    import aio_pika

    async with await aio_pika.connect(url, timeout=10) as connection:
        channel = await connection.channel()
        await channel.declare_queue(name, passive=True)
        return True


def _names(*command: str) -> set[str]:
    listing = subprocess.run(["rabbitmqctl", "-q", *command], capture_output=True, text=True, check=True)
    return {line.split("\t")[0] for line in listing.stdout.splitlines()}


def test_the_watchers_vhost_refuses_guest_and_accepts_the_generated_user(ctx):
    name, password = accounts.project_name(ctx), ctx.state.secrets().rabbitmq_password
    address, queue = accounts.watcher_queue(ctx)
    assert address == f"amqp://127.0.0.1:5672/{name}"
    assert logs_in_to_rabbitmq(_url("guest", "guest", "/")), "guest itself still works on the default vhost"
    assert not logs_in_to_rabbitmq(_url("guest", "guest", name))
    assert not logs_in_to_rabbitmq(_url(name, "a-guess", name))
    assert asyncio.run(_queue_exists(_url(name, password, name), queue))  # declared in the project vhost


def test_the_generated_user_has_no_permission_outside_its_vhost_and_no_administrator_tag(ctx):
    name, password = accounts.project_name(ctx), ctx.state.secrets().rabbitmq_password
    assert not logs_in_to_rabbitmq(_url(name, password, "/"))
    users = subprocess.run(
        ["rabbitmqctl", "-q", "list_users"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert f"{name}\t[]" in users
    permissions = subprocess.run(
        ["rabbitmqctl", "-q", "list_user_permissions", name], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert [line.split("\t")[0] for line in permissions[1:]] == [name]


def test_a_restart_logs_in_without_rabbitmqctl_and_a_lost_secrets_file_resets_the_password(ctx, monkeypatch):
    name, old = accounts.project_name(ctx), ctx.state.secrets().rabbitmq_password
    monkeypatch.setenv("LANDFALL_RABBITMQCTL", "false")  # any call to it would fail the start
    provision.bucket_notifications(ctx)
    monkeypatch.delenv("LANDFALL_RABBITMQCTL")
    ctx.state.secrets_file.unlink()
    provision.bucket_notifications(ctx)
    new = ctx.state.secrets().rabbitmq_password
    assert new != old
    assert logs_in_to_rabbitmq(_url(name, new, name)) and not logs_in_to_rabbitmq(_url(name, old, name))


def test_removing_a_throwaway_stack_deletes_its_vhost_and_user(ctx):
    name = accounts.project_name(ctx)
    assert name in _names("list_vhosts") and name in _names("list_users")
    provision.remove_bucket_notifications(ctx)
    assert name not in _names("list_vhosts") and name not in _names("list_users")
    assert "guest" in _names("list_users") and "/" in _names("list_vhosts")


def test_the_relay_and_the_watchers_consumer_pass_a_landing_through_the_projects_vhost(ctx, monkeypatch):
    """The relay with the URL in its supervisord section plus the account from the stack's environment, the
    watcher's consumer with the queue URL and account the triggerer gets: one landing goes through."""
    from fastapi.testclient import TestClient

    from landfall.airflow.triggers.notifications import queue_for
    from landfall.ops.stack.components import by_name
    from landfall.ops.stack.notify_relay import broker_url, create_app

    env = accounts.environment(ctx, ctx.state.secrets())
    relay_env = by_name("notify-relay").env(ctx)
    token, bucket = relay_env["LANDFALL_RELAY_TOKEN"], ctx.settings.storage.datasets_bucket
    key = "daily/2026-01-01/features.parquet"
    app = create_app(broker_url({**relay_env, **env}), relay_env["LANDFALL_RELAY_EXCHANGE"], token)
    with TestClient(app) as relay:
        event = {"event_type": "create", "key": f"/buckets/{bucket}/{key}", "message": {"new_entry": {}}}
        answer = relay.post("/events", json=event, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 204, answer.text
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    async def drain() -> list[str | None]:
        queue = queue_for(env["LANDFALL_WATCHER__QUEUE_URL"], bucket, None)
        await queue.open()
        try:
            notifications = await queue.receive(wait_s=3, max_messages=10)
            await queue.ack([n.token for n in notifications])
            return [n.key for n in notifications]
        finally:
            await queue.close()

    assert asyncio.run(drain()) == [key]


def test_celerys_broker_check_needs_no_guest_login_on_the_brokers_vhost(monkeypatch, tmp_path):
    """Celery on the machine's RabbitMQ, on the project's vhost, where `guest` has no permission (as on a
    broker whose guest is deleted): the launcher's broker check makes the account and logs in as it, on the
    first start and on the next, never as guest."""
    ensure_service(RABBITMQ)
    monkeypatch.setenv("LANDFALL_STACK__STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LANDFALL_STACK__PROFILE", "scaleout")
    for name in ("LANDFALL_AMQP_USER", "LANDFALL_AMQP_PASSWORD", "LANDFALL_RABBITMQCTL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    name = accounts.project_name(Context(settings, StackState(settings)))
    monkeypatch.setenv("LANDFALL_STACK__SCALEOUT__BROKER_URL", f"amqp://127.0.0.1:5672/{name}")
    settings = load_settings()
    context = Context(settings, StackState(settings))
    try:
        provision.check_broker(context)  # before the fix: guest on a vhost that does not exist yet
        assert not logs_in_to_rabbitmq(_url("guest", "guest", name))
        provision.check_broker(context)  # the next start: the vhost exists, guest still may not open it
        password = context.state.secrets().rabbitmq_password
        worker = accounts.celery_environment(context, context.state.secrets())["AIRFLOW__CELERY__BROKER_URL"]
        assert worker == _url(name, password, name) and logs_in_to_rabbitmq(worker)
    finally:
        accounts.remove_accounts(context)
    assert name not in _names("list_vhosts")
