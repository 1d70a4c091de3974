"""The trainer CLI contract shared by both compute backends: a subprocess run with the rendered pod's
command and arguments, against a real SeaweedFS S3, writes the result JSON a pod would leave in
/airflow/xcom/return.json, and the model it names loads from MLflow and predicts."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from landfall.airflow.compute import XCOM_RETURN_PATH, run_trainer_locally
from landfall.airflow.podspec import SAMPLE_PARTITION, render_pods, sample_dataset
from landfall.pipeline.datagen import make_batch
from landfall.pipeline.features import split


@pytest.fixture
def sample_splits(s3, settings):
    """The splits of the sample partition the rendered pods name, in the real S3; yields the test split."""
    import io

    training = settings.training
    parts = split(
        make_batch(600, seed=11), settings.landing, training.validation_fraction, training.test_fraction
    )
    dataset = sample_dataset(settings)
    for name, frame in parts.items():
        bucket, _, key = dataset[f"{name}_uri"].removeprefix("s3://").partition("/")
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
    yield parts["test"]
    for name in parts:
        bucket, _, key = dataset[f"{name}_uri"].removeprefix("s3://").partition("/")
        s3.delete_object(Bucket=bucket, Key=key)


def test_trainer_cli_with_the_rendered_pod_arguments_writes_the_return_json_contract(
    tmp_path, sample_splits, local_mlflow, settings
):
    from landfall.pipeline.training.models import load_trial_model
    from landfall.pipeline.training.trainer import answer_split

    pod = render_pods(tmp_path / "pods")[0]
    container = pod.manifest["spec"]["containers"][0]
    command, args = container["command"], container["args"]
    assert command == ["python", "-m", "landfall.pipeline.training"]
    out = tmp_path / "xcom" / "return.json"
    # Everything as rendered, except where the pod's xcom volume is: here a temp folder.
    assert args[args.index("--out") + 1] == XCOM_RETURN_PATH
    args = [*args[: args.index("--out")], "--out", str(out), *args[args.index("--out") + 2 :]]
    completed = subprocess.run(
        [sys.executable, *command[1:], *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert completed.returncode == 0, completed.stderr[-3000:]

    result = json.loads(out.read_text())
    assert set(result) >= {"run_id", "model_uri", "metrics", "params", "partition", "train_seconds", "model"}
    params = json.loads(args[args.index("--params") + 1])
    assert result["params"] == {k: v for k, v in params.items() if k != "trial"}
    assert result["partition"] == SAMPLE_PARTITION and result["model"] == "mlp"
    assert 0.5 < result["metrics"]["accuracy"] <= 1.0
    assert not list(out.parent.glob("*.tmp")), "the result is written whole, then renamed"

    model = load_trial_model(local_mlflow, result["run_id"], settings.mlflow.experiment)
    truth, answers = answer_split(model, sample_splits, settings.landing.label, "binary")
    assert len(answers.predicted) == len(truth) and np.allclose(answers.probabilities.sum(axis=1), 1.0)


def test_local_backend_runs_the_same_cli_and_returns_the_same_contract(tmp_path, sample_splits, local_mlflow):
    pod = render_pods(tmp_path / "pods")[1]
    args = pod.manifest["spec"]["containers"][0]["args"]
    result = run_trainer_locally(args)  # the pod's own argv, --out and all
    assert result["partition"] == SAMPLE_PARTITION and result["run_id"]
    assert result["params"]["batch_size"] == json.loads(args[args.index("--params") + 1])["batch_size"]


def test_trainer_cli_rejects_bad_arguments_with_a_clear_message(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "landfall.pipeline.training", "--train", "a", "--validation", "b",
         "--partition", "p", "--params", "[1, 2]", "--model", "mlp", "--label", "churned",
         "--max-epochs", "1", "--experiment", "e", "--out", str(tmp_path / "r.json")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 2
    assert "--params must be a JSON object" in completed.stderr
    assert not (tmp_path / "r.json").exists()
