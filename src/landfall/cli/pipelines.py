"""`landfall new-pipeline`: a pipeline of the user's own table, from a sample file."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("new-pipeline")
@click.argument("name")
@click.option(
    "--sample",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A parquet or CSV file of your table (a few hundred rows or more).",
)
@click.option("--label", required=True, help="The column to predict.")
@click.option(
    "--task",
    type=click.Choice(["binary", "multiclass", "regression"]),
    default=None,
    help="What the label is (default: from the sample: two classes, more classes, or numbers).",
)
@click.option("--id", "id_column", default=None, help="The column naming a row (default: a unique column).")
@click.option(
    "--code-path",
    default=None,
    help="Keep the pipeline's module in this folder, relative to the config file (default: pipelines/).",
)
def new_pipeline(
    name: str, sample: Path, label: str, task: str | None, id_column: str | None, code_path: str | None
) -> None:
    """Add a pipeline for your own table to the config, with a module whose `fit` trains a sound default.

    Infers the schema from the sample (dtypes, categories, the id column; bounds a normal next day passes),
    appends the pipeline to the project's config file (or $LANDFALL_CONFIG's), writes its module and checks
    that the project loads. Nothing is changed when it does not."""
    from landfall.core.pipeline_settings import PIPELINE_NAME
    from landfall.core.settings import (
        ConfigError,
        code_root,
        config_file,
        get_project,
        get_settings,
        load_project,
    )
    from landfall.ops.new_pipeline import CannotInfer, append_block, infer
    from landfall.pipeline.user_files import UnreadableFile, read_table

    if not PIPELINE_NAME.match(name):
        raise click.BadParameter(
            "lower-case letters, digits and single _, starting with a letter, at most 40", param_hint="NAME"
        )
    import importlib.util

    if importlib.util.find_spec(name) is not None:
        # The module `pipelines/<name>.py` would shadow (or be shadowed by) an importable module.
        raise click.BadParameter(
            f"{name!r} is already an importable module (Python's or a library's): choose another name",
            param_hint="NAME",
        )
    try:
        new = infer(name, read_table(sample), label, task, id_column)
        if code_path:
            new.block["code_path"] = code_path
        config = config_file()
        text = append_block(config, new)
    except (UnreadableFile, CannotInfer) as error:
        raise click.ClickException(str(error)) from None
    module = code_root(code_path) / f"{name}.py"
    if module.exists():
        raise click.ClickException(f"{module} exists already: move it away or choose another name")
    original = config.read_text()
    config.write_text(text)
    module.parent.mkdir(parents=True, exist_ok=True)
    module.write_text(new.module)
    try:
        load_project(strict=True)
    except ConfigError as error:
        config.write_text(original)
        module.unlink()
        raise click.ClickException(
            f"the new pipeline does not load, so nothing was changed:\n{error}"
        ) from None
    finally:
        get_project.cache_clear()
        get_settings.cache_clear()
    click.echo(f"Added the {new.task} pipeline {name!r} to {config} and wrote {module}.")
    click.echo("Next:")
    click.echo("  landfall up                    # applies it to a running stack too")
    click.echo(f"  landfall land --pipeline {name} --file {sample} --date YYYY-MM-DD")
    click.echo(f"  landfall status               # then the Airflow UI: the {name} asset group")
