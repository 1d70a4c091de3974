"""The single-pipeline config of Landfall before `pipelines:` is refused, with the block it becomes.

Loading it silently would be worse than refusing: its top-level `landing`, `training`, `deploy` and
`mlflow` sections (and the landing and data prefixes under `storage`) now belong to a pipeline, and
environment variables such as `LANDFALL_TRAINING__...` would be ignored without a word.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

PIPELINE_SECTIONS = ("landing", "training", "deploy", "mlflow")
PIPELINE_STORAGE_KEYS = (
    "landing_prefix",
    "landing_filename",
    "landing_part_glob",
    "landing_marker",
    "raw_prefix",
    "processed_prefix",
    "quarantine_prefix",
)
# Where the single pipeline kept its files: the converted block names them, so nothing moves.
_OLD_PREFIXES = {
    "landing_prefix": "daily",
    "raw_prefix": "raw",
    "processed_prefix": "processed",
    "quarantine_prefix": "quarantine",
    "ledger_prefix": "_landfall/landing-ledger",
}


def pipeline_name_for(old: Mapping[str, Any]) -> str:
    """A name for the converted pipeline: its registered model's, less `landfall-` (churn by default)."""
    model = str((old.get("mlflow") or {}).get("model_name") or "landfall-churn")
    name = re.sub(r"[^a-z0-9_]+", "_", model.lower().removeprefix("landfall-")).strip("_")
    return name if re.match(r"^[a-z][a-z0-9_]{0,39}$", name) else "main"


def converted(old: Mapping[str, Any]) -> dict[str, Any]:
    """The same settings in the `pipelines:` form."""
    name = pipeline_name_for(old)
    old_storage = dict(old.get("storage") or {})
    # The ledger too: the pipeline keeps the watcher's records where they are.
    moved = (*PIPELINE_STORAGE_KEYS, "ledger_prefix")
    shared_storage = {k: v for k, v in old_storage.items() if k not in moved}
    storage = {**_OLD_PREFIXES, **{k: v for k, v in old_storage.items() if k in moved}}
    pipeline: dict[str, Any] = {"storage": storage}
    for section in PIPELINE_SECTIONS:
        if old.get(section):
            pipeline[section] = dict(old[section])
    landing = pipeline.setdefault("landing", {})
    if "id_column" not in landing:
        columns = [str(c.get("name")) for c in landing.get("columns") or [] if isinstance(c, Mapping)]
        landing["id_column"] = "customer_id" if "customer_id" in columns else "<the column that names a row>"
    mlflow = pipeline.setdefault("mlflow", {})
    # Before pipelines the experiment and model names had these defaults; keep them.
    mlflow.setdefault("model_name", "landfall-churn")
    mlflow.setdefault("experiment", "landfall")
    rest = {k: v for k, v in old.items() if k not in (*PIPELINE_SECTIONS, "storage", "pipelines")}
    return {**({"storage": shared_storage} if shared_storage else {}), **rest, "pipelines": {name: pipeline}}


def _old_environment(environ: Mapping[str, str], name: str) -> list[str]:
    lines = []
    for variable in sorted(environ):
        upper = variable.upper()
        for section in PIPELINE_SECTIONS:
            if upper.startswith(f"LANDFALL_{section.upper()}__"):
                rest = upper.removeprefix("LANDFALL_")
                lines.append(f"  ${variable} is now $LANDFALL_PIPELINES__{name.upper()}__{rest}")
        for key in PIPELINE_STORAGE_KEYS:
            if upper == f"LANDFALL_STORAGE__{key.upper()}":
                new = f"LANDFALL_PIPELINES__{name.upper()}__STORAGE__{key.upper()}"
                lines.append(f"  ${variable} is now ${new}")
    return lines


def refuse_single_pipeline_form(path: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    """Raise ConfigError when the file or the environment is in the old single-pipeline form; return the
    file's content."""
    from landfall.core.settings import ConfigError

    try:
        old = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(old, dict):
        raise ConfigError(f"{path} must hold a mapping of sections (storage, pipelines, ...)")
    storage = old.get("storage") if isinstance(old.get("storage"), dict) else {}
    old_keys = [section for section in PIPELINE_SECTIONS if section in old]
    old_keys += [f"storage.{key}" for key in PIPELINE_STORAGE_KEYS if key in storage]
    names = list(old.get("pipelines") or {}) if isinstance(old.get("pipelines"), dict) else []
    name = names[0] if len(names) == 1 else pipeline_name_for(old)
    variables = _old_environment(environ, name)
    if not old_keys and not variables:
        return old
    message = [f"{path} is in the single-pipeline form of Landfall before `pipelines:`;"]
    if old_keys:
        message.append(
            f"{', '.join(old_keys)} now belong to a pipeline. The same settings as one pipeline "
            f"(replace the file's content with this block, nothing moves in S3 or MLflow):\n"
        )
        message.append(yaml.safe_dump(converted(old), sort_keys=False, default_flow_style=None))
    if variables:
        message.append("environment variables of a pipeline's settings are now named per pipeline:")
        message.extend(variables)
    raise ConfigError("\n".join(message))
