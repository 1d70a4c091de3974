"""The stack's process supervisor: `supervisord` (the well-kept `supervisor` package), driven over its
XML-RPC interface on a unix socket in the state folder.

supervisord starts each component in its own process group, restarts one that dies (with back-off when
it keeps dying at start-up), stops whole groups (LocalExecutor workers and uvicorn children included),
and keeps each component's log. The launcher renders its config and tells it what to start and stop.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import subprocess
import sys
import time
import xmlrpc.client
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_EXITED = re.compile(r" (?:INFO|WARN) exited: (?P<name>[\w.-]+) \((?P<how>[^)]*)\)")


class SupervisorError(RuntimeError):
    pass


@dataclass(frozen=True)
class Program:
    """One supervised component, as supervisord's `[program:x]` section."""

    name: str
    argv: list[str]
    log: Path
    cwd: Path
    stop_grace_s: int = 15
    env: dict[str, str] = field(default_factory=dict)  # not secrets: the config file holds these
    start_seconds: int = 5  # up this long counts as started; quicker deaths are retried with back-off

    def section(self) -> str:
        lines = [
            f"[program:{self.name}]",
            # supervisord expands %(name)s in its values: a literal % (celery's %h) is written %%.
            f"command={' '.join(shlex.quote(part) for part in self.argv).replace('%', '%%')}",
            f"directory={self.cwd}",
            "autostart=false",
            "autorestart=true",
            f"startsecs={self.start_seconds}",
            "startretries=5",
            "stopsignal=TERM",
            f"stopwaitsecs={self.stop_grace_s}",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={self.log}",
            "stdout_logfile_maxbytes=50MB",
            "stdout_logfile_backups=2",
        ]
        if self.env:
            pairs = ",".join(f'{key}="{value}"' for key, value in sorted(self.env.items()))
            lines.append(f"environment={pairs}")
        return "\n".join(lines)


def _bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


class Supervisor:
    """supervisord for one state folder: its config, socket and log live in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.config = folder / "supervisord.conf"
        self.socket = folder / "supervisord.sock"
        self.pidfile = folder / "supervisord.pid"
        self.log = folder / "supervisord.log"
        self.fingerprint_file = folder / "environment.sha256"

    # ---- configuration --------------------------------------------------------------------------
    def render(self, programs: list[Program]) -> str:
        header = f"""[supervisord]
logfile={self.log}
logfile_maxbytes=10MB
logfile_backups=1
pidfile={self.pidfile}
nodaemon=false
minfds=4096
directory={self.folder}

[unix_http_server]
file={self.socket}
chmod=0700

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{self.socket}
"""
        return header + "\n" + "\n\n".join(program.section() for program in programs) + "\n"

    @staticmethod
    def fingerprint(config: str, env: dict[str, str]) -> str:
        """What a running supervisord was started with: a changed env (ports, secrets) needs a new one."""
        digest = hashlib.sha256(config.encode())
        for key in sorted(env):
            digest.update(f"{key}={env[key]}\n".encode())
        return digest.hexdigest()

    # ---- the daemon -----------------------------------------------------------------------------
    def rpc(self) -> Any:
        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def running(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return self.rpc().getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Error):
            return False

    def ensure(
        self, config: str, env: dict[str, str], stop_all: Any, fingerprint_env: dict[str, str]
    ) -> None:
        """supervisord running with this config and this stack environment (restarted when either
        changed: its programs inherit its environment). `env` is what it is started with."""
        fingerprint = self.fingerprint(config, fingerprint_env)
        if self.running():
            current = self.fingerprint_file.read_text() if self.fingerprint_file.exists() else ""
            if current == fingerprint:
                return
            stop_all()
            self.shutdown()
        self.config.write_text(config)
        os.chmod(self.config, 0o600)
        self.log.unlink(missing_ok=True)  # restarts are counted from this supervisord's start
        completed = subprocess.run(
            [_bin("supervisord"), "-c", str(self.config)],
            env=env,
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if completed.returncode != 0:
            raise SupervisorError(
                f"supervisord did not start: {completed.stderr.strip() or completed.stdout}"
            )
        deadline = time.monotonic() + 20
        while not self.running():
            if time.monotonic() > deadline:
                raise SupervisorError(f"supervisord did not answer on {self.socket}; see {self.log}")
            time.sleep(0.1)
        self.fingerprint_file.write_text(fingerprint)

    def shutdown(self) -> None:
        if not self.running():
            return
        pid = int(self.pidfile.read_text()) if self.pidfile.exists() else None
        with contextlib.suppress(OSError, xmlrpc.client.Error):
            self.rpc().shutdown()
        deadline = time.monotonic() + 30
        while pid and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.fingerprint_file.unlink(missing_ok=True)

    # ---- programs -------------------------------------------------------------------------------
    def info(self, name: str) -> dict[str, Any] | None:
        """supervisord's view of a program (statename, pid, start, spawnerr), or None if unknown."""
        if not self.running():
            return None
        try:
            return self.rpc().getProcessInfo(name)
        except xmlrpc.client.Fault:
            return None

    def start(self, name: str) -> None:
        try:
            self.rpc().startProcess(name, False)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_STARTED" not in fault.faultString:
                raise SupervisorError(f"{name}: {fault.faultString}") from None

    def stop(self, name: str) -> bool:
        """Stop a program (its whole process group); True when it was running."""
        try:
            self.rpc().stopProcess(name, True)
            return True
        except xmlrpc.client.Fault as fault:
            if "NOT_RUNNING" in fault.faultString or "BAD_NAME" in fault.faultString:
                return False
            raise SupervisorError(f"{name}: {fault.faultString}") from None

    def stop_together(self, names: list[str]) -> list[str]:
        """Stop `names` at once (supervisord waits for each in parallel); return those that were running.

        One by one, a stop took as long as all of them together: Airflow 3.3's triggerer alone spends
        10 s in its shutdown (it notices its trigger runner's exit only at the end of its escalation
        delay), the api-server 3 s, the scheduler 2 s."""
        if len(names) <= 1:
            return [name for name in names if self.stop(name)]
        with ThreadPoolExecutor(max_workers=len(names)) as pool:  # one RPC connection per call (rpc())
            return [name for name, was in zip(names, pool.map(self.stop, names), strict=True) if was]

    def unexpected_exits(self) -> dict[str, list[str]]:
        """For each program, how each unexpected exit since supervisord started was described."""
        exits: dict[str, list[str]] = {}
        if self.log.exists():
            for match in _EXITED.finditer(self.log.read_text(errors="replace")):
                if "not expected" in match["how"]:
                    exits.setdefault(match["name"], []).append(match["how"].split(";")[0])
        return exits


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False
