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
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, Field, ValidationError, field_validator, model_validator

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
    `<name>/landing`, `<name>/raw`, `<name>/processed`, `<name>/quarantine` and `<name>/predictions`;
    nothing of one pipeline
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
    # What the scoring service answered, kept as parquet batches per day (`<name>/predictions`).
    predictions_prefix: S3Prefix | None = None

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
            "predictions_prefix": self.predictions_prefix or f"{name}/predictions",
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
    """The built-in trainers' grid (`mlp`, `torch`): the network's knobs, each a list of values to try."""

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


Task = Literal["binary", "multiclass", "regression"]
MetricName = Literal["accuracy", "f1", "f1_macro", "roc_auc", "log_loss", "rmse", "mae", "r2"]
_METRIC_TASKS: dict[str, tuple[str, ...]] = {  # landfall.pipeline.metrics.METRICS says the same; tested
    "accuracy": ("binary", "multiclass"),
    "f1": ("binary",),
    "f1_macro": ("binary", "multiclass"),
    "roc_auc": ("binary", "multiclass"),
    "log_loss": ("binary", "multiclass"),
    "rmse": ("regression",),
    "mae": ("regression",),
    "r2": ("regression",),
}
_SHARES = ("accuracy", "f1", "f1_macro", "roc_auc")  # metrics between 0 and 1, higher better
_DEFAULT_METRIC = {"binary": "accuracy", "multiclass": "accuracy", "regression": "rmse"}
_LABEL_DTYPES = {
    "binary": ("int64", "bool", "string"),
    "multiclass": ("int64", "string"),
    "regression": ("int64", "float64"),
}
TRAINER = r"^(mlp|torch|sklearn:[A-Za-z_][\w.]*\.[A-Za-z_]\w*|python:[A-Za-z_][\w.]*:[A-Za-z_]\w*)$"
"""`mlp`, `torch`, `sklearn:<module>.<EstimatorClass>` or `python:<module>:<fit function>`."""
FEATURES = r"^(schema|python:[A-Za-z_][\w.]*:[A-Za-z_]\w*)$"
GridValue = bool | int | float | str | None


class TrainingSettings(Section):
    # binary | multiclass | regression: what the label is, and so which metrics, pictures and answers apply.
    task: Task = "binary"
    # mlp: scikit-learn's MLP (classifier, or regressor for regression). torch: the same network in PyTorch
    # on CUDA when there is a GPU (binary only; `pip install landfall[torch]`). sklearn:<module>.<Class>: any
    # scikit-learn-style estimator, the grid over its constructor parameters. python:<module>:<function>:
    # your own `fit(train, validation, params) -> estimator`, from the pipeline's code folder.
    trainer: str = Field("mlp", pattern=TRAINER, validation_alias=AliasChoices("trainer", "model"))
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    # What the best trial and the deploy gate compare; unset: accuracy (classification) or rmse.
    metric: MetricName | None = None
    max_parallel_trials: int = Field(2, ge=1, le=64)
    max_epochs: int = Field(60, ge=1, le=10_000)
    # Lists of values to try, one trial per combination. mlp/torch: learning_rate, batch_size, optimizer,
    # hidden_units (unset ones keep their defaults). Other trainers: any parameter names; empty: one trial.
    grid: dict[str, list[GridValue]] = {}
    # Classes (module.Name) a model of this pipeline may contain beyond scikit-learn's plain ones, e.g.
    # sklearn.tree._tree.Tree for a forest: models are loaded with skops and only these types, never pickle.
    trusted_types: list[str] = []
    # Each run trains on the processed partitions of the `window_days` days ending at its own (never a
    # later one: a backfill of an old day does not see the future); days missing in it are named.
    window_days: int = Field(7, ge=1, le=366)
    # Rows read per split at most: a larger window is sampled evenly (every k-th row), so memory is
    # bounded whatever the window holds.
    max_rows: int = Field(1_000_000, ge=1000)
    # History landed at once (many days in one burst) trains the newest complete window once instead of
    # every day in turn; backfill runs (`airflow backfill create`) always train every day in order.
    coalesce_history: bool = True
    # every_landing: each published day trains. on_drift: a day trains only when its drift report says
    # it moved (or cannot say: unknown, missing), when there is no champion yet, or when the pipeline last
    # trained more than `max_age_days` ago; otherwise its train run skips the search (shown as skipped).
    # Under on_drift no day is coalesced into a later one's window: each is decided on its own report.
    retrain: Literal["every_landing", "on_drift"] = "every_landing"
    max_age_days: int = Field(30, ge=1, le=3650)

    @model_validator(mode="before")
    @classmethod
    def _one_name_for_the_trainer(cls, data: Any) -> Any:
        if isinstance(data, dict) and "model" in data and "trainer" in data:
            raise ValueError(
                f"`model` ({data['model']!r}) is the old name of `trainer` "
                f"({data['trainer']!r}): "
                "set only trainer (an environment variable ..._TRAINING__MODEL counts too)"
            )
        return data

    @model_validator(mode="after")
    def _consistent(self) -> TrainingSettings:
        if self.validation_fraction + self.test_fraction >= 0.9:
            raise ValueError("validation_fraction + test_fraction must leave at least 10% to train on")
        if self.metric is None:
            object.__setattr__(self, "metric", _DEFAULT_METRIC[self.task])
        if self.task not in _METRIC_TASKS[self.metric]:
            fits = [name for name, tasks in _METRIC_TASKS.items() if self.task in tasks]
            raise ValueError(f"metric {self.metric!r} does not score a {self.task} task; use one of {fits}")
        if self.trainer == "torch" and self.task != "binary":
            raise ValueError(
                f"trainer torch trains binary tasks only; for {self.task} use mlp, sklearn: or python:"
            )
        if empty := [name for name, values in self.grid.items() if not values]:
            raise ValueError(f"grid {empty}: each parameter needs at least one value to try")
        if self.trainer in ("mlp", "torch"):
            try:
                grid = TrialGrid.model_validate(self.grid)
            except ValidationError as error:
                problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
                raise ValueError(f"grid of trainer {self.trainer}: {problems}") from None
            if self.trainer == "mlp" and "adamw" in grid.optimizer:
                raise ValueError("optimizer adamw needs trainer: torch (scikit-learn's MLP has adam and sgd)")
            object.__setattr__(self, "grid", grid.model_dump())
        return self

    @property
    def builtin(self) -> bool:
        """A trainer Landfall ships (its grid is the network's knobs), not the pipeline's own code."""
        return self.trainer in ("mlp", "torch")

    def check_label(self, label: ColumnSpec) -> None:
        """Raise ValueError when the label column cannot be the label of this task."""
        if label.dtype not in _LABEL_DTYPES[self.task]:
            raise ValueError(
                f"landing.label: a {self.task} label's dtype is one of {list(_LABEL_DTYPES[self.task])}, and "
                f"{label.name!r} is {label.dtype} (or is training.task wrong?)"
            )
        if (
            self.task == "binary"
            and label.dtype == "string"
            and (label.allowed is None or len(label.allowed) != 2)
        ):
            raise ValueError(
                f"landing.label: a binary text label needs `allowed` with its two classes ({label.name!r})"
            )


class DeploySettings(Section):
    """The gate. A candidate replaces the champion when it clears the floor, beats the champion by more
    than `min_improvement`, and the improvement is not sampling noise: the lower end of a paired
    bootstrap interval (same held-out rows, `confidence` one-sided) is above zero."""

    # The floor (a ceiling for a metric where lower is better); unset: 0.90 for accuracy, f1, f1_macro
    # and roc_auc, none for the others. A first model must also beat a model that learned nothing.
    min_score: float | None = None
    # In the metric's own units (rmse: the label's units).
    min_improvement: float = Field(0.005, ge=0)
    confidence: float = Field(0.95, ge=0.5, lt=1)
    bootstrap_samples: int = Field(1000, ge=100, le=100_000)
    # The canary: before the alias moves, the scoring service answers this many held-out rows with the
    # candidate loaded in its staging slot; every answer must equal the offline evaluation's, and the
    # slowest 5% of its requests take at most canary_max_latency_ms.
    canary_rows: int = Field(200, ge=1, le=10_000)
    canary_max_latency_ms: float = Field(2000.0, gt=0)
    # Regression: how far (absolute, the label's units) a served prediction may be from the offline one.
    canary_tolerance: float = Field(1e-6, ge=0)
    # The deploy DAG's first retry waits this long, each next one twice as long (three retries).
    retry_delay_s: float = Field(10.0, ge=1, le=600)
    # Every run of a chain DAG (ingest ... deploy) must finish within this many minutes of being queued;
    # a run that has not (stuck, failing, or still waiting) raises a `late` alert naming it.
    deadline_minutes: float = Field(60.0, gt=0, le=7 * 24 * 60)


class MonitoringSettings(Section):
    """Drift of each prepared day against the champion's training window (`landfall.pipeline.drift`)."""

    # A feature drifted when its population stability index reaches this (0.1: a small shift, 0.25: a
    # large one, as the index is commonly read).
    psi_threshold: float = Field(0.2, gt=0)
    # The day drifted when at least this share of its features did: a `drift` alert names them.
    share_of_features: float = Field(0.3, gt=0, le=1)
    # With training.retrain: on_drift, how long a train run waits for its day's drift report (written
    # seconds after the day is published); none by then: it trains, as if the day drifted, and alerts.
    report_wait_seconds: int = Field(300, ge=0, le=3600)


class PipelineSettings(Section):
    """One model's pipeline: its data, schema, training, gate and registered model."""

    storage: PipelineStorage = PipelineStorage()
    landing: LandingSettings
    mlflow: PipelineMlflow = PipelineMlflow()
    training: TrainingSettings = TrainingSettings()
    deploy: DeploySettings = DeploySettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    # Where this pipeline's own code is (`python:` trainers and features, estimator classes), relative to
    # the config file; unset: the project's `pipelines/` folder.
    code_path: str | None = None
    # schema: numbers as they are, one-hot columns from each text column's `allowed`. Or
    # python:<module>:<function>: your pure function of a frame of the landing columns (no label) to a
    # frame of numbers, one row per row; preprocessing and the scoring service both call it.
    features: str = Field("schema", pattern=FEATURES)

    @model_validator(mode="after")
    def _label_fits_the_task(self) -> PipelineSettings:
        label = next(column for column in self.landing.columns if column.name == self.landing.label)
        self.training.check_label(label)
        metric, floor = self.training.metric, self.deploy.min_score
        if metric in _SHARES and floor is not None and not 0 <= floor <= 1:
            raise ValueError(f"deploy.min_score {floor:g} is outside what {metric} can score (0 to 1)")
        if floor is None and metric in _SHARES:
            object.__setattr__(self, "deploy", self.deploy.model_copy(update={"min_score": 0.90}))
        return self
