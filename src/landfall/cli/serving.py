"""`landfall rollback` and `landfall render-serving`: the scoring service's commands."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

import click
import yaml


@click.command()
@click.option(
    "--to", "to_version", default=None, help="The model version to serve (default: the previous champion)."
)
@click.option(
    "--reason",
    default="rolled back from the command line",
    show_default=True,
    help="Why; recorded as a tag on both versions and in the alert.",
)
@click.option("--timeout", default=300, show_default=True, help="Seconds to wait for the rollback run.")
@click.option(
    "--pipeline", default=None, metavar="NAME", help="Whose champion (required when several are configured)."
)
def rollback(to_version: str | None, reason: str, timeout: float, pipeline: str | None) -> None:
    """Move the `champion` alias back and have the scoring service serve it.

    Runs the pipeline's rollback DAG (the same pool as promotions, so the two never interleave) and follows
    it; the Airflow UI shows the run."""
    from landfall.cli import _stack
    from landfall.ops.rollback import RollbackFailed, request_rollback

    if to_version is not None and not to_version.isdigit():
        raise click.BadParameter(f"{to_version!r} is not a model version number", param_hint="--to")
    stack = _stack(pipeline, required=True)
    try:
        result = request_rollback(
            stack.settings.names.rollback_dag,
            stack.api(),
            stack.s3_client(),
            to_version,
            reason,
            f"{getpass.getuser()} (landfall rollback)",
            timeout,
            click.echo,
        )
    except RollbackFailed as error:
        raise click.ClickException(str(error)) from None
    rolled, activation = result["rollback"], result["activation"]
    if rolled.get("moved", True):
        click.echo(
            f"Rolled back {rolled['model_name']}: v{rolled['rolled_back_from']} -> v{rolled['version']} "
            f"({rolled['reason']})"
        )
    else:
        click.echo(
            f"Nothing moved ({rolled.get('result')}): "
            f"{rolled['model_name']}'s champion is v{rolled['version']}"
        )
    if activation:
        click.echo(
            f"The scoring service serves v{activation['served_version']} "
            f"({activation['alias_to_serving_s']:.1f} s after the alias moved)."
        )
    else:
        click.echo("The scoring service has not confirmed it yet; it follows the alias once it is reachable.")


@click.command("render-serving")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the scoring service's Deployment and Service manifests.",
)
def render_serving(out: Path) -> None:
    """Render the scoring service's Kubernetes Deployment and Service from config (no cluster)."""
    from landfall.airflow.serving_k8s import deployment_manifest, service_manifest
    from landfall.cli import _settings

    settings = _settings()
    os.environ.setdefault("AIRFLOW_HOME", str(settings.stack.state_path / "airflow"))
    out.mkdir(parents=True, exist_ok=True)
    for name, manifest in (
        ("deployment", deployment_manifest(settings)),
        ("service", service_manifest(settings)),
    ):
        path = out / f"serving-{name}.yaml"
        path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        click.echo(f"wrote {path}")
