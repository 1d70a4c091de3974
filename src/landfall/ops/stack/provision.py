"""One-time work around the processes: rendered config files, buckets, databases, the migration, the pool.

Every function is safe to repeat; `landfall up` calls them on each start.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hmac
import ipaddress
import json
import socket
import string
import subprocess
from collections.abc import Callable
from urllib.parse import quote, urlsplit, urlunsplit

from landfall.core import catalog
from landfall.core.paths import AIRFLOW_CFG_TEMPLATE, DAGS_FOLDER, REPO_ROOT
from landfall.ops.stack import accounts, postgres_role
from landfall.ops.stack.components import Context, StackError, executable
from landfall.ops.stack.state import StackSecrets

Echo = Callable[[str], None]

LOCAL_SETTINGS = """# Rendered by `landfall up`. The scheduler (and a Celery worker) import the heavy task
# libraries once, before they fork task processes: see landfall/airflow/preload.py.
from landfall.airflow.preload import warm_task_imports

warm_task_imports()
"""


def render(ctx: Context, secrets: StackSecrets) -> None:
    """airflow.cfg, the login file, SeaweedFS's identities and security, MLflow's auth config (all 0600)."""
    state, storage = ctx.state, ctx.settings.storage
    state.ensure()
    config = string.Template(AIRFLOW_CFG_TEMPLATE.read_text()).substitute(
        dags_folder=DAGS_FOLDER,
        parallelism=ctx.settings.stack.parallelism,
        host=ctx.host,
        airflow_api_port=ctx.ports.airflow_api,
        airflow_home=state.airflow_home,
        aws_conn_id=storage.aws_conn_id,
        xcom_bucket=storage.xcom_bucket,
        xcom_prefix=storage.xcom_prefix,
    )
    state.write_private(state.airflow_home / "airflow.cfg", config)
    # Airflow imports $AIRFLOW_HOME/config/airflow_local_settings.py in every component at start-up.
    state.write_private(state.airflow_home / "config" / "airflow_local_settings.py", LOCAL_SETTINGS)
    state.write_private(
        state.airflow_home / "simple_auth_manager_passwords.json",
        json.dumps({"admin": secrets.admin_password}),
    )
    identities = {
        "identities": [
            {
                "name": "landfall",
                "credentials": [{"accessKey": secrets.s3_access_key, "secretKey": secrets.s3_secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    state.write_private(state.root / "s3-identities.json", json.dumps(identities))
    _seaweed_security(ctx, secrets)
    state.write_private(state.mlflow_home / "basic_auth.ini", _mlflow_auth_ini(ctx))


def _seaweed_security(ctx: Context, secrets: StackSecrets) -> None:
    """SeaweedFS's own ports refuse anonymous use: JWT-signed volume and filer HTTP (reads and writes),
    mutual TLS on every gRPC port. Only its S3 port (with the generated keys) serves data."""
    folder = ctx.state.seaweed
    if not (folder / "tls.key").exists():
        for name, content in _certificates(ctx.host).items():
            ctx.state.write_private(folder / name, content)
    grpc = "\n".join(
        f'[grpc.{part}]\ncert = "{folder}/tls.crt"\nkey = "{folder}/tls.key"\n'
        'allowed_commonNames = "landfall"\n'
        for part in ("master", "volume", "filer", "s3")
    )
    security = f"""# Rendered by `landfall up`; the keys are generated per stack.
[jwt.signing]
key = "{secrets.seaweed_volume_write_key}"
expires_after_seconds = 10
[jwt.signing.read]
key = "{secrets.seaweed_volume_read_key}"
expires_after_seconds = 10
[jwt.filer_signing]
key = "{secrets.seaweed_filer_write_key}"
expires_after_seconds = 10
[jwt.filer_signing.read]
key = "{secrets.seaweed_filer_read_key}"
expires_after_seconds = 10
[access]
ui = false
[grpc]
ca = "{folder}/ca.crt"
{grpc}
[grpc.client]
cert = "{folder}/tls.crt"
key = "{folder}/tls.key"
"""
    ctx.state.write_private(folder / "security.toml", security)


def bucket_notifications(ctx: Context) -> None:
    """Queue mode on the local stack: SeaweedFS's filer POSTs every change under the landing prefix to
    the notify relay (`notification.webhook`), which publishes it to a RabbitMQ fanout exchange bound to
    the durable queue the watcher consumes (both named by `watcher.queue_url`'s fragment). List mode:
    no notification config at all."""
    config = ctx.state.seaweed / "notification.toml"
    target = rabbit_target(ctx)
    if target is None:
        config.unlink(missing_ok=True)
        return
    queue = accounts.watcher_queue(ctx)
    if queue and accounts.watcher_rabbitmq_administered(ctx):  # the project's vhost and user first
        accounts.ensure_rabbitmq_account(ctx, queue[0])
    storage = ctx.settings.storage
    ctx.state.write_private(
        config,
        f"""# Rendered by `landfall up` (watcher.mode: queue); see landfall.ops.stack.notify_relay.
[notification.webhook]
enabled = true
endpoint = "http://{ctx.host}:{ctx.ports.notify_relay}/events"
bearer_token = "{relay_token(ctx.state.secrets())}"
event_types = ["create", "update", "rename"]
path_prefixes = ["/buckets/{storage.datasets_bucket}/{storage.landing_prefix}/"]
max_retries = 10
backoff_seconds = 1
max_backoff_seconds = 30
workers = 8
""",
    )
    asyncio.run(declare_exchange_and_queue(*target))


def relay_token(secrets: StackSecrets) -> str:
    """The filer's bearer token for the notify relay, derived from a stack secret (never in git)."""
    return hmac.new(secrets.event_signing_key.encode(), b"landfall notify relay", "sha256").hexdigest()


def rabbit_target(ctx: Context) -> tuple[str, str] | None:
    """(AMQP URL with the watcher's credentials, exchange and queue name) in queue mode: the project's
    vhost and user where the launcher administers the broker (see `accounts`)."""
    if (queue := accounts.watcher_queue(ctx)) is None:
        return None
    user, password = accounts.amqp_credentials(ctx, ctx.state.secrets())
    scheme, _, rest = queue[0].partition("://")
    return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{rest}", queue[1]


def remove_bucket_notifications(ctx: Context) -> None:
    """Delete the exchange and queue `bucket_notifications` declared, and the project's RabbitMQ vhost and
    user (a throw-away stack's)."""
    if (target := rabbit_target(ctx)) is not None:
        with contextlib.suppress(Exception):  # the vhost may be gone already
            asyncio.run(delete_exchange_and_queue(*target))
        accounts.remove_rabbitmq_account(ctx)


async def delete_exchange_and_queue(url: str, name: str) -> None:
    import aio_pika

    async with await aio_pika.connect(url, timeout=10) as connection:
        channel = await connection.channel()
        await channel.queue_delete(name)
        await channel.exchange_delete(name)


async def declare_exchange_and_queue(url: str, name: str) -> None:
    import aio_pika

    try:
        connection = await aio_pika.connect(url, timeout=10)
    except Exception as error:
        raise StackError(
            f"watcher.mode is queue, but RabbitMQ does not answer at {without_password(url)} ({error}). "
            "Start it (`rabbitmq-server -detached`) or set LANDFALL_WATCHER__MODE=list"
        ) from None
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.FANOUT, durable=True)
        queue = await channel.declare_queue(name, durable=True)
        await queue.bind(exchange)


def _certificates(host: str) -> dict[str, bytes]:
    """A private CA and one certificate (CN landfall, for 127.0.0.1) for SeaweedFS's mutual TLS."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def builder(subject: str, issuer: str, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
        )

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        builder("landfall-ca", "landfall-ca", ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        names.append(x509.DNSName(host))
    cert = (
        builder("landfall", "landfall-ca", key)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return {
        "ca.crt": ca.public_bytes(pem),
        "tls.crt": cert.public_bytes(pem),
        "tls.key": key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    }


def _mlflow_auth_ini(ctx: Context) -> str:
    """MLflow's basic-auth app: the admin user gets its password from the environment on first start."""
    return f"""[mlflow]
default_permission = NO_PERMISSIONS
database_uri = sqlite:///{ctx.state.mlflow_home}/basic_auth.db
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
grant_default_workspace_access = false
auth_cache_ttl_seconds = 300
"""


def create_buckets(ctx: Context, echo: Echo) -> None:
    s3 = ctx.s3_client()
    storage = ctx.settings.storage
    existing = {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}
    for bucket in (storage.datasets_bucket, storage.mlflow_artifacts_bucket, storage.xcom_bucket):
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
            echo(f"  created bucket s3://{bucket}")


def create_databases(ctx: Context, echo: Echo) -> None:
    """Create the Airflow and MLflow databases on the PostgreSQL server when they are missing."""
    import psycopg2
    from psycopg2 import sql

    scaleout = ctx.scaleout
    try:
        connection = psycopg2.connect(scaleout.database_url("postgres"), connect_timeout=5)
    except psycopg2.OperationalError as error:
        raise StackError(
            f"PostgreSQL does not answer at {without_password(scaleout.postgres_url)}: "
            f"{str(error).strip()}\nStart it (or set LANDFALL_STACK__SCALEOUT__POSTGRES_URL)."
        ) from None
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            # The stack's processes log in as the project's role, which owns the databases.
            role = postgres_role.ensure_role(ctx, cursor) if postgres_role.managed(ctx) else None
            for database in (scaleout.airflow_database, scaleout.mlflow_database):
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                if cursor.fetchone() is None:
                    owner = sql.SQL(" OWNER {}").format(sql.Identifier(role)) if role else sql.SQL("")
                    cursor.execute(sql.SQL("CREATE DATABASE {}{}").format(sql.Identifier(database), owner))
                    echo(f"  created PostgreSQL database {database}")
                if role:
                    postgres_role.hand_over_database(ctx, cursor, database, role)
    finally:
        connection.close()


BROKER_PORTS = {"amqp": 5672, "amqps": 5671, "redis": 6379, "rediss": 6379}


def check_broker(ctx: Context) -> None:
    """Fail early, and say so, when the Celery broker does not answer; then the stack's own account on it,
    and a login as the worker will log in (the URL `celery_environment` gives it).

    Reachability is a plain TCP connect, not a login with the configured URL: that URL names no account,
    so on RabbitMQ it would log in as `guest` on `/`, which an operator may have deleted (as the README
    advises) before the stack's own account exists."""
    import kombu

    configured = ctx.scaleout.broker_url
    where = without_password(configured)
    parts = urlsplit(configured)
    try:
        port = parts.port or BROKER_PORTS[parts.scheme]
        socket.create_connection((parts.hostname or "localhost", port), timeout=5).close()
    except (OSError, ValueError) as error:
        raise StackError(
            f"the Celery broker does not answer at {where}: {error}\n"
            "Start it (or set LANDFALL_STACK__SCALEOUT__BROKER_URL)."
        ) from None
    accounts.ensure_broker_account(ctx)
    worker_url = accounts.celery_environment(ctx, ctx.state.secrets())["AIRFLOW__CELERY__BROKER_URL"]
    try:
        with kombu.Connection(worker_url, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as error:
        raise StackError(
            f"the Celery broker at {where} answers but refuses the worker's login as "
            f"{without_password(worker_url)}: {error}\n"
            "Check the account (or the credentials in LANDFALL_STACK__SCALEOUT__BROKER_URL)."
        ) from None


def migrate(ctx: Context, env: dict[str, str], log_tail: Callable[[str, int], str]) -> None:
    log = ctx.state.logs / "db-migrate.log"
    with open(log, "ab") as handle:
        result = subprocess.run(
            [executable("airflow"), "db", "migrate"],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            timeout=600,
            check=False,
        )
    if result.returncode != 0:
        raise StackError(
            f"`airflow db migrate` failed (exit {result.returncode}).\n{log_tail('db-migrate', 25)}"
        )


def create_pools(api: object, pipelines: list[str]) -> None:
    """Each pipeline's one-slot pool, taken by every task that moves its champion alias. (A task whose
    pool does not exist is never scheduled, so this runs on every start.)

    Right after start-up the api-server's write can wait on SQLite's lock (the dag-processor writes
    every DAG at once) for longer than the client waits: a timed-out POST is asked again after a GET,
    which finds the pool if the first POST did create it."""
    import requests
    from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

    @retry(
        retry=retry_if_exception_type((requests.Timeout, requests.ConnectionError)),
        stop=stop_after_attempt(6),
        wait=wait_exponential(multiplier=1, max=8),
        reraise=True,
    )
    def ensure(pipeline: str) -> None:
        pool = catalog.chain_of(pipeline).promotion_pool
        try:
            api.get(f"pools/{pool}")  # type: ignore[attr-defined]
            return
        except requests.HTTPError as error:
            if error.response is None or error.response.status_code != 404:
                raise
        body = {
            "name": pool,
            "slots": 1,
            "description": f"Landfall {pipeline}: deploy's promotions and rollbacks, one at a time",
        }
        try:
            api.post("pools", body)  # type: ignore[attr-defined]
        except requests.HTTPError as error:
            if error.response is None or error.response.status_code != 409:  # 409: made meanwhile
                raise

    for pipeline in pipelines:
        ensure(pipeline)


def without_password(url: str) -> str:
    """A service URL safe to print: any password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))
