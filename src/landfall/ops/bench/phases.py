"""The benchmark's phases, each measured on the same fresh stack. See `landfall.ops.bench` for the list.

The latency and burst phases land schema-invalid files on purpose: the watcher, the asset event, the
ingest run and the validation do the same work for them, but they end in quarantine instead of starting
training chains that would bury the measurement under their CPU load.
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from landfall.core.catalog import chain_of
from landfall.core.paths import REPO_ROOT
from landfall.ops.airflow_api import AirflowApi
from landfall.ops.bench.landing_records import BENCH_PIPELINE, landing_runs, outcome_counts
from landfall.ops.bench.report import percentiles
from landfall.ops.bench.rss import RssSampler, full_decode_peak_mb
from landfall.ops.follow import quarantine_events_for
from landfall.ops.landings import put_landing
from landfall.pipeline.datagen import decompression_bomb, make_batch, make_corrupt, to_parquet
from landfall.pipeline.publish import quarantine_records

RESULTS_PATH = REPO_ROOT / "bench" / "results.json"
CLASSIC_DAGS_FOLDER = REPO_ROOT / "bench" / "dags"

Echo = Callable[[str], None]


@dataclass
class BenchOptions:
    landings: int = 20
    bursts: tuple[int, ...] = (50, 1000)
    bomb_rows: int = 20_000_000
    sensor_samples: int = 3
    poke_intervals_s: tuple[int, ...] = (300, 30)
    day_rows: int = 5000
    serving_requests: int = 20_000  # the scoring service's load test (0: skip the serving phase)
    big_days_gib: tuple[float, ...] = (1.0, 2.0)  # multi-part days marker -> training_dataset (memory flat)
    history_days: int = 365  # consecutive days landed at once, followed to the newest day's deploy (0: skip)
    watcher_objects: int = 100_000  # already-reported objects of the watcher-scale phase (0: skip)
    event_path_landings: int = 20  # landings per event path (queue, list at 2 s and 1 s) on fresh stacks
    event_paths: tuple[str, ...] = ()  # which of them (names of event_paths.configurations()); () all
    out: Path = RESULTS_PATH
    keep_stack: bool = False
    overrides: dict[str, str] = field(default_factory=dict)  # extra env, e.g. a knob under study


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


# ---- phases ----------------------------------------------------------------------------------------


class Bench:
    def __init__(
        self, stack: Any, api: AirflowApi, options: BenchOptions, sampler: RssSampler, echo: Echo
    ) -> None:
        self.stack, self.api, self.options, self.sampler, self.echo = stack, api, options, sampler, echo
        self.s3 = stack.s3_client()
        self.bucket = stack.settings.storage.datasets_bucket
        self.landing_prefix = stack.settings.storage.landing_prefix
        self.filename = stack.settings.storage.landing_filename
        self._days = (date(2300, 1, 1) + timedelta(days=n) for n in range(100_000))

    def _put(self, key: str, body: bytes) -> float:
        return put_landing(self.s3, self.bucket, key, body).put_at

    def next_day(self) -> date:
        """A day no phase landed before (the days are shared by every pipeline's landings)."""
        return next(self._days)

    def _new_key(self, fresh_window: bool = False) -> str:
        """The landing key of the next unused day. `fresh_window`: skip a training window's worth of days
        first, so that no day landed before is in the new day's training window (it trains and is
        evaluated on its own data alone)."""
        if fresh_window:
            for _ in range(self.stack.settings.training.window_days):
                next(self._days)
        return f"{self.landing_prefix}/{next(self._days).isoformat()}/{self.filename}"

    def dag_parse(self) -> dict[str, Any]:
        from landfall.core.paths import DAGS_FOLDER
        from landfall.ops.dagparse import parse_in_subprocess
        from landfall.ops.stack.dag_loading import dag_files

        per_file = {}
        for name in sorted(dag_files()):
            report = parse_in_subprocess(DAGS_FOLDER / name)
            per_file[name] = round(report["parse_s"], 3)
            self.echo(f"  parse {name:<28} {report['parse_s'] * 1000:6.0f} ms")
        return {
            "dag_parse_s": {
                "per_file": per_file,
                "max": max(per_file.values()),
                "mean": round(statistics.fmean(per_file.values()), 3),
            }
        }

    def landing_to_champion(self) -> dict[str, Any]:
        names = chain_of(BENCH_PIPELINE)
        from landfall.ops.follow import follow_chain, follow_landing

        key = self._new_key()
        day = key.split("/")[-2]
        self.echo(f"  one good day ({self.options.day_rows} rows) landed as {key}")
        put_at = self._put(key, to_parquet(make_batch(self.options.day_rows, seed=7)))

        def quiet(_line: str) -> None:  # the phase prints its own summary
            pass

        ingest = follow_landing(self.api, key, timeout_s=600, echo=quiet)
        chain = follow_chain(self.api, day, ingest.queued_at, timeout_s=900, echo=quiet)
        if [r.state for r in chain] != ["success"] * 4 or chain[-1].tasks.get("promote") != "success":
            raise RuntimeError(
                f"the benchmark day did not become the champion: {[(r.dag_id, r.state) for r in chain]}"
            )
        runs = [(ingest.dag_id, ingest.run_id), *((r.dag_id, r.run_id) for r in chain)]
        per_dag = {dag_id: self._run_compute(dag_id, run_id) for dag_id, run_id in runs}
        landing_to_champion = chain[-1].ended_at.timestamp() - put_at
        critical = sum(d["critical_path_s"] for d in per_dag.values())
        compute = sum(per_dag[d]["task_seconds"] for d in (names.train_dag, names.evaluate_dag))
        fit = self._fit_seconds(chain[1].run_id)
        return {
            "landing_to_champion_s": round(landing_to_champion, 2),
            "compute_s": round(compute, 2),
            "critical_path_compute_s": round(critical, 2),
            "overhead_ratio": round(landing_to_champion / critical, 2),
            "model_fit_s": round(fit, 2),
            "chain_per_dag": per_dag,
        }

    def _run_compute(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """Task seconds of one run and its critical path: the longest chain of dependent tasks, a mapped
        task counting as its slowest instance (what an ideal orchestrator would wait for)."""
        downstream = {
            t["task_id"]: t["downstream_task_ids"] for t in self.api.get(f"dags/{dag_id}/tasks")["tasks"]
        }
        durations: dict[str, list[float]] = {}
        for ti in self.api.task_instances(dag_id, run_id):
            durations.setdefault(ti["task_id"], []).append(float(ti.get("duration") or 0.0))
        longest: dict[str, float] = {}

        def path_from(task_id: str) -> float:
            if task_id not in longest:
                own = max(durations.get(task_id, [0.0]))
                longest[task_id] = own + max((path_from(d) for d in downstream.get(task_id, [])), default=0.0)
            return longest[task_id]

        run = self.api.get(f"dags/{dag_id}/dagRuns/{run_id}")
        return {
            "run_s": round((_ts(run["end_date"]) or 0) - (_ts(run["start_date"]) or 0), 2),
            "task_seconds": round(sum(sum(v) for v in durations.values()), 2),
            "critical_path_s": round(max(path_from(t) for t in downstream), 2),
        }

    def _fit_seconds(self, train_run_id: str) -> float:
        import mlflow

        runs = mlflow.search_runs(
            experiment_names=[self.stack.settings.mlflow.experiment],
            filter_string=f"tags.`landfall.airflow_run_id` = '{train_run_id}'",
        )
        return float(runs["metrics.train_seconds"].sum()) if len(runs) else 0.0

    def _wait_for_runs(self, put_at: dict[str, float], timeout_s: float) -> dict[str, list[dict[str, Any]]]:
        """Wait until every key's landing event has a started run; return the events per key."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = landing_runs(self.api, set(put_at))
            if found is not None and all(
                any(r.get("start_date") for e in events for r in e["created_dagruns"])
                for events in found.values()
            ):
                return found
            if time.monotonic() > deadline:
                missing = sorted(k for k, events in (found or {}).items() if not events)
                raise TimeoutError(f"no ingest run started within {timeout_s:.0f}s for {missing[:5]} ...")
            time.sleep(0.25)

    @staticmethod
    def _first_start(events: list[dict[str, Any]]) -> float:
        return min(_ts(r["start_date"]) for e in events for r in e["created_dagruns"] if r.get("start_date"))

    def event_latency(self) -> dict[str, Any]:
        return {"event_to_run_start_s": percentiles(self.single_landing_latencies(self.options.landings))}

    def single_landing_latencies(self, count: int) -> list[float]:
        """PUT -> ingest run start of `count` landings on a quiet stack, each waiting for its run to end
        before the next lands (at a random phase of the watcher's poll)."""
        put_at: dict[str, float] = {}
        poll = self.stack.settings.watcher.poll_interval_s
        for index in range(count):
            time.sleep(random.uniform(0, poll))
            key = self._new_key()
            put_at[key] = self._put(key, make_corrupt("schema", seed=index))
            run = self._wait_for_ingest_run_after(put_at[key], timeout_s=120)
            started = self.run_start(run) - put_at[key]
            self.echo(f"  landing {index + 1:>2}/{count}: a run started {started:5.2f}s after PUT")
        # Which run each landing started, from its asset event (a run can serve more than one event).
        events = self._wait_for_runs(put_at, timeout_s=60)
        return [self._first_start(events[key]) - at for key, at in put_at.items()]

    @staticmethod
    def run_start(run: dict[str, Any]) -> float:
        return _ts(run["start_date"]) or 0.0

    def _wait_for_ingest_run_after(self, after: float, timeout_s: float) -> dict[str, Any]:
        """The first ingest run queued after `after`, once it has ended."""
        names = chain_of(BENCH_PIPELINE)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            runs = [
                r
                for r in self.api.dag_runs(names.ingest_dag, limit=20)
                if (_ts(r.get("queued_at")) or 0) >= after
            ]
            if runs and all(r["state"] in ("success", "failed") for r in runs):
                return min(runs, key=lambda r: r["queued_at"])
            time.sleep(0.2)
        raise TimeoutError(f"no {names.ingest_dag} run ended within {timeout_s:.0f}s of a landing")

    def burst(self, count: int) -> dict[str, Any]:
        """`count` files PUT as fast as S3 takes them; lost, duplicates, runs, time until all are recorded."""
        names = chain_of(BENCH_PIPELINE)
        bodies = [make_corrupt("schema", seed=1000 + n) for n in range(min(count, 50))]
        keys = [self._new_key() for _ in range(count)]
        started = time.time()
        put_at = {key: self._put(key, bodies[n % len(bodies)]) for n, key in enumerate(keys)}
        landed_in = time.time() - started
        self.echo(f"  {count} files PUT in {landed_in:.1f}s; waiting for every one to be recorded ...")
        deadline = time.monotonic() + 600 + count
        while True:
            counts = outcome_counts(self.api, set(keys))
            done = sum(1 for n in counts.values() if n)
            if done == count or time.monotonic() > deadline:
                break
            time.sleep(2)
        all_done = time.time() - started
        time.sleep(3 * self.stack.settings.watcher.poll_interval_s + 2)  # let a late duplicate show up
        counts = outcome_counts(self.api, set(keys))
        events = landing_runs(self.api, set(keys)) or {}
        runs = {r["run_id"] for evs in events.values() for e in evs for r in e["created_dagruns"]}
        failed = [
            r
            for r in self.api.dag_runs(names.ingest_dag, limit=200)
            if r["dag_run_id"] in runs and r["state"] == "failed"
        ]
        return {
            f"burst_{count}": {
                "files": count,
                "put_s": round(landed_in, 2),
                "all_processed_s": round(all_done, 2),
                "throughput_files_per_s": round(count / all_done, 2),
                "ingest_runs": len(runs),
                "failed_runs": len(failed),
                "lost": sum(1 for n in counts.values() if n == 0),
                "duplicates": sum(n - 1 for n in counts.values() if n > 1),
                "first_run_start_s": percentiles(
                    [self._first_start(e) - put_at[k] for k, e in events.items() if e and self._started(e)]
                ),
                "peak_stack_rss_mb": round(self.sampler.peak_bytes / 2**20),
            }
        }

    @staticmethod
    def _started(events: list[dict[str, Any]]) -> bool:
        return any(r.get("start_date") for e in events for r in e["created_dagruns"])

    def bomb(self) -> dict[str, Any]:
        """A small parquet file whose footer declares `bomb_rows` rows: quarantined as too_large from the
        footer alone. Reports the peak RSS of the task processes that examined it, beside what decoding
        the whole file (what ingest did before) takes in a fresh interpreter."""
        rows = self.options.bomb_rows
        body = decompression_bomb(rows)
        key = self._new_key()
        known = set(self.sampler.peak_by_pid)
        put_at = self._put(key, body)
        deadline = time.monotonic() + 300
        while not quarantine_events_for(self.api, key):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the bomb {key} was not quarantined within 300 s")
            time.sleep(1)
        [event] = quarantine_events_for(self.api, key)
        [record] = [r for r in quarantine_records(event["extra"]) if r["source_key"] == key]
        peaks = self.sampler.task_peaks_since(known)
        return {
            "bomb": {
                "rows_declared": rows,
                "file_bytes": len(body),
                "codes": sorted({p["code"] for p in record["problems"]}),
                "quarantined_after_s": round(time.time() - put_at, 2),
                "task_peak_rss_mb": round(max(peaks, default=0) / 2**20),
                # What the task process held on its own (RSS minus the pages it shares with the scheduler).
                "task_peak_uss_mb": round(max(self.sampler.task_uss_peaks_since(known), default=0) / 2**20),
                "full_decode_peak_rss_mb": full_decode_peak_mb(body),
            }
        }

    def classic(self) -> dict[str, Any]:
        samples, intervals = self.options.sensor_samples, self.options.poke_intervals_s
        if samples <= 0:
            return {}
        self._wait_for_classic_dags(intervals)
        body = to_parquet(make_batch(500, seed=3))
        waiting: list[tuple[str, str, int, int]] = []  # dag_id, run_id, poke interval, sample index
        for interval in intervals:
            dag_id = f"landfall_classic_sensor_{interval}s"
            for index in range(samples):
                key = f"classic-bench/{uuid.uuid4().hex}/{self.filename}"
                run = self.api.trigger(dag_id, {"key": key})
                waiting.append((dag_id, run["dag_run_id"], interval, index))
        self.echo(f"  {len(waiting)} sensor runs waiting; landing their files across each poke cycle ...")
        first_poke = {run_id: self._wait_for_first_poke(dag_id, run_id) for dag_id, run_id, _, _ in waiting}
        # Stratified: sample i of n lands (i + 0.5)/n of a poke interval after the first poke.
        plan = sorted(
            (first_poke[run_id] + (index + 0.5) / samples * interval, dag_id, run_id, interval)
            for dag_id, run_id, interval, index in waiting
        )
        put_at = {}
        for due, dag_id, run_id, _interval in plan:
            time.sleep(max(0.0, due - time.time()))
            conf = self.api.get(f"dags/{dag_id}/dagRuns/{run_id}")["conf"]
            put_at[run_id] = self._put(conf["key"], body)
        latencies: dict[int, list[float]] = {interval: [] for interval in intervals}
        deadline = time.monotonic() + max(intervals) + 300
        for _due, dag_id, run_id, interval in plan:
            while True:
                [work] = [t for t in self.api.task_instances(dag_id, run_id) if t["task_id"] == "validate"]
                if work.get("start_date"):
                    latencies[interval].append(_ts(work["start_date"]) - put_at[run_id])
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{dag_id} {run_id}: the sensor never saw its file")
                time.sleep(1)
        return {
            "classic_sensor": {
                f"poke_{interval}s": {"file_to_work_start_s": percentiles(v)}
                for interval, v in latencies.items()
            }
        }

    def _wait_for_classic_dags(self, intervals: tuple[int, ...]) -> None:
        deadline = time.monotonic() + 180
        wanted = {f"landfall_classic_sensor_{i}s" for i in intervals}
        while wanted - {d["dag_id"] for d in self.api.get("dags", tags=["benchmark"], limit=100)["dags"]}:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the classic DAGs {sorted(wanted)} were not parsed (bench/dags bundle)")
            time.sleep(1)

    def _wait_for_first_poke(self, dag_id: str, run_id: str) -> float:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            [sensor] = [
                t for t in self.api.task_instances(dag_id, run_id) if t["task_id"] == "wait_for_file"
            ] or [{}]
            if sensor.get("state") == "up_for_reschedule":
                return time.time()
            time.sleep(0.5)
        raise TimeoutError(f"{dag_id} {run_id}: the sensor did not poke within 180s")
