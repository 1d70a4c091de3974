"""Memory of the stack while the benchmark runs: every process of every component, sampled; and the
peak of a fresh interpreter that decodes a file whole (what the bomb would cost without footer checks)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable

import psutil


def is_task_process(command: str) -> bool:
    """LocalExecutor workers and the processes they run each task in."""
    return "airflow worker" in command or "task" in command


class RssSampler(threading.Thread):
    """Sums the RSS of every process of the stack every `period_s`, and keeps each process's peak.

    Task processes are forked from a scheduler that already imported the task libraries, so their RSS
    counts pages they share with it; for those the sampler also keeps the peak USS (the memory only that
    process holds, read from smaps, so only for task processes).
    """

    def __init__(self, processes: Callable[[], list[psutil.Process]], period_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.processes, self.period_s = processes, period_s
        self.peak_bytes = 0
        self.latest_bytes = 0
        self.peak_by_pid: dict[int, tuple[int, str]] = {}  # pid -> (peak RSS, command line)
        self.peak_uss_by_pid: dict[int, int] = {}  # task processes only
        self._commands: dict[int, str] = {}
        self._halt = threading.Event()  # not `_stop`: threading.Thread has a method of that name

    def sample(self) -> int:
        seen: dict[int, int] = {}
        for proc in self.processes():
            try:
                rss = proc.memory_info().rss
            except psutil.Error:
                continue
            seen[proc.pid] = rss
            command = self._command(proc)
            if rss > self.peak_by_pid.get(proc.pid, (0, ""))[0]:
                self.peak_by_pid[proc.pid] = (rss, command)
            if is_task_process(command):
                try:
                    uss = proc.memory_full_info().uss
                except psutil.Error:
                    continue
                self.peak_uss_by_pid[proc.pid] = max(uss, self.peak_uss_by_pid.get(proc.pid, 0))
        return sum(seen.values())

    def _command(self, proc: psutil.Process) -> str:
        # A forked task process renames itself after fork: read the command line until it says "task".
        command = self._commands.get(proc.pid)
        if command is None or not is_task_process(command):
            try:
                command = " ".join(proc.cmdline())[:200]
            except psutil.Error:
                command = command or "?"
            self._commands[proc.pid] = command
        return command

    def run(self) -> None:
        while not self._halt.is_set():
            self.latest_bytes = self.sample()
            self.peak_bytes = max(self.peak_bytes, self.latest_bytes)
            self._halt.wait(self.period_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def task_peaks_since(self, known: set[int]) -> list[int]:
        """Peak RSS of each task process that appeared since `known` was taken (LocalExecutor workers
        run each task in a process of its own)."""
        return [
            rss
            for pid, (rss, command) in self.peak_by_pid.items()
            if pid not in known and is_task_process(command)
        ]

    def task_uss_peaks_since(self, known: set[int]) -> list[int]:
        """Peak USS of each task process that appeared since `known` was taken."""
        return [uss for pid, uss in self.peak_uss_by_pid.items() if pid not in known]


def full_decode_peak_mb(body: bytes) -> int:
    """Peak RSS (MB) of a fresh interpreter that decodes the whole file, as ingest did before it read
    the footer first."""
    with tempfile.NamedTemporaryFile(suffix=".parquet") as handle:
        handle.write(body)
        handle.flush()
        code = (  # VmHWM: the peak of this process alone (ru_maxrss would carry over the parent's)
            "import re, pyarrow.parquet as pq, pandas;"
            f"pq.read_table({handle.name!r}).to_pandas();"
            "print(re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False
        )
    return round(int(done.stdout.strip() or 0) / 1024) if done.returncode == 0 else -1
