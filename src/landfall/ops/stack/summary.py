"""What `landfall up` and `landfall demo` print when they end: where each part of the stack answers and
how to log in (the stack's own URLs and secrets, never a literal)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from landfall.ops.stack.launcher import Stack


def summary(stack: Stack) -> str:
    secrets = stack.state.secrets()
    storage = stack.settings.storage
    return "\n".join(
        [
            f"Airflow UI   {stack.airflow_url}   (login: admin / {secrets.admin_password})",
            f"  Asset graph: {stack.airflow_url}/assets",
            f"MLflow UI    {stack.mlflow_url}   (login: admin / the same password)",
            f"Scoring      {stack.ctx.serving_url}/v1/models/{stack.settings.pipeline}/predict   "
            "(Bearer token: `landfall env`, "
            "LANDFALL_SERVING_TOKEN)",
            f"S3 endpoint  {stack.s3_endpoint}   (landing: s3://{storage.datasets_bucket}/"
            f"{storage.landing_prefix}/<YYYY-MM-DD>/{storage.landing_filename})",
            f"Logs         {stack.state.logs}",
            'Shell        eval "$(landfall env)"   # airflow, mlflow and aws/boto3 then use this stack',
            "Land more    landfall land --date D [--parts N (then _SUCCESS)] [--hour H (one hour of D)]",
        ]
    )
