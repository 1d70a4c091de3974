"""Train one hyperparameter trial and log it to MLflow. One contract for both compute backends:

    python -m landfall.trainer --train s3://.../train.parquet --test s3://.../test.parquet \
        --params '{"learning_rate": 0.01, ...}' --partition 2026-11-20 --model mlp --label churned \
        --max-epochs 60 --experiment landfall --out /airflow/xcom/return.json

The result is `{run_id, model_uri, metrics, params, partition, train_seconds, model}`, written as JSON to
`--out`. The trainer image's pods write it to /airflow/xcom/return.json (KubernetesPodOperator pushes it
to XCom); the local backend runs this same CLI inside the worker (`landfall.compute`).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from landfall.plots import classifier_figures, has_both_classes, log_figures
from landfall.settings import get_settings

SKOPS_TRUSTED_TYPES = [
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
]


def read_parquet(uri: str) -> pd.DataFrame:
    """Read `s3://bucket/key` (credentials and endpoint from the AWS_* environment) or a local path."""
    if uri.startswith("s3://"):
        import boto3

        bucket, _, key = uri.removeprefix("s3://").partition("/")
        body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        return pd.read_parquet(io.BytesIO(body))
    return pd.read_parquet(uri)


def build_model(params: dict[str, Any], max_epochs: int, seed: int = 0) -> Any:
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        StandardScaler(),
        MLPClassifier(
            hidden_layer_sizes=(int(params["hidden_units"]),),
            learning_rate_init=float(params["learning_rate"]),
            batch_size=int(params["batch_size"]),
            solver=str(params["optimizer"]),
            max_iter=max_epochs,
            random_state=seed,
        ),
    )


def predict(model: Any, frame: pd.DataFrame, label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(truth, predicted class, probability of the positive class) on `frame`."""
    features = frame.drop(columns=[label])
    return frame[label].to_numpy(), model.predict(features), model.predict_proba(features)[:, 1]


def metrics_of(truth: np.ndarray, predicted: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "f1": float(f1_score(truth, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(truth, probability)) if has_both_classes(truth) else 0.5,
    }


def train_trial(
    train_uri: str,
    test_uri: str,
    params: dict[str, Any],
    partition: str,
    tags: dict[str, str] | None = None,
    *,
    model_kind: str | None = None,
    label: str | None = None,
    max_epochs: int | None = None,
    experiment: str | None = None,
) -> dict[str, Any]:
    """Fit one trial, log params, metrics, pictures and the model to MLflow; return the result contract.

    Unset keyword arguments come from settings, so a caller in the worker may omit them; the CLI (and so
    the pod) always passes them explicitly.
    """
    import mlflow

    settings = get_settings()
    model_kind = model_kind or settings.training.model
    label = label or settings.landing.label
    max_epochs = max_epochs or settings.training.max_epochs
    train, test = read_parquet(train_uri), read_parquet(test_uri)
    mlflow.set_experiment(experiment or settings.mlflow.experiment)
    run_tags = {"landfall.partition": partition, "landfall.stage": "trial", "landfall.model": model_kind}
    run_tags.update(tags or {})
    with mlflow.start_run(run_name=f"{partition} {params.get('trial', '')}".strip(), tags=run_tags) as run:
        hyper = {k: v for k, v in params.items() if k != "trial"}
        mlflow.log_params({**hyper, "max_epochs": max_epochs, "train_rows": len(train), "model": model_kind})
        started = time.perf_counter()
        if model_kind == "torch":
            from landfall.torch_trainer import fit

            model = fit(train, label, hyper, max_epochs)
        else:
            model = build_model(hyper, max_epochs)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ConvergenceWarning at the epoch cap is expected in a grid
                model.fit(train.drop(columns=[label]), train[label])
        train_seconds = time.perf_counter() - started
        truth, predicted, probability = predict(model, test, label)
        metrics = metrics_of(truth, predicted, probability)
        mlflow.log_metrics({**metrics, "train_seconds": train_seconds})
        log_figures(run.info.run_id, classifier_figures(truth, predicted, probability))
        log_model(model, model_kind)
        result = {
            "run_id": run.info.run_id,
            "model_uri": f"runs:/{run.info.run_id}/model",
            "metrics": metrics,
            "params": hyper,
            "partition": partition,
            "train_seconds": round(train_seconds, 3),
            "model": model_kind,
        }
        if model_kind == "torch":
            result["device"] = model.device_name
        return result


def log_model(model: Any, model_kind: str) -> None:
    import mlflow.sklearn

    if model_kind == "torch":
        from landfall.torch_trainer import log_torch_model

        log_torch_model(model)
        return
    # MLflow stores scikit-learn models with skops (no pickle); the optimizer state is a plain
    # sklearn class it does not know, so it is named as trusted here, explicitly.
    mlflow.sklearn.log_model(model, name="model", skops_trusted_types=SKOPS_TRUSTED_TYPES)


def load_classifier(model_uri: str) -> Any:
    """A logged trial model, whichever trainer made it, as an object with predict/predict_proba."""
    import mlflow.models
    import mlflow.sklearn

    flavors = mlflow.models.get_model_info(model_uri).flavors
    if "sklearn" in flavors:
        return mlflow.sklearn.load_model(model_uri)
    from landfall.torch_trainer import load_torch_model

    return load_torch_model(model_uri)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m landfall.trainer", description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="train split parquet (s3:// or a path)")
    parser.add_argument("--test", required=True, help="held-out split parquet (s3:// or a path)")
    parser.add_argument("--params", required=True, help="JSON object of hyperparameters")
    parser.add_argument("--partition", required=True, help="the YYYY-MM-DD partition being trained")
    parser.add_argument("--model", choices=["mlp", "torch"], help="trainer (default: training.model)")
    parser.add_argument("--label", help="label column (default: landing.label)")
    parser.add_argument("--max-epochs", type=int, help="epoch cap (default: training.max_epochs)")
    parser.add_argument("--experiment", help="MLflow experiment (default: mlflow.experiment)")
    parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="MLflow run tag")
    parser.add_argument("--out", default="-", help="where to write the result JSON (- for stdout)")
    args = parser.parse_args(argv)
    try:
        params = json.loads(args.params)
        if not isinstance(params, dict):
            raise ValueError("--params must be a JSON object")
    except ValueError as error:
        parser.error(f"--params: {error}")
    tags = {}
    for item in args.tag:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--tag {item!r}: expected KEY=VALUE")
        tags[key] = value
    result = train_trial(
        args.train,
        args.test,
        params,
        args.partition,
        tags,
        model_kind=args.model,
        label=args.label,
        max_epochs=args.max_epochs,
        experiment=args.experiment,
    )
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
