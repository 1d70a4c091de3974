"""The stack's components, declared as data: command, port, URL, health check, environment, stop grace.

Adding a component is adding one entry to `COMPONENTS`; the launcher, `landfall status`, the security
test and the benchmark's memory sampler all read this table.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import requests

from landfall.core.settings import Settings
from landfall.ops.stack.state import StackState

AirflowHealth = dict[str, Any] | None


class StackError(RuntimeError):
    """A component did not come up; the message says which, why, and where its log is."""


def executable(name: str) -> str:
    """A console script of this environment (the venv's bin folder), falling back to PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise StackError(f"`{name}` was not found next to {sys.executable} or on PATH; run `make install`")
    return found


@dataclass(frozen=True)
class Context:
    """What the component table needs to know about one stack."""

    settings: Settings
    state: StackState

    @property
    def host(self) -> str:
        return self.settings.stack.host

    @property
    def ports(self) -> Any:
        return self.settings.stack.ports

    @property
    def scaleout(self) -> Any:
        stack = self.settings.stack
        return stack.scaleout if stack.profile == "scaleout" else None

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.host}:{self.ports.s3}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.ports.mlflow}"

    @property
    def airflow_url(self) -> str:
        return f"http://{self.host}:{self.ports.airflow_api}"

    @property
    def serving_url(self) -> str:
        return f"http://{self.host}:{self.ports.serving}"

    def s3_client(self) -> Any:
        import boto3
        from botocore.config import Config

        secrets = self.state.secrets()
        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=secrets.s3_access_key,
            aws_secret_access_key=secrets.s3_secret_key,
            region_name="us-east-1",
            config=Config(connect_timeout=3, read_timeout=20, retries={"max_attempts": 2}),
        )

    def airflow_health(self) -> AirflowHealth:
        try:
            response = requests.get(f"{self.airflow_url}/api/v2/monitor/health", timeout=3)
            return response.json() if response.ok else None
        except (requests.RequestException, ValueError):
            return None


Check = Callable[[Context, AirflowHealth], tuple[bool, str]]


@dataclass(frozen=True)
class Component:
    name: str
    command: Callable[[Context], list[str]]
    health: Check
    port: str | None = None  # the PortSettings field it listens on (checked free before a start)
    url: Callable[[Context], str] | None = None
    env: Callable[[Context], dict[str, str]] = lambda ctx: {}
    cwd: Callable[[Context], Path] = lambda ctx: ctx.state.root
    stop_grace_s: int = 15
    profiles: tuple[str, ...] = ("embedded", "scaleout")
    airflow: bool = False  # reports through the api-server's health endpoint
    wanted: Callable[[Settings], bool] = lambda settings: True  # e.g. only in the watcher's queue mode


# ---- commands ---------------------------------------------------------------------------------------


def _seaweedfs(ctx: Context) -> list[str]:
    ports, state, s3 = ctx.ports, ctx.state, ctx.ports.s3
    return [
        executable("weed"),
        "server",
        f"-ip={ctx.host}",
        f"-ip.bind={ctx.host}",
        f"-dir={state.s3_data}",
        f"-master.port={ports.seaweed_master}",
        f"-volume.port={ports.seaweed_volume}",
        "-filer",
        f"-filer.port={ports.seaweed_filer}",
        f"-filer.localSocket={state.seaweed}/filer.sock",
        "-s3",
        f"-s3.port={s3}",
        "-s3.port.iceberg=0",  # no Iceberg catalog or Lance namespace: fewer open ports
        "-s3.port.lance=0",
        f"-metricsPort={s3 + 3}",
        f"-s3.localSocket={state.seaweed}/s3.sock",
        f"-s3.config={state.root / 's3-identities.json'}",
        # The default volume settings run out of volumes after a few buckets.
        "-volume.max=0",
        "-master.volumeSizeLimitMB=64",
    ]


def _mlflow(ctx: Context) -> list[str]:
    from landfall.ops.stack.postgres_role import database_url  # the project's role, no password in the URL

    backend = (
        database_url(ctx, ctx.scaleout.mlflow_database, driver=True)
        if ctx.scaleout
        else f"sqlite:///{ctx.state.mlflow_home}/mlflow.db"
    )
    return [
        executable("mlflow"),
        "server",
        "--app-name",
        "basic-auth",  # every API call needs the generated credentials
        "--host",
        ctx.host,
        "--port",
        str(ctx.ports.mlflow),
        "--workers",
        "1",
        "--backend-store-uri",
        backend,
        "--serve-artifacts",
        "--artifacts-destination",
        f"s3://{ctx.settings.storage.mlflow_artifacts_bucket}/artifacts",
    ]


def _airflow(*args: str) -> Callable[[Context], list[str]]:
    return lambda ctx: [executable("airflow"), *args]


def _api_server(ctx: Context) -> list[str]:
    return [
        executable("airflow"),
        "api-server",
        "--host",
        ctx.host,
        "--port",
        str(ctx.ports.airflow_api),
        "--workers",
        "1",
    ]


def _celery_worker(ctx: Context) -> list[str]:
    return [
        executable("airflow"),
        "celery",
        "worker",
        "--concurrency",
        str(ctx.scaleout.worker_concurrency if ctx.scaleout else 1),
        "--queues",
        ctx.scaleout.queue if ctx.scaleout else "landfall",
        "--skip-serve-logs",
        # A name of its own, so that two stacks on one broker host never share a worker name.
        "--celery-hostname",
        f"landfall-{ctx.ports.airflow_api}@%h",
    ]


# ---- health checks ----------------------------------------------------------------------------------


def _s3_health(ctx: Context, _: AirflowHealth) -> tuple[bool, str]:
    try:
        ctx.s3_client().list_buckets()
        return True, "S3 API answers with the generated keys"
    except Exception as error:
        return False, f"{type(error).__name__}: {str(error)[:200]}"


def _mlflow_health(ctx: Context, _: AirflowHealth) -> tuple[bool, str]:
    try:
        response = requests.get(f"{ctx.mlflow_url}/health", timeout=3)
        return response.ok, f"/health -> {response.status_code}"
    except requests.RequestException as error:
        return False, f"{type(error).__name__}: {str(error)[:200]}"


def _api_health(ctx: Context, health: AirflowHealth) -> tuple[bool, str]:
    return (
        (True, "/api/v2/monitor/health -> 200")
        if health is not None
        else (False, "api-server /api/v2/monitor/health does not answer")
    )


def _heartbeat(key: str) -> Check:
    def check(ctx: Context, health: AirflowHealth) -> tuple[bool, str]:
        if health is None:
            return False, "api-server /api/v2/monitor/health does not answer"
        part = health.get(key) or {}
        status = part.get("status")
        return status == "healthy", f"heartbeat {status} (latest {part.get(f'latest_{key}_heartbeat', part)})"

    return check


def _serving_health(ctx: Context, _: AirflowHealth) -> tuple[bool, str]:
    try:
        response = requests.get(f"{ctx.serving_url}/health", timeout=3)
        if not response.ok:
            return False, f"/health -> {response.status_code}"
        served = response.json()
        return True, f"serving version {served.get('serving')}" if served.get(
            "serving"
        ) else "no champion yet"
    except (requests.RequestException, ValueError) as error:
        return False, f"{type(error).__name__}: {str(error)[:200]}"


def _celery_health(ctx: Context, _: AirflowHealth) -> tuple[bool, str]:
    # Celery has no HTTP health endpoint; its worker logs "celery@<name> ready." once it consumes.
    log = ctx.state.logs / "celery-worker.log"
    ready = log.exists() and " ready." in log.read_text(errors="replace")
    return ready, "consuming from the broker" if ready else "not ready yet (see its log)"


def _relay_env(ctx: Context) -> dict[str, str]:
    # supervisord's config holds these: the broker's credentials reach the relay as LANDFALL_AMQP_USER and
    # LANDFALL_AMQP_PASSWORD in the stack's environment, as they reach the triggerer.
    from landfall.ops.stack.accounts import watcher_queue
    from landfall.ops.stack.provision import relay_token

    url, exchange = watcher_queue(ctx) or ("", "")
    return {
        "LANDFALL_RELAY_AMQP_URL": url,
        "LANDFALL_RELAY_EXCHANGE": exchange,
        "LANDFALL_RELAY_TOKEN": relay_token(ctx.state.secrets()),
        "LANDFALL_RELAY_PORT": str(ctx.ports.notify_relay),
    }


def _relay_health(ctx: Context, _: AirflowHealth) -> tuple[bool, str]:
    try:
        response = requests.get(f"http://{ctx.host}:{ctx.ports.notify_relay}/health", timeout=3)
        return response.ok, "publishing to RabbitMQ" if response.ok else f"/health -> {response.status_code}"
    except requests.RequestException as error:
        return False, f"{type(error).__name__}: {str(error)[:200]}"


def queue_mode_on_rabbitmq(settings: Settings) -> bool:
    watcher = settings.watcher
    return watcher.mode == "queue" and watcher.queue_url.startswith(("amqp://", "amqps://"))


# ---- the table --------------------------------------------------------------------------------------

COMPONENTS: tuple[Component, ...] = (
    Component(
        "s3",
        _seaweedfs,
        _s3_health,
        port="s3",
        url=lambda ctx: ctx.s3_endpoint,
        # SeaweedFS reads ./security.toml and puts its gRPC sockets in TMPDIR: both in its own folder.
        env=lambda ctx: {"TMPDIR": str(ctx.state.seaweed)},
        cwd=lambda ctx: ctx.state.seaweed,
        stop_grace_s=3,  # it ignores SIGTERM while busy; its data is safe to SIGKILL
    ),
    Component(
        "mlflow",
        _mlflow,
        _mlflow_health,
        port="mlflow",
        url=lambda ctx: ctx.mlflow_url,
        env=lambda ctx: {
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # its job workers cost ~170 MB
            "MLFLOW_AUTH_CONFIG_PATH": str(ctx.state.mlflow_home / "basic_auth.ini"),
        },
    ),
    Component(
        "api-server",
        _api_server,
        _api_health,
        port="airflow_api",
        url=lambda ctx: ctx.airflow_url,
        airflow=True,
    ),
    Component("scheduler", _airflow("scheduler", "--skip-serve-logs"), _heartbeat("scheduler"), airflow=True),
    Component("dag-processor", _airflow("dag-processor"), _heartbeat("dag_processor"), airflow=True),
    Component("triggerer", _airflow("triggerer", "--skip-serve-logs"), _heartbeat("triggerer"), airflow=True),
    Component(
        "serving",
        lambda ctx: [sys.executable, "-m", "landfall.serving"],
        _serving_health,
        port="serving",
        url=lambda ctx: ctx.serving_url,
        stop_grace_s=5,
    ),
    Component("celery-worker", _celery_worker, _celery_health, profiles=("scaleout",), airflow=True),
    Component(
        "notify-relay",
        lambda ctx: [sys.executable, "-m", "landfall.ops.stack.notify_relay"],
        _relay_health,
        port="notify_relay",
        env=_relay_env,
        stop_grace_s=5,
        wanted=queue_mode_on_rabbitmq,
    ),
)


REPLICATED = ("scheduler", "triggerer")
"""Components the scale-out profile can run more than once (`scheduler-2`, ...): on PostgreSQL only."""


def _replicas(settings: Settings) -> dict[str, int]:
    stack = settings.stack
    if stack.profile != "scaleout":
        return {}
    return {"scheduler": stack.scaleout.schedulers, "triggerer": stack.scaleout.triggerers}


def components_of(settings: Settings) -> tuple[Component, ...]:
    replicas, chosen = _replicas(settings), []
    for component in COMPONENTS:
        if settings.stack.profile in component.profiles and component.wanted(settings):
            chosen.append(component)
            extra = range(2, replicas.get(component.name, 1) + 1)
            chosen.extend(replace(component, name=f"{component.name}-{n}") for n in extra)
    return tuple(chosen)


def by_name(name: str) -> Component:
    base, _, replica = name.rpartition("-")
    for component in COMPONENTS:
        if component.name == name:
            return component
        if component.name == base and base in REPLICATED and replica.isdigit():
            return replace(component, name=name)
    raise KeyError(f"no component {name!r}; choose one of {', '.join(c.name for c in COMPONENTS)}")


def stop_waves(components: Iterable[Component], storage: Iterable[str]) -> list[list[str]]:
    """`landfall down`'s order, each wave stopped at once: Airflow's components, then its api-server
    (running tasks report through it until their scheduler has stopped), then MLflow and the services,
    `storage` last."""
    components, stored = tuple(components), list(storage)
    airflow = [c.name for c in components if c.airflow]
    services = [c.name for c in components if not c.airflow and c.name not in stored]
    return [
        [name for name in airflow if name != "api-server"],
        [name for name in airflow if name == "api-server"],
        services,
        stored,
    ]
