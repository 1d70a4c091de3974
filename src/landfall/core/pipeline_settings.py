"""One pipeline's settings: the block under `pipelines.<name>` in config/landfall.yaml.

What differs per model lives here: where its data lands and is kept (`storage`), its schema and landing
checks (`landing`), its training window, trainer and grid (`training`), its gate and canary (`deploy`)
and its MLflow experiment and registered model (`mlflow`). What every pipeline shares (buckets, the
watcher, compute, serving, the stack) stays at the top level (`landfall.core.shared_settings` and the
other sections `landfall.core.settings` gathers).
"""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from landfall.core.sections import Section

PIPELINE_NAME = re.compile(r"^(?=.{1,40}$)[a-z](?:_?[a-z0-9])*$")
"""Lower case, digits and single `_`s, at most 40: a pipeline's name is part of DAG ids, Asset names and
environment variable names (`LANDFALL_PIPELINES__<NAME>__...`: the environment spells them in any case,
and a `__` in a name would split it there)."""

_PREFIX_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._=/-]*$")


def check_prefix(value: str) -> str:
    value = value.strip("/")
    if not _PREFIX_RE.match(value) or ".." in value.split("/"):
        raise ValueError(f"{value!r} is not a safe S3 prefix (letters, digits, . _ = - / and no '..')")
    return value


S3Prefix = Annotated[str, AfterValidator(check_prefix)]


class PipelineStorage(Section):
    """Where the pipeline's files are in the shared datasets bucket. Unset prefixes default to
    `<name>/landing`, `<name>/raw`, `<name>/processed` and `<name>/quarantine`; nothing of one pipeline
    may sit under another's prefix."""

    landing_prefix: S3Prefix | None = None
    landing_filename: str = "features.parquet"
    # A multi-part partition: any number of part files completed by a marker object (Spark, Glue, dbt).
    landing_part_glob: str = "part-*.parquet"
    landing_marker: str = "_SUCCESS"
    raw_prefix: S3Prefix | None = None
    processed_prefix: S3Prefix | None = None
    quarantine_prefix: S3Prefix | None = None
    # The watcher's records of this pipeline's landings; unset, `<storage.ledger_prefix>/<name>`.
    ledger_prefix: S3Prefix | None = None

    @field_validator("landing_filename", "landing_part_glob")
    @classmethod
    def _filename(cls, value: str) -> str:
        if "/" in value or not value.endswith(".parquet"):
            raise ValueError(f"{value!r} must be a plain file name (or glob) ending in .parquet")
        return value

    @field_validator("landing_marker")
    @classmethod
    def _marker(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$", value) or value.endswith(".parquet"):
            raise ValueError(f"{value!r} must be a plain file name that is not a .parquet file")
        return value

    def prefixes(self, name: str, ledger_root: str) -> dict[str, str]:
        """Each prefix of the pipeline `name`, its default filled in."""
        return {
            "ledger_prefix": self.ledger_prefix or f"{ledger_root}/{name}",
            "landing_prefix": self.landing_prefix or f"{name}/landing",
            "raw_prefix": self.raw_prefix or f"{name}/raw",
            "processed_prefix": self.processed_prefix or f"{name}/processed",
            "quarantine_prefix": self.quarantine_prefix or f"{name}/quarantine",
        }


class ColumnSpec(Section):
    name: str
    dtype: Literal["int64", "float64", "string", "bool"]
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: list[str] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"column {self.name!r}: min {self.min} is greater than max {self.max}")
        if self.allowed is not None and self.dtype != "string":
            raise ValueError(f"column {self.name!r}: 'allowed' only applies to string columns")
        return self


class LandingSettings(Section):
    # The row's identity: it decides the row's split (a hash of it), so the same row is always in the
    # same split, and it is never a model input.
    id_column: str
    label: str
    min_rows: int = Field(100, ge=1)
    # Ceilings per partition (all its parts together), checked from the parquet footers before anything
    # is decoded: a small file can claim a lot. Values are then read one batch at a time, so memory does
    # not grow with the size of a day; these bound time and disk, not memory.
    max_rows: int = Field(500_000_000, ge=1)
    max_uncompressed_bytes: int = Field(32 * 1024**3, ge=1)
    max_row_group_bytes: int = Field(256 * 1024**2, ge=1)
    # Decoded bytes (rows x 8 bytes a column) per byte of file: a decompression bomb claims far more
    # than any real table compresses to (real days of the churn schema: about 1-3).
    max_expansion: float = Field(200.0, gt=1)
    # A day's landing must be ingested by this time (UTC) of the following day; the freshness DAG
    # alerts naming the day when it is not.
    expected_by: time = time(6, 0)
    columns: list[ColumnSpec] = Field(min_length=2)

    @model_validator(mode="after")
    def _id_and_label_are_columns(self) -> LandingSettings:
        names = [column.name for column in self.columns]
        if len(names) != len(set(names)):
            raise ValueError(f"duplicate column names in {names}")
        if self.label not in names:
            raise ValueError(f"label {self.label!r} is not one of the columns {names}")
        if self.id_column not in names:
            raise ValueError(f"id_column {self.id_column!r} is not one of the columns {names}")
        if self.id_column == self.label:
            raise ValueError(f"id_column and label are both {self.label!r}: a row's id cannot be its label")
        if self.min_rows > self.max_rows:
            raise ValueError(f"min_rows {self.min_rows} is greater than max_rows {self.max_rows}")
        return self

    @property
    def feature_columns(self) -> list[str]:
        """What a scoring request's row holds: every column but the label (the id included)."""
        return [column.name for column in self.columns if column.name != self.label]


_MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
_EXPERIMENT = r"^[A-Za-z0-9][A-Za-z0-9_.\- /]{0,99}$"


class PipelineMlflow(Section):
    """The pipeline's MLflow names; unset, both are `landfall-<name>`."""

    model_name: str | None = Field(None, pattern=_MODEL_NAME)
    experiment: str | None = Field(None, pattern=_EXPERIMENT)


class MlflowSettings(Section):
    """The pipeline's MLflow names, resolved: its registered model (which holds its `champion` alias)
    and the experiment its runs are logged in."""

    model_name: str = Field(pattern=_MODEL_NAME)
    experiment: str = Field(pattern=_EXPERIMENT)


class TrialGrid(Section):
    learning_rate: list[float] = Field([0.001, 0.01], min_length=1)
    batch_size: list[int] = Field([64, 256], min_length=1)
    optimizer: list[Literal["adam", "adamw", "sgd"]] = Field(["adam"], min_length=1)
    hidden_units: list[int] = Field([32], min_length=1)

    @field_validator("learning_rate")
    @classmethod
    def _positive_rates(cls, values: list[float]) -> list[float]:
        if any(not 0 < value < 1 for value in values):
            raise ValueError(f"learning rates must be in (0, 1), got {values}")
        return values

    @field_validator("batch_size", "hidden_units")
    @classmethod
    def _positive_sizes(cls, values: list[int]) -> list[int]:
        if any(value < 1 or value > 100_000 for value in values):
            raise ValueError(f"sizes must be between 1 and 100000, got {values}")
        return values


class TrainingSettings(Section):
    # mlp: scikit-learn MLPClassifier (default, CPU). torch: the same network in PyTorch, on CUDA when
    # there is a GPU (`pip install landfall[torch]`).
    model: Literal["mlp", "torch"] = "mlp"
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    metric: Literal["accuracy", "f1", "roc_auc"] = "accuracy"
    max_parallel_trials: int = Field(2, ge=1, le=64)
    max_epochs: int = Field(60, ge=1, le=10_000)
    grid: TrialGrid = TrialGrid()
    # Each run trains on the processed partitions of the `window_days` days ending at its own (never a
    # later one: a backfill of an old day does not see the future); days missing in it are named.
    window_days: int = Field(7, ge=1, le=366)
    # Rows read per split at most: a larger window is sampled evenly (every k-th row), so memory is
    # bounded whatever the window holds.
    max_rows: int = Field(1_000_000, ge=1000)
    # History landed at once (many days in one burst) trains the newest complete window once instead of
    # every day in turn; backfill runs (`airflow backfill create`) always train every day in order.
    coalesce_history: bool = True

    @model_validator(mode="after")
    def _optimizers_of_the_model(self) -> TrainingSettings:
        if self.validation_fraction + self.test_fraction >= 0.9:
            raise ValueError("validation_fraction + test_fraction must leave at least 10% to train on")
        if self.model == "mlp" and "adamw" in self.grid.optimizer:
            raise ValueError("optimizer adamw needs model: torch (scikit-learn's MLP has adam and sgd)")
        return self


class DeploySettings(Section):
    """The gate. A candidate replaces the champion when it clears the floor, beats the champion by more
    than `min_improvement`, and the improvement is not sampling noise: the lower end of a paired
    bootstrap interval (same held-out rows, `confidence` one-sided) is above zero."""

    min_score: float = Field(0.90, ge=0, le=1)
    min_improvement: float = Field(0.005, ge=0, le=1)
    confidence: float = Field(0.95, ge=0.5, lt=1)
    bootstrap_samples: int = Field(1000, ge=100, le=100_000)
    # The canary: before the alias moves, the scoring service answers this many held-out rows with the
    # candidate loaded in its staging slot; every answer must equal the offline evaluation's, and the
    # slowest 5% of its requests take at most canary_max_latency_ms.
    canary_rows: int = Field(200, ge=1, le=10_000)
    canary_max_latency_ms: float = Field(2000.0, gt=0)
    # Every run of a chain DAG (ingest ... deploy) must finish within this many minutes of being queued;
    # a run that has not (stuck, failing, or still waiting) raises a `late` alert naming it.
    deadline_minutes: float = Field(60.0, gt=0, le=7 * 24 * 60)


class PipelineSettings(Section):
    """One model's pipeline: its data, schema, training, gate and registered model."""

    storage: PipelineStorage = PipelineStorage()
    landing: LandingSettings
    mlflow: PipelineMlflow = PipelineMlflow()
    training: TrainingSettings = TrainingSettings()
    deploy: DeploySettings = DeploySettings()
