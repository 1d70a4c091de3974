"""Freshness: each day at 00:00 UTC a run starts that waits (deferred, no worker slot) for the day just
ended to be ingested, i.e. for its raw partition to be published. If that has not happened by
`landing.expected_by` (UTC) a deadline alert names the day: nothing valid arrived, it was quarantined,
or it is stuck before publish. The run succeeds as soon as the day is there (and its deadline is
dropped); it gives up after two days.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.sdk import CronTriggerTimetable, dag

from assets import RAW
from landfall.airflow.deadlines import freshness_deadline
from landfall.core.settings import get_settings
from landfall.pipeline.keys import raw_head_key

settings = get_settings()


@dag(
    dag_id="landfall_freshness",
    schedule=CronTriggerTimetable("0 0 * * *", timezone="UTC"),
    catchup=False,
    max_active_runs=3,
    deadline=freshness_deadline(settings.landing.expected_by),
    tags=["landfall", "operations", "deadline"],
    doc_md=__doc__,
)
def landfall_freshness():
    S3KeySensor(
        task_id="wait_for_raw_partition",
        # The day before the run's date (the day that just ended): its raw head, written by publish.
        bucket_key=raw_head_key(settings.storage, "{{ macros.ds_add(ds, -1) }}"),
        bucket_name=settings.storage.datasets_bucket,
        aws_conn_id=settings.storage.aws_conn_id,
        deferrable=True,
        poke_interval=60,
        timeout=timedelta(days=2).total_seconds(),
        inlets=[RAW],
    )


landfall_freshness()
