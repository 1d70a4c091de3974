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
"""Non-default types every pipeline's models may contain (the MLP's optimizer state); a pipeline adds its
own in `training.trusted_types`."""


def trusted(extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    return sorted({*SKOPS_TRUSTED_TYPES, *extra})


class UntrustedModel(ValueError):
    """A model URI that does not name a model this pipeline's training produced, or that would need code
    from the model to load."""


def requirements(*packages: str) -> list[str]:
    """Pinned requirements of the installed `packages`, stated instead of inferred: MLflow's inference
    imports and inspects the environment and took 3-4 s of every trial's ~5 s of logging."""
    from importlib.metadata import version

    return [f"{package}=={version(package)}" for package in packages]


class ModelNotSavable(ValueError):
    """A trial's model cannot be stored so that it loads without pickle: skops cannot save it, or it holds
    types the pipeline does not trust. The message names the types to trust or the format to use."""


def log_model(model: Any, model_kind: str, trusted_types: list[str] | tuple[str, ...] = ()) -> None:
    import mlflow.sklearn

    with warnings.catch_warnings():
        # skops names a function's module by looking it up in every loaded module; in an Airflow task
        # process that touches Airflow's deprecated-attribute shims ~1,000 times, and each warning they
        # raise went through the task's log channel (13 s of a trial's 17.6 s, four trials at once).
        warnings.filterwarnings("ignore", message=r"The `airflow\.")
        _log_model(model, model_kind, mlflow.sklearn, trusted(trusted_types))


def check_savable(model: Any, allowed: list[str]) -> None:
    """Raise ModelNotSavable unless skops saves `model` and loads it back with only `allowed` types."""
    import skops.io

    try:
        saved = skops.io.dumps(model)
    except Exception as error:
        raise ModelNotSavable(
            f"skops cannot save a {type(model).__module__}.{type(model).__qualname__} "
            f"({type(error).__name__}: {error}). Landfall stores models with skops so that loading one never "
            "runs pickled code: return a scikit-learn-style estimator made of plain Python, numpy and "
            "scikit-learn objects (no lambdas, open files or framework tensors), or use trainer: torch for a "
            "PyTorch network"
        ) from error
    untrusted = sorted(set(skops.io.get_untrusted_types(data=saved)) - set(allowed))
    if untrusted:
        raise ModelNotSavable(
            f"the model holds types this pipeline does not trust: {untrusted}. If they are yours or a "
            "library's you trust, name them under the pipeline's training.trusted_types (models load with "
            "those types only, never pickle)"
        )


def _log_model(model: Any, model_kind: str, mlflow_sklearn: Any, allowed: list[str]) -> None:
    if model_kind == "torch":
        from landfall.pipeline.training.torch_trainer import log_torch_model

        log_torch_model(model, requirements("torch", "numpy", "pandas"))
        return
    # MLflow stores scikit-learn models with skops (no pickle); types it does not trust by default (the
    # optimizer state, a forest's trees) are named as trusted here, explicitly, per pipeline.
    check_savable(model, allowed)
    mlflow_sklearn.log_model(
        model,
        name="model",
        skops_trusted_types=allowed,
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


def load_trial_model(
    client: Any, run_id: str, experiment: str | None, trusted_types: list[str] | tuple[str, ...] = ()
) -> Any:
    """The model a trial run logged, as an object with predict/predict_proba, loaded without any code
    or pickle from the model (skops, with only the project's and `trusted_types`)."""
    import mlflow.artifacts

    check_pipeline_run(client, run_id, experiment)
    with tempfile.TemporaryDirectory(prefix="landfall-model-") as folder:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=run_model_uri(run_id), dst_path=folder))
        return load_local_model(local, trusted_types)


def load_local_model(local: Path, trusted_types: list[str] | tuple[str, ...] = ()) -> Any:
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
        allowed = trusted(trusted_types)
        untrusted = set(skops.io.get_untrusted_types(file=path)) - set(allowed)
        if untrusted:
            raise UntrustedModel(
                f"{local}: the model contains types this pipeline does not trust: {sorted(untrusted)} "
                "(training.trusted_types names the ones it may hold)"
            )
        return skops.io.load(path, trusted=allowed)
    if "python_function" in flavors:
        from landfall.pipeline.training.torch_trainer import META_FILE, WEIGHTS_FILE, TorchClassifier

        weights, meta = local / "artifacts" / WEIGHTS_FILE, local / "artifacts" / META_FILE
        if weights.is_file() and meta.is_file():
            return TorchClassifier.load(str(weights), str(meta))
    raise UntrustedModel(f"{local}: not a model Landfall's trainers write (flavors {sorted(flavors)})")
