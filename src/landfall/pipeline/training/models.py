"""Logging and loading trial models without running code that came with the model.

Loading a model is where an attacker with write access to MLflow (or a forged event naming any run)
would run code: MLflow's scikit-learn loader takes its skops trusted-types list from the model's own
MLmodel file, adds the model's `code/` folder to sys.path, and its pyfunc loader unpickles the Python
wrapper. So Landfall loads models itself:

* only runs this pipeline's training created (tagged `landfall.pipeline`, stage `trial`, in the
  configured experiment) are loaded at all;
* a scikit-learn model must be in the skops format and is loaded with *this project's* trusted-type list;
* a PyTorch model is rebuilt from its plain JSON description and a weights-only `state_dict`; the
  pickled pyfunc wrapper MLflow stores beside them is never opened.

With that, the stack runs with `MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false`.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import yaml

PIPELINE_TAGS = {"landfall.pipeline": "landfall"}
SKOPS_TRUSTED_TYPES = [
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
]
"""The only non-default types a trial model may contain (the MLP's optimizer state)."""


class UntrustedModel(ValueError):
    """A model URI that does not name a model this pipeline's training produced, or that would need code
    from the model to load."""


def requirements(*packages: str) -> list[str]:
    """Pinned requirements of the installed `packages`, stated instead of inferred: MLflow's inference
    imports and inspects the environment and took 3-4 s of every trial's ~5 s of logging."""
    from importlib.metadata import version

    return [f"{package}=={version(package)}" for package in packages]


def log_model(model: Any, model_kind: str) -> None:
    import mlflow.sklearn

    with warnings.catch_warnings():
        # skops names a function's module by looking it up in every loaded module; in an Airflow task
        # process that touches Airflow's deprecated-attribute shims ~1,000 times, and each warning they
        # raise went through the task's log channel (13 s of a trial's 17.6 s, four trials at once).
        warnings.filterwarnings("ignore", message=r"The `airflow\.")
        _log_model(model, model_kind, mlflow.sklearn)


def _log_model(model: Any, model_kind: str, mlflow_sklearn: Any) -> None:
    if model_kind == "torch":
        from landfall.pipeline.training.torch_trainer import log_torch_model

        log_torch_model(model, requirements("torch", "numpy", "pandas"))
        return
    # MLflow stores scikit-learn models with skops (no pickle); the optimizer state is a plain
    # sklearn class it does not know, so it is named as trusted here, explicitly.
    mlflow_sklearn.log_model(
        model,
        name="model",
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        pip_requirements=requirements("scikit-learn", "skops", "numpy", "pandas"),
    )


def check_pipeline_run(client: Any, run_id: str, experiment: str | None) -> None:
    """Raise UntrustedModel unless `run_id` is a trial run of this pipeline (in `experiment`, if given)."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as error:
        raise UntrustedModel(f"run {run_id!r} cannot be read: {error.message}") from None
    tags = run.data.tags
    expected = client.get_experiment_by_name(experiment) if experiment else None
    if (
        any(tags.get(key) != value for key, value in PIPELINE_TAGS.items())
        or tags.get("landfall.stage") != "trial"
        or (experiment and (expected is None or run.info.experiment_id != expected.experiment_id))
    ):
        raise UntrustedModel(
            f"run {run_id} is not a trial of this pipeline's training (experiment {experiment!r}, tags "
            f"landfall.pipeline/landfall.stage); Landfall loads only models its own training logged"
        )


def run_model_uri(run_id: str) -> str:
    return f"runs:/{run_id}/model"


def load_trial_model(client: Any, run_id: str, experiment: str | None) -> Any:
    """The model a trial run logged, as an object with predict/predict_proba, loaded without any code
    or pickle from the model."""
    import mlflow.artifacts

    check_pipeline_run(client, run_id, experiment)
    with tempfile.TemporaryDirectory(prefix="landfall-model-") as folder:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=run_model_uri(run_id), dst_path=folder))
        return load_local_model(local)


def load_local_model(local: Path) -> Any:
    """Load a downloaded model folder (its MLmodel file decides the kind), refusing anything unsafe."""
    flavors = yaml.safe_load((local / "MLmodel").read_text()).get("flavors", {})
    if "sklearn" in flavors:
        conf = flavors["sklearn"]
        if conf.get("serialization_format") != "skops" or conf.get("code"):
            raise UntrustedModel(
                f"{local}: scikit-learn model stored as {conf.get('serialization_format')!r}"
                + (" with code" if conf.get("code") else "")
                + "; only skops without code is loaded"
            )
        import skops.io

        path = local / conf["pickled_model"]
        untrusted = set(skops.io.get_untrusted_types(file=path)) - set(SKOPS_TRUSTED_TYPES)
        if untrusted:
            raise UntrustedModel(
                f"{local}: the model contains types this project does not trust: {sorted(untrusted)}"
            )
        return skops.io.load(path, trusted=SKOPS_TRUSTED_TYPES)
    if "python_function" in flavors:
        from landfall.pipeline.training.torch_trainer import META_FILE, WEIGHTS_FILE, TorchClassifier

        weights, meta = local / "artifacts" / WEIGHTS_FILE, local / "artifacts" / META_FILE
        if weights.is_file() and meta.is_file():
            return TorchClassifier.load(str(weights), str(meta))
    raise UntrustedModel(f"{local}: not a model Landfall's trainers write (flavors {sorted(flavors)})")
