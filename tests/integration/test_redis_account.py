"""The scale-out profile's Redis account, against the machine's real Redis: the launcher's broker check makes
the stack's own ACL user (generated password, keys and channels under the stack's prefix only, the commands
Celery needs and nothing dangerous), and a real Celery worker configured as the stack configures Airflow's
runs tasks and answers remote control through it. Redis's default user is left as it is. A throw-away
state folder per test; its user and keys are deleted at the end."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit

import pytest
import redis

from journeys import REDIS, ensure_service
from landfall.core.settings import load_settings
from landfall.ops.stack import accounts, provision
from landfall.ops.stack.components import Context
from landfall.ops.stack.state import StackState

ADMIN = "redis://127.0.0.1:6379/9"

CELERY_APP = """
import os
from celery import Celery

app = Celery("acl_probe", broker=os.environ["AIRFLOW__CELERY__BROKER_URL"])
app.conf.update(  # what Airflow's default_celery config sets for the broker
    broker_transport_options={
        "global_keyprefix": os.environ["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX"],
        "visibility_timeout": 86400,
    },
    task_default_queue=os.environ["PROBE_QUEUE"],
    task_default_exchange=os.environ["PROBE_QUEUE"],
    task_acks_late=True,
    task_track_started=True,
    worker_prefetch_multiplier=1,
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
)


@app.task(name="probe.touch")
def touch(path):
    with open(path, "w") as handle:
        handle.write("ran")
"""


@pytest.fixture
def ctx(monkeypatch, tmp_path):
    ensure_service(REDIS)
    monkeypatch.setenv("LANDFALL_STACK__STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LANDFALL_STACK__PROFILE", "scaleout")
    monkeypatch.setenv("LANDFALL_STACK__SCALEOUT__BROKER_URL", ADMIN)
    settings = load_settings()
    context = Context(settings, StackState(settings))
    provision.check_broker(context)
    yield context
    accounts.remove_redis_user(context)


def _client(ctx, password: str | None = None) -> redis.Redis:
    secret = ctx.state.secrets().redis_password if password is None else password
    return redis.Redis.from_url(ADMIN, username=accounts.project_name(ctx), password=secret, socket_timeout=5)


def test_the_celery_user_logs_in_only_with_its_generated_password(ctx):
    assert _client(ctx).ping()
    with pytest.raises(redis.AuthenticationError):
        _client(ctx, "a-guess").ping()
    with pytest.raises(redis.AuthenticationError):
        _client(ctx, "").ping()
    url = urlsplit(accounts.environment(ctx, ctx.state.secrets())["AIRFLOW__CELERY__BROKER_URL"])
    assert (url.username, url.password) == (accounts.project_name(ctx), ctx.state.secrets().redis_password)


def test_the_celery_user_reaches_only_its_key_prefix_and_runs_nothing_dangerous(ctx):
    client, prefix = _client(ctx), accounts.key_prefix(ctx)
    admin = redis.Redis.from_url(ADMIN)
    outside = f"landfall-acl-probe-{uuid.uuid4().hex[:8]}"
    admin.set(outside, "not the stack's")
    try:
        client.lpush(f"{prefix}queue", "message")
        assert client.rpop(f"{prefix}queue") == b"message"
        assert client.publish(f"{prefix}/9.celeryev/worker.heartbeat", "beat") == 0
        refused = [
            lambda: client.get(outside),
            lambda: client.delete(outside),
            lambda: client.lpush("celery", "a task for another app's worker"),
            lambda: client.publish("/9.celery.pidbox", "a remote-control command for another app"),
            client.flushall,
            client.flushdb,
            lambda: client.keys("*"),
            lambda: client.config_get("requirepass"),
            lambda: client.execute_command("ACL", "LIST"),
            lambda: client.execute_command("SCRIPT", "FLUSH"),
            lambda: client.execute_command("FUNCTION", "FLUSH"),
        ]
        for command in refused:
            with pytest.raises(redis.exceptions.NoPermissionError):
                command()
        assert admin.get(outside) == b"not the stack's"
    finally:
        admin.delete(outside)


def test_a_celery_worker_runs_tasks_and_answers_remote_control_through_the_acl_user(ctx, tmp_path):
    """Queues, bindings, acks (unacked hash, Lua scripts, locks), remote control (pidbox fanout and its reply
    queue) and gossip (worker events): all of it within the ACL, nothing refused."""
    from celery import Celery

    (tmp_path / "acl_probe.py").write_text(CELERY_APP)
    queue, done = f"landfall-acl-{uuid.uuid4().hex[:8]}", tmp_path / "ran"
    env = {**os.environ, **accounts.environment(ctx, ctx.state.secrets()), "PROBE_QUEUE": queue}
    env["PYTHONPATH"] = str(tmp_path)
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - read after the worker stopped
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "acl_probe", "worker", "-Q", queue, "-c", "1", "-P", "solo",
         "-n", f"{queue}@%h", "-E", "-l", "info"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    app = Celery("acl_probe", broker=env["AIRFLOW__CELERY__BROKER_URL"])
    app.conf.update(
        broker_transport_options={"global_keyprefix": accounts.key_prefix(ctx)},
        task_default_queue=queue,
        task_default_exchange=queue,
    )
    try:
        deadline = time.monotonic() + 60
        while not (answer := app.control.ping(destination=[f"{queue}@{os.uname().nodename}"], timeout=1)):
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
        assert list(answer[0].values()) == [{"ok": "pong"}]
        app.send_task("probe.touch", args=[str(done)])
        app.control.revoke(str(uuid.uuid4()))  # a broadcast, as Airflow's executor sends
        while not done.exists():
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            time.sleep(0.2)
        assert app.control.inspect(timeout=2).stats()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()
    output = (tmp_path / "worker.log").read_text()
    assert "ready." in output and "NOPERM" not in output and "no permissions" not in output, output
    name = accounts.project_name(ctx)
    denied = [e for e in redis.Redis.from_url(ADMIN).acl_log(count=128) if e.get("username") == name]
    assert denied == [], denied


def test_a_restart_keeps_connected_clients_and_a_lost_secrets_file_resets_the_password(ctx):
    old = ctx.state.secrets().redis_password
    connected = _client(ctx)
    connected.set(f"{accounts.key_prefix(ctx)}kept", "1")
    provision.check_broker(ctx)
    assert connected.get(f"{accounts.key_prefix(ctx)}kept") == b"1"
    ctx.state.secrets_file.unlink()
    provision.check_broker(ctx)
    new = ctx.state.secrets().redis_password
    assert new != old and _client(ctx, new).ping()
    with pytest.raises(redis.AuthenticationError):
        _client(ctx, old).ping()


def test_removing_a_throwaway_stack_deletes_its_redis_user_and_keys(ctx):
    _client(ctx).set(f"{accounts.key_prefix(ctx)}left-over", "1")
    admin = redis.Redis.from_url(ADMIN)
    accounts.remove_redis_user(ctx)
    assert admin.execute_command("ACL", "GETUSER", accounts.project_name(ctx)) is None
    assert admin.exists(f"{accounts.key_prefix(ctx)}left-over") == 0
    assert admin.ping()  # the default user is as it was
