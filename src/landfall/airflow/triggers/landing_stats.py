"""What the watcher's polls and sweeps cost, counted per pipeline and logged as `Watcher stats {...}`
once a minute (the benchmark reads these lines)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field


@dataclass
class ScanStats:
    """Counters the watcher logs: what a poll and a sweep cost (the benchmark reads these lines)."""

    polls: int = 0
    poll_requests: int = 0
    sweep_requests: int = 0
    sweeps: int = 0
    swept_objects: int = 0
    swept_folders: int = 0
    sweep_s: float = 0.0
    sweep_cpu_s: float = 0.0
    compacted: int = 0
    cpu_started: float = field(default_factory=time.process_time)
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def combined(cls, each: list[ScanStats]) -> ScanStats:
        """The stream's figures from its pipelines' scanners: every pipeline is polled once per poll of
        the stream, so the polls are the most any scanner counted and the requests add up."""
        total = cls(polls=max((s.polls for s in each), default=0))
        for stats in each:
            total.poll_requests += stats.poll_requests
            total.sweep_requests += stats.sweep_requests
            total.sweeps += stats.sweeps
            total.swept_objects += stats.swept_objects
            total.swept_folders += stats.swept_folders
            total.sweep_s += stats.sweep_s
            total.sweep_cpu_s += stats.sweep_cpu_s
            total.compacted += stats.compacted
        total.cpu_started = min((s.cpu_started for s in each), default=total.cpu_started)
        total.started = min((s.started for s in each), default=total.started)
        return total

    def line(self, pipelines: int = 1) -> str:
        seconds = time.monotonic() - self.started
        body = {
            "pipelines": pipelines,
            "window_s": round(seconds, 1),
            "polls": self.polls,
            "poll_requests": self.poll_requests,
            "requests_per_poll": round(self.poll_requests / self.polls, 2) if self.polls else None,
            "cpu_s": round(time.process_time() - self.cpu_started, 3),
            "sweeps": self.sweeps,
            "sweep_requests": self.sweep_requests,
            "swept_objects": self.swept_objects,
            "swept_folders": self.swept_folders,
            "sweep_s": round(self.sweep_s, 2),
            "sweep_cpu_s": round(self.sweep_cpu_s, 3),
            "compacted_folders": self.compacted,
        }
        return json.dumps(body)
