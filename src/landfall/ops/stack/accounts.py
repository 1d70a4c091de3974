"""The stack's own accounts on the shared services it uses, instead of their default superusers:

- RabbitMQ (queue mode): a vhost and a user with permissions on that vhost only; the watcher, the notify
  relay and a Celery broker on RabbitMQ use them, so `guest` has nothing to do with the stack.
- PostgreSQL (scale-out): a login role that owns the databases the launcher creates (`postgres_role`).
- Redis (scale-out broker): an ACL user limited to the key and channel prefix Celery is told to use
  (`global_keyprefix`) and to the commands Celery needs (nothing dangerous: no FLUSHALL, KEYS, CONFIG).

Only a service the launcher administers gets one: on 127.0.0.1/localhost and named without credentials
(the defaults). The account is `landfall_<id>` (a hash of the state folder: two checkouts never share
one), its password is generated into secrets.json, and every `landfall up` applies it again, so a lost
secrets file regenerates the password and resets the account's. A service named with credentials is
used as it is configured.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shlex
import socket
import subprocess
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from landfall.ops.stack.components import Context, StackError, queue_mode_on_rabbitmq
from landfall.ops.stack.state import StackSecrets

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_VHOST_PATHS = frozenset({"", "/", "/%2F", "/%2f"})
NO_SUCH_USER, NO_SUCH_VHOST = 67, 65  # rabbitmqctl's exit codes
# What Celery (kombu's Redis transport) runs: lists, hashes, sets, sorted sets, pub/sub, MULTI/EXEC, TIME
# and the Lua scripts of its bindings and locks; nothing dangerous or administrative, no script or function
# management (tests/integration/test_redis_account.py runs a Celery worker with exactly these).
CELERY_REDIS_COMMANDS = (
    "+@connection",
    "+@keyspace",
    "+@string",
    "+@list",
    "+@hash",
    "+@set",
    "+@sortedset",
    "+@pubsub",
    "+@transaction",
    "+@scripting",
    "+time",
    "-@dangerous",
    "-@admin",
    "-function",
    "-script|flush",
    "-script|kill",
)


def project_name(ctx: Context) -> str:
    """The stack's account (and RabbitMQ vhost) name on every shared service."""
    return "landfall_" + hashlib.sha256(str(ctx.state.root.resolve()).encode()).hexdigest()[:10]


def administered(url: str, user_of_its_own: bool = False) -> bool:
    """A local service named without a password (nor a user of its own: PostgreSQL's URL names the
    superuser the launcher administers it as)."""
    parts = urlsplit(url)
    local = parts.hostname in LOCAL_HOSTS and parts.password is None
    return local and (user_of_its_own or not parts.username)


# ---- RabbitMQ ---------------------------------------------------------------------------------------


def _vhost(ctx: Context, address: str) -> str:
    path = urlsplit(address).path
    return project_name(ctx) if path in DEFAULT_VHOST_PATHS else unquote(path[1:])


def _with_vhost(address: str, vhost: str) -> str:
    return urlunsplit(urlsplit(address)._replace(path="/" + quote(vhost, safe="")))


def _with_credentials(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))


def watcher_rabbitmq_administered(ctx: Context) -> bool:
    """Queue mode on a local RabbitMQ, and no other AMQP user chosen with LANDFALL_AMQP_USER."""
    if not queue_mode_on_rabbitmq(ctx.settings):
        return False
    user = os.environ.get("LANDFALL_AMQP_USER")
    return administered(ctx.settings.watcher.queue_url) and user in (None, "", project_name(ctx))


def watcher_queue(ctx: Context) -> tuple[str, str] | None:
    """(AMQP URL without credentials, queue and exchange name) of the watcher in queue mode; the URL names
    the project's vhost where the launcher administers the broker."""
    if not queue_mode_on_rabbitmq(ctx.settings):
        return None
    address, _, name = ctx.settings.watcher.queue_url.partition("#")
    if watcher_rabbitmq_administered(ctx):
        address = _with_vhost(address, _vhost(ctx, address))
    return address, name or "landfall-landings"


def amqp_credentials(ctx: Context, secrets: StackSecrets) -> tuple[str, str]:
    """Who the watcher and the relay log in as: the project's user, or LANDFALL_AMQP_USER and
    LANDFALL_AMQP_PASSWORD (RabbitMQ's `guest` when unset) where the launcher does not administer it."""
    if watcher_rabbitmq_administered(ctx):
        return project_name(ctx), secrets.rabbitmq_password
    user = os.environ.get("LANDFALL_AMQP_USER") or "guest"
    return user, os.environ.get("LANDFALL_AMQP_PASSWORD", "guest" if user == "guest" else "")


def _rabbitmqctl(*args: str, stdin: str | None = None, accept: tuple[int, ...] = (0,)) -> int:
    command = [*shlex.split(os.environ.get("LANDFALL_RABBITMQCTL", "rabbitmqctl")), "--quiet", *args]
    try:
        result = subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        result = subprocess.CompletedProcess(command, -1, "", str(error))
    if result.returncode not in accept:
        raise StackError(
            f"`rabbitmqctl {args[0]}` failed ({result.returncode}): {result.stderr.strip()[:300]}\n"
            "The launcher creates the stack's own RabbitMQ vhost and user with rabbitmqctl: run it where "
            "rabbitmqctl works, name the command with LANDFALL_RABBITMQCTL (e.g. 'sudo -n rabbitmqctl' or "
            "'docker exec -i rabbitmq rabbitmqctl'), or use an account of your own (LANDFALL_AMQP_USER and "
            "LANDFALL_AMQP_PASSWORD)."
        )
    return result.returncode


async def _log_in(url: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(url, timeout=10)
    await connection.close()


def ensure_rabbitmq_account(ctx: Context, address: str) -> None:
    """The project's user, with its generated password and permissions on its vhost only (created when
    missing; `guest` gets none there). A login that works already costs nothing more."""
    parts = urlsplit(address)
    try:
        socket.create_connection((parts.hostname, parts.port or 5672), timeout=10).close()
    except OSError as error:
        raise StackError(f"RabbitMQ does not answer at {address} ({error}). Start it.") from None
    user, password = project_name(ctx), ctx.state.secrets().rabbitmq_password
    try:
        asyncio.run(_log_in(_with_credentials(address, user, password)))
        return
    except Exception:  # no such user or vhost, no permission on it, or an earlier secrets file's password
        pass
    vhost = unquote(parts.path[1:])
    _rabbitmqctl("add_vhost", vhost)
    if _rabbitmqctl("change_password", user, stdin=password, accept=(0, NO_SUCH_USER)) == NO_SUCH_USER:
        _rabbitmqctl("add_user", user, stdin=password)
    _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    if vhost == user:
        _rabbitmqctl("clear_permissions", "-p", vhost, "guest", accept=(0, NO_SUCH_USER))


def remove_rabbitmq_account(ctx: Context) -> None:
    """A throw-away stack's: its user, and its vhost with everything in it."""
    if not watcher_rabbitmq_administered(ctx) and _celery_vhost(ctx) is None:
        return
    _rabbitmqctl("delete_user", project_name(ctx), accept=(0, NO_SUCH_USER))
    _rabbitmqctl("delete_vhost", project_name(ctx), accept=(0, NO_SUCH_VHOST))


def _celery_vhost(ctx: Context) -> str | None:
    url = ctx.scaleout.broker_url if ctx.scaleout else ""
    if not url.startswith(("amqp://", "amqps://")) or not administered(url):
        return None
    return _vhost(ctx, url)


# ---- Redis (and Celery on either broker) ------------------------------------------------------------


def redis_administered(ctx: Context) -> bool:
    return (
        ctx.scaleout is not None
        and ctx.scaleout.broker_url.startswith("redis://")
        and administered(ctx.scaleout.broker_url)
    )


def key_prefix(ctx: Context) -> str:
    return f"{project_name(ctx)}:"


def ensure_redis_user(ctx: Context) -> None:
    """`ACL SETUSER` as the configured (default) user: the project's user, its password (sent as its
    SHA-256) and its rules, reset to exactly these on every start."""
    import redis

    password = ctx.state.secrets().redis_password
    client = redis.Redis.from_url(ctx.scaleout.broker_url, socket_timeout=10)
    prefix = key_prefix(ctx)
    # PSUBSCRIBE is allowed only for a pattern listed literally: the worker's remote control (pidbox) and
    # its gossip (worker events), on kombu's fanout channels `/<db>.<exchange>`.
    fanout = f"{prefix}/{urlsplit(ctx.scaleout.broker_url).path.strip('/') or 0}."
    try:
        client.execute_command(
            "ACL",
            "SETUSER",
            project_name(ctx),
            "reset",
            "on",
            "#" + hashlib.sha256(password.encode()).hexdigest(),
            f"~{prefix}*",
            f"&{prefix}*",
            f"&{fanout}celery.pidbox",
            f"&{fanout}celeryev/worker.*",
            *CELERY_REDIS_COMMANDS,
        )
    except redis.RedisError as error:
        raise StackError(
            f"could not create the stack's Redis user ({error}): Redis 6 or newer is needed for ACL users; "
            "or put credentials of your own in LANDFALL_STACK__SCALEOUT__BROKER_URL"
        ) from None
    finally:
        client.close()


def celery_environment(ctx: Context, secrets: StackSecrets) -> dict[str, str]:
    """Celery's broker URL (in the environment only) and, on Redis, the key prefix its ACL allows."""
    url = ctx.scaleout.broker_url
    if redis_administered(ctx):
        return {
            "AIRFLOW__CELERY__BROKER_URL": _with_credentials(url, project_name(ctx), secrets.redis_password),
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": key_prefix(ctx),
        }
    if (vhost := _celery_vhost(ctx)) is not None:
        url = _with_credentials(_with_vhost(url, vhost), project_name(ctx), secrets.rabbitmq_password)
    return {"AIRFLOW__CELERY__BROKER_URL": url}


def ensure_broker_account(ctx: Context) -> None:
    if redis_administered(ctx):
        ensure_redis_user(ctx)
    elif (vhost := _celery_vhost(ctx)) is not None:
        ensure_rabbitmq_account(ctx, _with_vhost(ctx.scaleout.broker_url, vhost))


# ---- the environment and clean-up -------------------------------------------------------------------


def environment(ctx: Context, secrets: StackSecrets) -> dict[str, str]:
    """What points the stack's processes at their RabbitMQ and Redis accounts (in the environment only)."""
    env: dict[str, str] = {}
    if watcher_rabbitmq_administered(ctx) and (queue := watcher_queue(ctx)):
        user, password = amqp_credentials(ctx, secrets)
        env |= {
            "LANDFALL_WATCHER__QUEUE_URL": f"{queue[0]}#{queue[1]}",
            "LANDFALL_AMQP_USER": user,
            "LANDFALL_AMQP_PASSWORD": password,
        }
    if ctx.scaleout is not None:
        env |= celery_environment(ctx, secrets)
    return env


def remove_accounts(ctx: Context) -> None:
    """A throw-away stack's RabbitMQ user and vhost, and its Redis user and keys (its PostgreSQL role:
    `postgres_role.remove_role`, once its databases are dropped). Nothing else on the services."""
    remove_rabbitmq_account(ctx)
    remove_redis_user(ctx)


def remove_redis_user(ctx: Context) -> None:
    if redis_administered(ctx):
        import redis

        client = redis.Redis.from_url(ctx.scaleout.broker_url, socket_timeout=10)
        try:
            client.execute_command("ACL", "DELUSER", project_name(ctx))
            for key in client.scan_iter(match=f"{key_prefix(ctx)}*", count=1000):
                client.delete(key)
        finally:
            client.close()
