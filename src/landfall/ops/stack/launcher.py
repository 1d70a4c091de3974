"""The embedded local stack: SeaweedFS (S3), MLflow and Airflow 3, all on 127.0.0.1, under one supervisor.

`Stack.up()` renders the config, starts supervisord and, in order, whatever is not running, and waits for
each component's health check; `Stack.down()` stops them (storage last) and supervisord. A component
that crashes is restarted by supervisord (with back-off when it keeps dying at start-up), and
`landfall status` shows how often. One launcher at a time per state folder: a second `up` waits for the
first on a lock instead of racing it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from landfall.core.catalog import chain_of
from landfall.core.settings import ProjectSettings, Settings, load_project
from landfall.ops.airflow_api import AirflowApi
from landfall.ops.stack import pipeline_changes, provision
from landfall.ops.stack.components import (
    Component,
    Context,
    StackError,
    by_name,
    components_of,
    stop_waves,
)
from landfall.ops.stack.dag_loading import wait_for_dags
from landfall.ops.stack.environment import environment, process_environment
from landfall.ops.stack.process import port_owner
from landfall.ops.stack.state import StackSecrets, StackState
from landfall.ops.stack.supervisor import Program, Supervisor, SupervisorError

__all__ = ["ComponentStatus", "Stack", "StackError"]

STORAGE = ("s3",)


@dataclass
class ComponentStatus:
    name: str
    url: str | None
    pid: int | None
    running: bool
    healthy: bool
    state: str  # supervisord's: RUNNING, STARTING, BACKOFF, EXITED, FATAL, STOPPED
    restarts: int  # unexpected exits since the stack was started, each restarted by supervisord
    last_exit: str | None
    detail: str
    log: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Stack:
    def __init__(self, settings: Settings, echo: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.state = StackState(settings)
        self.ctx = Context(settings, self.state)
        self.echo = echo
        self.supervisor = Supervisor(self.state.supervisor)

    # ---- what the stack is ----------------------------------------------------------------------
    @property
    def components(self) -> tuple[str, ...]:
        return tuple(component.name for component in components_of(self.settings))

    @property
    def s3_endpoint(self) -> str:
        return self.ctx.s3_endpoint

    @property
    def mlflow_url(self) -> str:
        return self.ctx.mlflow_url

    @property
    def airflow_url(self) -> str:
        return self.ctx.airflow_url

    def environment(self, secrets: StackSecrets | None = None) -> dict[str, str]:
        """What a process needs to use the stack: the variables `landfall env` prints."""
        return environment(self.ctx, secrets or self.state.secrets())

    def s3_client(self) -> Any:
        return self.ctx.s3_client()

    def api(self) -> AirflowApi:
        return AirflowApi(self.airflow_url, "admin", self.state.secrets().admin_password)

    def _programs(self) -> list[Program]:
        return [
            Program(
                c.name,
                c.command(self.ctx),
                self.state.logs / f"{c.name}.log",
                c.cwd(self.ctx),
                c.stop_grace_s,
                c.env(self.ctx),
            )
            for c in components_of(self.settings)
        ]

    # ---- locking ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _exclusive(self, what: str) -> Iterator[None]:
        """One launcher at a time per state folder; a second one waits and says so."""
        self.state.ensure()
        with open(self.state.lock_file, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.echo(
                    f"  another `landfall` command is changing this stack ({self.state.root}); "
                    f"waiting for it before `{what}` ..."
                )
                deadline = time.monotonic() + self.settings.stack.startup_timeout_s + 60
                while True:
                    try:
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise StackError(  # noqa: B904 - not raised from the BlockingIOError
                                f"gave up waiting for the other launcher ({self.state.lock_file})"
                            )
                        time.sleep(0.5)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # ---- supervisor -------------------------------------------------------------------------------
    def _ensure_supervisor(self, secrets: StackSecrets) -> None:
        config = self.supervisor.render(self._programs())
        self.supervisor.ensure(
            config,
            process_environment(self.ctx, secrets),
            stop_all=lambda: self._stop_all(quiet=True),
            fingerprint_env=self.environment(secrets),
        )

    def _info(self, name: str) -> dict[str, Any] | None:
        return self.supervisor.info(name)

    def _running(self, name: str) -> bool:
        info = self._info(name)
        return bool(info and info["statename"] in ("RUNNING", "STARTING", "BACKOFF"))

    def _airflow(self) -> list[Component]:
        return [c for c in components_of(self.settings) if c.airflow]

    def _services(self) -> list[Component]:
        """Between storage and Airflow, in the table's order: MLflow, the scoring service and, in queue
        mode, the notify relay. Started after storage, stopped after Airflow."""
        return [c for c in components_of(self.settings) if not c.airflow and c.name not in STORAGE]

    def _start(self, component: Component) -> None:
        if self._running(component.name):
            return
        port = getattr(self.ctx.ports, component.port) if component.port else None
        if port is not None and (owner := port_owner(port)):
            raise StackError(
                f"{component.name}: port {port} on {self.ctx.host} is taken by {owner}. Stop it, or pick "
                "another "
                f"port with LANDFALL_STACK__PORTS__{component.port.upper()}=<port>"
            )
        self.echo(f"  starting {component.name} ...")
        try:
            self.supervisor.start(component.name)
        except SupervisorError as error:
            raise StackError(f"{error}\n{self.log_tail(component.name)}") from None

    # ---- health -----------------------------------------------------------------------------------
    def check(self, name: str, airflow_health: dict[str, Any] | None = None) -> tuple[bool, str]:
        component = by_name(name)
        health = (
            airflow_health
            if airflow_health is not None or not component.airflow
            else self.ctx.airflow_health()
        )
        return component.health(self.ctx, health)

    def _wait_healthy(self, names: list[str], deadline: float) -> None:
        pending = list(names)
        while pending:
            health = self.ctx.airflow_health() if any(by_name(n).airflow for n in pending) else None
            for name in list(pending):
                info = self._info(name)
                if info is None or info["statename"] in ("FATAL", "EXITED", "STOPPED"):
                    raise StackError(f"{name} exited during start-up.\n{self.log_tail(name)}")
                healthy, _ = by_name(name).health(self.ctx, health)
                if healthy:
                    pending.remove(name)
                    self.echo(f"  {name} is healthy")
            if pending and time.monotonic() > deadline:
                details = "\n".join(f"{n}: {self.check(n)[1]}\n{self.log_tail(n)}" for n in pending)
                raise StackError(
                    f"timed out after {self.settings.stack.startup_timeout_s:.0f}s waiting for "
                    f"{', '.join(pending)} (raise LANDFALL_STACK__STARTUP_TIMEOUT_S on a slow machine)\n"
                    f"{details}"
                )
            if pending:
                time.sleep(0.5)

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.state.logs / f"{name}.log"
        if not path.exists():
            return f"  (no log at {path})"
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        return f"  last lines of {path}:\n" + "\n".join("    " + line for line in tail)

    def status(self) -> list[ComponentStatus]:
        health = self.ctx.airflow_health()
        exits = self.supervisor.unexpected_exits()
        result = []
        for component in components_of(self.settings):
            info = self._info(component.name) or {}
            state = info.get("statename", "STOPPED")
            running = state in ("RUNNING", "STARTING", "BACKOFF")
            healthy, detail = component.health(self.ctx, health) if running else (False, "not running")
            result.append(
                ComponentStatus(
                    name=component.name,
                    url=component.url(self.ctx) if component.url else None,
                    pid=info.get("pid") or None,
                    running=running,
                    healthy=healthy and state == "RUNNING",
                    state=state,
                    restarts=len(exits.get(component.name, [])),
                    last_exit=(exits.get(component.name) or [None])[-1],
                    detail=detail,
                    log=str(self.state.logs / f"{component.name}.log"),
                )
            )
        return result

    def is_up(self) -> bool:
        return self.supervisor.running() and all(component.healthy for component in self.status())

    # ---- lifecycle --------------------------------------------------------------------------------
    def up(self) -> float:
        """Bring the stack up (a no-op when it is healthy); return the seconds it took."""
        started = time.monotonic()
        with self._exclusive("up"):
            if self.is_up():
                self.echo("Landfall stack is already up.")
                self._settle_pipelines(
                    started + self.settings.stack.startup_timeout_s, self._restarted_for_pipelines()
                )
                return 0.0
            deadline = started + self.settings.stack.startup_timeout_s
            try:
                self._up(deadline)
            except BaseException:
                self.echo("Start-up failed; stopping what was started (logs are kept).")
                self._stop_all(quiet=True)
                self.supervisor.shutdown()
                raise
        return time.monotonic() - started

    def _up(self, deadline: float) -> None:
        secrets = self.state.secrets()
        if self.ctx.scaleout:
            provision.check_broker(self.ctx)
            provision.create_databases(self.ctx, self.echo)
        self._start_storage(secrets, deadline)  # restarts supervisord, and so everything, when it changed
        # Those that read the pipelines only at start and run already (a partly-up stack): a changed
        # config restarts them below, as it does on a healthy stack.
        running_before = [n for n in self._restarted_for_pipelines() if self._running(n)]
        fresh = not self._running("scheduler")
        self._start(by_name("mlflow"))
        if fresh:
            self.echo("  migrating the Airflow metadata DB ...")
            provision.migrate(self.ctx, process_environment(self.ctx, secrets), self.log_tail)
        started = [*self._services(), *self._airflow()]
        for component in started:
            self._start(component)  # MLflow is running already: a no-op
        self._wait_healthy([c.name for c in started], deadline)
        self._settle_pipelines(deadline, running_before)

    def _restarted_for_pipelines(self) -> list[str]:
        return pipeline_changes.restarted_for_pipelines(self.components)

    def _settle_pipelines(self, deadline: float, running_before: list[str]) -> None:
        """Every pipeline in config gets its pool and its DAGs. When the `pipelines:` block changed, what
        reads the pipelines only at start and was running before this `up` is restarted (see
        `pipeline_changes`): the dag-processor re-parses only every 5 minutes by itself."""
        path = self.state.root / "pipelines.json"
        project = load_project(strict=False)
        now = pipeline_changes.fingerprints(project)
        before = pipeline_changes.recorded(path)
        changed = pipeline_changes.changes(before or {}, now)
        provision.create_pools(self.api(), project.names())  # on every start: a new pipeline's, or none yet
        if running_before and before is not None and changed:
            self.echo(f"  the pipelines changed ({changed.describe()}): applying ...")
            together, alone = pipeline_changes.restart_waves(running_before)
            self.supervisor.stop_together(together)
            for name in together:
                self._start(by_name(name))
            for name in alone:
                self.supervisor.stop(name)
                self._start(by_name(name))
            self._wait_healthy(running_before, deadline)
        self.wait_for_dags(deadline, project)
        pipeline_changes.record(path, now)

    def _start_storage(self, secrets: StackSecrets, deadline: float) -> None:
        provision.render(self.ctx, secrets)
        provision.bucket_notifications(self.ctx)
        self._ensure_supervisor(secrets)
        self._start(by_name("s3"))
        self._wait_healthy(["s3"], deadline)
        provision.create_buckets(self.ctx, self.echo)

    def start_storage(self) -> None:
        """Start only SeaweedFS and create the buckets (what the S3-only tests need)."""
        with self._exclusive("start_storage"):
            deadline = time.monotonic() + self.settings.stack.startup_timeout_s
            self._start_storage(self.state.secrets(), deadline)

    def restart(self, name: str) -> None:
        """Start one component that is down (or wait for supervisord's own restart) until it is healthy."""
        with self._exclusive(f"restart {name}"):
            self._start(by_name(name))
            self._wait_healthy([name], time.monotonic() + self.settings.stack.startup_timeout_s)

    def stop(self, name: str) -> bool:
        """Stop one component and keep it stopped (until `up` or `restart`)."""
        return self.supervisor.stop(name)

    def kill(self, name: str) -> int | None:
        """SIGKILL a component's whole process group at once, as a crash would (the fault-injection
        tests use it); supervisord notices and restarts it. Returns the PID that was killed."""
        info = self._info(name)
        pid = info.get("pid") if info else None
        if not pid:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        return pid

    def process_tree(self) -> list[Any]:
        """Every live process of every component (each component's process group and children)."""
        import psutil

        found = []
        for name in self.components:
            info = self._info(name)
            if info and info.get("pid"):
                with contextlib.suppress(psutil.Error):
                    root = psutil.Process(info["pid"])
                    found += [root, *root.children(recursive=True)]
        return found

    def wait_for_dags(self, deadline: float, project: ProjectSettings) -> None:
        """Wait until the dag-processor has parsed every DAG file once and built every pipeline's DAGs
        (see `dag_loading`)."""
        dag_ids = {dag_id for name in project.names() for dag_id in chain_of(name).dag_ids}
        wait_for_dags(self.api(), deadline, self.echo, dag_ids)

    def _stop_all(self, quiet: bool) -> list[str]:
        stopped = []
        if not self.supervisor.running():
            return stopped
        for wave in stop_waves(components_of(self.settings), STORAGE):
            for name in self.supervisor.stop_together(wave):
                stopped.append(name)
                if not quiet:
                    self.echo(f"  stopped {name}")
        return stopped

    def down(self, quiet: bool = False) -> list[str]:
        """Stop every component (Airflow first, storage last) and the supervisor; return what was stopped."""
        with self._exclusive("down"):
            stopped = self._stop_all(quiet)
            self.supervisor.shutdown()
        return stopped
