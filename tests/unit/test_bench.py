"""The benchmark's arithmetic and report, without a stack (the figures themselves come from `make bench`)."""

from __future__ import annotations

from landfall.bench import _add_comparison, format_table, percentiles


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
    _add_comparison(results)
    assert results["comparison"] == {"poke_300s_vs_event_p50": 75.0}


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
        "burst": {
            "files": 50,
            "all_processed_s": 90.0,
            "throughput_files_per_s": 0.55,
            "ingest_runs": 1,
            "lost": 0,
            "duplicates": 0,
        },
        "idle_rss_mb": 2000,
        "peak_rss_mb": 3000,
        "comparison": {},
    }
    table = format_table(results)
    assert "event_to_run_start p50     < 5 s    met" in table
    assert "overhead_ratio             < 2.0    NOT met" in table
    assert "dag_parse_s max            < 0.5 s  NOT met" in table
    assert "burst lost / duplicates    0 / 0    met" in table
