"""The benchmark's arithmetic and report, without a stack (the figures themselves come from `make bench`)."""

from __future__ import annotations

from journeys import CHURN
from landfall.core.stack_settings import PortSettings
from landfall.ops.bench.report import add_comparison, format_table, percentiles
from landfall.ops.bench.runner import PORT_SHIFT


def test_percentiles_are_nearest_rank_so_small_samples_report_real_observations():
    figures = percentiles([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (figures["n"], figures["p50"], figures["p95"], figures["min"], figures["max"]) == (
        5,
        3.0,
        5.0,
        1.0,
        5.0,
    )
    assert percentiles([]) == {"n": 0}


def test_the_classic_sensor_is_compared_by_its_p50_against_the_event_p50():
    results = {
        "event_to_run_start_s": {"p50": 2.0},
        "classic_sensor": {"poke_300s": {"file_to_work_start_s": {"p50": 150.0}}},
    }
    add_comparison(results)
    assert results["comparison"] == {"poke_300s_vs_event_p50": 75.0}


def _burst(files, seconds, lost=0, duplicates=0, failed=0):
    return {
        "files": files,
        "all_processed_s": seconds,
        "throughput_files_per_s": round(files / seconds, 2),
        "ingest_runs": 3,
        "failed_runs": failed,
        "lost": lost,
        "duplicates": duplicates,
    }


def _big_day(gib, peak_mb):
    return {
        "rows": int(37e6 * gib),
        "bytes": int(gib * 2**30),
        "gib": gib,
        "parts": int(10 * gib),
        "marker_to_training_dataset_s": 100 * gib,
        "mb_per_s": 10.2,
        "task_peak_rss_mb": peak_mb,
        "task_peak_uss_mb": peak_mb - 200,
    }


def _watcher(requests_per_poll, p50):
    return {
        "windows": 2,
        "polls": 58,
        "requests_per_poll": requests_per_poll,
        "cpu_s_per_poll": 0.004,
        "put_to_run_start_s": {"n": 10, "p50": p50, "p95": p50 + 1},
    }


def test_the_table_says_which_targets_were_missed():
    results = {
        "stack_up_s": 40.0,
        "dag_parse_s": {"max": 0.6, "mean": 0.2},
        "event_to_run_start_s": {"n": 20, "p50": 2.4, "p95": 3.9},
        "landing_to_champion_s": 60.0,
        "compute_s": 10.0,
        "model_fit_s": 2.0,
        "critical_path_compute_s": 20.0,
        "overhead_ratio": 3.0,
        "burst_50": _burst(50, 20.0),
        "burst_1000": _burst(1000, 400.0, lost=1),
        "bomb": {
            "rows_declared": 20_000_000,
            "file_bytes": 700_000,
            "codes": ["too_large"],
            "task_peak_rss_mb": 180,
            "full_decode_peak_rss_mb": 2900,
        },
        "serving": {
            "canary_rows": 200,
            "canary_s": 0.3,
            "deploy_alias_to_serving_s": 1.1,
            "load": {
                "requests": 20_000,
                "rows_per_request": 10,
                "clients": 8,
                "requests_per_s": 240.0,
                "latency_ms": {"p50": 31.0, "p99": 69.0},
                "switch": {"from": 1, "to": 2},
                "errors": 0,
                "versions": {"1": 9000, "2": 10999, "7": 1},
                "unexpected_versions": {"7": 1},
                "alias_to_serving_s": 6.2,
            },
        },
        "big_day_1gib": _big_day(1.0, 420),
        "big_day_2gib": _big_day(2.0, 480),  # grew by more than 10 %
        "idle_rss_mb": 2000,
        "peak_rss_mb": 3000,
        "comparison": {},
        "watcher_scale": {
            "empty": _watcher(3.0, 2.0),
            "at_100000_objects": _watcher(3.1, 2.5),  # p50 grew by more than 10 %
            "seed": {"startup_sweep": {"objects": 100_000, "folders": 730, "requests": 830, "s": 41.0}},
            "ratio_requests_per_poll": 1.033,
            "ratio_p50_put_to_run_start": 1.25,
            "backdated_landing": {"put_to_run_start_s": 212.0, "reconcile_interval_s": 300.0},
        },
        "event_paths": {
            "list_poll_2s": {"put_to_run_start_s": {"n": 20, "p50": 2.2, "p95": 3.1}},
            "queue_rabbitmq": {"put_to_run_start_s": {"n": 20, "p50": 0.6, "p95": 0.9}},
        },
        "watcher_pipelines": {
            "pipelines_1": {"requests_per_poll": 2.0, "poll_ms": 14.1},
            "pipelines_10": {"requests_per_poll": 20.0, "poll_ms": 61.5},
        },
        "prices_landing_to_champion": {
            "task": "regression",
            "landing_to_champion_s": 31.2,
            "critical_path_compute_s": 9.8,
        },
    }
    table = format_table(results)
    assert "watcher requests per poll, 1 / 10 pipelines" in table and "2.0 / 20.0 (14.1 / 61.5 ms" in table
    assert (
        "landing -> champion: prices (regression)" in table
        and "31.2 s (critical-path compute 9.8 s)" in table
    )
    assert "watcher start-up sweep" in table and "100,000 objects, 830 requests, 41.0 s" in table
    assert "event path queue rabbitmq: PUT -> run start  p50 0.6 s, p95 0.9 s (n=20)" in table
    assert "big day 2.0 GiB (74,000,000 rows, 20 parts)" in table
    assert any(
        line.startswith("burst of 1000: lost / duplicates") and line.endswith("1 / 0")
        for line in table.splitlines()
    )
    targets = {
        line.strip()[:28].strip(): line.rstrip().endswith("NOT met")
        for line in table.splitlines()
        if line.startswith("  ")
    }
    assert targets == {
        "event_to_run_start p50": False,
        "overhead_ratio": True,
        "dag_parse_s max": True,
        "bursts lost / duplicates": True,
        "bursts failed runs": False,
        "burst of 1,000 throughput": True,
        "bomb task peak RSS": False,
        "big day task peak RSS": False,
        "big day memory flat at 2x": True,
        "serving errors in a switch": False,
        "serving mis-versioned": True,
        "alias move -> served": True,
        "watcher requests per poll": False,
        "watcher p50 at scale": True,
        "backdated landing found": False,
        "queue mode p50": False,
    }


def test_a_phase_that_did_not_run_reads_not_measured_rather_than_missed():
    table = format_table({"stack_up_s": 20.0})
    assert "  alias move -> served         < 5 s        not measured" in table.splitlines()


def test_benchmark_ports_are_the_default_ones_moved_clear_of_the_ephemeral_range():
    defaults = PortSettings()
    ports = defaults.shifted(PORT_SHIFT)
    assert ports.airflow_api == defaults.airflow_api + PORT_SHIFT
    # SeaweedFS listens on each of its ports + 10000 (gRPC): still below Linux's ephemeral range.
    assert max(ports.s3, ports.seaweed_master, ports.seaweed_volume, ports.seaweed_filer) + 10_000 < 32768


def test_the_sampler_keeps_the_unique_memory_of_task_processes_only():
    import subprocess
    import sys

    import psutil

    from landfall.ops.bench.rss import RssSampler

    # A process whose command line says "task" (as a task process does), and one that does not.
    task = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "task"])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        sampler = RssSampler(lambda: [psutil.Process(task.pid), psutil.Process(other.pid)])
        assert sampler.sample() > 0
        assert set(sampler.peak_uss_by_pid) == {task.pid}
        [uss] = sampler.task_uss_peaks_since({other.pid})
        [rss] = sampler.task_peaks_since({other.pid})
        assert 0 < uss <= rss
        assert sampler.task_uss_peaks_since({task.pid, other.pid}) == []
    finally:
        task.kill()
        other.kill()


def test_the_watcher_phase_reads_its_figures_from_the_triggerer_log():
    from landfall.ops.bench.watcher_scale import per_poll, stats_lines, sweep_lines

    log = (
        "2026-11-25T18:01:39Z [info ] Reconciliation sweep of s3://b/daily/: 100010 object(s) in 730 "
        "folder(s), 102 request(s), 7.5s, 6.10 CPU s; 0 folder(s) compacted so far [x] dag_id=None\n"
        '2026-11-25T18:02:40Z [info ] Watcher stats {"polls": 30, "poll_requests": 30, "cpu_s": 0.6, '
        '"sweeps": 0} [landfall.airflow.triggers.landing_stream] dag_id=None\n'
        '2026-11-25T18:03:40Z [info ] Watcher stats {"polls": 10, "poll_requests": 20, "cpu_s": 0.2, '
        '"sweeps": 1} [x]\n'
    )
    assert list(sweep_lines(log)) == [{"objects": 100010, "folders": 730, "requests": 102, "s": 7.5}]
    windows = list(stats_lines(log))
    assert [w["polls"] for w in windows] == [30, 10]
    assert per_poll(windows[:1]) == {
        "windows": 1,
        "polls": 30,
        "requests_per_poll": 1.0,
        "cpu_s_per_poll": 0.02,
    }


def test_a_phase_that_raises_is_recorded_as_failed_with_its_reason_and_the_others_still_run(tmp_path):
    import json

    from landfall.ops.bench.runner import run_phases

    out, printed, seen_on_disk = tmp_path / "bench" / "results.json", [], []

    def serving() -> dict:
        raise RuntimeError("the drifted day was not promoted and served: [('landfall_deploy', ...)]")

    def last() -> dict:
        seen_on_disk.append(json.loads(out.read_text()))  # what a crash right now would have left
        return {"classic_sensor": {"poke_30s": {"file_to_work_start_s": {"n": 1, "p50": 15.0}}}}

    results = {"stack_up_s": 30.0}
    phases = [("DAG parse", lambda: {"dag_parse_s": {"max": 0.2, "mean": 0.1}}), ("serving", serving)]
    run_phases([*phases, ("classic S3KeySensor DAGs", last)], results, out, printed.append)

    written = json.loads(out.read_text())
    assert written == results
    assert written["dag_parse_s"] == {"max": 0.2, "mean": 0.1} and written["classic_sensor"]["poke_30s"]
    failure = written["failed_phases"]["serving"]
    assert failure["error"] == (
        "RuntimeError: the drifted day was not promoted and served: [('landfall_deploy', ...)]"
    )
    assert failure["after_s"] >= 0
    assert seen_on_disk[0]["failed_phases"] == {"serving": failure}  # written before the next phase ran
    assert any(line.startswith("  FAILED after") and "not promoted and served" in line for line in printed)
    [row] = [line for line in format_table(written).splitlines() if line.startswith("FAILED: serving")]
    assert row.endswith(
        "RuntimeError: the drifted day was not promoted and served: [('landfall_deploy', ...)]"
    )


def test_the_second_champion_lands_in_a_training_window_of_its_own(settings):
    from datetime import date
    from types import SimpleNamespace

    from landfall.ops.bench.phases import Bench, BenchOptions

    stack = SimpleNamespace(settings=settings, s3_client=lambda: None)
    bench = Bench(stack, None, BenchOptions(), None, lambda _line: None)
    first = date.fromisoformat(bench._new_key().split("/")[-2])  # the first champion's day
    second = date.fromisoformat(bench._new_key(fresh_window=True).split("/")[-2])
    # Its window (the window_days days ending at it) holds no day landed before it.
    assert (second - first).days > settings.training.window_days


def test_a_drifted_day_the_gate_skipped_is_promoted_for_the_benchmark_and_served(local_mlflow, settings):
    from types import SimpleNamespace

    from journeys import logged_trial
    from landfall.ops.bench.serving_load import promote_for_benchmark
    from landfall.pipeline import registry

    name = settings.mlflow.model_name
    first, drifted = (logged_trial(settings, "bench-test", seed) for seed in (1, 2))
    assert registry.promote(name, first, f"runs:/{first}/model", None, "deploy-1", local_mlflow).moved
    skipped = "improvement -0.0025 over the champion (0.9657) is not above 0.0050"
    chain = [
        SimpleNamespace(dag_id=CHURN.evaluate_dag, state="success", run_id="eval-1", tasks={}),
        SimpleNamespace(
            dag_id=CHURN.deploy_dag, state="success", run_id="deploy-2", tasks={"promote": "skipped"}
        ),
    ]
    api = SimpleNamespace(xcom_value=lambda s3, dag_id, run_id, task: {"run_id": drifted, "reason": skipped})
    bench = SimpleNamespace(api=api, s3=None, stack=SimpleNamespace(settings=settings))
    asked = []
    served = SimpleNamespace(
        activate=lambda: asked.append("activate"), wait_for_version=lambda v, t: asked.append(v) or 0.5
    )

    figures = promote_for_benchmark(bench, chain, served)

    champion = registry.champion(name, local_mlflow)
    assert (str(champion.version), champion.run_id, champion.tags[registry.PREVIOUS_TAG]) == (
        "2",
        drifted,
        "1",
    )
    assert asked == ["activate", "2"]
    assert skipped in figures["second_champion"] and figures["canary_rows"] is None
    table = format_table({"serving": {**figures, "load": _load()}})
    assert f"not measured: {figures['second_champion']}" in table


def _load():
    return {
        "requests": 5000,
        "rows_per_request": 10,
        "clients": 8,
        "requests_per_s": 240.0,
        "latency_ms": {"p50": 31.0, "p99": 69.0},
        "switch": {"from": "2", "to": "1"},
        "errors": 0,
        "versions": {"2": 2500, "1": 2500},
        "unexpected_versions": {},
        "alias_to_serving_s": 1.2,
    }


def test_the_trainer_phase_times_every_trainer_of_every_task_and_the_table_shows_them():
    from landfall.ops.bench.report import format_table
    from landfall.ops.bench.trainer_fit import TRAINERS, trainer_fit_times

    figures = trainer_fit_times(rows=800, max_epochs=20)
    fits = figures["trainer_fit"]
    for task, trainers in TRAINERS.items():
        assert set(fits[task]) == set(trainers)
    assert all(0.5 < f["accuracy"] <= 1 for f in fits["multiclass"].values())
    assert fits["regression"]["sklearn:sklearn.linear_model.Ridge"]["rmse"] < 100  # the label spans 0-1000
    table = format_table(figures)
    assert "fit regression sklearn:sklearn.linear_model.Ridge (800 rows)" in table


def test_on_drift_trains_once_on_steady_days_and_again_where_the_data_moved(settings):
    from landfall.ops.bench.report import format_table
    from landfall.ops.bench.retrain_policy import SCENARIOS, simulate

    steady = simulate(settings, 6, SCENARIOS["without drift"], rows=2000)
    assert steady["trained_days"] == [0] and steady["skipped"] == 5  # the first day: no champion yet
    moved = simulate(settings, 6, SCENARIOS["with drift"], rows=2000)  # moves on day 2, again on day 4
    assert moved["trained_days"][:2] == [0, 2] and 4 in moved["trained_days"], moved
    assert moved["verdicts"]["drifted"] == len(moved["trained_days"]) - 1
    table = format_table({"retrain_on_drift": {"with drift": moved, "every_landing_trains": 6}})
    assert "retrain on_drift, 6 days with drift" in table
    assert f"{moved['trained']} trained, {moved['skipped']} skipped (every_landing: 6 trained)" in table
