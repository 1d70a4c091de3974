"""`landfall bench` / `make bench`: event latency, orchestration overhead and scale, measured on a fresh
embedded stack of its own (own state folder and ports, torn down at the end), beside the classic
S3KeySensor DAG that users migrate from. Figures are printed as a table and written to
`bench/results.json`; nothing here asserts a timing.

Phases, in order, on the same stack:
1. `dag_parse_s`: every DAG file imported in a fresh interpreter (landfall.dagparse).
2. One good day landed on the quiet stack: `landing_to_champion_s`, the compute of its tasks and the
   overhead ratio.
3. `event_to_run_start_s` over N single landings, each waiting for its run before the next.
4. A burst: M files PUT as fast as S3 takes them; lost, duplicates, time until all are processed.
5. The classic DAGs: the sensor waits, the file lands at stratified points of the poke cycle.
Peak RSS of every stack process (LocalExecutor workers and task processes included) is sampled
throughout.

Phases 3 and 4 land schema-invalid files on purpose: the watcher, the asset event, the ingest run
and the validation do the same work for them, but they end in quarantine instead of starting 70
training chains that would bury the measurement under their CPU load.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import requests

from landfall.airflow_api import AirflowApi
from landfall.datagen import make_batch, make_corrupt, to_parquet
from landfall.settings import REPO_ROOT
from landfall.triggers import landed_objects_in

RESULTS_PATH = REPO_ROOT / "bench" / "results.json"
CLASSIC_DAGS_FOLDER = REPO_ROOT / "bench" / "dags"
INGEST_DAG = "landfall_ingest"
# A port range of its own, so the benchmark never touches a developer's stack or the test suite's.
# SeaweedFS also listens on each port + 10000 (gRPC): 3xxxx would collide with the tests' 2xxxx.
BENCH_PORTS = {
    "AIRFLOW_API": 48080,
    "MLFLOW": 45000,
    "S3": 48333,
    "SEAWEED_MASTER": 49333,
    "SEAWEED_VOLUME": 49340,
    "SEAWEED_FILER": 48888,
}

Echo = Callable[[str], None]


@dataclass
class BenchOptions:
    landings: int = 20
    burst: int = 50
    sensor_samples: int = 3
    poke_intervals_s: tuple[int, ...] = (300, 30)
    day_rows: int = 5000
    out: Path = RESULTS_PATH
    keep_stack: bool = False
    overrides: dict[str, str] = field(default_factory=dict)  # extra env, e.g. a knob under study


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p95/min/max/mean of `values` (nearest-rank percentiles: no interpolation on small samples)."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    return {
        "n": len(ordered),
        "p50": round(rank(0.50), 3),
        "p95": round(rank(0.95), 3),
        "min": round(ordered[0], 3),
        "max": round(ordered[-1], 3),
        "mean": round(statistics.fmean(ordered), 3),
    }


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


# ---- memory ----------------------------------------------------------------------------------------


class RssSampler(threading.Thread):
    """Sums the RSS of every process of the stack (each component's tree) every `period_s`."""

    def __init__(self, roots: Callable[[], list[psutil.Process]], period_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.roots, self.period_s = roots, period_s
        self.peak_bytes = 0
        self.latest_bytes = 0
        self._halt = threading.Event()  # not `_stop`: threading.Thread has a method of that name

    def sample(self) -> int:
        seen: dict[int, int] = {}
        for root in self.roots():
            try:
                for proc in [root, *root.children(recursive=True)]:
                    seen[proc.pid] = proc.memory_info().rss
            except psutil.Error:
                continue
        return sum(seen.values())

    def run(self) -> None:
        while not self._halt.is_set():
            self.latest_bytes = self.sample()
            self.peak_bytes = max(self.peak_bytes, self.latest_bytes)
            self._halt.wait(self.period_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


# ---- what the API says about landings ------------------------------------------------------------


def _get_tolerant(api: AirflowApi, path: str, **params: Any) -> dict[str, Any] | None:
    """GET that answers None on the transient 500 of Airflow 3.3 while a created run is not started."""
    try:
        return api.get(path, **params)
    except requests.HTTPError as error:
        if error.response is not None and error.response.status_code == 500:
            return None
        raise


def landing_runs(api: AirflowApi, keys: set[str]) -> dict[str, list[dict[str, Any]]] | None:
    """For each landed key, the `landing` asset events naming it with the runs they created."""
    asset = api.asset_by_name("landing")
    if asset is None:
        return {key: [] for key in keys}
    answer = _get_tolerant(api, "assets/events", asset_id=asset["id"], order_by="-timestamp", limit=1000)
    if answer is None:
        return None
    found: dict[str, list[dict[str, Any]]] = {key: [] for key in keys}
    for event in answer["asset_events"]:
        for landed in landed_objects_in(event.get("extra")):
            if landed["key"] in found:
                found[landed["key"]].append(event)
    return found


def outcome_events(api: AirflowApi, keys: set[str]) -> dict[str, int]:
    """How many raw or quarantine events each key produced (exactly one when nothing is lost or doubled)."""
    counts = dict.fromkeys(keys, 0)
    for asset in ("raw_daily", "quarantine"):
        for event in api.events_of(asset):
            key = (event.get("extra") or {}).get("source_key")
            if key in counts:
                counts[key] += 1
    return counts


# ---- phases ----------------------------------------------------------------------------------------


class Bench:
    def __init__(self, stack: Any, api: AirflowApi, options: BenchOptions, echo: Echo) -> None:
        self.stack, self.api, self.options, self.echo = stack, api, options, echo
        self.s3 = stack.s3_client()
        self.bucket = stack.settings.storage.datasets_bucket
        self.landing_prefix = stack.settings.storage.landing_prefix
        self.filename = stack.settings.storage.landing_filename
        self._days = (date(2300, 1, 1) + timedelta(days=n) for n in range(100_000))

    def _put(self, key: str, body: bytes) -> float:
        put_at = time.time()
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        return put_at

    def _new_key(self) -> str:
        return f"{self.landing_prefix}/{next(self._days).isoformat()}/{self.filename}"

    def dag_parse(self) -> dict[str, Any]:
        from landfall.dagparse import parse_in_subprocess
        from landfall.stack.launcher import DAGS_FOLDER, dag_files

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
        from landfall.follow import follow_chain, follow_landing

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
        compute = sum(per_dag[d]["task_seconds"] for d in ("landfall_train", "landfall_evaluate"))
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
        """Single landings on a quiet stack: each waits for its ingest run to end before the next."""
        put_at: dict[str, float] = {}
        poll = self.stack.settings.watcher.poll_interval_s
        for index in range(self.options.landings):
            time.sleep(random.uniform(0, poll))  # land at a random phase of the watcher's poll
            key = self._new_key()
            put_at[key] = self._put(key, make_corrupt("schema", seed=index))
            run = self._wait_for_ingest_run_after(put_at[key], timeout_s=120)
            started = _ts(run["start_date"]) - put_at[key]
            self.echo(
                f"  landing {index + 1:>2}/{self.options.landings}: a run started {started:5.2f}s after PUT"
            )
        # Which run each landing started, from its asset event (a run can serve more than one event).
        events = self._wait_for_runs(put_at, timeout_s=60)
        latencies = [self._first_start(events[key]) - at for key, at in put_at.items()]
        return {"event_to_run_start_s": percentiles(latencies)}

    def _wait_for_ingest_run_after(self, after: float, timeout_s: float) -> dict[str, Any]:
        """The first ingest run queued after `after`, once it has ended."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            runs = [
                r for r in self.api.dag_runs(INGEST_DAG, limit=20) if (_ts(r.get("queued_at")) or 0) >= after
            ]
            if runs and all(r["state"] in ("success", "failed") for r in runs):
                return min(runs, key=lambda r: r["queued_at"])
            time.sleep(0.2)
        raise TimeoutError(f"no {INGEST_DAG} run ended within {timeout_s:.0f}s of a landing")

    def burst(self) -> dict[str, Any]:
        count = self.options.burst
        bodies = [make_corrupt("schema", seed=1000 + n) for n in range(count)]
        keys = [self._new_key() for _ in range(count)]
        started = time.time()
        put_at = {key: self._put(key, body) for key, body in zip(keys, bodies, strict=True)}
        landed_in = time.time() - started
        self.echo(f"  {count} files PUT in {landed_in:.1f}s; waiting for every one to be processed ...")
        deadline = time.monotonic() + 600
        while True:
            counts = outcome_events(self.api, set(keys))
            if all(counts.values()) or time.monotonic() > deadline:
                break
            time.sleep(1)
        all_done = time.time() - started
        time.sleep(3 * self.stack.settings.watcher.poll_interval_s + 2)  # let a late duplicate show up
        counts = outcome_events(self.api, set(keys))
        events = landing_runs(self.api, set(keys)) or {}
        runs = {r["run_id"] for evs in events.values() for e in evs for r in e["created_dagruns"]}
        return {
            "burst": {
                "files": count,
                "put_s": round(landed_in, 2),
                "all_processed_s": round(all_done, 2),
                "throughput_files_per_s": round(count / all_done, 2),
                "ingest_runs": len(runs),
                "lost": sum(1 for n in counts.values() if n == 0),
                "duplicates": sum(n - 1 for n in counts.values() if n > 1)
                + sum(len(evs) - 1 for evs in events.values() if len(evs) > 1),
                "first_run_start_s": percentiles(
                    [self._first_start(e) - put_at[k] for k, e in events.items() if e]
                ),
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
                run = self.api.post(f"dags/{dag_id}/dagRuns", {"logical_date": None, "conf": {"key": key}})
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


# ---- the whole run ---------------------------------------------------------------------------------


def bench_environment(state_dir: Path, overrides: dict[str, str]) -> dict[str, str]:
    """The env that points settings, the launcher and every component at the benchmark's own stack."""
    bundles = [
        {
            "name": "dags-folder",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {},
        },
        {
            "name": "landfall-bench",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(CLASSIC_DAGS_FOLDER)},
        },
    ]
    env = {f"LANDFALL_STACK__PORTS__{name}": str(port) for name, port in BENCH_PORTS.items()}
    env["LANDFALL_STACK__STATE_DIR"] = str(state_dir)
    env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(bundles)
    return {**env, **overrides}


def run_bench(options: BenchOptions, echo: Echo = print) -> dict[str, Any]:
    from landfall.settings import get_settings, load_settings
    from landfall.stack import process
    from landfall.stack.launcher import Stack

    state_dir = Path(tempfile.mkdtemp(prefix="landfall-bench-"))
    os.environ.update(bench_environment(state_dir, options.overrides))
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_TRACKING_URI"):
        os.environ.pop(name, None)
    get_settings.cache_clear()
    settings = load_settings()
    stack = Stack(settings, echo=echo)

    def roots() -> list[psutil.Process]:
        records = (process.read_record(stack.state.pids, name) for name in stack.components)
        return [p for p in (r.process() if r else None for r in records) if p is not None]

    sampler = RssSampler(roots)
    results: dict[str, Any] = {
        "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1)},
        "settings": {
            "watcher_poll_interval_s": settings.watcher.poll_interval_s,
            "parallelism": settings.stack.parallelism,
            "overrides": options.overrides,
        },
    }
    try:
        echo(f"Starting a benchmark stack in {state_dir} (ports {BENCH_PORTS['AIRFLOW_API']}, ...)")
        results["stack_up_s"] = round(stack.up(), 1)
        os.environ.update(stack.environment())
        sampler.start()
        time.sleep(5)
        results["idle_rss_mb"] = round(sampler.sample() / 2**20)
        api = stack.api()
        bench = Bench(stack, api, options, echo)
        phases: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("DAG parse", bench.dag_parse),
            ("one day, landing to champion", bench.landing_to_champion),
            (f"{options.landings} single landings", bench.event_latency),
            (f"burst of {options.burst}", bench.burst),
            ("classic S3KeySensor DAGs", bench.classic),
        ]
        for name, phase in phases:
            echo(f"[{name}]")
            started = time.monotonic()
            results.update(phase())
            _write(options.out, results)  # a later phase that fails keeps what was measured
            echo(f"  done in {time.monotonic() - started:.0f}s")
        results["peak_rss_mb"] = round(sampler.peak_bytes / 2**20)
    finally:
        sampler.stop()
        if options.keep_stack:
            echo(f"Benchmark stack kept running: LANDFALL_STACK__STATE_DIR={state_dir} landfall down")
        else:
            stack.down(quiet=True)
            shutil.rmtree(state_dir, ignore_errors=True)
    _add_comparison(results)
    _write(options.out, results)
    echo(format_table(results))
    echo(f"Written to {options.out}")
    return results


def _write(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def _add_comparison(results: dict[str, Any]) -> None:
    event = results.get("event_to_run_start_s", {}).get("p50")
    comparison = {}
    for arm, figures in (results.get("classic_sensor") or {}).items():
        classic_p50 = figures["file_to_work_start_s"].get("p50")
        if event and classic_p50:
            comparison[f"{arm}_vs_event_p50"] = round(classic_p50 / event, 1)
    results["comparison"] = comparison


TARGETS = {
    "event_to_run_start p50": ("< 5 s", lambda r: r["event_to_run_start_s"]["p50"] < 5),
    "overhead_ratio": ("< 2.0", lambda r: r["overhead_ratio"] < 2.0),
    "dag_parse_s max": ("< 0.5 s", lambda r: r["dag_parse_s"]["max"] < 0.5),
    "burst lost / duplicates": ("0 / 0", lambda r: r["burst"]["lost"] == 0 and r["burst"]["duplicates"] == 0),
}


def format_table(results: dict[str, Any]) -> str:
    day, latency, burst = results, results["event_to_run_start_s"], results["burst"]
    rows = [
        ("stack up", f"{results['stack_up_s']} s"),
        (
            "DAG parse per file (max / mean)",
            f"{results['dag_parse_s']['max']} / {results['dag_parse_s']['mean']} s",
        ),
        ("event -> ingest run start p50 / p95", f"{latency['p50']} / {latency['p95']} s (n={latency['n']})"),
        ("landing -> champion", f"{day['landing_to_champion_s']} s"),
        ("train+eval task compute", f"{day['compute_s']} s (model fit {day['model_fit_s']} s)"),
        (
            "critical-path compute / overhead ratio",
            f"{day['critical_path_compute_s']} s / {day['overhead_ratio']}",
        ),
        (
            f"burst of {burst['files']}: all processed",
            f"{burst['all_processed_s']} s "
            f"({burst['throughput_files_per_s']} files/s, {burst['ingest_runs']} ingest runs)",
        ),
        ("burst lost / duplicates", f"{burst['lost']} / {burst['duplicates']}"),
        ("stack RSS idle / peak", f"{results['idle_rss_mb']} / {results['peak_rss_mb']} MB"),
    ]
    for arm, figures in (results.get("classic_sensor") or {}).items():
        f = figures["file_to_work_start_s"]
        ratio = results["comparison"].get(f"{arm}_vs_event_p50")
        rows.append(
            (
                f"classic S3KeySensor {arm}: file -> work p50",
                f"{f.get('p50')} s (n={f['n']}, x{ratio} slower)",
            )
        )
    width = max(len(name) for name, _ in rows)
    lines = ["", f"{'figure':<{width}}  value", f"{'-' * width}  {'-' * 40}"]
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    lines += ["", "targets (reported, not asserted):"]
    for name, (target, met) in TARGETS.items():
        try:
            verdict = "met" if met(results) else "NOT met"
        except (KeyError, TypeError):
            verdict = "not measured"
        lines.append(f"  {name:<26} {target:<8} {verdict}")
    return "\n".join(lines)
