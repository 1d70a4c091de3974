"""A realistic daily batch for the demo and the tests: customer churn, a learnable binary label.

The label follows a logistic rule over the features with a small amount of label noise, so a
good model reaches well above 90% accuracy. `drift` shifts the feature distributions and the
rule (0 = the reference population; 1 = a clearly different one).
"""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
import pandas as pd

from landfall.core.pipeline_settings import LandingSettings

Corruption = Literal["schema", "nulls", "empty", "garbage"]
CORRUPTIONS: tuple[Corruption, ...] = ("schema", "nulls", "empty", "garbage")
CONTRACT_TYPES = ("monthly", "annual", "two_year")


def make_batch(
    rows: int = 5000, seed: int = 0, drift: float = 0.0, label_noise: float = 0.02
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure = rng.gamma(2.0, 14.0 * (1 - 0.3 * drift), rows).clip(0, 600)
    spend = rng.lognormal(4.0 + 0.2 * drift, 0.5, rows).clip(1, 100_000)
    support_calls = rng.poisson(1.5 + 1.5 * drift, rows)
    usage = rng.normal(120 - 30 * drift, 45, rows).clip(0, 744)
    late = rng.poisson(0.6 + 0.6 * drift, rows)
    contract = rng.choice(CONTRACT_TYPES, rows, p=[0.5, 0.3, 0.2])
    contract_effect = np.select([contract == "monthly", contract == "annual"], [1.2, -0.3], -1.6)
    logit = (
        0.8
        - 0.06 * tenure
        + 0.9 * support_calls
        + 1.1 * late
        - 0.02 * usage
        + 0.004 * spend
        + contract_effect
        + 1.5 * drift
    )
    churned = (logit > 0).astype("int64")
    flip = rng.random(rows) < label_noise
    churned[flip] = 1 - churned[flip]
    return pd.DataFrame(
        {
            "customer_id": np.arange(rows, dtype="int64") + seed * 10_000_000,
            "tenure_months": tenure.round(2),
            "monthly_spend": spend.round(2),
            "support_calls": support_calls.astype("int64"),
            "usage_hours": usage.round(2),
            "late_payments": late.astype("int64"),
            "contract_type": contract.astype(object),
            "churned": churned,
        }
    )


CHURN_COLUMNS = (
    "customer_id",
    "tenure_months",
    "monthly_spend",
    "support_calls",
    "usage_hours",
    "late_payments",
    "contract_type",
    "churned",
)


def sample_batch(
    landing: LandingSettings, rows: int = 5000, seed: int = 0, drift: float = 0.0, task: str = "binary"
) -> pd.DataFrame:
    """A day of sample rows for a pipeline: the churn table above for the churn schema, rows made from the
    schema for any other (`schema_data.make_rows`)."""
    if tuple(column.name for column in landing.columns) == CHURN_COLUMNS:
        return make_batch(rows, seed, drift)
    from landfall.pipeline.schema_data import make_rows

    return make_rows(landing, rows, seed, drift, task=task)


def to_parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, engine="pyarrow")
    return buffer.getvalue()


def make_corrupt(kind: Corruption, seed: int = 0, landing: LandingSettings | None = None) -> bytes:
    """A bad file of a given kind, for tests and for trying the quarantine path by hand (of the churn
    table, or of `landing`'s schema)."""
    if kind == "empty":
        return b""
    if kind == "garbage":
        return np.random.default_rng(seed).bytes(4096)
    if landing is None:  # the churn table: its usage and late payments
        frame, first, last = make_batch(rows=500, seed=seed), "tenure_months", "usage_hours"
        renamed = {"late_payments": "late_fees"}
    else:
        frame = sample_batch(landing, 500, seed)
        inputs = [c for c in frame.columns if c not in (landing.id_column, landing.label)]
        first, last, renamed = inputs[0], inputs[-1], {inputs[0]: f"{inputs[0]}_renamed"}
    if kind == "schema":  # one column missing, another misnamed
        frame = frame.drop(columns=[last]).rename(columns=renamed)
    elif kind == "nulls":
        frame[first] = frame[first].where(frame.index % 7 != 0)
    else:
        raise ValueError(f"unknown corruption {kind!r}; choose one of {CORRUPTIONS}")
    return to_parquet(frame)


def decompression_bomb(rows: int = 20_000_000, rows_per_group: int = 1_000_000) -> bytes:
    """A valid-schema parquet file of `rows` identical rows: well under a megabyte on disk (dictionary
    and run-length encoding), gigabytes once decoded. Written a row group at a time (bounded memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    one = make_batch(1, seed=1)
    group = pa.table({name: pa.repeat(pa.scalar(one[name].iloc[0]), rows_per_group) for name in one.columns})
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, group.schema, compression="zstd") as writer:
        for start in range(0, rows, rows_per_group):
            writer.write_table(group.slice(0, min(rows_per_group, rows - start)))
    return sink.getvalue().to_pybytes()
