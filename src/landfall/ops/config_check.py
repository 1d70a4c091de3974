"""`landfall check`: the config's verdict, pipeline by pipeline, without a stack."""

from __future__ import annotations

from pathlib import Path

import yaml

from landfall.core.settings import ConfigError, config_file, load_project


def write_with_only(source: Path, target: Path, *pipelines: str) -> Path:
    """A copy of the config file `source` that keeps only the named pipelines, at `target`: a stack that
    exercises one chain (the benchmark's phases are churn's) without paying for the others."""
    config = yaml.safe_load(source.read_text())
    config["pipelines"] = {name: config["pipelines"][name] for name in pipelines}
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def check_config() -> tuple[bool, list[str]]:
    """(valid, the lines to print): each pipeline ok with where it lands and what it registers, or
    invalid with each problem naming its key and where to set it."""
    try:
        project = load_project(strict=False)
    except ConfigError as error:
        return False, [f"config: {config_file()}", str(error)]
    lines = [f"config: {config_file()}"]
    for settings in project.all_settings():
        storage = settings.storage
        lines.append(
            f"  {settings.pipeline}: ok (lands in s3://{storage.datasets_bucket}/{storage.landing_prefix}/, "
            f"registered model {settings.mlflow.model_name})"
        )
    for name, problems in project.broken.items():
        lines.append(f"  {name}: invalid")
        lines.extend(f"  {problem}" for problem in problems)
    valid = not project.broken
    lines.append(
        "valid" if valid else f"invalid: {len(project.broken)} pipeline(s) would not run (fix the keys above)"
    )
    return valid, lines
