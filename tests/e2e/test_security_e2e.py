"""Security defaults of the embedded stack, checked on the running processes and files."""

from __future__ import annotations

import json
import stat
import subprocess

import psutil
import pytest

from landfall.core.paths import REPO_ROOT
from landfall.ops.stack import process

pytestmark = pytest.mark.stack
LOOPBACK = {"127.0.0.1", "::1"}


def _stack_processes(stack) -> list[psutil.Process]:
    found = []
    for name in stack.components:
        record = process.read_record(stack.state.pids, name)
        root = record.process() if record else None
        if root is not None:
            found += [root, *root.children(recursive=True)]
    return found


def test_every_server_of_the_stack_listens_on_loopback_only(stack):
    listening = []
    for proc in _stack_processes(stack):
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
    import uuid

    from landfall.ops.follow import follow_landing
    from landfall.pipeline.datagen import make_corrupt

    storage = stack.settings.storage
    s3 = stack.s3_client()
    key = f"daily/2{uuid.uuid4().int % 900 + 100:03d}-04-0{uuid.uuid4().int % 9 + 1}/features.parquet"
    etag = s3.put_object(Bucket=storage.datasets_bucket, Key=key, Body=make_corrupt("schema"))["ETag"]
    run = follow_landing(airflow_api, key, etag.strip('"'), timeout_s=240)
    listing = s3.list_objects_v2(
        Bucket=storage.xcom_bucket, Prefix=f"{storage.xcom_prefix}/landfall_ingest/{run.run_id}/"
    )
    keys = [obj["Key"] for obj in listing.get("Contents", [])]
    assert len(keys) >= 3, keys  # landed_objects, validate_and_store, report_quarantine
    for xcom_key in keys:
        body = s3.get_object(Bucket=storage.xcom_bucket, Key=xcom_key)["Body"].read()
        assert not body.startswith(b"\x80"), f"{xcom_key} is a pickle"
        json.loads(body)  # raises if it is not JSON
