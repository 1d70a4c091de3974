"""A user's own table (parquet or CSV) as a pipeline lands it: its schema's columns, each of its dtype.

Used by `landfall land --file` and `landfall new-pipeline --sample`. A file that cannot be read, or that
lacks a column of the schema, is refused naming what is missing; values are not judged here (the
landing's validation does that, and quarantines a bad day with its reasons).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from landfall.core.pipeline_settings import LandingSettings

_PANDAS_DTYPES = {"int64": "Int64", "float64": "float64", "string": "string", "bool": "boolean"}


class UnreadableFile(ValueError):
    """The file is not a table Landfall reads, or does not fit the pipeline's schema; says why."""


def read_table(path: Path) -> pd.DataFrame:
    """A parquet or CSV file as a frame (by its suffix; CSV values typed by pandas' inference)."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt"):
            return pd.read_csv(path)
    except (OSError, ValueError) as error:
        raise UnreadableFile(f"{path} cannot be read as {suffix[1:]}: {error}") from error
    raise UnreadableFile(f"{path}: a .parquet or .csv file, please (not {suffix or 'no suffix'})")


def conform(frame: pd.DataFrame, landing: LandingSettings) -> pd.DataFrame:
    """The schema's columns in its order, each cast to its dtype (a whole number stored as 3.0 in a CSV
    becomes 3); other columns are dropped. UnreadableFile names missing or uncastable columns."""
    missing = [spec.name for spec in landing.columns if spec.name not in frame.columns]
    if missing:
        raise UnreadableFile(
            f"the file lacks the column(s) {missing} of the pipeline's schema (it has {list(frame.columns)})"
        )
    columns = {}
    for spec in landing.columns:
        try:
            columns[spec.name] = frame[spec.name].astype(_PANDAS_DTYPES[spec.dtype])
        except (TypeError, ValueError) as error:
            raise UnreadableFile(f"column {spec.name!r} is not {spec.dtype}: {error}") from error
    conformed = pd.DataFrame(columns)
    # Plain numpy dtypes where a column has no missing values: the parquet a daily file would be.
    for spec in landing.columns:
        if spec.dtype in ("int64", "bool") and not conformed[spec.name].isna().any():
            conformed[spec.name] = conformed[spec.name].astype(spec.dtype)
    return conformed
