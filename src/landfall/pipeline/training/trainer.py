"""Train one hyperparameter trial and log it to MLflow. One contract for both compute backends:

    python -m landfall.pipeline.training --train s3://.../train.parquet \
        --validation s3://.../validation.parquet --params '{"learning_rate": 0.01, ...}' \
        --partition 2026-11-20 --model mlp --label churned --max-epochs 60 --experiment landfall \
        --out /airflow/xcom/return.json

A trial is fitted on the train split and scored on the validation split; the held-out test split is
for the candidate-vs-champion evaluation only, so the choice of the best trial cannot flatter it. The
result is `{run_id, model_uri, metrics, params, partition, train_seconds, model}`, written as JSON to
`--out`. The trainer image's pods write it to /airflow/xcom/return.json (KubernetesPodOperator pushes
it to XCom); the local backend calls `main()` with the same argv inside the task's own process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from landfall.core.pipeline_settings import TRAINER
from landfall.pipeline import window as window_io
from landfall.pipeline.metrics import (
    TASKS,
    Answers,
    NotAnAnswer,
    Task,
    answer,
    baseline_of,
    metrics_of,
    plain,
    truth_of,
)
from landfall.pipeline.parquet_io import open_streaming
from landfall.pipeline.plots import log_figures, trial_figures
from landfall.pipeline.training import estimators
from landfall.pipeline.training.models import PIPELINE_TAGS, log_model
from landfall.pipeline.window import READ_BATCH_ROWS, read_sampled

TRIAL_STAGE = "trial"
REFUSED_TAG = "landfall.refused"  # on a trial run that was not fitted, and why


def experiment_id(name: str) -> str:
    """The experiment's id, creating it if needed. Not `mlflow.set_experiment`: when two trials create
    the experiment at once, the loser's set_experiment (MLflow 3.17) returns without making it active,
    and its run lands in the Default experiment."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return client.get_experiment_by_name(name).experiment_id


def label_classes(frame: pd.DataFrame, label: str) -> list[Any]:
    """The label classes present in a frame (plain values: 0/1, True/False, text)."""
    return sorted(plain(value) for value in frame[label].dropna().unique())


def _classes_in(path: Path, label: str) -> set[Any]:
    """The label classes of one local parquet file: its label column only, a batch at a time."""
    found: set[Any] = set()
    parquet = open_streaming(path)
    for batch in parquet.iter_batches(batch_size=READ_BATCH_ROWS, columns=[label], use_threads=False):
        found.update(pc.unique(pc.drop_null(batch.column(0))).to_pylist())
    return found


def _strided_rows_of(uris: list[str], label: str, classes: set[Any], every: int) -> pd.DataFrame:
    """Rows `0, k, 2k, ...` of each class in `classes`, counted within the class across the files in
    order (so at least its first row): the class's share of the split, rounded up to one row."""
    kept: list[pa.RecordBatch] = []
    schema = None
    seen = dict.fromkeys(classes, 0)
    with tempfile.TemporaryDirectory(prefix="landfall-classes-") as scratch:
        for index, uri in enumerate(uris):
            path = Path(uri)
            if uri.startswith("s3://"):
                path = Path(scratch) / f"{index:05d}.parquet"
                window_io._fetch_s3(uri, path)
            parquet = open_streaming(path)
            schema = schema or parquet.schema_arrow
            for batch in parquet.iter_batches(batch_size=READ_BATCH_ROWS, use_threads=False):
                labels = batch.column(label).to_numpy(zero_copy_only=False)
                take = np.zeros(batch.num_rows, dtype=bool)
                for value in classes:
                    positions = np.flatnonzero(labels == value)
                    take[positions[(np.arange(len(positions)) + seen[value]) % every == 0]] = True
                    seen[value] += len(positions)
                if take.any():
                    chosen = batch.filter(pa.array(take))
                    kept.append(chosen.cast(schema) if chosen.schema != schema else chosen)
            if path.parent == Path(scratch):
                path.unlink()
    return pa.Table.from_batches(kept, schema=schema).to_pandas()


def read_train(
    uris: list[str], every: int, label: str, classify: bool = True
) -> tuple[pd.DataFrame, list[Any], int]:
    """The train split's rows `0, k, 2k, ...`, the label classes of the WHOLE split, and how many rows
    were added to the sample for a class it missed.

    The classes are counted on every row (the label column only, of each file as the sample reads it: an
    S3 file is fetched once), not on the sample: a rare class can fall between the strides of a day that
    holds both. A class the sample missed gets its own strided rows (its share, at least one row), so a
    split of two classes is fitted as two classes, never refused nor fitted as one. A regression label
    (`classify=False`) has no classes: the plain sample, and no class list."""
    if not classify:
        return read_sampled(uris, every), [], 0
    if every <= 1:
        frame = read_sampled(uris)
        return frame, label_classes(frame, label), 0
    classes: set[Any] = set()

    def fetch_and_count(uri: str, path: Path) -> None:
        window_io._fetch_s3(uri, path)
        classes.update(_classes_in(path, label))

    for uri in uris:
        if not uri.startswith("s3://"):
            classes.update(_classes_in(Path(uri), label))
    frame = read_sampled(uris, every, fetch=fetch_and_count)
    missed = classes - set(label_classes(frame, label))
    if not missed:
        return frame, sorted(classes), 0
    added = _strided_rows_of(uris, label, missed, every)
    return pd.concat([frame, added], ignore_index=True), sorted(classes), len(added)


def answer_split(model: Any, frame: pd.DataFrame, label: str, task: Task) -> tuple[np.ndarray, Answers]:
    """(truth, the model's answers) on a processed split: the answers of `metrics.answer`, the function
    the scoring service answers with."""
    return truth_of(frame[label].to_numpy(), task), answer(model, frame.drop(columns=[label]), task)


def train_trial(
    train_uris: list[str],
    validation_uris: list[str],
    params: dict[str, Any],
    partition: str,
    *,
    trainer: str,
    label: str,
    max_epochs: int,
    experiment: str,
    task: Task = "binary",
    tags: dict[str, str] | None = None,
    train_every: int = 1,
    validation_every: int = 1,
    window: list[str] | None = None,
    trusted_types: list[str] | None = None,
    code_root: Path | None = None,
) -> dict[str, Any]:
    """Fit one trial on the window's train split, log params, validation metrics, pictures and the model
    to MLflow; return the result contract. A classification train split with one label class is not
    fitted: the run says why (`refused`, with the class count) and `select_best` never makes it a
    candidate. The pipeline's own code failing raises UserCodeError (the trial fails, not retried)."""
    import mlflow

    classify = task != "regression"
    # The classes of the whole split (not of its sample); a class the sample missed is added to it.
    train, classes, added_rows = read_train(train_uris, train_every, label, classify)
    validation = read_sampled(validation_uris, validation_every)
    window = window or [partition]
    run_tags = {
        **PIPELINE_TAGS,
        "landfall.partition": partition,
        "landfall.stage": TRIAL_STAGE,
        "landfall.model": trainer,
        "landfall.task": task,
        "landfall.window": ",".join(window),
        **(tags or {}),
    }
    run_name = f"{partition} {params.get('trial', '')}".strip()
    with mlflow.start_run(experiment_id=experiment_id(experiment), run_name=run_name, tags=run_tags) as run:
        hyper = {k: v for k, v in params.items() if k != "trial"}
        mlflow.log_params(
            {
                **hyper,
                "max_epochs": max_epochs,
                "train_rows": len(train),
                "validation_rows": len(validation),
                "train_partitions": len(window),
                "train_sample_every": train_every,
                **({"train_classes": len(classes)} if classify else {}),
                "model": trainer,
                "task": task,
            }
        )
        result: dict[str, Any] = {
            "run_id": run.info.run_id,
            "params": hyper,
            "partition": partition,
            "model": trainer,
            "task": task,
            **({"classes": len(classes)} if classify else {}),
        }
        if added_rows:
            mlflow.log_param("train_rows_added_for_missed_classes", added_rows)
        if classify and len(classes) < 2:
            refused = (
                f"the train split holds {len(classes)} label class(es) {classes}: a model fitted on one "
                "class answers one class whatever it is asked, so it is not fitted"
            )
            mlflow.set_tag(REFUSED_TAG, refused)
            return {**result, "metrics": {}, "refused": refused}
        started = time.perf_counter()
        model = estimators.fit(trainer, task, train, validation, label, hyper, max_epochs, code_root)
        train_seconds = time.perf_counter() - started
        try:
            truth, answers = answer_split(model, validation, label, task)
        except NotAnAnswer as error:
            raise estimators.UserCodeError(f"the model of {trainer} cannot answer: {error}") from error
        metrics = metrics_of(task, truth, answers)
        mlflow.log_metrics({**metrics, "train_seconds": train_seconds})
        log_figures(run.info.run_id, trial_figures(task, truth, answers))
        log_model(model, trainer, trusted_types or [])
        result.update(
            {
                "model_uri": f"runs:/{run.info.run_id}/model",
                "metrics": metrics,
                "metrics_split": "validation",
                "train_seconds": round(train_seconds, 3),
                # What a model that learned nothing answers: a first champion must beat it.
                "baseline": baseline_of(task, train[label]),
            }
        )
        if trainer == "torch":
            result["device"] = model.device_name
        return result


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m landfall.pipeline.training", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--train", action="append", required=True, help="a train split parquet (s3:// or a path); repeatable"
    )
    parser.add_argument(
        "--validation", action="append", required=True, help="a validation split parquet; repeatable"
    )
    parser.add_argument("--train-every", type=int, default=1, help="keep every k-th train row")
    parser.add_argument("--validation-every", type=int, default=1, help="keep every k-th validation row")
    parser.add_argument("--window", default=None, help="the window's partitions, comma-separated")
    parser.add_argument("--params", required=True, help="JSON object of hyperparameters")
    parser.add_argument("--partition", required=True, help="the YYYY-MM-DD partition being trained")
    parser.add_argument(
        "--trainer",
        "--model",
        dest="trainer",
        required=True,
        help="mlp, torch, sklearn:<class> or python:<fn>",
    )
    parser.add_argument("--task", choices=list(TASKS), default="binary", help="what the label is")
    parser.add_argument(
        "--trusted-type", action="append", default=[], help="a type skops may load; repeatable"
    )
    parser.add_argument(
        "--code-path", default=None, help="the pipeline's code folder (python:/sklearn: code)"
    )
    parser.add_argument("--label", required=True, help="label column")
    parser.add_argument("--max-epochs", type=int, required=True, help="epoch cap")
    parser.add_argument("--experiment", required=True, help="MLflow experiment")
    parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="MLflow run tag")
    parser.add_argument("--out", default="-", help="where to write the result JSON (- for stdout)")
    args = parser.parse_args(argv)
    if not re.match(TRAINER, args.trainer):
        parser.error(
            f"--trainer {args.trainer!r}: expected mlp, torch, sklearn:<module>.<Class> "
            "or python:<module>:<fn>"
        )
    try:
        args.params = json.loads(args.params)
        if not isinstance(args.params, dict):
            raise ValueError("--params must be a JSON object")
    except ValueError as error:
        parser.error(f"--params: {error}")
    tags = {}
    for item in args.tag:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--tag {item!r}: expected KEY=VALUE")
        tags[key] = value
    args.tag = tags
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One trial from parsed arguments (the local backend calls this in the task's own process)."""
    return train_trial(
        args.train,
        args.validation,
        args.params,
        args.partition,
        trainer=args.trainer,
        task=args.task,
        label=args.label,
        max_epochs=args.max_epochs,
        experiment=args.experiment,
        tags=args.tag,
        train_every=max(1, args.train_every),
        validation_every=max(1, args.validation_every),
        window=args.window.split(",") if args.window else None,
        trusted_types=args.trusted_type,
        code_root=_code_root(args.code_path),
    )


def _code_root(code_path: str | None) -> Path | None:
    """--code-path (absolute from a worker; in a pod, the pipeline's code_path as written, resolved
    against the image's $LANDFALL_CONFIG as the settings do), else $LANDFALL_CODE_ROOT."""
    if code_path:
        from landfall.core.settings import code_root

        return code_root(code_path)
    found = os.environ.get("LANDFALL_CODE_ROOT")
    return Path(found) if found else None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run one trial from its argv; write the result JSON to --out (whole, then renamed) and return it."""
    args = parse_arguments(argv)
    result = run(args)
    text = json.dumps(result)
    if args.out == "-":
        print(text)
    else:
        # Written whole, then renamed: a reader (the xcom sidecar) never sees half a file.
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".tmp")
        partial.write_text(text)
        partial.replace(out)
    return result
