"""Test-session wiring: an isolated state folder and port range, so the suite never touches a stack a
developer has running, and the real servers (SeaweedFS, MLflow, Airflow) started by fixtures."""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import pytest

from landfall.core.paths import DEFAULT_CONFIG_FILE
from landfall.ops.config_check import write_with_only

# Must happen before anything calls landfall.core.settings.get_settings() (it is cached per process).
_STATE = Path(os.environ.get("LANDFALL_TEST_STATE_DIR") or tempfile.mkdtemp(prefix="landfall-test-"))
# A second checkout can run its suite beside this one: every port the suite binds moves by the offset.
# So does each pytest-xdist worker after the first (`make test` runs two): its own SeaweedFS, stack and
# alert receiver, 100 ports up (SeaweedFS's gRPC ports, +10000, stay clear of the other worker's).
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_PORT_OFFSET = int(os.environ.get("LANDFALL_TEST_PORT_OFFSET", "0")) + 100 * _WORKER
ALERT_PORT = 28999 + _PORT_OFFSET


def _port(base: int) -> str:
    return str(base + _PORT_OFFSET)


os.environ.update(
    {
        "LANDFALL_STACK__STATE_DIR": str(_STATE),
        "LANDFALL_STACK__PORTS__AIRFLOW_API": _port(28080),
        "LANDFALL_STACK__PORTS__MLFLOW": _port(25000),
        # SeaweedFS also binds each of these + 10000 (gRPC): all below Linux's ephemeral range
        # (32768+), where an outgoing connection's TIME_WAIT can hold a port and make the bind fail.
        "LANDFALL_STACK__PORTS__S3": _port(20333),
        "LANDFALL_STACK__PORTS__SEAWEED_MASTER": _port(21333),
        "LANDFALL_STACK__PORTS__SEAWEED_VOLUME": _port(21340),
        "LANDFALL_STACK__PORTS__SEAWEED_FILER": _port(20888),
        "LANDFALL_STACK__PORTS__SERVING": _port(28090),
        "LANDFALL_STACK__PORTS__NOTIFY_RELAY": _port(28091),
        "LANDFALL_WATCHER__POLL_INTERVAL_S": "1",
        # Two trials per training run instead of four: the same fan-out and reduce, one wave of tasks,
        # and about 12 s less per chain on a 2-core machine.
        "LANDFALL_PIPELINES__CHURN__TRAINING__GRID__LEARNING_RATE": "[0.001, 0.01]",
        "LANDFALL_PIPELINES__CHURN__TRAINING__GRID__BATCH_SIZE": "[256]",
        # Short chain deadlines, so that tests/e2e/test_deadlines_e2e.py sees one missed in 90 s (a run
        # that is merely slow in a 300-file burst may also raise a `late` alert; nothing counts those).
        "LANDFALL_PIPELINES__CHURN__DEPLOY__DEADLINE_MINUTES": "1.5",
        # Deploy's retries wait 2, 4 and 8 s instead of 10, 20 and 40: the MLflow-down test sees all
        # three in 14 s, not 70.
        "LANDFALL_PIPELINES__CHURN__DEPLOY__RETRY_DELAY_S": "2",
        # The canary's latency bound is proven by tests/unit/test_canary.py; on the test stacks it only
        # catches a loaded 2-core machine (CI once saw p95 2,066 ms against 2,000), so it is 15 s there.
        # Answers that differ from the offline ones still fail it (test_serving_e2e's failed canary).
        "LANDFALL_PIPELINES__CHURN__DEPLOY__CANARY_MAX_LATENCY_MS": "15000",
        # The service checks each champion alias every 5 s instead of every second: deploy, the rollback
        # DAG and `landfall rollback` tell it at once, and each check is an MLflow request (the polls of
        # two stacks took about 3% of the suite's CPU).
        "LANDFALL_SERVING__POLL_INTERVAL_S": "5",
        # Alerts of the test stack go to the receiver below, so that tests can see them arrive.
        "LANDFALL_NOTIFY__WEBHOOK_URL": f"http://127.0.0.1:{ALERT_PORT}/alerts",
    }
)
for _name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AIRFLOW_CONN_AWS_DEFAULT"):
    os.environ.pop(_name, None)
# Airflow imported by the tests themselves reads the same (test) home as the stack they start.
os.environ["AIRFLOW_HOME"] = str(_STATE / "airflow")
# Each test process's stack reads its own copy of the config (a worker's copy, never the controller's
# that xdist workers inherit), so that a test may add a pipeline to it (and `landfall up` the change)
# without touching config/landfall.yaml or another worker's stack. A LANDFALL_CONFIG set before pytest
# started is copied instead of the repository's.
_USER_CONFIG = os.environ.get("LANDFALL_TEST_USER_CONFIG", os.environ.get("LANDFALL_CONFIG", ""))
os.environ["LANDFALL_TEST_USER_CONFIG"] = _USER_CONFIG
_STATE.mkdir(parents=True, exist_ok=True)
if _USER_CONFIG:
    (_STATE / "landfall.yaml").write_text(Path(_USER_CONFIG).read_text())
else:
    # The shipped config runs churn and prices; the stacks of the tests run churn alone (a test that wants
    # another pipeline adds it, as tests/e2e/test_pipelines_e2e.py does), so that each chain's tests do not
    # pay for a second chain on two cores. tests/unit/test_shipped_config.py checks prices as shipped.
    write_with_only(DEFAULT_CONFIG_FILE, _STATE / "landfall.yaml", "churn")
os.environ["LANDFALL_CONFIG"] = str(_STATE / "landfall.yaml")


# The end-to-end modules on the embedded stack build on each other in file order (day one sets the
# champion the later days are judged against), so under pytest-xdist they are one unit of work, on one
# worker and its one stack. The scale-out module (a stack of its own) and the embedded-stack modules that
# need no churn champion (hourly days, deadlines, a second pipeline) are a second unit, on the other
# worker, which starts its own embedded stack after the scale-out one has stopped; the unit, DAG and
# integration tests fill in around
# them on whichever worker is free. (xdist's own `--dist loadgroup` does not group on pytest 9, which no
# longer reads the node id it rewrites, so the grouping is this scheduler's.)
SECOND_STACK_MODULES = (
    "tests/e2e/test_scaleout_e2e.py",
    "tests/e2e/test_hourly_landings_e2e.py",
    "tests/e2e/test_deadlines_e2e.py",
    "tests/e2e/test_pipelines_e2e.py",
)


def pytest_collection_modifyitems(config, items):
    """The scale-out module first among the second stack's: its stack stops when the module ends, so the
    embedded stack the other modules start never runs beside it on the same worker."""
    scaleout = [item for item in items if item.nodeid.startswith(SECOND_STACK_MODULES[0])]
    rest = [item for item in items if not item.nodeid.startswith(SECOND_STACK_MODULES[0])]
    first = next(
        (i for i, item in enumerate(rest) if item.nodeid.startswith(SECOND_STACK_MODULES)), len(rest)
    )
    items[:] = rest[:first] + scaleout + rest[first:]


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class StackScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith(SECOND_STACK_MODULES):
                return "second-stack"
            return "embedded-stack" if nodeid.startswith("tests/e2e/") else nodeid

    return StackScheduling(config, log)


@pytest.fixture(scope="session")
def settings():
    from landfall.core.settings import get_settings

    return get_settings()


@pytest.fixture(scope="session")
def launcher(settings):
    """The Stack object for the test state folder; stops whatever the session started at the end."""
    from landfall.ops.stack.launcher import Stack

    stack = Stack(settings, echo=lambda line: print(line, flush=True))
    yield stack
    stack.down(quiet=True)


@pytest.fixture
def s3_server(launcher):
    """A real SeaweedFS S3 server with the buckets created; the process env points at it.

    Checked before every test that uses it (cheap when it runs), because a test may stop it.
    """
    if not launcher.check("s3")[0]:
        launcher.start_storage()
    os.environ.update(launcher.environment())
    return launcher


@pytest.fixture
def stack(s3_server):
    """The whole embedded stack (S3, MLflow, Airflow api-server, scheduler, dag-processor, triggerer);
    `up()` is a no-op when everything is healthy and restarts whatever a previous test stopped."""
    s3_server.up()
    return s3_server


@pytest.fixture
def s3(s3_server):
    return s3_server.s3_client()


@pytest.fixture
def area(s3_server, settings):
    """A private landing prefix and ledger for one watcher test, in the real datasets bucket."""
    run = uuid.uuid4().hex[:8]
    return {
        "bucket": settings.storage.datasets_bucket,
        "prefix": f"trigger-test-{run}/daily",
        "ledger_prefix": f"trigger-test-{run}/ledger",
        "aws_conn_id": settings.storage.aws_conn_id,
        "poll_interval": 0.05,
        "requeue_after_s": 3600,
    }


@pytest.fixture
def prepared_day(s3, settings):
    """`prepared_day(frame)`: a day (version v1) prepared from `frame` as far as the drift task reads it,
    its statistics in S3; returns the published event's extra. The day's files are removed afterwards."""
    from journeys import unique_day
    from landfall.pipeline import drift
    from landfall.pipeline import s3 as s3ops

    partition, bucket = unique_day(7000), settings.storage.datasets_bucket
    folder = f"{settings.storage.processed_prefix}/date={partition}/"

    def put(frame) -> dict:
        key = f"{folder}v1/statistics.json"
        s3ops.put_json(s3, bucket, key, drift.summarise([frame], settings.landing, "binary"))
        return {"partition": partition, "version": "v1", "statistics_uri": f"s3://{bucket}/{key}"}

    yield put
    for obj in s3ops.list_keys(s3, bucket, folder):
        s3.delete_object(Bucket=bucket, Key=obj["Key"])


@pytest.fixture
def mlflow_beside_s3(s3_server, local_mlflow):
    """A real MLflow store in a temporary folder for code that also needs S3 (the drift task logs a run
    per drifted day): set after s3_server, which points the environment at the stack's MLflow."""
    return local_mlflow


@pytest.fixture
def airflow_api(stack):
    from landfall.ops.airflow_api import AirflowApi

    return AirflowApi.from_env()


class AlertReceiver:
    """A webhook endpoint on 127.0.0.1:28999 (+ the port offset) that keeps every alert the stack POSTs
    (the notify config of the test stack points here)."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body or b"{}"))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", ALERT_PORT), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of_kind(self, kind: str) -> list[dict]:
        return [alert for alert in self.received if alert.get("kind") == kind]


@pytest.fixture(scope="session", autouse=True)
def alerts():
    receiver = AlertReceiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture
def local_mlflow(tmp_path, monkeypatch):
    """A real MLflow tracking store and model registry in a SQLite file (no server): the registry and
    model-loading logic run against MLflow itself, not a fake."""
    import mlflow

    monkeypatch.chdir(tmp_path)  # MLflow writes artifacts under ./mlruns for a database store
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    # Through the environment only (trainer subprocesses inherit it), restored after the test: MLflow's
    # set_tracking_uri/set_registry_uri also write these variables and never take them back, so a later
    # test would still be talking to this file.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    try:
        yield mlflow.MlflowClient()
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
