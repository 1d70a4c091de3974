"""`landfall`: run the embedded stack and drive the pipeline from a shell."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import click

from landfall.settings import ConfigError, get_settings


def _stack():
    from landfall.stack.launcher import Stack

    try:
        return Stack(get_settings(), echo=click.echo)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


@click.group(help=__doc__)
def main() -> None:
    pass


@main.command()
def up() -> None:
    """Start S3, MLflow and Airflow on 127.0.0.1 (a no-op when they are healthy)."""
    from landfall.stack.launcher import StackError

    stack = _stack()
    click.echo("Starting the Landfall stack ...")
    try:
        seconds = stack.up()
    except StackError as error:
        raise click.ClickException(str(error)) from None
    if seconds:
        click.echo(f"Landfall stack is up in {seconds:.1f}s.")
    click.echo(stack.summary())


@main.command()
def down() -> None:
    """Stop every process of the stack (data and logs are kept)."""
    stopped = _stack().down()
    click.echo("Landfall stack is down." if stopped else "Nothing was running.")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable: URL, PID and health per component.")
def status(as_json: bool) -> None:
    """Show each component's URL, PID and health; exit 1 unless all are healthy."""
    components = _stack().status()
    if as_json:
        click.echo(json.dumps([c.as_dict() for c in components], indent=2))
    else:
        for c in components:
            mark = "healthy" if c.healthy else ("running" if c.running else "down")
            click.echo(f"{c.name:<14} {mark:<8} pid={c.pid or '-':<8} {c.url or '':<24} {c.detail}")
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


def _parse_date(_ctx, _param, value: str) -> date:
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
def land(
    day: date, rows: int, seed: int | None, drift: float, corrupt: str | None, raw_key: str | None
) -> None:
    """Write a daily batch to the landing prefix of the running stack's S3."""
    from landfall.datagen import make_batch, make_corrupt, to_parquet
    from landfall.keys import landing_key

    stack = _stack()
    settings = stack.settings
    seed = seed if seed is not None else int(day.strftime("%Y%m%d"))
    body = make_corrupt(corrupt, seed) if corrupt else to_parquet(make_batch(rows, seed, drift))
    key = raw_key or landing_key(settings.storage, day)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = stack.s3_client().put_object(Bucket=settings.storage.datasets_bucket, Key=key, Body=body)
    except (BotoCoreError, ClientError) as error:
        raise click.ClickException(
            f"could not write s3://{settings.storage.datasets_bucket}/{key}: {error} "
            "(is the stack up? `landfall status`)"
        ) from None
    etag = response["ETag"].strip('"')
    click.echo(
        json.dumps(
            {
                "bucket": settings.storage.datasets_bucket,
                "key": key,
                "etag": etag,
                "bytes": len(body),
                "put_at": datetime.now(UTC).isoformat(),
            }
        )
    )


@main.command()
@click.option(
    "--date",
    "day",
    default=None,
    callback=lambda c, p, v: _parse_date(c, p, v) if v else None,
    help="Partition to land (default: today).",
)
@click.option("--timeout", default=600, show_default=True, help="Seconds to wait for the pipeline.")
def demo(day: date | None, timeout: float) -> None:
    """Bring the stack up, land one day of data and follow it through every DAG to the champion."""
    from landfall.airflow_api import AirflowApi
    from landfall.datagen import make_batch, to_parquet
    from landfall.follow import FollowResult, follow_chain, follow_landing
    from landfall.keys import landing_key
    from landfall.stack.launcher import StackError

    stack = _stack()
    click.echo("1/3 starting the stack ...")
    try:
        stack.up()
    except StackError as error:
        raise click.ClickException(str(error)) from None
    day = day or datetime.now(UTC).date()
    settings = stack.settings
    key = landing_key(settings.storage, day)
    # A fresh seed each time: the same bytes again would (rightly) not be reported twice by the watcher.
    body = to_parquet(make_batch(5000, seed=int(time.time())))
    click.echo(f"2/3 landing s3://{settings.storage.datasets_bucket}/{key} ({len(body)} bytes) ...")
    put_at = time.time()
    etag = stack.s3_client().put_object(Bucket=settings.storage.datasets_bucket, Key=key, Body=body)["ETag"]
    click.echo("3/3 following the pipeline (the S3 watcher in the triggerer starts it) ...")
    api = AirflowApi(stack.airflow_url, "admin", stack.state.secrets().admin_password)

    def fail(result: FollowResult, what: str) -> click.ClickException:
        failed = [name for name, state in result.tasks.items() if state in ("failed", "upstream_failed")]
        logs = Path(stack.state.airflow_home) / "logs" / f"dag_id={result.dag_id}" / f"run_id={result.run_id}"
        return click.ClickException(
            f"{what}: {result.dag_id} {result.state}, tasks {failed or '-'}; logs: {logs}"
        )

    started = time.monotonic()
    try:
        ingest = follow_landing(api, key, etag.strip('"'), timeout_s=timeout, echo=click.echo)
        if ingest.state != "success" or ingest.outcome != "ingested":
            raise fail(ingest, f"the landing was {ingest.outcome}")
        chain = follow_chain(api, day.isoformat(), ingest.queued_at, timeout_s=timeout, echo=click.echo)
    except TimeoutError as error:
        raise click.ClickException(str(error)) from None
    if chain[-1].state != "success":
        raise fail(chain[-1], "the pipeline stopped")

    evaluation = next(
        (e["extra"] for e in api.events_of("evaluation") if e.get("partition_key") == day.isoformat()), {}
    )
    promoted = chain[-1].tasks.get("promote") == "success"
    click.echo(
        f"\nPUT -> ingest run queued {ingest.queued_at.timestamp() - put_at:.1f}s; "
        f"PUT -> end of deploy {time.monotonic() - started:.0f}s"
    )
    click.echo(f"Decision: {'DEPLOYED' if promoted else 'not deployed'} - {evaluation.get('reason', '?')}")
    os.environ.update(stack.environment())
    from landfall import registry

    champion = registry.champion(settings.mlflow.model_name)
    if champion is not None:
        click.echo(
            f"Champion: {settings.mlflow.model_name} version {champion.version} (run {champion.run_id}), "
            f"{evaluation.get('metric', 'score')} "
            f"{evaluation.get('new_score' if promoted else 'baseline_score', float('nan')):.4f} "
            f"-> {stack.mlflow_url}/#/models/{settings.mlflow.model_name}"
        )
    click.echo(stack.summary())


if __name__ == "__main__":
    main()


@main.command()
@click.option(
    "--landings", default=20, show_default=True, type=click.IntRange(1), help="Single landings timed."
)
@click.option("--burst", default=50, show_default=True, type=click.IntRange(1), help="Files in the burst.")
@click.option(
    "--sensor-samples",
    default=3,
    show_default=True,
    type=click.IntRange(0),
    help="Landings per classic S3KeySensor DAG (0 skips the comparison and its ~6 minutes).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="VAR=VALUE",
    help="Extra environment for the benchmark stack, e.g. LANDFALL_WATCHER__POLL_INTERVAL_S=1.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Results JSON.")
@click.option("--keep", is_flag=True, help="Leave the benchmark stack running afterwards.")
def bench(
    landings: int, burst: int, sensor_samples: int, overrides: tuple[str, ...], out: Path | None, keep: bool
) -> None:
    """Measure event latency, orchestration overhead and scale on a fresh stack of its own.

    Prints a table and writes bench/results.json. Takes about 12 minutes on a 2-core machine.
    """
    from landfall.bench import RESULTS_PATH, BenchOptions, run_bench

    extra = {}
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not VAR=VALUE", param_hint="--set")
        extra[name] = value
    options = BenchOptions(
        landings=landings,
        burst=burst,
        sensor_samples=sensor_samples,
        out=out or RESULTS_PATH,
        keep_stack=keep,
        overrides=extra,
    )
    run_bench(options, echo=click.echo)


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
    from landfall.podspec import render_pods as render

    # Parsing DAGs imports Airflow: keep its home in the state folder, not ~/airflow.
    os.environ.setdefault("AIRFLOW_HOME", str(get_settings().stack.state_path / "airflow"))
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
