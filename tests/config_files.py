"""Config files written by tests: a small valid pipeline block, other pipelines' schemas, a user's own
table, and pointing LANDFALL_CONFIG at a file."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

METERS_LANDING = """
id_column: meter_id
label: faulty
min_rows: 100
columns:
  - {name: meter_id, dtype: int64, min: 0}
  - {name: reading_kwh, dtype: float64, min: 0, max: 5000}
  - {name: voltage, dtype: float64, min: 180, max: 260}
  - {name: age_years, dtype: int64, min: 0, max: 40}
  - {name: region, dtype: string, allowed: [north, south, east, west]}
  - {name: faulty, dtype: int64, min: 0, max: 1}
"""
"""The landing block of a second pipeline with a schema of its own (meter readings, a faulty label)."""

TIERS_LANDING = """
id_column: account_id
label: tier
min_rows: 100
columns:
  - {name: account_id, dtype: int64, min: 0}
  - {name: seats, dtype: int64, min: 1, max: 500}
  - {name: monthly_usage, dtype: float64, min: 0, max: 10000}
  - {name: region, dtype: string, allowed: [emea, amer, apac]}
  - {name: tier, dtype: string, allowed: [bronze, silver, gold]}
"""
"""A multiclass pipeline's landing: three text classes."""

PRICES_LANDING = """
id_column: listing_id
label: price
min_rows: 100
columns:
  - {name: listing_id, dtype: int64, min: 0}
  - {name: rooms, dtype: int64, min: 1, max: 8}
  - {name: area_m2, dtype: float64, min: 15, max: 400}
  - {name: distance_km, dtype: float64, min: 0, max: 50}
  - {name: district, dtype: string, allowed: [north, south, centre]}
  - {name: price, dtype: float64, min: 0, max: 2000000}
"""
"""A regression pipeline's landing: a price in money."""


def listings_table(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """A user's own table, not made from any schema: an id, numbers (one with negatives and gaps, one of
    whole numbers stored as floats), a category and a price to predict from them."""
    rng = np.random.default_rng(seed)
    area = rng.uniform(20, 200, rows)
    district = rng.choice(["north", "south", "centre"], rows)
    frame = pd.DataFrame(
        {
            "listing_id": np.arange(rows) + 1000 * seed,
            "area_m2": area,
            "balance": rng.normal(0, 50, rows),
            "floor": rng.integers(0, 12, rows).astype("float64"),
            "district": district,
            "price": 3000 * area + np.where(district == "centre", 80_000, 0) + rng.normal(0, 5000, rows),
        }
    )
    frame.loc[frame.index[::50], "balance"] = np.nan
    return frame


_USER_MODULES = itertools.count()


def user_module(folder: Path, source: str, prefix: str) -> str:
    """`source` as a module of a pipeline's code folder, under a name no other test in this process used
    (a module, once imported, stays in sys.modules); returns the module's name."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{prefix}_{next(_USER_MODULES)}"
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
    return name


def pipeline_block(name: str, indent: str = "  ", **sections: str) -> str:
    """`pipelines:` with one small valid pipeline `name`; `sections` replace or add blocks
    (e.g. storage="landing_prefix: x") written under the pipeline."""
    blocks = {
        "landing": (
            "id_column: row_id\n"
            "label: y\n"
            "columns: [{name: row_id, dtype: int64}, {name: x, dtype: float64}, {name: y, dtype: int64}]"
        ),
        **sections,
    }
    lines = ["pipelines:", f"{indent}{name}:"]
    for section, body in blocks.items():
        lines.append(f"{indent * 2}{section}:")
        lines.extend(f"{indent * 3}{line}" for line in body.splitlines())
    return "\n".join(lines) + "\n"


def more_pipeline(name: str, indent: str = "  ", **sections: str) -> str:
    """Another pipeline entry, to append after `pipeline_block` (without its `pipelines:` line)."""
    return pipeline_block(name, indent, **sections).split("\n", 1)[1]


def write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    clear_pipeline_environment(monkeypatch)
    config = tmp_path / "landfall.yaml"
    config.write_text(text)
    monkeypatch.setenv("LANDFALL_CONFIG", str(config))
    return config


def clear_pipeline_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test session's overrides of the `churn` pipeline, gone (a config without churn would see them)."""
    import os

    for variable in [v for v in os.environ if v.upper().startswith("LANDFALL_PIPELINES__")]:
        monkeypatch.delenv(variable)
