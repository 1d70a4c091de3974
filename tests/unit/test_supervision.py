"""The launcher's component table and the supervisor config rendered from it (no processes started)."""

from __future__ import annotations

import shlex

from journeys import CHURN
from landfall.core.settings import load_settings
from landfall.ops.stack.components import COMPONENTS, Context, components_of
from landfall.ops.stack.state import StackState
from landfall.ops.stack.supervisor import Program, Supervisor


def test_every_component_is_declared_with_a_command_and_a_health_check(settings):
    ctx = Context(settings, StackState(settings))
    names = [c.name for c in components_of(settings)]
    assert names == ["s3", "mlflow", "api-server", "scheduler", "dag-processor", "triggerer", "serving"]
    for component in COMPONENTS:
        assert component.command(ctx) and callable(component.health)
        if component.port:
            assert getattr(settings.stack.ports, component.port)


def test_the_scaleout_profile_adds_the_celery_worker(monkeypatch):
    monkeypatch.setenv("LANDFALL_STACK__PROFILE", "scaleout")
    assert "celery-worker" in [c.name for c in components_of(load_settings())]


def test_a_program_restarts_on_crash_stops_its_whole_group_and_logs_to_its_file(tmp_path):
    program = Program(
        "triggerer",
        ["/venv/bin/airflow", "triggerer", "--skip-serve-logs"],
        tmp_path / "t.log",
        tmp_path,
        stop_grace_s=15,
        env={"TMPDIR": "/x y"},
    )
    section = dict(line.split("=", 1) for line in program.section().splitlines()[1:])
    assert shlex.split(section["command"]) == program.argv
    assert section["autorestart"] == "true" and section["stopasgroup"] == "true" == section["killasgroup"]
    assert section["stopwaitsecs"] == "15" and section["stdout_logfile"] == str(tmp_path / "t.log")
    assert section["environment"] == 'TMPDIR="/x y"'


def test_unexpected_exits_are_counted_from_the_supervisor_log(tmp_path):
    supervisor = Supervisor(tmp_path)
    supervisor.log.write_text(
        "2026-11-25 08:00:00,000 INFO spawned: 'triggerer' with pid 10\n"
        "2026-11-25 08:01:00,000 WARN exited: triggerer (terminated by SIGKILL; not expected)\n"
        "2026-11-25 08:01:01,000 INFO spawned: 'triggerer' with pid 11\n"
        "2026-11-25 08:02:00,000 INFO exited: scheduler (exit status 0; expected)\n"
    )
    assert supervisor.unexpected_exits() == {"triggerer": ["terminated by SIGKILL"]}


def test_a_second_launcher_waits_for_the_first_instead_of_racing_it(settings, tmp_path, monkeypatch):
    """Two `landfall up` at once once left SeaweedFS without a raft leader; now the second one waits."""
    import threading
    import time

    from landfall.ops.stack.launcher import Stack

    monkeypatch.setenv("LANDFALL_STACK__STATE_DIR", str(tmp_path))
    first, second = Stack(load_settings(), echo=lambda line: None), []
    order = []
    entered = threading.Event()

    def hold() -> None:
        with first._exclusive("up"):
            entered.set()
            order.append("first in")
            time.sleep(1.0)
            order.append("first out")

    def wait_then_enter() -> None:
        stack = Stack(load_settings(), echo=second.append)
        with stack._exclusive("up"):
            order.append("second in")

    holder = threading.Thread(target=hold)
    holder.start()
    entered.wait(5)
    waiter = threading.Thread(target=wait_then_enter)
    waiter.start()
    holder.join()
    waiter.join()
    assert order == ["first in", "first out", "second in"]
    assert any("another `landfall` command is changing this stack" in line for line in second)


def test_only_the_processes_that_fork_tasks_preload_the_task_libraries():
    from landfall.airflow.preload import forks_tasks

    assert forks_tasks(["airflow", "scheduler", "--skip-serve-logs"])
    assert forks_tasks(["airflow", "celery", "worker", "--concurrency", "4"])
    assert not any(forks_tasks(["airflow", name]) for name in ("api-server", "triggerer", "dag-processor"))


class _SlowApi:
    """The api-server right after start-up: the first POST times out although it created the pool."""

    def __init__(self):
        self.pools: set[str] = set()
        self.posts = 0

    def get(self, path):
        import requests

        if path.removeprefix("pools/") not in self.pools:
            response = requests.Response()
            response.status_code = 404
            raise requests.HTTPError(response=response)
        return {"name": path}

    def post(self, path, body):
        import requests

        self.posts += 1
        self.pools.add(body["name"])
        if self.posts == 1:
            raise requests.ReadTimeout("read timed out (the write waited on SQLite's lock)")
        return body


def test_each_pipelines_promotion_pool_is_made_once_even_when_the_first_request_times_out():
    from landfall.core.catalog import chain_of
    from landfall.ops.stack.provision import create_pools

    api = _SlowApi()
    create_pools(api, ["churn", "meters"])
    assert api.pools == {CHURN.promotion_pool, chain_of("meters").promotion_pool}
    assert api.posts == 2  # the retry's GET found the first
    create_pools(api, ["churn", "meters"])  # every start: nothing to do
    assert api.posts == 2


def test_the_scaleout_profile_runs_extra_schedulers_and_triggerers_side_by_side(monkeypatch):
    from landfall.ops.stack.components import by_name

    monkeypatch.setenv("LANDFALL_STACK__PROFILE", "scaleout")
    monkeypatch.setenv("LANDFALL_STACK__SCALEOUT__SCHEDULERS", "2")
    monkeypatch.setenv("LANDFALL_STACK__SCALEOUT__TRIGGERERS", "3")
    names = [c.name for c in components_of(load_settings())]
    assert names.count("scheduler-2") == 1 and "scheduler-3" not in names
    assert {"triggerer-2", "triggerer-3"} <= set(names)
    replica = by_name("triggerer-3")
    assert replica.name == "triggerer-3" and replica.command == by_name("triggerer").command
    monkeypatch.setenv("LANDFALL_STACK__PROFILE", "embedded")  # SQLite: one of each, whatever is asked
    assert not [n for n in (c.name for c in components_of(load_settings())) if n[-2:] in ("-2", "-3")]
