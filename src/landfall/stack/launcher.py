"""The embedded local stack: SeaweedFS (S3), MLflow and Airflow 3, all on 127.0.0.1, owned by one launcher.

`Stack.up()` renders the config, starts what is not running, and waits for each component's health
check; `Stack.down()` stops every process group it started. Nothing here is a daemon manager of its
own: each component is the upstream server binary, run detached in its own process group.
"""

from __future__ import annotations

import json
import os
import shutil
import string
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from landfall.airflow_api import AirflowApi
from landfall.settings import REPO_ROOT, Settings
from landfall.stack import process
from landfall.stack.state import StackSecrets, StackState

AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
COMPONENTS = ("s3", "mlflow", *AIRFLOW_COMPONENTS)
CELERY_WORKER = "celery-worker"
_HEALTH_KEYS = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}


class StackError(RuntimeError):
    """A component did not come up; the message says which, why, and where its log is."""


@dataclass
class ComponentStatus:
    name: str
    url: str | None
    pid: int | None
    running: bool
    healthy: bool
    detail: str
    log: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _bin(name: str) -> str:
    """A console script of this environment (the venv's bin folder), falling back to PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise StackError(f"`{name}` was not found next to {sys.executable} or on PATH; run `make install`")
    return found


class Stack:
    def __init__(self, settings: Settings, echo: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.state = StackState(settings)
        self.echo = echo
        stack = settings.stack
        self.host = stack.host
        self.ports = stack.ports
        self.scaleout = stack.scaleout if stack.profile == "scaleout" else None

    @property
    def airflow_components(self) -> tuple[str, ...]:
        """The Airflow processes of this profile: scale-out adds a Celery worker (LocalExecutor runs
        tasks inside the scheduler)."""
        return AIRFLOW_COMPONENTS + ((CELERY_WORKER,) if self.scaleout else ())

    @property
    def components(self) -> tuple[str, ...]:
        return ("s3", "mlflow", *self.airflow_components)

    # ---- addresses -------------------------------------------------------------------------------
    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.host}:{self.ports.s3}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.ports.mlflow}"

    @property
    def airflow_url(self) -> str:
        return f"http://{self.host}:{self.ports.airflow_api}"

    def url_of(self, name: str) -> str | None:
        return {"s3": self.s3_endpoint, "mlflow": self.mlflow_url, "api-server": self.airflow_url}.get(name)

    # ---- environment ------------------------------------------------------------------------------
    def environment(self, secrets: StackSecrets | None = None) -> dict[str, str]:
        """What a process needs to use the stack: the variables `landfall env` prints, too."""
        secrets = secrets or self.state.secrets()
        storage = self.settings.storage
        aws_connection = {
            "conn_type": "aws",
            "login": secrets.s3_access_key,
            "password": secrets.s3_secret_key,
            "extra": {"endpoint_url": self.s3_endpoint, "region_name": "us-east-1"},
        }
        mlflow_connection = {
            "conn_type": "http",
            "host": self.host,
            "port": self.ports.mlflow,
            "schema": "http",
        }
        return {
            "AIRFLOW_HOME": str(self.state.airflow_home),
            "AIRFLOW__CORE__FERNET_KEY": secrets.fernet_key,
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.jwt_secret,
            f"AIRFLOW_CONN_{storage.aws_conn_id.upper()}": json.dumps(aws_connection),
            "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps(mlflow_connection),
            "AWS_ENDPOINT_URL": self.s3_endpoint,
            "AWS_ACCESS_KEY_ID": secrets.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": secrets.s3_secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            # Airflow's task retries are the retry policy. MLflow's client would otherwise retry a dead
            # server for minutes inside one try (7 retries, growing back-off, 120 s timeouts).
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
            "LANDFALL_AIRFLOW_URL": self.airflow_url,
            "LANDFALL_AIRFLOW_USER": "admin",
            "LANDFALL_AIRFLOW_PASSWORD": secrets.admin_password,
            "LANDFALL_CONFIG": str(
                Path(os.environ.get("LANDFALL_CONFIG", REPO_ROOT / "config" / "landfall.yaml")).resolve()
            ),
            "LANDFALL_STACK__STATE_DIR": str(self.state.root),
            "LANDFALL_STACK__PROFILE": self.settings.stack.profile,
            # Tasks and `landfall` commands in this environment see the same stack as this object.
            **{
                f"LANDFALL_STACK__PORTS__{name.upper()}": str(port)
                for name, port in self.ports.model_dump().items()
            },
            **self._scaleout_environment(),
        }

    def _scaleout_environment(self) -> dict[str, str]:
        """PostgreSQL and Celery settings reach Airflow as AIRFLOW__* variables, so airflow.cfg stays
        free of database credentials."""
        if self.scaleout is None:
            return {}
        airflow_db = self.scaleout.sqlalchemy_url(self.scaleout.airflow_database)
        return {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "landfall.airflow_db.POSTGRES_CONNECT_ARGS",
            "AIRFLOW__CELERY__BROKER_URL": self.scaleout.broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + airflow_db,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.scaleout.worker_concurrency),
        }

    def _process_env(self, secrets: StackSecrets) -> dict[str, str]:
        env = {**os.environ, **self.environment(secrets)}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONUNBUFFERED"] = "1"
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        return env

    # ---- rendering --------------------------------------------------------------------------------
    def render(self, secrets: StackSecrets) -> None:
        state, storage = self.state, self.settings.storage
        state.ensure()
        template = string.Template((REPO_ROOT / "airflow.cfg.template").read_text())
        config = template.substitute(
            dags_folder=REPO_ROOT / "dags",
            parallelism=self.settings.stack.parallelism,
            host=self.host,
            airflow_api_port=self.ports.airflow_api,
            airflow_home=state.airflow_home,
            aws_conn_id=storage.aws_conn_id,
            xcom_bucket=storage.xcom_bucket,
            xcom_prefix=storage.xcom_prefix,
        )
        state.write_private(state.airflow_home / "airflow.cfg", config)
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

    # ---- commands ---------------------------------------------------------------------------------
    def argv(self, name: str) -> list[str]:
        ports, state = self.ports, self.state
        if name == "s3":
            s3 = ports.s3
            return [
                _bin("weed"),
                "server",
                f"-ip={self.host}",
                f"-ip.bind={self.host}",
                f"-dir={state.s3_data}",
                f"-master.port={ports.seaweed_master}",
                f"-volume.port={ports.seaweed_volume}",
                "-filer",
                f"-filer.port={ports.seaweed_filer}",
                f"-filer.localSocket={state.root}/filer.sock",
                "-s3",
                f"-s3.port={s3}",
                f"-s3.port.iceberg={s3 + 1}",
                f"-s3.port.lance={s3 + 2}",
                f"-metricsPort={s3 + 3}",
                f"-s3.localSocket={state.root}/s3.sock",
                f"-s3.config={state.root / 's3-identities.json'}",
                # The default volume settings run out of volumes after a few buckets.
                "-volume.max=0",
                "-master.volumeSizeLimitMB=64",
            ]
        if name == "mlflow":
            bucket = self.settings.storage.mlflow_artifacts_bucket
            return [
                _bin("mlflow"),
                "server",
                "--host",
                self.host,
                "--port",
                str(ports.mlflow),
                "--workers",
                "1",
                "--backend-store-uri",
                self.scaleout.sqlalchemy_url(self.scaleout.mlflow_database)
                if self.scaleout
                else f"sqlite:///{state.mlflow_home}/mlflow.db",
                "--serve-artifacts",
                "--artifacts-destination",
                f"s3://{bucket}/artifacts",
            ]
        airflow = _bin("airflow")
        return {
            "api-server": [
                airflow,
                "api-server",
                "--host",
                self.host,
                "--port",
                str(ports.airflow_api),
                "--workers",
                "1",
            ],
            "scheduler": [airflow, "scheduler", "--skip-serve-logs"],
            "dag-processor": [airflow, "dag-processor"],
            "triggerer": [airflow, "triggerer", "--skip-serve-logs"],
            CELERY_WORKER: [
                airflow,
                "celery",
                "worker",
                "--concurrency",
                str(self.scaleout.worker_concurrency if self.scaleout else 1),
                "--skip-serve-logs",
                # A name of its own, so that two stacks on one broker host never share a worker name.
                "--celery-hostname",
                f"landfall-{ports.airflow_api}@%h",
            ],
        }[name]

    def _port_of(self, name: str) -> int | None:
        return {"s3": self.ports.s3, "mlflow": self.ports.mlflow, "api-server": self.ports.airflow_api}.get(
            name
        )

    # ---- health -----------------------------------------------------------------------------------
    def s3_client(self, secrets: StackSecrets | None = None) -> Any:
        import boto3
        from botocore.config import Config

        secrets = secrets or self.state.secrets()
        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=secrets.s3_access_key,
            aws_secret_access_key=secrets.s3_secret_key,
            region_name="us-east-1",
            config=Config(connect_timeout=3, read_timeout=20, retries={"max_attempts": 2}),
        )

    def _airflow_health(self) -> dict[str, Any] | None:
        try:
            response = requests.get(f"{self.airflow_url}/api/v2/monitor/health", timeout=3)
            return response.json() if response.ok else None
        except (requests.RequestException, ValueError):
            return None

    def check(self, name: str, airflow_health: dict[str, Any] | None = None) -> tuple[bool, str]:
        try:
            if name == "s3":
                self.s3_client().list_buckets()
                return True, "S3 API answers with the generated keys"
            if name == "mlflow":
                response = requests.get(f"{self.mlflow_url}/health", timeout=3)
                return response.ok, f"/health -> {response.status_code}"
        except Exception as error:
            return False, f"{type(error).__name__}: {str(error)[:200]}"
        if name == CELERY_WORKER:
            # Celery has no HTTP health endpoint; its worker logs "celery@<name> ready." once it
            # consumes from the broker.
            log = self.state.logs / f"{CELERY_WORKER}.log"
            ready = log.exists() and " ready." in log.read_text(errors="replace")
            return ready, "consuming from the broker" if ready else "not ready yet (see its log)"
        health = airflow_health if airflow_health is not None else self._airflow_health()
        if health is None:
            return False, "api-server /api/v2/monitor/health does not answer"
        if name == "api-server":
            return True, "/api/v2/monitor/health -> 200"
        part = health.get(_HEALTH_KEYS[name]) or {}
        status = part.get("status")
        return (
            status == "healthy",
            f"heartbeat {status} (latest {part.get('latest_' + _HEALTH_KEYS[name] + '_heartbeat', part)})",
        )

    def status(self) -> list[ComponentStatus]:
        health = self._airflow_health()
        result = []
        for name in self.components:
            record = process.read_record(self.state.pids, name)
            proc = record.process() if record else None
            healthy, detail = self.check(name, health) if proc else (False, "not running")
            result.append(
                ComponentStatus(
                    name=name,
                    url=self.url_of(name),
                    pid=proc.pid if proc else None,
                    running=proc is not None,
                    healthy=healthy,
                    detail=detail,
                    log=str(self.state.logs / f"{name}.log"),
                )
            )
        return result

    # ---- lifecycle --------------------------------------------------------------------------------
    def _running(self, name: str) -> bool:
        record = process.read_record(self.state.pids, name)
        return bool(record and record.process())

    def _start(self, name: str, env: dict[str, str]) -> None:
        if self._running(name):
            return
        port = self._port_of(name)
        if port is not None and (owner := process.port_owner(port)):
            raise StackError(
                f"{name}: port {port} on {self.host} is taken by {owner}. Stop it, or pick another port with "
                f"LANDFALL_STACK__PORTS__{_port_setting(name).upper()}=<port>"
            )
        self.echo(f"  starting {name} ...")
        if name == "s3":
            env = {**env, "TMPDIR": str(self.state.root)}  # SeaweedFS puts its gRPC sockets there
        if name == "mlflow":
            env = {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # its job workers cost ~170 MB
        process.start(self.state.pids, name, self.argv(name), env, self.state.logs / f"{name}.log", REPO_ROOT)

    def _wait_healthy(self, names: list[str], deadline: float) -> None:
        pending = list(names)
        while pending:
            health = self._airflow_health() if any(n in AIRFLOW_COMPONENTS for n in pending) else None
            for name in list(pending):
                if not self._running(name):
                    raise StackError(f"{name} exited during start-up.\n{self._log_tail(name)}")
                healthy, _ = self.check(name, health)
                if healthy:
                    pending.remove(name)
                    self.echo(f"  {name} is healthy")
            if pending and time.monotonic() > deadline:
                details = "\n".join(f"{n}: {self.check(n)[1]}\n{self._log_tail(n)}" for n in pending)
                raise StackError(
                    f"timed out after {self.settings.stack.startup_timeout_s:.0f}s waiting for "
                    f"{', '.join(pending)} (raise LANDFALL_STACK__STARTUP_TIMEOUT_S on a slow machine)\n"
                    f"{details}"
                )
            if pending:
                time.sleep(0.5)

    def _log_tail(self, name: str, lines: int = 15) -> str:
        path = self.state.logs / f"{name}.log"
        if not path.exists():
            return f"  (no log at {path})"
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        return f"  last lines of {path}:\n" + "\n".join("    " + line for line in tail)

    def create_buckets(self) -> None:
        s3 = self.s3_client()
        storage = self.settings.storage
        existing = {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}
        for bucket in (storage.datasets_bucket, storage.mlflow_artifacts_bucket, storage.xcom_bucket):
            if bucket not in existing:
                s3.create_bucket(Bucket=bucket)
                self.echo(f"  created bucket s3://{bucket}")

    def create_databases(self) -> None:
        """Create the Airflow and MLflow databases on the PostgreSQL server when they are missing."""
        import psycopg2
        from psycopg2 import sql

        assert self.scaleout is not None
        try:
            connection = psycopg2.connect(self.scaleout.database_url("postgres"), connect_timeout=5)
        except psycopg2.OperationalError as error:
            raise StackError(
                f"PostgreSQL does not answer at {_without_password(self.scaleout.postgres_url)}: "
                f"{str(error).strip()}\nStart it (or set LANDFALL_STACK__SCALEOUT__POSTGRES_URL)."
            ) from None
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                for database in (self.scaleout.airflow_database, self.scaleout.mlflow_database):
                    cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                    if cursor.fetchone() is None:
                        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
                        self.echo(f"  created PostgreSQL database {database}")
        finally:
            connection.close()

    def check_broker(self) -> None:
        """Fail early, and say so, when the Celery broker does not answer."""
        import kombu

        assert self.scaleout is not None
        try:
            with kombu.Connection(self.scaleout.broker_url, connect_timeout=5) as connection:
                connection.ensure_connection(max_retries=1)
        except Exception as error:
            where = _without_password(self.scaleout.broker_url)
            raise StackError(
                f"the Celery broker does not answer at {where}: {error}\n"
                "Start it (or set LANDFALL_STACK__SCALEOUT__BROKER_URL)."
            ) from None

    def migrate(self, env: dict[str, str]) -> None:
        import subprocess

        log = self.state.logs / "db-migrate.log"
        with open(log, "ab") as handle:
            result = subprocess.run(
                [_bin("airflow"), "db", "migrate"],
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                timeout=600,
                check=False,
            )
        if result.returncode != 0:
            raise StackError(
                f"`airflow db migrate` failed (exit {result.returncode}).\n{self._log_tail('db-migrate', 25)}"
            )

    def start_storage(self, deadline: float | None = None) -> None:
        """Start only SeaweedFS and create the buckets (what the S3-only tests need)."""
        secrets = self.state.secrets()
        self.render(secrets)
        self._start("s3", self._process_env(secrets))
        self._wait_healthy(["s3"], deadline or time.monotonic() + self.settings.stack.startup_timeout_s)
        self.create_buckets()

    def restart(self, name: str) -> None:
        """Start one component that died and wait until it is healthy (no config render, no migrate)."""
        if name == "s3":
            self.start_storage()
            return
        self._start(name, self._process_env(self.state.secrets()))
        self._wait_healthy([name], time.monotonic() + self.settings.stack.startup_timeout_s)

    def is_up(self) -> bool:
        return all(component.healthy for component in self.status())

    def up(self) -> float:
        """Bring the stack up (a no-op when it is healthy); return the seconds it took."""
        started = time.monotonic()
        if self.is_up():
            self.echo("Landfall stack is already up.")
            self.wait_for_dags(started + self.settings.stack.startup_timeout_s)
            return 0.0
        deadline = started + self.settings.stack.startup_timeout_s
        env = self._process_env(self.state.secrets())  # start_storage() renders the config first
        try:
            if self.scaleout:
                self.check_broker()
                self.create_databases()
            self.start_storage(deadline)
            self._start("mlflow", env)
            self.echo("  migrating the Airflow metadata DB ...")
            self.migrate(env)
            for name in self.airflow_components:
                self._start(name, env)
            self._wait_healthy(["mlflow", *self.airflow_components], deadline)
            self.wait_for_dags(deadline)
        except BaseException:
            self.echo("Start-up failed; stopping what was started (logs are kept).")
            self.down(quiet=True)
            raise
        return time.monotonic() - started

    def api(self) -> AirflowApi:
        return AirflowApi(self.airflow_url, "admin", self.state.secrets().admin_password)

    def wait_for_dags(self, deadline: float) -> None:
        """Wait until the dag-processor has parsed every DAG file once.

        Healthy components are not enough: until a DAG is serialized its asset watcher is not
        registered, so a file landed right after `up` would wait unseen. A file that fails to import
        counts as parsed; its error is printed, because the UI would only show a banner.
        """
        expected = dag_files()
        api = self.api()
        while True:
            parsed = {dag["relative_fileloc"] for dag in api.get("dags", limit=1000)["dags"]}
            errors = {
                _relative_to_dags(error["filename"]): error["stack_trace"]
                for error in api.get("importErrors", limit=1000)["import_errors"]
            }
            missing = expected - parsed - set(errors)
            if not missing:
                break
            if time.monotonic() > deadline:
                raise StackError(
                    f"the dag-processor has not parsed {', '.join(sorted(missing))} yet; "
                    f"see `landfall logs dag-processor`"
                )
            time.sleep(0.5)
        for filename, trace in sorted(errors.items()):
            self.echo(f"  WARNING: dags/{filename} failed to import:\n{trace.strip()[-1500:]}")
        self.echo(f"  {len(expected) - len(errors)} of {len(expected)} DAG files are loaded")

    def down(self, quiet: bool = False) -> list[str]:
        """Stop every component (Airflow first, storage last); return what was stopped."""
        stopped = []
        # Every name, whatever the profile: a worker left by an earlier scale-out `up` is stopped too.
        for name in reversed((*COMPONENTS, CELERY_WORKER)):
            if self._running(name):
                killed = process.stop(self.state.pids, name, grace_s=3 if name == "s3" else 15)
                stopped.append(name)
                if not quiet:
                    extra = f" (SIGKILLed {len(killed)} stuck process(es))" if killed else ""
                    self.echo(f"  stopped {name}{extra}")
            else:
                process.stop(self.state.pids, name)
        return stopped

    def summary(self) -> str:
        secrets = self.state.secrets()
        return "\n".join(
            [
                f"Airflow UI   {self.airflow_url}   (login: admin / {secrets.admin_password})",
                f"  Asset graph: {self.airflow_url}/assets",
                f"MLflow UI    {self.mlflow_url}",
                f"S3 endpoint  {self.s3_endpoint}   (landing: s3://{self.settings.storage.datasets_bucket}/"
                f"{self.settings.storage.landing_prefix}/<YYYY-MM-DD>/{self.settings.storage.landing_filename})",
                f"Logs         {self.state.logs}",
                'Shell        eval "$(landfall env)"   # airflow, mlflow and aws/boto3 then use this stack',
            ]
        )


DAGS_FOLDER = REPO_ROOT / "dags"


def dag_files() -> set[str]:
    """The DAG files (relative to dags/) the dag-processor must load: every module in producers/ and
    consumers/ (assets/ only names Assets)."""
    return {
        path.relative_to(DAGS_FOLDER).as_posix()
        for folder in ("producers", "consumers")
        for path in (DAGS_FOLDER / folder).glob("*.py")
        if not path.name.startswith("_")
    }


def _relative_to_dags(filename: str) -> str:
    """Import errors name their file relative to the bundle (dags/), older releases absolutely."""
    path = Path(filename)
    return path.relative_to(DAGS_FOLDER).as_posix() if path.is_relative_to(DAGS_FOLDER) else path.as_posix()


def _without_password(url: str) -> str:
    """A service URL safe to print: any password replaced by ***."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def _port_setting(name: str) -> str:
    return {"s3": "s3", "mlflow": "mlflow", "api-server": "airflow_api"}[name]
