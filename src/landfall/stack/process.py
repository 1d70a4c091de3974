"""Own the stack's processes: each component runs in its own process group, recorded by PID and start
time, so `down` can stop the whole tree (LocalExecutor workers, gunicorn/uvicorn children) and a PID
that the OS reused for something else is never signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    create_time: float
    argv: list[str]
    log: str

    def process(self) -> psutil.Process | None:
        """The live process this record names, or None (gone, zombie, or a reused PID)."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 1 or proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None


def record_path(pids_dir: Path, name: str) -> Path:
    return pids_dir / f"{name}.json"


def read_record(pids_dir: Path, name: str) -> ProcessRecord | None:
    path = record_path(pids_dir, name)
    if not path.exists():
        return None
    try:
        return ProcessRecord(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None


def start(
    pids_dir: Path, name: str, argv: Sequence[str], env: dict[str, str], log_file: Path, cwd: Path
) -> ProcessRecord:
    """Start `argv` detached in a new session (its own process group), logging to `log_file`."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(argv),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    record = ProcessRecord(name, proc.pid, psutil.Process(proc.pid).create_time(), list(argv), str(log_file))
    record_path(pids_dir, name).write_text(json.dumps(record.__dict__))
    return record


def stop(pids_dir: Path, name: str, grace_s: float = 10.0) -> list[int]:
    """Stop a component and every process of its tree; return the PIDs that had to be SIGKILLed."""
    record = read_record(pids_dir, name)
    path = record_path(pids_dir, name)
    if record is None:
        path.unlink(missing_ok=True)
        return []
    root = record.process()
    if root is None:
        path.unlink(missing_ok=True)
        return []
    tree = [root, *root.children(recursive=True)]
    # The group catches children that re-parented away from the root; the tree catches those that
    # started their own session.
    _signal_group(record.pid, signal.SIGTERM)
    for proc in tree:
        _signal(proc, signal.SIGTERM)
    _, alive = psutil.wait_procs(tree, timeout=grace_s)
    killed = []
    if alive:
        _signal_group(record.pid, signal.SIGKILL)
        for proc in alive:
            _signal(proc, signal.SIGKILL)
            killed.append(proc.pid)
        psutil.wait_procs(alive, timeout=5)
    _reap(record.pid)
    path.unlink(missing_ok=True)
    return killed


def kill(pids_dir: Path, name: str) -> list[int]:
    """SIGKILL a component's whole tree at once, no grace: a crash, as the fault-injection tests need.
    The PID record stays, as a crashed process would leave it; `up` notices the process is gone."""
    record = read_record(pids_dir, name)
    root = record.process() if record else None
    if record is None or root is None:
        return []
    tree = [root, *root.children(recursive=True)]
    _signal_group(record.pid, signal.SIGKILL)
    for proc in tree:
        _signal(proc, signal.SIGKILL)
    psutil.wait_procs(tree, timeout=5)
    _reap(record.pid)
    return [proc.pid for proc in tree]


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _signal(proc: psutil.Process, sig: signal.Signals) -> None:
    with contextlib.suppress(psutil.Error):
        proc.send_signal(sig)


def _reap(pid: int) -> None:
    """Collect the exit status if the launcher itself is the parent (it is, within one `up` process)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid:
                members.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return members


def port_owner(port: int) -> str | None:
    """Who listens on 127.0.0.1/0.0.0.0:`port`, as 'pid N (name)', or None when the port is free."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            return None
        except OSError:
            pass
    try:
        for conn in psutil.net_connections("tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
                name = psutil.Process(conn.pid).name() if conn.pid else "?"
                return f"pid {conn.pid} ({name})"
    except (psutil.Error, PermissionError):
        pass
    return "another process"
