"""The environment that points processes at one stack: what `landfall env` prints, and what the stack's
own processes run with. Secrets travel here (in memory, to child processes), never in a config file."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from landfall.core.settings import config_file
from landfall.ops.stack import accounts, postgres_role
from landfall.ops.stack.components import Context
from landfall.ops.stack.state import StackSecrets
from landfall.pipeline.landing import SIGNING_KEY_ENV


def environment(ctx: Context, secrets: StackSecrets) -> dict[str, str]:
    """What a process needs to use the stack: Airflow, MLflow, boto3 and `landfall` commands."""
    storage = ctx.settings.storage
    aws_connection = {
        "conn_type": "aws",
        "login": secrets.s3_access_key,
        "password": secrets.s3_secret_key,
        "extra": {"endpoint_url": ctx.s3_endpoint, "region_name": "us-east-1"},
    }
    mlflow_connection = {"conn_type": "http", "host": ctx.host, "port": ctx.ports.mlflow, "schema": "http"}
    return {
        "AIRFLOW_HOME": str(ctx.state.airflow_home),
        "AIRFLOW__CORE__FERNET_KEY": secrets.fernet_key,
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.jwt_secret,
        f"AIRFLOW_CONN_{storage.aws_conn_id.upper()}": json.dumps(aws_connection),
        "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps(mlflow_connection),
        "AWS_ENDPOINT_URL": ctx.s3_endpoint,
        "AWS_ACCESS_KEY_ID": secrets.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": secrets.s3_secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_S3_ENDPOINT_URL": ctx.s3_endpoint,
        "MLFLOW_TRACKING_URI": ctx.mlflow_url,
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": secrets.admin_password,
        # Loading a model never unpickles: Landfall loads its own models (landfall.pipeline.training.models).
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
        # Airflow's task retries are the retry policy. MLflow's client would otherwise retry a dead
        # server for minutes inside one try (7 retries, growing back-off, 120 s timeouts).
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
        SIGNING_KEY_ENV: secrets.event_signing_key,
        "LANDFALL_SERVING_URL": ctx.serving_url,
        "LANDFALL_SERVING_TOKEN": secrets.serving_token,
        "LANDFALL_AIRFLOW_URL": ctx.airflow_url,
        "LANDFALL_AIRFLOW_USER": "admin",
        "LANDFALL_AIRFLOW_PASSWORD": secrets.admin_password,
        "LANDFALL_CONFIG": str(config_file().resolve()),
        "LANDFALL_STACK__STATE_DIR": str(ctx.state.root),
        "LANDFALL_STACK__PROFILE": ctx.settings.stack.profile,
        # Tasks and `landfall` commands in this environment see the same stack as this object.
        **{
            f"LANDFALL_STACK__PORTS__{name.upper()}": str(port)
            for name, port in ctx.ports.model_dump().items()
        },
        **_scaleout(ctx),
        # The stack's own RabbitMQ and Redis accounts (the watcher's queue URL, Celery's broker).
        **accounts.environment(ctx, secrets),
    }


def _scaleout(ctx: Context) -> dict[str, str]:
    """PostgreSQL and Celery settings reach Airflow as AIRFLOW__* variables, so airflow.cfg stays free of
    database credentials (the broker's URL comes with the stack's account, in `accounts.environment`)."""
    if ctx.scaleout is None:
        return {}
    airflow_db = postgres_role.database_url(ctx, ctx.scaleout.airflow_database, driver=True)
    pgpass = {"PGPASSFILE": str(postgres_role.pgpass_file(ctx))} if postgres_role.managed(ctx) else {}
    return {
        **pgpass,
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "landfall.airflow.db.POSTGRES_CONNECT_ARGS",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + airflow_db,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(ctx.scaleout.worker_concurrency),
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": ctx.scaleout.queue,
    }


def process_environment(ctx: Context, secrets: StackSecrets) -> dict[str, str]:
    """The stack's own processes: the user's environment, the stack's, and what servers need besides."""
    env = {**os.environ, **environment(ctx, secrets)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["MLFLOW_AUTH_ADMIN_PASSWORD"] = secrets.admin_password  # creates the admin user on first start
    env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = secrets.mlflow_flask_secret
    return env
