"""The trainer argv of a pipeline with its own code folder: a worker passes the folder it resolved; a pod
gets the `code_path` as written and resolves it against the image's config file, as the settings do."""

from __future__ import annotations

from landfall.airflow.compute import trial_arguments
from landfall.pipeline.training import trainer

DATASET = {
    "partition": "2026-12-01",
    "train_uri": "s3://b/train.parquet",
    "validation_uri": "s3://b/validation.parquet",
}


def _own_code(settings, profile: str):
    return settings.model_copy(
        update={
            "compute": settings.compute.model_copy(update={"profile": profile}),
            "training": settings.training.model_copy(update={"trainer": "python:tiers_model:fit"}),
            "code_path": "tiers_code",
            "code_root": settings.code_root.parent / "tiers_code",
        }
    )


def _code_path_of(argv: list[str]) -> str | None:
    return argv[argv.index("--code-path") + 1] if "--code-path" in argv else None


def test_a_worker_passes_the_resolved_folder_and_a_pod_the_path_as_written(settings):
    [local] = trial_arguments(DATASET, [{"trial": "t0"}], "run", _own_code(settings, "local"))
    assert _code_path_of(local) == str(settings.code_root.parent / "tiers_code")
    [pod] = trial_arguments(DATASET, [{"trial": "t0"}], "run", _own_code(settings, "kubernetes"))
    assert _code_path_of(pod) == "tiers_code"


def test_a_pod_without_a_code_path_uses_the_image_code_root(settings):
    kubernetes = settings.model_copy(
        update={"compute": settings.compute.model_copy(update={"profile": "kubernetes"})}
    )
    [pod] = trial_arguments(DATASET, [{"trial": "t0"}], "run", kubernetes)
    assert _code_path_of(pod) is None


def test_the_trainer_resolves_a_written_code_path_against_its_own_config_file(monkeypatch, tmp_path):
    image_config = tmp_path / "opt" / "landfall" / "config" / "landfall.yaml"
    monkeypatch.setenv("LANDFALL_CONFIG", str(image_config))
    monkeypatch.setenv("LANDFALL_CODE_ROOT", str(tmp_path / "opt" / "landfall" / "pipelines"))
    assert trainer._code_root("tiers_code") == (image_config.parent / "tiers_code").resolve()
    assert trainer._code_root(str(tmp_path / "abs")) == (tmp_path / "abs").resolve()  # a worker's
    assert trainer._code_root(None) == tmp_path / "opt" / "landfall" / "pipelines"
