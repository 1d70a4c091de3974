"""Where the launcher points the stack's processes: its own RabbitMQ, PostgreSQL and Redis accounts, with
the passwords in the environment only (never in a URL of supervisord's config or on a command line), and
services named with credentials of their own used as configured. No service is contacted here; the
accounts themselves are tested against the real servers in tests/integration/test_*_account.py."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from landfall.core.settings import load_settings
from landfall.ops.stack import accounts, postgres_role
from landfall.ops.stack.components import Context
from landfall.ops.stack.notify_relay import broker_url
from landfall.ops.stack.state import StackState


@pytest.fixture
def stack_env(monkeypatch, tmp_path):
    """A settings factory for a throw-away state folder (environment variables as overrides)."""
    monkeypatch.setenv("LANDFALL_STACK__STATE_DIR", str(tmp_path / "state"))
    for name in ("LANDFALL_AMQP_USER", "LANDFALL_AMQP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)

    def make(**env: str):
        from landfall.ops.stack.launcher import Stack

        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings = load_settings()
        return Stack(settings, echo=lambda _line: None)

    return make


QUEUE_MODE = {
    "LANDFALL_WATCHER__MODE": "queue",
    "LANDFALL_WATCHER__QUEUE_URL": "amqp://127.0.0.1:5672/#landings",
}
SCALEOUT = {"LANDFALL_STACK__PROFILE": "scaleout"}


def _supervisor_config(stack) -> str:
    return stack.supervisor.render(stack._programs())


def test_queue_mode_points_the_watcher_and_the_relay_at_the_projects_vhost_with_credentials_in_env_only(
    stack_env,
):
    stack = stack_env(**QUEUE_MODE)
    secrets, name = stack.state.secrets(), accounts.project_name(stack.ctx)
    env = stack.environment()
    queue_url = urlsplit(env["LANDFALL_WATCHER__QUEUE_URL"])
    assert queue_url.path == f"/{name}" and queue_url.fragment == "landings"
    assert queue_url.username is None and queue_url.password is None  # the trigger's kwargs are stored
    assert (env["LANDFALL_AMQP_USER"], env["LANDFALL_AMQP_PASSWORD"]) == (name, secrets.rabbitmq_password)
    assert env["LANDFALL_AMQP_USER"] != "guest"
    config = _supervisor_config(stack)
    assert "notify-relay" in config and secrets.rabbitmq_password not in config
    [relay] = [p for p in stack._programs() if p.name == "notify-relay"]
    assert relay.env["LANDFALL_RELAY_AMQP_URL"] == f"amqp://127.0.0.1:5672/{name}"
    # The relay adds the account from the environment it inherits, as the triggerer does.
    assert (
        broker_url({**relay.env, **env}) == f"amqp://{name}:{secrets.rabbitmq_password}@127.0.0.1:5672/{name}"
    )


def test_the_account_is_named_for_its_state_folder(stack_env, tmp_path, monkeypatch):
    first = accounts.project_name(stack_env(**QUEUE_MODE).ctx)
    assert first == accounts.project_name(stack_env(**QUEUE_MODE).ctx)
    monkeypatch.setenv("LANDFALL_STACK__STATE_DIR", str(tmp_path / "another checkout"))
    other = accounts.project_name(stack_env(**QUEUE_MODE).ctx)
    assert other != first and other.startswith("landfall_") and first.isidentifier()


def test_an_explicit_vhost_is_kept_and_gets_the_projects_user(stack_env):
    stack = stack_env(
        LANDFALL_WATCHER__MODE="queue", LANDFALL_WATCHER__QUEUE_URL="amqp://localhost:5672/ours#q"
    )
    env = stack.environment()
    assert env["LANDFALL_WATCHER__QUEUE_URL"] == "amqp://localhost:5672/ours#q"
    assert env["LANDFALL_AMQP_USER"] == accounts.project_name(stack.ctx)


@pytest.mark.parametrize(
    "env",
    [
        {**QUEUE_MODE, "LANDFALL_AMQP_USER": "alice", "LANDFALL_AMQP_PASSWORD": "hers"},
        {"LANDFALL_WATCHER__MODE": "queue", "LANDFALL_WATCHER__QUEUE_URL": "amqp://rabbit.internal:5672/#q"},
    ],
    ids=["an account of the user's own", "a broker elsewhere"],
)
def test_a_broker_the_launcher_does_not_administer_is_used_as_configured(stack_env, env):
    stack = stack_env(**env)
    assert not accounts.watcher_rabbitmq_administered(stack.ctx)
    assert "LANDFALL_WATCHER__QUEUE_URL" not in stack.environment()
    address, _ = accounts.watcher_queue(stack.ctx)
    assert address == env["LANDFALL_WATCHER__QUEUE_URL"].partition("#")[0]
    user, _ = accounts.amqp_credentials(stack.ctx, stack.state.secrets())
    assert user == env.get("LANDFALL_AMQP_USER", "guest")


def test_scaleout_processes_log_in_as_the_projects_role_and_redis_user_with_no_password_in_a_url_or_command(
    stack_env,
):
    stack = stack_env(**SCALEOUT)
    secrets, name = stack.state.secrets(), accounts.project_name(stack.ctx)
    env = stack.environment()
    database = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert (database.username, database.password, database.path) == (name, None, "/landfall_airflow")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["PGPASSFILE"] == str(stack.state.root / "pgpass")
    broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
    assert (broker.username, broker.password, broker.path) == (name, secrets.redis_password, "/0")
    assert env["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX"] == f"{name}:"
    config = _supervisor_config(stack)
    assert f"postgresql+psycopg2://{name}@127.0.0.1:5432/landfall_mlflow" in config  # MLflow's command
    for secret in (secrets.postgres_password, secrets.redis_password, secrets.rabbitmq_password):
        assert secret not in config


def test_celery_on_a_local_rabbitmq_broker_uses_the_projects_vhost_and_user(stack_env):
    stack = stack_env(**SCALEOUT, LANDFALL_STACK__SCALEOUT__BROKER_URL="amqp://127.0.0.1:5672/")
    name, password = accounts.project_name(stack.ctx), stack.state.secrets().rabbitmq_password
    env = stack.environment()
    assert env["AIRFLOW__CELERY__BROKER_URL"] == f"amqp://{name}:{password}@127.0.0.1:5672/{name}"
    assert "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX" not in env


def test_services_named_with_credentials_of_their_own_are_used_as_configured(stack_env):
    stack = stack_env(
        **SCALEOUT,
        LANDFALL_STACK__SCALEOUT__POSTGRES_URL="postgresql://airflow:theirs@127.0.0.1:5432",
        LANDFALL_STACK__SCALEOUT__BROKER_URL="redis://:theirs@127.0.0.1:6379/3",
    )
    env = stack.environment()
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:theirs@")
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://:theirs@127.0.0.1:6379/3"
    assert "PGPASSFILE" not in env and "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX" not in env
    assert not postgres_role.managed(stack.ctx) and not accounts.redis_administered(stack.ctx)


def test_older_secrets_files_gain_the_service_passwords_and_keep_their_keys(stack_env):
    import json

    stack = stack_env(**QUEUE_MODE)
    state = StackState(stack.settings)
    first = state.secrets()
    stored = json.loads(state.secrets_file.read_text())
    for name in ("rabbitmq_password", "postgres_password", "redis_password"):
        del stored[name]
    state.secrets_file.write_text(json.dumps(stored))
    again = state.secrets()
    assert again.fernet_key == first.fernet_key and again.admin_password == first.admin_password
    assert len({again.rabbitmq_password, again.postgres_password, again.redis_password}) == 3
    assert Context(stack.settings, state).state.secrets() == again


class _GuestlessRabbitMQ:
    """kombu.Connection to a RabbitMQ whose `guest` is deleted (as the README advises): only the
    project's user, on its own vhost, logs in."""

    allowed: tuple[str, str] = ("", "")
    opened: list[str] = []

    def __init__(self, url: str, **_options) -> None:
        self.url = url

    def __enter__(self):
        return self

    def __exit__(self, *_exc) -> None:
        return None

    def ensure_connection(self, **_options) -> None:
        parts = urlsplit(self.url)
        type(self).opened.append(self.url)
        if (parts.username, parts.password) != self.allowed or parts.path != f"/{self.allowed[0]}":
            raise ConnectionRefusedError(f"ACCESS_REFUSED for {parts.username or 'guest'}")


@pytest.fixture
def guestless_broker(stack_env, monkeypatch):
    """A scale-out stack with Celery on a local RabbitMQ (something listens on the port) without guest."""
    import socket

    import kombu

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stack = stack_env(**SCALEOUT, LANDFALL_STACK__SCALEOUT__BROKER_URL=f"amqp://127.0.0.1:{port}/")
    made: list[str] = []
    monkeypatch.setattr(accounts, "ensure_rabbitmq_account", lambda _ctx, address: made.append(address))
    monkeypatch.setattr(_GuestlessRabbitMQ, "opened", [])
    monkeypatch.setattr(kombu, "Connection", _GuestlessRabbitMQ)
    yield stack, listener, made
    listener.close()


def test_the_broker_check_works_on_a_rabbitmq_without_guest_logging_in_only_as_the_stacks_account(
    guestless_broker, monkeypatch
):
    from landfall.ops.stack import provision

    stack, listener, made = guestless_broker
    name, password = accounts.project_name(stack.ctx), stack.state.secrets().rabbitmq_password
    monkeypatch.setattr(_GuestlessRabbitMQ, "allowed", (name, password))
    port = listener.getsockname()[1]
    provision.check_broker(stack.ctx)  # before the fix: "the Celery broker does not answer" (guest on /)
    assert made == [f"amqp://127.0.0.1:{port}/{name}"]
    # The one login is the worker's own, after its account exists: never guest's.
    assert _GuestlessRabbitMQ.opened == [stack.environment()["AIRFLOW__CELERY__BROKER_URL"]]


def test_the_broker_check_says_which_fails_a_broker_that_does_not_answer_or_refuses_the_worker(
    guestless_broker,
):
    from landfall.ops.stack import provision
    from landfall.ops.stack.components import StackError

    stack, listener, made = guestless_broker
    refused = r"refuses the worker's login as amqp://landfall_[0-9a-f]+:\*\*\*@"
    with pytest.raises(StackError, match=refused) as raised:
        provision.check_broker(stack.ctx)  # the account's password is not the one the broker knows
    assert stack.state.secrets().rabbitmq_password not in str(raised.value)
    made.clear()
    listener.close()  # nothing answers on the port any more
    with pytest.raises(StackError, match=r"the Celery broker does not answer at amqp://127\.0\.0\.1"):
        provision.check_broker(stack.ctx)
    assert made == []  # no account is attempted on a broker that is not there
