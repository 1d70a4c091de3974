"""`landfall`: run the embedded stack and drive the pipeline from a shell.

Thin: each command parses its options and calls one function of `landfall.ops`; settings are loaded
here, once, and handed down.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import click

from landfall.core.settings import ConfigError, ProjectSettings, Settings, load_project


def _project() -> ProjectSettings:
    """The whole config, strictly: any invalid pipeline stops a command (as `landfall check` shows)."""
    try:
        return load_project()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


def _settings(pipeline: str | None = None, *, required: bool = False) -> Settings:
    """One pipeline's settings: the named one; without a name the only one, or (with several, where a
    command may choose) the first, said on stderr."""
    project = _project()
    names = project.names()
    if pipeline is None:
        if len(names) > 1 and required:
            raise click.UsageError(
                f"name the pipeline with --pipeline NAME: the pipelines are {', '.join(names)}"
            )
        pipeline = names[0]
        if len(names) > 1:
            click.echo(f"pipeline {pipeline} (of {', '.join(names)}; --pipeline NAME for another)", err=True)
    elif pipeline not in names:
        raise click.BadParameter(f"no pipeline {pipeline!r}; the pipelines are {', '.join(names)}")
    return project.settings_for(pipeline)


def _stack(pipeline: str | None = None, *, required: bool = False):
    from landfall.ops.stack.launcher import Stack

    return Stack(_settings(pipeline, required=required), echo=click.echo)


pipeline_option = click.option(
    "--pipeline",
    default=None,
    metavar="NAME",
    help="The pipeline (a key of `pipelines:` in config); default: the only one, or the first.",
)


@click.group(help=__doc__.splitlines()[0])
def main() -> None:
    pass


@main.command()
def up() -> None:
    """Start S3, MLflow and Airflow on 127.0.0.1 (a no-op when they are healthy)."""
    from landfall.ops.stack.launcher import StackError
    from landfall.ops.stack.summary import summary

    stack = _stack()
    click.echo("Starting the Landfall stack ...")
    try:
        seconds = stack.up()
    except StackError as error:
        raise click.ClickException(str(error)) from None
    if seconds:
        click.echo(f"Landfall stack is up in {seconds:.1f}s.")
    click.echo(summary(stack))


@main.command()
def check() -> None:
    """Say whether the config is valid, pipeline by pipeline (no stack needed); exit 1 if it is not."""
    from landfall.ops.config_check import check_config

    valid, lines = check_config()
    click.echo("\n".join(lines))
    if not valid:
        sys.exit(1)


@main.command()
def down() -> None:
    """Stop every process of the stack (data and logs are kept)."""
    stopped = _stack().down()
    click.echo("Landfall stack is down." if stopped else "Nothing was running.")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable: URL, PID, health and restarts.")
@click.option(
    "--pipeline",
    default=None,
    metavar="NAME",
    help="Also where this pipeline stands: its chain's newest runs, its champion and the served version.",
)
def status(as_json: bool, pipeline: str | None) -> None:
    """Show each component's URL, PID, health and restarts; exit 1 unless all are healthy."""
    stack = _stack(pipeline)
    components = stack.status()
    standing = None
    if pipeline is not None and all(c.healthy for c in components):
        from landfall.ops.pipeline_status import pipeline_status

        standing = pipeline_status(stack, stack.api())
    if as_json:
        listed = [c.as_dict() for c in components]
        click.echo(
            json.dumps(listed if pipeline is None else {"components": listed, "pipeline": standing}, indent=2)
        )
    else:
        for c in components:
            mark = "healthy" if c.healthy else c.state.lower()
            restarts = f" restarted {c.restarts}x (last: {c.last_exit})" if c.restarts else ""
            click.echo(f"{c.name:<14} {mark:<9} pid={c.pid or '-':<8} {c.url or '':<24} {c.detail}{restarts}")
        if standing is not None:
            from landfall.ops.pipeline_status import status_lines

            click.echo("\n".join(status_lines(standing)))
        elif pipeline is not None:
            click.echo(f"pipeline {pipeline}: not shown while a component is unhealthy")
    sys.exit(0 if all(c.healthy for c in components) else 1)


@main.command()
@click.argument("component", required=False)
@click.option("-n", "--lines", default=40, show_default=True)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
def logs(component: str | None, lines: int, follow: bool) -> None:
    """Print the end of a component's log (all components when none is named)."""
    stack = _stack()
    names = [component] if component else list(stack.components)
    for name in names:
        if name not in (*stack.components, "db-migrate"):
            raise click.BadParameter(f"choose one of {', '.join(stack.components)}, db-migrate")
    paths = [stack.state.logs / f"{name}.log" for name in names]
    for path in paths:
        click.echo(f"==> {path} <==")
        if path.exists():
            click.echo("\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
    if follow:
        os.execvp("tail", ["tail", "-n", "0", "-F", *map(str, paths)])


@main.command()
def env() -> None:
    """Print `export` lines: eval "$(landfall env)" points airflow, mlflow and boto3 at the stack."""
    for name, value in _stack().environment().items():
        click.echo(f"export {name}={shlex.quote(value)}")


def _parse_date(_ctx: object, _param: object, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a YYYY-MM-DD date") from None


@main.command()
@click.option("--date", "day", required=True, callback=_parse_date, help="Partition date, YYYY-MM-DD.")
@click.option("--rows", default=5000, show_default=True, type=click.IntRange(1, 10_000_000))
@click.option("--seed", default=None, type=int, help="Random seed (default: derived from the date).")
@click.option(
    "--drift",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 5),
    help="0 = reference population; larger values shift features and the label rule.",
)
@click.option(
    "--corrupt",
    type=click.Choice(["schema", "nulls", "empty", "garbage"]),
    help="Write a bad file instead, to see the quarantine path.",
)
@click.option(
    "--key", "raw_key", default=None, help="Land under this exact key instead (to try hostile keys)."
)
@click.option(
    "--parts",
    default=None,
    type=click.IntRange(1, 10_000),
    help="Land a multi-part day: this many part-*.parquet files of --rows rows each, then _SUCCESS.",
)
@click.option(
    "--hour",
    default=None,
    type=click.IntRange(0, 23),
    help="Land one hour of the day, under daily/<date>/<HH>/ (the day trains once its 24 hours are in).",
)
@click.option(
    "--file",
    "table",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Land your own parquet or CSV file (as parquet, typed by the pipeline's schema) instead.",
)
@pipeline_option
def land(
    pipeline: str | None,
    day: date,
    rows: int,
    seed: int | None,
    drift: float,
    corrupt: str | None,
    raw_key: str | None,
    parts: int | None,
    hour: int | None,
    table: Path | None,
) -> None:
    """Write a day of sample rows (made from the pipeline's schema), or your own file, to its landing
    prefix in S3."""
    from botocore.exceptions import BotoCoreError, ClientError

    from landfall.ops.landings import land_day, land_parts, put_landing
    from landfall.pipeline.datagen import make_corrupt, sample_batch, to_parquet
    from landfall.pipeline.user_files import UnreadableFile, conform, read_table

    if parts is not None and (raw_key or corrupt):
        raise click.UsageError("--parts lands a well-formed multi-part day: it takes no --key or --corrupt")
    if table is not None and (parts is not None or corrupt):
        raise click.UsageError("--file lands your file as one day's file: it takes no --parts or --corrupt")
    stack = _stack(pipeline)
    storage, landing, task = stack.settings.storage, stack.settings.landing, stack.settings.training.task
    if seed is None:  # from the date (and hour): small enough that part seeds keep ids in int64
        seed = int(day.strftime("%Y%m%d")) * (1 if hour is None else 25) + (0 if hour is None else hour + 1)
    s3 = stack.s3_client()
    try:
        if parts is not None:
            # Each part its own seed, so customer ids do not repeat across the parts of a day.
            bodies = (
                to_parquet(sample_batch(landing, rows, seed * 1000 + index, drift, task))
                for index in range(parts)
            )
            landed = land_parts(s3, storage, day, bodies, hour)
        else:
            if table is not None:
                try:
                    good = to_parquet(conform(read_table(table), landing))
                except UnreadableFile as error:
                    raise click.ClickException(str(error)) from None
            else:
                good = to_parquet(sample_batch(landing, rows, seed, drift, task))
            body = make_corrupt(corrupt, seed, landing) if corrupt else good
            key_given = put_landing(s3, storage.datasets_bucket, raw_key, body) if raw_key else None
            landed = [key_given or land_day(s3, storage, day, body, hour)]
    except (BotoCoreError, ClientError) as error:
        raise click.ClickException(
            f"could not write to s3://{storage.datasets_bucket}: {error} (is the stack up? `landfall status`)"
        ) from None
    for item in landed:
        put_at = datetime.fromtimestamp(item.put_at, UTC).isoformat()
        click.echo(json.dumps({**item.as_dict(), "put_at": put_at}))


@main.command()
@click.option("--date", "day", default=None, callback=_parse_date, help="Partition to land (default: today).")
@click.option("--timeout", default=600, show_default=True, help="Seconds to wait for each pipeline.")
@click.option(
    "--pipeline",
    default=None,
    metavar="NAME",
    help="Only this pipeline (a key of `pipelines:` in config); default: every pipeline, one after another.",
)
def demo(day: date | None, timeout: float, pipeline: str | None) -> None:
    """Bring the stack up, land one day of data for each pipeline and follow it through every DAG to its
    champion and the scoring service."""
    from landfall.ops.demo import DemoFailed, champion_line, run_demo, serving_line
    from landfall.ops.stack.launcher import Stack, StackError
    from landfall.ops.stack.summary import summary

    project = _project()
    names = [_settings(pipeline).pipeline] if pipeline else project.names()
    stack = None
    for name in names:
        stack = Stack(project.settings_for(name), echo=click.echo)
        if len(names) > 1:
            click.echo(f"\n== pipeline {name} ==")
        try:
            result = run_demo(stack, day or datetime.now(UTC).date(), timeout, click.echo)
        except (StackError, DemoFailed) as error:
            raise click.ClickException(f"{name}: {error}") from None
        click.echo(
            f"\n{name}: PUT -> ingest run queued {result.put_to_queued_s:.1f}s; "
            f"PUT -> end of deploy {result.put_to_deploy_s:.0f}s"
        )
        click.echo(f"Decision: {'DEPLOYED' if result.promoted else 'not deployed'} - {result.reason}")
        if line := champion_line(stack):
            click.echo(line)
            click.echo(serving_line(stack))
    if stack is not None:
        click.echo(summary(stack))


@main.command("render-pods")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the manifests (one YAML per pod, under <dag_id>/).",
)
def render_pods(out: Path) -> None:
    """Render every KubernetesPodOperator task into the pod it would submit, with no cluster.

    The DAGs are parsed with compute.profile=kubernetes; mapped trials are expanded over the configured
    grid; each pod is built by the provider's own code (dry run), so review these before a deploy.
    """
    from landfall.airflow.podspec import render_pods as render

    settings = _settings()
    # Parsing DAGs imports Airflow: keep its home in the state folder, not ~/airflow.
    os.environ.setdefault("AIRFLOW_HOME", str(settings.stack.state_path / "airflow"))
    try:
        pods = render(out)
    except (RuntimeError, ConfigError) as error:
        raise click.ClickException(str(error)) from None
    for pod in pods:
        container = pod.manifest["spec"]["containers"][0]
        limits = container.get("resources", {}).get("limits", {})
        gpus = {k: v for k, v in limits.items() if "gpu" in k}
        click.echo(f"  {pod.path}  {pod.dag_id}.{pod.task_id}  image={container['image']}  gpus={gpus or 0}")
    click.echo(f"{len(pods)} pod manifest(s) written under {out}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable.")
@click.option("--pipeline", default=None, metavar="NAME", help="Only this pipeline's assets (default: all).")
def assets(as_json: bool, pipeline: str | None) -> None:
    """List the Asset graph from the REST API: each asset, its producer and consumer DAGs, its last event.

    `airflow assets list` crashes on Airflow 3.3.2 when an asset has a watcher (the landing asset does);
    this reads the same from the REST API."""
    from landfall.ops.assets import asset_graph, format_graph

    stack = _stack(pipeline)
    graph = asset_graph(stack.api())
    if pipeline:
        graph = [asset for asset in graph if asset.get("group") == stack.settings.names.asset_group]
    click.echo(json.dumps(graph, indent=2) if as_json else format_graph(graph))


def _register() -> None:
    from landfall.cli.bench import bench
    from landfall.cli.pipelines import new_pipeline
    from landfall.cli.serving import render_serving, rollback

    main.add_command(bench)
    main.add_command(new_pipeline)
    main.add_command(rollback)
    main.add_command(render_serving)


_register()
