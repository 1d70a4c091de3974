"""The scale-out profile end to end: the same DAG files on PostgreSQL (Airflow and MLflow metadata) with
CeleryExecutor, a Redis broker and a Celery worker process started by the launcher; two schedulers and
two triggerers (HA), and the watcher in queue mode: SeaweedFS's filer publishes its events to RabbitMQ.

A stack of its own (ports 12xxx, its own state folder, databases named for this run, Redis database 5),
so it shares nothing with the embedded stack of the other end-to-end tests.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from journeys import (
    CHURN,
    POSTGRES,
    RABBITMQ,
    REDIS,
    day_key,
    ensure_service,
    land,
    logs_in_to_rabbitmq,
    unique_day,
)
from landfall.core.settings import get_settings
from landfall.core.stack_settings import PortSettings, ScaleoutSettings
from landfall.ops.follow import follow_chain, follow_landing, follow_partition
from landfall.ops.stack import accounts, postgres_role, provision
from landfall.pipeline.datagen import make_batch, to_parquet

TIMEOUT_S = 600


def _drop_databases(scaleout: ScaleoutSettings) -> None:
    import psycopg2
    from psycopg2 import sql

    connection = psycopg2.connect(scaleout.database_url("postgres"))
    connection.autocommit = True
    with connection.cursor() as cursor:
        for database in (scaleout.airflow_database, scaleout.mlflow_database):
            cursor.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
    connection.close()


def _broker(stack) -> str:
    """The watcher's RabbitMQ URL with the stack's own account, on the stack's own vhost."""
    return provision.rabbit_target(stack.ctx)[0]


async def _publish_filer_event(url: str, exchange: str, path: str) -> None:
    """What SeaweedFS's filer publishes for a change: the path in the `key` header (body unread)."""
    import aio_pika

    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        target = await channel.get_exchange(exchange)
        await target.publish(aio_pika.Message(body=b"forged", headers={"key": path}), routing_key="")


async def _messages_waiting(url: str, name: str) -> int:
    import aio_pika

    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        return queue.declaration_result.message_count


def _query(scaleout: ScaleoutSettings, database: str, statement: str) -> list[tuple]:
    import psycopg2

    with psycopg2.connect(scaleout.database_url(database)) as connection, connection.cursor() as cursor:
        cursor.execute(statement)
        return cursor.fetchall()


@pytest.fixture(scope="module")
def scaleout_stack():
    from landfall.ops.stack.launcher import Stack

    ensure_service(POSTGRES)
    ensure_service(REDIS)
    ensure_service(RABBITMQ)
    run = uuid.uuid4().hex[:8]
    queue_url = f"amqp://127.0.0.1:5672/#landfall-t{run}"
    base = get_settings()
    scaleout = ScaleoutSettings(
        airflow_database=f"landfall_t{run}_airflow",
        mlflow_database=f"landfall_t{run}_mlflow",
        broker_url="redis://127.0.0.1:6379/5",
        queue=f"landfall-t{run}",  # a worker left on this broker by another session cannot take our tasks
        worker_concurrency=4,
        schedulers=2,  # HA: every test here runs beside a second scheduler and triggerer
        triggerers=2,
    )
    state_dir = Path(tempfile.mkdtemp(prefix="landfall-scaleout-"))
    stack_settings = base.stack.model_copy(
        update={
            "profile": "scaleout",
            "scaleout": scaleout,
            "state_dir": state_dir,
            "ports": PortSettings(
                # Below the ephemeral range with their gRPC ports (+10000): see tests/conftest.py.
                airflow_api=12080,
                mlflow=12500,
                s3=12333,
                seaweed_master=13333,
                seaweed_volume=13340,
                seaweed_filer=12888,
                serving=12090,
                notify_relay=12091,
            ),
        }
    )
    watcher = base.watcher.model_copy(update={"mode": "queue", "queue_url": queue_url})
    stack = Stack(
        base.model_copy(update={"stack": stack_settings, "watcher": watcher}),
        echo=lambda line: print(line, flush=True),
    )
    started = time.monotonic()
    saved = dict(os.environ)
    try:
        # The stack's processes (the dag-processor renders the trigger's kwargs) read these too.
        os.environ.update({"LANDFALL_WATCHER__MODE": "queue", "LANDFALL_WATCHER__QUEUE_URL": queue_url})
        stack.up()
        print(f"scale-out stack up in {time.monotonic() - started:.1f}s")
        os.environ.update(stack.environment())  # MLflow's credentials and URLs are this stack's
        yield stack
    finally:
        os.environ.clear()
        os.environ.update(saved)
        stack.down(quiet=True)
        _drop_databases(scaleout)
        provision.remove_bucket_notifications(stack.ctx)  # its queue, and its RabbitMQ vhost and user
        postgres_role.remove_role(stack.ctx)
        accounts.remove_redis_user(stack.ctx)
        shutil.rmtree(state_dir, ignore_errors=True)


def _land_and_follow_to(stack, api, dag_ids, seed: int):
    day = unique_day(2400)
    landed = land(stack, day_key(day), to_parquet(make_batch(5000, seed=seed)))
    ingest = follow_landing(api, landed.key, landed.etag, timeout_s=TIMEOUT_S)
    assert ingest.outcome == "ingested"
    return (
        day,
        ingest,
        [follow_partition(api, dag_id, day, ingest.queued_at, TIMEOUT_S) for dag_id in dag_ids],
    )


def test_mlflow_down_during_deploy_fails_loudly_after_retries_and_changes_nothing(scaleout_stack, alerts):
    """No champion yet, so the evaluation says deploy; MLflow dies before the deploy run. The first task
    that needs it is the canary (the scoring service loads the candidate from MLflow): it fails after
    its retries, promote never runs, nothing is registered."""
    from mlflow import MlflowClient

    stack, api = scaleout_stack, scaleout_stack.api()
    day, _, runs = _land_and_follow_to(stack, api, CHURN.after_ingest[:3], seed=777)
    assert [r.state for r in runs] == ["success"] * 3
    stack.stop("mlflow")  # down, and kept down (a crash would be restarted by the supervisor)
    try:
        deploy = follow_partition(api, CHURN.deploy_dag, day, runs[-1].queued_at, TIMEOUT_S)
        assert deploy.state == "failed" and deploy.tasks["canary"] == "failed", deploy.tasks
        assert deploy.tasks["promote"] == "upstream_failed", deploy.tasks
        [canary] = [
            ti for ti in api.task_instances(CHURN.deploy_dag, deploy.run_id) if ti["task_id"] == "canary"
        ]
        assert canary["try_number"] == 4, "three retries before giving up"
        deadline = time.monotonic() + 30
        while not [a for a in alerts.of_kind("failure") if f"{CHURN.deploy_dag}.canary" in a["text"]]:
            assert time.monotonic() < deadline, f"no failure alert: {alerts.received}"
            time.sleep(0.5)
    finally:
        stack.restart("mlflow")  # back for the next test
    client = MlflowClient(tracking_uri=stack.mlflow_url)  # credentials: MLFLOW_TRACKING_* of the stack env
    assert client.search_model_versions(f"name = '{stack.settings.mlflow.model_name}'") == []


def test_the_whole_chain_runs_on_postgres_and_celery_with_the_same_dags(scaleout_stack):
    from mlflow import MlflowClient

    stack, scaleout = scaleout_stack, scaleout_stack.ctx.scaleout
    assert [c.name for c in stack.status() if c.healthy] == list(stack.components)
    assert "celery-worker" in stack.components

    day = unique_day(2400)
    api = stack.api()
    landed = land(stack, day_key(day), to_parquet(make_batch(5000, seed=4242)))
    put_at = landed.put_at
    ingest = follow_landing(api, landed.key, landed.etag, timeout_s=TIMEOUT_S)
    assert ingest.outcome == "ingested"
    chain = follow_chain(api, day, ingest.queued_at, timeout_s=TIMEOUT_S)
    assert [r.dag_id for r in chain] == list(CHURN.after_ingest)
    assert [r.state for r in chain] == ["success"] * 4
    assert chain[-1].tasks["promote"] == "success"
    landing_to_champion = chain[-1].ended_at.timestamp() - put_at

    # The same outcome as on the embedded profile: one registered version holding the champion alias,
    # recorded in MLflow's PostgreSQL store.
    client = MlflowClient(tracking_uri=stack.mlflow_url)
    name = stack.settings.mlflow.model_name
    versions = client.search_model_versions(f"name = '{name}'")
    assert len(versions) == 1
    assert client.get_model_version_by_alias(name, "champion").version == versions[0].version
    assert _query(scaleout, scaleout.mlflow_database, "SELECT count(*) FROM model_versions") == [(1,)]

    # Airflow's metadata lives in PostgreSQL, and the Celery worker ran the tasks.
    runs = _query(
        scaleout,
        scaleout.airflow_database,
        "SELECT dag_id, count(*) FROM dag_run WHERE state = 'success' GROUP BY dag_id ORDER BY dag_id",
    )
    assert {dag_id for dag_id, _ in runs} >= {CHURN.ingest_dag, *CHURN.after_ingest}
    task_rows = _query(
        scaleout,
        scaleout.airflow_database,
        "SELECT count(*), count(DISTINCT queue) FROM task_instance WHERE state = 'success'",
    )
    [(succeeded, queues)] = task_rows
    worker_log = (stack.state.logs / "celery-worker.log").read_text(errors="replace")
    assert "celery@landfall-12080@" in worker_log or "landfall-12080@" in worker_log
    assert worker_log.count("execute_workload") >= succeeded > 10, "tasks ran elsewhere than the worker"
    assert queues == 1
    print(
        f"\nscale-out: landing -> champion {landing_to_champion:.1f}s; {succeeded} task instances on Celery"
    )


def test_queue_mode_reports_through_rabbitmq_and_absorbs_duplicated_and_early_notifications(scaleout_stack):
    """Queue mode end to end through a real broker: the filer's notification reaches the watcher via
    RabbitMQ (no poll runs in queue mode, and the sweep is 5 minutes away), a duplicated notification
    and one that arrives before its object change nothing, and every message ends acknowledged."""
    from landfall.ops.bench.landing_records import outcome_counts
    from landfall.pipeline.datagen import make_corrupt

    stack, api = scaleout_stack, scaleout_stack.api()
    name = stack.settings.watcher.queue_url.partition("#")[2]
    bucket = stack.settings.storage.datasets_bucket
    assert (stack.state.seaweed / "notification.toml").exists()
    first, early = day_key(unique_day(2460)), day_key(unique_day(2470))
    asyncio.run(_publish_filer_event(_broker(stack), name, f"/buckets/{bucket}/{early}"))  # before its object
    landed = land(stack, first, make_corrupt("schema"))
    run = follow_landing(api, landed.key, landed.etag, timeout_s=120)
    started_after = run.queued_at.timestamp() - landed.put_at
    assert started_after < 30, f"found after {started_after:.1f}s: not through the queue"
    asyncio.run(_publish_filer_event(_broker(stack), name, f"/buckets/{bucket}/{first}"))  # a duplicate
    land(stack, early, make_corrupt("schema", seed=5))
    deadline = time.monotonic() + 120
    while not all((counts := outcome_counts(api, {first, early})).values()):
        assert time.monotonic() < deadline, counts
        time.sleep(2)
    time.sleep(10)  # time for a duplicate to show
    assert outcome_counts(api, {first, early}) == {first: 1, early: 1}
    deadline = time.monotonic() + 60
    while (waiting := asyncio.run(_messages_waiting(_broker(stack), name))) != 0:
        assert time.monotonic() < deadline, f"{waiting} message(s) never acknowledged"
        time.sleep(2)
    print(f"queue mode: PUT -> ingest run queued {started_after:.2f}s")


def test_the_stack_uses_its_own_broker_and_database_accounts_and_its_vhost_refuses_guest(scaleout_stack):
    """Nothing of the running stack logs in as RabbitMQ's guest, PostgreSQL's postgres or Redis's default
    user: the watcher's vhost refuses guest, Airflow and MLflow hold their connections as the stack's role,
    the Celery worker as the stack's ACL user. The broker's AMQP port and the relay's listen on loopback only,
    and the relay publishes nothing for a caller without the filer's token."""
    import psutil
    import redis
    import requests

    stack, scaleout = scaleout_stack, scaleout_stack.ctx.scaleout
    name = accounts.project_name(stack.ctx)
    address, queue = accounts.watcher_queue(stack.ctx)
    assert address == f"amqp://127.0.0.1:5672/{name}"
    assert not logs_in_to_rabbitmq(f"amqp://guest:guest@127.0.0.1:5672/{name}")
    assert logs_in_to_rabbitmq(_broker(stack))
    assert logs_in_to_rabbitmq("amqp://guest:guest@127.0.0.1:5672/"), "guest itself is left as it was"

    users = _query(
        scaleout,
        "postgres",
        "SELECT datname, usename FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname IN "
        f"('{scaleout.airflow_database}', '{scaleout.mlflow_database}')",
    )
    assert scaleout.airflow_database in {database for database, _ in users}
    assert {user for _, user in users} == {name}, users
    owners = _query(
        scaleout,
        "postgres",
        "SELECT DISTINCT pg_get_userbyid(datdba) FROM pg_database WHERE datname IN "
        f"('{scaleout.airflow_database}', '{scaleout.mlflow_database}')",
    )
    assert owners == [(name,)]

    clients = redis.Redis.from_url(scaleout.broker_url).client_list()
    assert [c for c in clients if c.get("user") == name], "the Celery worker does not use the stack's user"

    relay = stack.ctx.ports.notify_relay
    listening = {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port in (5672, relay)
    }
    assert {port for _, port in listening} == {5672, relay}, listening
    assert {ip for ip, _ in listening} <= {"127.0.0.1", "::1"}, listening
    refused = requests.post(f"http://127.0.0.1:{relay}/events", json={"key": "/buckets/x/y"}, timeout=5)
    assert refused.status_code == 401
    asyncio.run(_messages_waiting(_broker(stack), queue))  # the watcher's queue is in the stack's vhost

    # The accounts' passwords reach the processes in their environment only: no log, no supervisord config.
    secrets = stack.state.secrets()
    for path in [*stack.state.logs.glob("*.log"), stack.state.supervisor / "supervisord.conf"]:
        text = path.read_text(errors="ignore")
        for secret in (secrets.rabbitmq_password, secrets.postgres_password, secrets.redis_password):
            assert secret not in text, path


HA_BURST = int(os.environ.get("LANDFALL_HA_BURST", "40"))
"""Files in the HA burst: a small one in the suite; `make ha-burst` runs 500."""


def _triggerer_running_the_watcher(stack) -> str:
    """The triggerer whose log shows the landing watcher's newest sweep or stats line."""
    newest = {}
    for name in (c for c in stack.components if c.startswith("triggerer")):
        log = stack.state.logs / f"{name}.log"
        lines = [
            line
            for line in (log.read_text(errors="replace").splitlines() if log.exists() else [])
            if "Reconciliation sweep" in line or "Watcher stats" in line
        ]
        if lines:
            newest[name] = lines[-1][:32]  # the ISO timestamp the line starts with
    assert newest, "no triggerer runs the landing watcher"
    return max(newest, key=newest.__getitem__)


def test_a_burst_while_a_triggerer_and_a_scheduler_are_sigkilled_is_recorded_exactly_once(scaleout_stack):
    """Two schedulers and two triggerers on PostgreSQL. Files land while the triggerer running the
    watcher and then a scheduler are SIGKILLed: every file ends in exactly one raw or quarantine record,
    and the one good day gets exactly one run of each chain DAG."""
    from landfall.ops.bench.landing_records import landing_runs, outcome_counts
    from landfall.ops.landings import put_landing
    from landfall.pipeline.datagen import make_corrupt

    stack, api = scaleout_stack, scaleout_stack.api()
    assert {"scheduler-2", "triggerer-2"} <= set(stack.components)
    good_day = unique_day(2450)
    good = land(stack, day_key(good_day), to_parquet(make_batch(3000, seed=4545)))
    first = date(2500, 1, 1)  # distinct days: one key each
    keys = [day_key((first + timedelta(days=n)).isoformat()) for n in random.sample(range(30000), HA_BURST)]
    s3, bucket, body = stack.s3_client(), stack.settings.storage.datasets_bucket, make_corrupt("schema")
    started = time.time()
    for key in keys[: HA_BURST // 2]:
        put_landing(s3, bucket, key, body)
    killed_triggerer = _triggerer_running_the_watcher(stack)
    assert stack.kill(killed_triggerer)
    for key in keys[HA_BURST // 2 :]:
        put_landing(s3, bucket, key, body)
    assert stack.kill("scheduler")
    everything = {*keys, good.key}
    deadline = time.monotonic() + TIMEOUT_S + HA_BURST
    while (counts := outcome_counts(api, everything)) and not all(counts.values()):
        assert time.monotonic() < deadline, (
            f"not recorded: {sorted(k for k, n in counts.items() if not n)[:5]}"
        )
        time.sleep(3)
    wall_s = time.time() - started
    follow_landing(api, good.key, good.etag, timeout_s=TIMEOUT_S)
    # From the PUT, not from the ingest run followed: the killed triggerer may report the good day again,
    # and the later run (which follow_landing may pick) skips publishing what the first one published.
    put_at = datetime.fromtimestamp(good.put_at, UTC)
    chain = follow_chain(api, good_day, put_at, timeout_s=TIMEOUT_S)
    assert [r.state for r in chain] == ["success"] * 4
    time.sleep(15)  # time for a late duplicate to show
    counts = outcome_counts(api, everything)
    runs_per_dag = {
        dag_id: [r for r in api.dag_runs(dag_id, limit=100) if r.get("partition_key") == good_day]
        for dag_id in CHURN.after_ingest
    }
    events = landing_runs(api, everything) or {}
    event_runs = {e["id"]: len(e["created_dagruns"]) for evs in events.values() for e in evs}
    print(
        "HA burst:",
        {
            "files": len(everything),
            "wall_s": round(wall_s, 1),
            "killed": [killed_triggerer, "scheduler"],
            "lost": sum(1 for n in counts.values() if n == 0),
            "duplicate_records": sum(n - 1 for n in counts.values() if n > 1),
            "landing_events": len(event_runs),
            "events_with_more_than_one_run": sum(1 for n in event_runs.values() if n > 1),
            "chain_runs_for_the_good_day": {d: len(r) for d, r in runs_per_dag.items()},
        },
    )
    assert all(n == 1 for n in counts.values()), {k: n for k, n in counts.items() if n != 1}
    per_dag = {dag_id: len(runs) for dag_id, runs in runs_per_dag.items()}
    assert per_dag == dict.fromkeys(CHURN.after_ingest, 1)
