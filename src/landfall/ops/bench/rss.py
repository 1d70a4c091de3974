"""Memory of the stack while the benchmark runs: every process of every component, sampled."""

from __future__ import annotations

import threading
from collections.abc import Callable

import psutil


class RssSampler(threading.Thread):
    """Sums the RSS of every process of the stack every `period_s`, and keeps each process's peak."""

    def __init__(self, processes: Callable[[], list[psutil.Process]], period_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.processes, self.period_s = processes, period_s
        self.peak_bytes = 0
        self.latest_bytes = 0
        self.peak_by_pid: dict[int, tuple[int, str]] = {}  # pid -> (peak RSS, command line)
        self._halt = threading.Event()  # not `_stop`: threading.Thread has a method of that name

    def sample(self) -> int:
        seen: dict[int, int] = {}
        for proc in self.processes():
            try:
                rss = proc.memory_info().rss
            except psutil.Error:
                continue
            seen[proc.pid] = rss
            if rss > self.peak_by_pid.get(proc.pid, (0, ""))[0]:
                try:
                    command = " ".join(proc.cmdline())[:200]
                except psutil.Error:
                    command = "?"
                self.peak_by_pid[proc.pid] = (rss, command)
        return sum(seen.values())

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
            if pid not in known and ("airflow worker" in command or "task" in command)
        ]
