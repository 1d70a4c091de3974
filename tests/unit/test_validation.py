from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from landfall.pipeline.datagen import CORRUPTIONS, decompression_bomb, make_batch, make_corrupt, to_parquet
from landfall.pipeline.validation import validate_parquet


def validate_batch(data: bytes, landing):
    return validate_parquet(io.BytesIO(data), len(data), landing)


@pytest.fixture
def landing(settings):
    return settings.landing


def _codes(report):
    return {problem.code for problem in report.problems}


def test_a_generated_batch_is_valid(landing):
    report = validate_batch(to_parquet(make_batch(1000, seed=3)), landing)
    assert report.ok, report.problems
    assert report.rows == 1000 and report.row_groups == 1 and report.uncompressed_bytes > 0


@pytest.mark.parametrize(
    ("kind", "code"),
    [("schema", "schema_mismatch"), ("nulls", "nulls"), ("empty", "empty_file"), ("garbage", "unreadable")],
)
def test_each_corruption_of_the_demo_is_caught(landing, kind, code):
    assert kind in CORRUPTIONS
    report = validate_batch(make_corrupt(kind), landing)
    assert not report.ok
    assert code in _codes(report)


def _mutated(change) -> bytes:
    frame = make_batch(500, seed=1)
    frame = change(frame)
    return frame if isinstance(frame, bytes) else to_parquet(frame)


def _truncate(frame):
    data = to_parquet(frame)
    return data[: len(data) // 2]


def _set(column, value):
    def change(frame):
        frame[column] = value
        return frame

    return change


def _single_class(frame):
    frame["churned"] = 0
    return frame


def _nan_at_first_row(frame):
    frame.loc[0, "usage_hours"] = np.nan
    return frame


@pytest.mark.parametrize(
    ("name", "change", "code"),
    [
        ("truncated parquet", _truncate, "unreadable"),
        ("wrong column type", _set("support_calls", "many"), "wrong_type"),
        ("extra column", _set("surprise", 1), "schema_mismatch"),
        ("missing column", lambda f: f.drop(columns=["tenure_months"]), "schema_mismatch"),
        ("all-null label", _set("churned", pd.array([None] * 500, dtype="Int64")), "nulls"),
        ("single-class label", _single_class, "single_class_label"),
        ("infinite feature", _set("monthly_spend", np.inf), "non_finite"),
        ("NaN feature", _nan_at_first_row, "nulls"),
        ("negative tenure", _set("tenure_months", -5.0), "out_of_range"),
        ("unknown category", _set("contract_type", "lifetime"), "unexpected_value"),
        ("zero rows", lambda f: f.iloc[:0], "empty_data"),
        ("too few rows", lambda f: f.iloc[:10], "too_few_rows"),
    ],
)
def test_broken_content_gets_a_specific_problem_code(landing, name, change, code):
    report = validate_batch(_mutated(change), landing)
    assert code in _codes(report), f"{name}: {report.problems}"


def test_limits_are_read_from_the_footer(landing):
    body = to_parquet(make_batch(200))
    for limit in ({"max_rows": 100}, {"max_uncompressed_bytes": 1000}, {"max_row_group_bytes": 1000}):
        report = validate_batch(body, landing.model_copy(update=limit))
        assert _codes(report) == {"too_large"}, (limit, report.problems)
        assert "nothing was decoded" in report.problems[0].detail


def test_values_are_checked_in_every_row_group_not_only_the_first(landing):
    frame = make_batch(3000, seed=5)
    frame.loc[2900, "tenure_months"] = -1.0  # in the last row group only
    table = pa.Table.from_pandas(frame, preserve_index=False)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=500)
    report = validate_batch(buffer.getvalue(), landing)
    assert report.row_groups == 6
    assert "out_of_range" in _codes(report)


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent (pytest) through fork and exec.
VALIDATE_IN_A_FRESH_PROCESS = """
import os, re, sys
from landfall.core.settings import load_settings
from landfall.pipeline.validation import validate_parquet

path = sys.argv[1]
report = validate_parquet(path, os.path.getsize(path), load_settings().landing)
peak_kb = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
print(report.rows, ",".join(p.code for p in report.problems), peak_kb)
"""


def test_a_decompression_bomb_is_refused_from_its_footer_in_bounded_memory(tmp_path):
    """20 million rows in well under a megabyte: `too_large`, and the whole process that validated it
    stays under 300 MB (a full decode takes over a gigabyte)."""
    bomb = tmp_path / "bomb.parquet"
    bomb.write_bytes(decompression_bomb(20_000_000))
    assert bomb.stat().st_size < 2_000_000
    done = subprocess.run(
        [sys.executable, "-c", VALIDATE_IN_A_FRESH_PROCESS, str(bomb)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    rows, codes, peak_kb = done.stdout.split()
    assert (int(rows), codes) == (20_000_000, "too_large")
    assert int(peak_kb) < 300 * 1024, f"peak RSS {int(peak_kb) // 1024} MB"


def _part(tmp_path, name, frame):
    from landfall.pipeline.validation import PartFile

    path = tmp_path / name
    path.write_bytes(to_parquet(frame))
    return PartFile(name, path, path.stat().st_size)


def test_the_parts_of_a_partition_are_validated_as_one_table(landing, tmp_path):
    from landfall.pipeline.validation import validate_partition

    negatives = make_batch(600, seed=1).assign(churned=0)
    positives = make_batch(600, seed=2).assign(churned=1)
    # Each part alone has a single class (and too few rows at min_rows 1000): together they are fine.
    strict = landing.model_copy(update={"min_rows": 1000})
    report = validate_partition([_part(tmp_path, "a", negatives), _part(tmp_path, "b", positives)], strict)
    assert report.ok, report.problems
    assert (report.rows, report.row_groups) == (1200, 2)
    alone = validate_partition([_part(tmp_path, "a", negatives)], strict)
    assert _codes(alone) == {"too_few_rows", "single_class_label"}


def test_a_part_with_another_schema_is_named_and_nothing_is_decoded(landing, tmp_path):
    from landfall.pipeline.validation import validate_partition

    good = _part(tmp_path, "part-0.parquet", make_batch(300, seed=1))
    bad = _part(tmp_path, "part-1.parquet", make_batch(300, seed=2).rename(columns={"usage_hours": "usage"}))
    report = validate_partition([good, bad], landing)
    assert {(p.code, p.part) for p in report.problems} == {("schema_mismatch", "part-1.parquet")}
    assert all(p.detail.startswith("part-1.parquet: ") for p in report.problems)


def test_the_row_ceiling_counts_every_part_of_the_partition(landing, tmp_path):
    from landfall.pipeline.validation import validate_partition

    parts = [_part(tmp_path, f"p{i}", make_batch(400, seed=i)) for i in range(3)]
    report = validate_partition(parts, landing.model_copy(update={"max_rows": 1000}))
    assert _codes(report) == {"too_large"} and "1,200 rows" in report.problems[0].detail


VALIDATE_MANY_PARTS_WITH_FEW_FILE_HANDLES = """
import os, resource, sys
from landfall.core.settings import load_settings
from landfall.pipeline.validation import PartFile, validate_partition

resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
folder = sys.argv[1]
parts = [PartFile(name, os.path.join(folder, name), os.path.getsize(os.path.join(folder, name)))
         for name in sorted(os.listdir(folder))]
report = validate_partition(parts, load_settings().landing)
print(report.rows, ",".join(p.code for p in report.problems) or "ok")
"""


def test_a_day_of_more_parts_than_file_handles_is_validated_one_file_at_a_time(tmp_path):
    body = to_parquet(make_batch(120, seed=4))
    for index in range(150):
        (tmp_path / f"part-{index:05d}.parquet").write_bytes(body)
    done = subprocess.run(
        [sys.executable, "-c", VALIDATE_MANY_PARTS_WITH_FEW_FILE_HANDLES, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert done.stdout.split() == ["18000", "ok"], done.stderr[-1000:]
