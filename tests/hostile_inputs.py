"""The table of hostile and broken landings, shared by the SeaweedFS integration test and the end-to-end
test: each row is a key, a body and what must happen to it (ingested, or quarantined with a code)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from landfall.pipeline.datagen import decompression_bomb, make_batch, to_parquet


@dataclass(frozen=True)
class HostileInput:
    name: str
    key: str  # {day} is replaced by a unique date
    body: Callable[[], bytes]
    outcome: str  # "ingested" | "quarantined"
    codes: frozenset[str] = frozenset()  # any of these problem codes is the right diagnosis


def _batch(rows: int = 400, seed: int = 9) -> pd.DataFrame:
    return make_batch(rows, seed=seed)


def _with(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[], bytes]:
    return lambda: to_parquet(change(_batch()))


def _truncated() -> bytes:
    good = to_parquet(_batch())
    return good[: len(good) // 2]


def _all_null_label(frame: pd.DataFrame) -> pd.DataFrame:
    frame["churned"] = pd.array([None] * len(frame), dtype="Int64")
    return frame


def _non_finite(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[::5, "monthly_spend"] = np.inf
    frame.loc[1::5, "usage_hours"] = -np.inf
    return frame


HOSTILE_INPUTS: list[HostileInput] = [
    HostileInput(
        "truncated-parquet",
        "daily/{day}/features.parquet",
        _truncated,
        "quarantined",
        frozenset({"unreadable"}),
    ),
    HostileInput(
        "wrong-column-types",
        "daily/{day}/features.parquet",
        _with(lambda f: f.assign(tenure_months=f["tenure_months"].astype(str))),
        "quarantined",
        frozenset({"wrong_type"}),
    ),
    HostileInput(
        "extra-column",
        "daily/{day}/features.parquet",
        _with(lambda f: f.assign(favourite_colour="teal")),
        "quarantined",
        frozenset({"schema_mismatch"}),
    ),
    HostileInput(
        "missing-column",
        "daily/{day}/features.parquet",
        _with(lambda f: f.drop(columns=["support_calls"])),
        "quarantined",
        frozenset({"schema_mismatch"}),
    ),
    HostileInput(
        "all-null-label",
        "daily/{day}/features.parquet",
        _with(_all_null_label),
        "quarantined",
        frozenset({"nulls"}),
    ),
    HostileInput(
        "single-class-label",
        "daily/{day}/features.parquet",
        _with(lambda f: f.assign(churned=0)),
        "quarantined",
        frozenset({"single_class_label"}),
    ),
    HostileInput(
        "nan-inf-features",
        "daily/{day}/features.parquet",
        _with(_non_finite),
        "quarantined",
        frozenset({"non_finite"}),
    ),
    HostileInput(
        "zero-rows",
        "daily/{day}/features.parquet",
        _with(lambda f: f.iloc[:0]),
        "quarantined",
        frozenset({"empty_data"}),
    ),
    HostileInput(
        "zero-bytes", "daily/{day}/features.parquet", lambda: b"", "quarantined", frozenset({"empty_file"})
    ),
    HostileInput(
        "random-bytes",
        "daily/{day}/features.parquet",
        lambda: np.random.default_rng(1).bytes(8192),
        "quarantined",
        frozenset({"unreadable"}),
    ),
    HostileInput(
        "space-in-key",
        "daily/{day} x/features.parquet",
        _with(lambda f: f),
        "quarantined",
        frozenset({"bad_partition"}),
    ),
    HostileInput(
        "unicode-file-name",
        "daily/{day}/fëatures.parquet",
        _with(lambda f: f),
        "quarantined",
        frozenset({"bad_suffix"}),
    ),
    HostileInput(
        "unicode-digits-date",
        "daily/\uff12\uff10{day_tail}/features.parquet",  # fullwidth "20": digits to `\d`, not to a date
        _with(lambda f: f),
        "quarantined",
        frozenset({"bad_partition"}),
    ),
    HostileInput(
        "not-a-date",
        "daily/not-a-date-{day}/features.parquet",
        _with(lambda f: f),
        "quarantined",
        frozenset({"bad_partition"}),
    ),
    HostileInput(
        "impossible-date",
        "daily/{year}-02-30/features.parquet",
        _with(lambda f: f),
        "quarantined",
        frozenset({"bad_partition"}),
    ),
    HostileInput(
        "wrong-suffix",
        "daily/{day}/features.csv",
        _with(lambda f: f),
        "quarantined",
        frozenset({"bad_suffix"}),
    ),
    HostileInput(
        "decompression-bomb",  # 20 million rows in 0.7 MB: refused from the footer, nothing decoded
        "daily/{day}/features.parquet",
        decompression_bomb,
        "quarantined",
        frozenset({"too_large"}),
    ),
    HostileInput(
        "nested-folder",
        "daily/{day}/extra/features.parquet",
        _with(lambda f: f),
        "quarantined",
        frozenset({"bad_key"}),
    ),
]
"""Hostile rows that reach the ingest DAG. Not here: keys with `..` (S3 servers normalise or refuse
them before anything lands; `parse_landing_key` refuses them, unit-tested) and the 10x-size file,
which is valid and is ingested (the integration test lands it; the end-to-end test would train on it)."""

TEN_TIMES = HostileInput(
    "ten-times-normal-size",
    "daily/{day}/features.parquet",
    lambda: to_parquet(make_batch(50_000, seed=4)),
    "ingested",
)


def key_for(row: HostileInput, day: str) -> str:
    """The row's key for a unique day (`YYYY-MM-DD`)."""
    return row.key.format(day=day, day_tail=day[2:], year=day[:4])
