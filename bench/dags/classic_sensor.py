"""The classic approach users migrate from, for `landfall bench` only: one DAG per poke interval whose
S3KeySensor pokes for the file, then does the work. The benchmark stack loads this folder as a second
DAG bundle; the user's stack never sees it.

`mode="reschedule"` frees the worker slot between pokes (with `poke` the six waiting sensors of a
benchmark would hold every LocalExecutor slot); the latency is set by `poke_interval` either way.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.sdk import Param, dag, task

from landfall.core.settings import get_settings

# 300 s as commonly written; 30 s is the default minimum interval of Dagster sensors.
POKE_INTERVALS_S = (300, 30)


def classic_dag(poke_interval_s: int):
    storage = get_settings("churn").storage

    @dag(
        dag_id=f"landfall_classic_sensor_{poke_interval_s}s",
        schedule=None,
        catchup=False,
        params={"key": Param("", type="string", description="the S3 key the sensor waits for")},
        tags=["landfall", "benchmark"],
        doc_md=__doc__,
    )
    def classic():
        wait = S3KeySensor(
            task_id="wait_for_file",
            bucket_name=storage.datasets_bucket,
            bucket_key="{{ params.key }}",
            aws_conn_id=storage.aws_conn_id,
            poke_interval=poke_interval_s,
            mode="reschedule",
            timeout=timedelta(minutes=30),
        )

        @task
        def validate(params=None) -> dict:
            """The work the sensor was waiting for: the same validation the event-driven ingest runs."""
            import boto3

            from landfall.pipeline.validation import validate_batch

            settings = get_settings("churn")
            body = boto3.client("s3").get_object(Bucket=settings.storage.datasets_bucket, Key=params["key"])
            report = validate_batch(body["Body"].read(), settings.landing)
            return {"key": params["key"], "problems": [p.code for p in report.problems]}

        wait >> validate()

    return classic()


for interval in POKE_INTERVALS_S:
    classic_dag(interval)
