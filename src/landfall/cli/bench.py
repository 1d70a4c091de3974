"""`landfall bench`: the benchmark's command (its many options would crowd the main CLI module)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--landings", default=20, show_default=True, type=click.IntRange(1), help="Single landings timed."
)
@click.option(
    "--burst",
    "bursts",
    multiple=True,
    type=click.IntRange(1),
    default=(50, 1000),
    show_default=True,
    help="Files in each burst phase (repeat the option for several).",
)
@click.option(
    "--sensor-samples",
    default=3,
    show_default=True,
    type=click.IntRange(0),
    help="Landings per classic S3KeySensor DAG (0 skips the comparison and its ~6 minutes).",
)
@click.option(
    "--serving-requests",
    default=20_000,
    show_default=True,
    type=click.IntRange(0),
    help="Requests in the scoring service's load test (8 clients; 0 skips the serving phase).",
)
@click.option(
    "--big-day",
    "big_days",
    multiple=True,
    type=click.FloatRange(0),
    default=(1.0, 2.0),
    show_default=True,
    help="GiB of a multi-part day timed from marker to training dataset (repeat; 0 skips the phase).",
)
@click.option(
    "--history-days",
    default=365,
    show_default=True,
    type=click.IntRange(0),
    help="Consecutive days landed at once and followed to the newest day's deploy (0 skips the phase).",
)
@click.option(
    "--watcher-objects",
    default=100_000,
    show_default=True,
    type=click.IntRange(0),
    help="Already-reported objects under the landing prefix in the watcher-scale phase (0 skips it).",
)
@click.option(
    "--event-path-landings",
    default=20,
    show_default=True,
    type=click.IntRange(0),
    help="Landings timed in queue mode and in list mode at 2 s and 1 s polls, a fresh stack each (0 skips).",
)
@click.option(
    "--event-path",
    "event_paths",
    multiple=True,
    type=click.Choice(["list_poll_2s", "list_poll_1s", "queue_rabbitmq"]),
    help="Only these event paths (repeat the option; default: all three).",
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
    landings: int,
    bursts: tuple[int, ...],
    sensor_samples: int,
    serving_requests: int,
    big_days: tuple[float, ...],
    history_days: int,
    watcher_objects: int,
    event_path_landings: int,
    event_paths: tuple[str, ...],
    overrides: tuple[str, ...],
    out: Path | None,
    keep: bool,
) -> None:
    """Measure event latency, orchestration overhead and scale on a fresh stack of its own.

    Prints a table and writes bench/results.json.
    """
    from landfall.ops.bench import RESULTS_PATH, BenchOptions, run_bench

    extra = {}
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not VAR=VALUE", param_hint="--set")
        extra[name] = value
    options = BenchOptions(
        landings=landings,
        bursts=bursts,
        sensor_samples=sensor_samples,
        serving_requests=serving_requests,
        big_days_gib=big_days,
        history_days=history_days,
        watcher_objects=watcher_objects,
        event_path_landings=event_path_landings,
        event_paths=event_paths,
        out=out or RESULTS_PATH,
        keep_stack=keep,
        overrides=extra,
    )
    run_bench(options, echo=click.echo)
