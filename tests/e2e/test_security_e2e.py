"""Security defaults of the embedded stack, checked on the running processes and files."""

from __future__ import annotations

import json
import stat
import subprocess

import psutil
import pytest
import requests

from journeys import CHURN
from landfall.core.paths import REPO_ROOT

pytestmark = pytest.mark.stack
LOOPBACK = {"127.0.0.1", "::1"}


def _listening(stack) -> list[tuple[str, str, int]]:
    """(process name, address, port) of every listening socket of every process of the stack."""
    found = []
    for proc in stack.process_tree():
        try:
            sockets = proc.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        found += [(proc.name(), s.laddr.ip, s.laddr.port) for s in sockets if s.status == psutil.CONN_LISTEN]
    return found


def test_every_server_of_the_stack_listens_on_loopback_only(stack):
    listening = []
    for proc in stack.process_tree():
        try:
            sockets = proc.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        listening += [
            (proc.name(), s.laddr.ip, s.laddr.port) for s in sockets if s.status == psutil.CONN_LISTEN
        ]
    assert len(listening) >= 6, listening  # S3 (and SeaweedFS's own ports), MLflow, the api-server, ...
    exposed = [entry for entry in listening if entry[1] not in LOOPBACK]
    assert exposed == [], f"listening beyond 127.0.0.1: {exposed}"


def test_s3_refuses_anonymous_and_wrongly_signed_requests(stack):
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.exceptions import ClientError

    bucket = stack.settings.storage.datasets_bucket
    anonymous = boto3.client("s3", endpoint_url=stack.s3_endpoint, config=Config(signature_version=UNSIGNED))
    forged = boto3.client(
        "s3",
        endpoint_url=stack.s3_endpoint,
        aws_access_key_id="landfall",
        aws_secret_access_key="not-the-secret",
        region_name="us-east-1",
    )
    for client in (anonymous, forged):
        with pytest.raises(ClientError) as refused:
            client.list_objects_v2(Bucket=bucket)
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] in (401, 403)
        with pytest.raises(ClientError):
            client.put_object(Bucket=bucket, Key="daily/2099-01-01/features.parquet", Body=b"x")
    assert "Contents" not in stack.s3_client().list_objects_v2(Bucket=bucket, Prefix="daily/2099-01-01/")


def _secret_values(stack) -> dict[str, str]:
    secrets = stack.state.secrets()
    return {
        "fernet_key": secrets.fernet_key,
        "jwt_secret": secrets.jwt_secret,
        "s3_secret_key": secrets.s3_secret_key,
        "admin_password": secrets.admin_password,
        "serving_token": secrets.serving_token,
        # The stack's own accounts on RabbitMQ, PostgreSQL and Redis (used in queue mode and scale-out).
        "rabbitmq_password": secrets.rabbitmq_password,
        "postgres_password": secrets.postgres_password,
        "redis_password": secrets.redis_password,
    }


def test_generated_secrets_live_only_in_private_files_of_the_ignored_state_folder(stack):
    root = stack.state.root
    private = [
        stack.state.secrets_file,
        root / "s3-identities.json",
        stack.state.airflow_home / "airflow.cfg",
        stack.state.airflow_home / "simple_auth_manager_passwords.json",
    ]
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    # The default state folder is git-ignored, and no tracked file holds any generated value.
    # A path inside it: `.landfall/` in .gitignore matches directories, and a fresh clone has none yet.
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".landfall/secrets.json"], cwd=REPO_ROOT, check=False
    )
    assert ignored.returncode == 0, ".landfall/ is not git-ignored"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True)
    for name, value in _secret_values(stack).items():
        for path in tracked.stdout.decode().split("\0"):
            if path and (REPO_ROOT / path).is_file():
                assert value not in (REPO_ROOT / path).read_text(errors="ignore"), (name, path)
    # airflow.cfg holds none of them either: they reach the processes as environment variables.
    config = (stack.state.airflow_home / "airflow.cfg").read_text()
    assert not any(value in config for value in _secret_values(stack).values())


def test_no_secret_is_written_to_any_log(stack):
    logs = [path for path in stack.state.root.rglob("*.log") if path.is_file()]
    logs += [path for path in (stack.state.airflow_home / "logs").rglob("*") if path.is_file()]
    assert logs, "no logs to check"
    for path in logs:
        text = path.read_text(errors="ignore")
        for name, value in _secret_values(stack).items():
            assert value not in text, f"{name} appears in {path}"


def test_xcom_values_are_json_in_object_storage_never_pickle(stack, airflow_api):
    from journeys import day_key, land, unique_day
    from landfall.ops.follow import follow_landing
    from landfall.pipeline.datagen import make_corrupt

    storage = stack.settings.storage
    s3 = stack.s3_client()
    landed = land(stack, day_key(unique_day(2700)), make_corrupt("schema"))
    run = follow_landing(airflow_api, landed.key, landed.etag, timeout_s=240)
    listing = s3.list_objects_v2(
        Bucket=storage.xcom_bucket, Prefix=f"{storage.xcom_prefix}/{CHURN.ingest_dag}/{run.run_id}/"
    )
    keys = [obj["Key"] for obj in listing.get("Contents", [])]
    assert len(keys) >= 3, keys  # landed_objects, validate_and_store, report_quarantine
    for xcom_key in keys:
        body = s3.get_object(Bucket=storage.xcom_bucket, Key=xcom_key)["Body"].read()
        assert not body.startswith(b"\x80"), f"{xcom_key} is a pickle"
        json.loads(body)  # raises if it is not JSON


def _refuses_plaintext_grpc(host: str, port: int) -> bool:
    import socket

    with socket.create_connection((host, port), timeout=5) as connection:
        connection.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        connection.settimeout(5)
        try:
            answer = connection.recv(100)
        except (TimeoutError, ConnectionResetError):
            answer = b""
    return answer == b"" or answer.startswith(b"\x15")  # closed, or a TLS alert


def test_every_listening_port_refuses_anonymous_use(stack, s3):
    """Each port the stack opens is named here with how it refuses a caller without the generated
    credentials; a port this test does not know fails it (a new server must say how it is protected)."""
    ctx, host = stack.ctx, stack.ctx.host
    ports = ctx.ports
    bucket = stack.settings.storage.datasets_bucket
    s3.put_object(Bucket=bucket, Key="security-probe/object", Body=b"private")
    checks = {
        ports.airflow_api: lambda: (
            requests.get(f"http://{host}:{ports.airflow_api}/api/v2/dags", timeout=5).status_code == 401
        ),
        ports.mlflow: lambda: (
            requests.get(
                f"http://{host}:{ports.mlflow}/api/2.0/mlflow/registered-models/search", timeout=5
            ).status_code
            == 401
        ),
        ports.s3: lambda: (
            requests.get(f"http://{host}:{ports.s3}/{bucket}/security-probe/object", timeout=5).status_code
            == 403
        ),
        ports.s3 + 3: lambda: (
            "private" not in requests.get(f"http://{host}:{ports.s3 + 3}/metrics", timeout=5).text
        ),
        ports.seaweed_filer: lambda: (
            requests.get(
                f"http://{host}:{ports.seaweed_filer}/buckets/{bucket}/security-probe/object", timeout=5
            ).status_code
            == 401
        ),
        ports.seaweed_volume: lambda: (
            requests.get(f"http://{host}:{ports.seaweed_volume}/1,01", timeout=5).status_code == 401
        ),
        ports.serving: lambda: (
            requests.post(
                f"http://{host}:{ports.serving}/predict", json={"rows": [{}]}, timeout=5
            ).status_code
            == 401
            and requests.post(f"http://{host}:{ports.serving}/activate", timeout=5).status_code == 401
        ),
        # Queue mode's notify relay: publishes nothing to RabbitMQ without the filer's bearer token (and
        # RabbitMQ's own port 5672 is no process of this stack: its vhost and user are checked on the
        # queue-mode stack of tests/e2e/test_scaleout_e2e.py).
        ports.notify_relay: lambda: (
            requests.post(
                f"http://{host}:{ports.notify_relay}/events", json={"key": "/buckets/x/y"}, timeout=5
            ).status_code
            == 401
        ),
        # The master's HTTP port serves cluster status; it hands out no token to write with.
        ports.seaweed_master: lambda: (
            "auth" not in requests.get(f"http://{host}:{ports.seaweed_master}/dir/assign", timeout=5).json()
        ),
    }
    for grpc in (ports.s3, ports.seaweed_filer, ports.seaweed_volume, ports.seaweed_master):
        checks[grpc + 10_000] = lambda port=grpc + 10_000: _refuses_plaintext_grpc(host, port)
    listening = {port for _, _, port in _listening(stack)}
    assert listening - checks.keys() == set(), f"ports nobody checked: {sorted(listening - checks.keys())}"
    refused = {port: check() for port, check in checks.items() if port in listening}
    assert all(refused.values()), refused
    s3.delete_object(Bucket=bucket, Key="security-probe/object")
