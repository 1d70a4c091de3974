"""The benchmark's figures: percentiles, the printed table with targets (reported, never asserted), the
JSON file."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any


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


def write(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def add_comparison(results: dict[str, Any]) -> None:
    event = results.get("event_to_run_start_s", {}).get("p50")
    comparison = {}
    for arm, figures in (results.get("classic_sensor") or {}).items():
        classic_p50 = figures["file_to_work_start_s"].get("p50")
        if event and classic_p50:
            comparison[f"{arm}_vs_event_p50"] = round(classic_p50 / event, 1)
    results["comparison"] = comparison


def _big(results: dict[str, Any], required: bool = False) -> list[dict[str, Any]]:
    """The big-day figures, smallest day first (KeyError when required and the phase did not run)."""
    days = sorted((v for k, v in results.items() if k.startswith("big_day_")), key=lambda d: d["bytes"])
    if required and not days:
        raise KeyError("big_day")
    return days


def _flat(days: list[dict[str, Any]]) -> bool:
    """The largest day's task peak within 10 % of the smallest's (memory does not grow with the day)."""
    return len(days) > 1 and days[-1]["task_peak_rss_mb"] <= 1.1 * days[0]["task_peak_rss_mb"]


def _bursts(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [value for name, value in sorted(results.items()) if name.startswith("burst_")]


TARGETS = {
    "event_to_run_start p50": ("< 5 s", lambda r: r["event_to_run_start_s"]["p50"] < 5),
    "overhead_ratio": ("< 2.0", lambda r: r["overhead_ratio"] < 2.0),
    "dag_parse_s max": ("< 0.5 s", lambda r: r["dag_parse_s"]["max"] < 0.5),
    "bursts lost / duplicates": (
        "0 / 0",
        lambda r: all(b["lost"] == 0 and b["duplicates"] == 0 for b in _bursts(r)) and _bursts(r),
    ),
    "bursts failed runs": ("0", lambda r: all(b["failed_runs"] == 0 for b in _bursts(r)) and _bursts(r)),
    "burst of 1,000 throughput": (">= 10 files/s", lambda r: r["burst_1000"]["throughput_files_per_s"] >= 10),
    "bomb task peak RSS": ("< 300 MB", lambda r: 0 < r["bomb"]["task_peak_rss_mb"] < 300),
    "big day task peak RSS": (
        "< 512 MB",
        lambda r: 0 < max(d["task_peak_rss_mb"] for d in _big(r, required=True)) < 512,
    ),
    "big day memory flat at 2x": ("within 10 %", lambda r: _flat(_big(r, required=True))),
    "watcher requests per poll": (
        "within 10 %",
        lambda r: r["watcher_scale"]["ratio_requests_per_poll"] <= 1.1,
    ),
    "watcher p50 at scale": (
        "within 10 %",
        lambda r: r["watcher_scale"]["ratio_p50_put_to_run_start"] <= 1.1,
    ),
    "backdated landing found": (
        "< 1 sweep",
        lambda r: (
            (b := r["watcher_scale"]["backdated_landing"])["put_to_run_start_s"]
            <= b["reconcile_interval_s"] + 10
        ),
    ),
    "queue mode p50": (
        "< 1.0 s",
        lambda r: r["event_paths"]["queue_rabbitmq"]["put_to_run_start_s"]["p50"] < 1.0,
    ),
    "serving errors in a switch": ("0", lambda r: r["serving"]["load"]["errors"] == 0),
    "serving mis-versioned": ("0", lambda r: not r["serving"]["load"]["unexpected_versions"]),
    "alias move -> served": ("< 5 s", lambda r: 0 <= r["serving"]["load"]["alias_to_serving_s"] < 5),
}


def format_table(results: dict[str, Any]) -> str:
    rows: list[tuple[str, str]] = [("stack up", f"{results.get('stack_up_s')} s")]
    if "dag_parse_s" in results:
        parse = results["dag_parse_s"]
        rows.append(("DAG parse per file (max / mean)", f"{parse['max']} / {parse['mean']} s"))
    if "watcher_pipelines" in results:
        watched = results["watcher_pipelines"]
        one, ten = watched.get("pipelines_1", {}), watched.get("pipelines_10", {})
        rows.append(
            (
                "watcher requests per poll, 1 / 10 pipelines",
                f"{one.get('requests_per_poll')} / {ten.get('requests_per_poll')} "
                f"({one.get('poll_ms')} / {ten.get('poll_ms')} ms per poll)",
            )
        )
    if "event_to_run_start_s" in results:
        latency = results["event_to_run_start_s"]
        rows.append(
            (
                "event -> ingest run start p50 / p95",
                f"{latency['p50']} / {latency['p95']} s (n={latency['n']})",
            )
        )
    if "landing_to_champion_s" in results:
        rows += [
            ("landing -> champion", f"{results['landing_to_champion_s']} s"),
            ("train+eval task compute", f"{results['compute_s']} s (model fit {results['model_fit_s']} s)"),
            (
                "critical-path compute / overhead ratio",
                f"{results['critical_path_compute_s']} s / {results['overhead_ratio']}",
            ),
        ]
    for name, figures in sorted(results.items()):
        if name.endswith("_landing_to_champion") and isinstance(figures, dict):
            rows.append(
                (
                    f"landing -> champion: {name.removesuffix('_landing_to_champion')} ({figures['task']})",
                    f"{figures['landing_to_champion_s']} s (critical-path compute "
                    f"{figures['critical_path_compute_s']} s)",
                )
            )
    if "serving" in results:
        serving, load = results["serving"], results["serving"]["load"]
        if serving.get("canary_rows") is None:  # the second champion was promoted for the benchmark
            rows.append(("deploy canary and activation", f"not measured: {serving.get('second_champion')}"))
        else:
            rows += [
                ("deploy canary (rows, wall)", f"{serving['canary_rows']} rows, {serving['canary_s']} s"),
                ("deploy: alias move -> served", f"{serving['deploy_alias_to_serving_s']} s"),
            ]
        rows += [
            (
                f"serving {load['requests']:,} req x {load['rows_per_request']} rows, "
                f"{load['clients']} clients",
                f"{load['requests_per_s']} req/s, p50 {load['latency_ms']['p50']} ms, "
                f"p99 {load['latency_ms']['p99']} ms",
            ),
            (
                f"serving switch v{load['switch']['from']} -> v{load['switch']['to']} under load",
                f"{load['errors']} errors, versions {load['versions']}, "
                f"followed in {load['alias_to_serving_s']} s",
            ),
        ]
    for burst in _bursts(results):
        rows.append(
            (
                f"burst of {burst['files']}: all recorded",
                f"{burst['all_processed_s']} s ({burst['throughput_files_per_s']} files/s, "
                f"{burst['ingest_runs']} "
                f"ingest runs, {burst['failed_runs']} failed)",
            )
        )
        rows.append(
            (f"burst of {burst['files']}: lost / duplicates", f"{burst['lost']} / {burst['duplicates']}")
        )
    if "bomb" in results:
        bomb = results["bomb"]
        rows.append(
            (
                f"bomb ({bomb['rows_declared']:,} rows, {bomb['file_bytes'] / 2**20:.1f} MB)",
                f"{bomb['codes']}; task peak RSS {bomb['task_peak_rss_mb']} MB, "
                f"USS {bomb.get('task_peak_uss_mb', '-')} MB "
                f"(a full decode: {bomb['full_decode_peak_rss_mb']} MB)",
            )
        )
    for day in _big(results):
        rows.append(
            (
                f"big day {day['gib']} GiB ({day['rows']:,} rows, {day['parts']} parts)",
                f"marker -> training_dataset {day['marker_to_training_dataset_s']} s "
                f"({day['mb_per_s']} MB/s); "
                f"task peak RSS {day['task_peak_rss_mb']} MB, USS {day['task_peak_uss_mb']} MB",
            )
        )
    for name, past in sorted(results.items()):
        if name.startswith("history_"):
            rows.append(
                (
                    f"{past['days']} days landed at once: last PUT -> newest day's deploy end",
                    f"{past['last_put_to_newest_deploy_end_s']} s; {past['train_runs']} train runs, "
                    f"{past['trained']} trained, {past['coalesced']} coalesced into a newer window",
                )
            )
    if scale := results.get("watcher_scale"):
        for name, figures in scale.items():
            if name == "empty" or name.startswith("at_"):
                latency = figures["put_to_run_start_s"]
                rows.append(
                    (
                        f"watcher, {name.replace('_', ' ')}: per poll",
                        f"{figures['requests_per_poll']} S3 requests, {figures['cpu_s_per_poll']} CPU s; "
                        f"PUT -> run start p50 {latency.get('p50')} s, p95 {latency.get('p95')} s",
                    )
                )
        sweep, backdated = scale["seed"]["startup_sweep"], scale["backdated_landing"]
        rows.append(
            (
                "watcher start-up sweep",
                f"{sweep['objects']:,} objects, {sweep['requests']} requests, {sweep['s']} s",
            )
        )
        rows.append(
            (
                "backdated landing into an old folder",
                f"run start {backdated['put_to_run_start_s']} s after PUT "
                f"(sweep every {backdated['reconcile_interval_s']:.0f} s)",
            )
        )
    for name, figures in (results.get("event_paths") or {}).items():
        latency = figures["put_to_run_start_s"]
        rows.append(
            (
                f"event path {name.replace('_', ' ')}: PUT -> run start",
                f"p50 {latency.get('p50')} s, p95 {latency.get('p95')} s (n={latency.get('n')})",
            )
        )
    window = results.get("training_window") or {}
    for name, arms in window.items():
        if name.startswith("drift_"):
            for arm, figures in arms.items():
                rows.append(
                    (
                        f"train {arm.replace('_', ' ')}, {name.replace('_', ' ')}",
                        f"accuracy {figures['accuracy']} on the newest day ({figures['train_rows']:,} rows, "
                        f"fit {figures['fit_s']} s)",
                    )
                )
    fits = results.get("trainer_fit") or {}
    for task, trainers in fits.items():
        if task == "rows":
            continue
        for trainer, figures in trainers.items():
            score = ", ".join(f"{name} {value}" for name, value in figures.items() if name != "fit_s")
            rows.append((f"fit {task} {trainer} ({fits['rows']:,} rows)", f"{figures['fit_s']} s, {score}"))
    policy = results.get("retrain_on_drift") or {}
    for scenario, figures in policy.items():
        if isinstance(figures, dict):
            rows.append(
                (
                    f"retrain on_drift, {figures['days']} days {scenario}",
                    f"{figures['trained']} trained, {figures['skipped']} skipped "
                    f"(every_landing: {policy.get('every_landing_trains')} trained)",
                )
            )
    for name, figures in results.items():
        if name.startswith("big_day_") and figures.get("drift_report_s") is not None:
            rows.append(
                (
                    f"{name.replace('_', ' ')}: drift report",
                    f"{figures['drift_report_s']} s, "
                    f"task peak RSS {figures.get('drift_report_peak_rss_mb')} MB",
                )
            )
    rows.append(("stack RSS idle / peak", f"{results.get('idle_rss_mb')} / {results.get('peak_rss_mb')} MB"))
    for arm, figures in (results.get("classic_sensor") or {}).items():
        f = figures["file_to_work_start_s"]
        ratio = results.get("comparison", {}).get(f"{arm}_vs_event_p50")
        rows.append(
            (
                f"classic S3KeySensor {arm}: file -> work p50",
                f"{f.get('p50')} s (n={f['n']}, x{ratio} slower)",
            )
        )
    for name, failure in (results.get("failed_phases") or {}).items():
        error = " ".join(str(failure["error"]).split())
        rows.append((f"FAILED: {name}", f"{error[:300]}{' ...' if len(error) > 300 else ''}"))
    width = max(len(name) for name, _ in rows)
    lines = ["", f"{'figure':<{width}}  value", f"{'-' * width}  {'-' * 40}"]
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    lines += ["", "targets (reported, not asserted):"]
    for name, (target, met) in TARGETS.items():
        try:
            verdict = "met" if met(results) else "NOT met"
        except (KeyError, TypeError):
            verdict = "not measured"
        lines.append(f"  {name:<28} {target:<12} {verdict}")
    return "\n".join(lines)
