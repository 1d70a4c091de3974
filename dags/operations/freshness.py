"""Freshness: each day at 00:00 UTC a run starts that waits (deferred, no worker slot) for the day just
ended to be ingested, i.e. for its raw partition (or one of its hours') to be published. If that has
not happened by `landing.expected_by` (UTC) a deadline alert names the day: nothing valid arrived, it
was quarantined, or it is stuck before publish. A daily landing ends the run there; it gives up after
two days.

A day landed hour by hour is trained once its 24th hour is processed. If hours are still missing at
`landing.expected_by`, this run rolls up the hours that are there (`training_dataset` for the day, the
missing hours named in it) and alerts naming the missing hours: a partial day never blocks training. A
rolled-up day that fails the whole-day checks (min_rows, both label classes) is refused instead:
`report_refused_day` raises its `quarantine` event and the alert, and nothing trains on it. A rolled-up
day gets its drift report here, as a day preprocess publishes does.

With `training.retrain: on_drift`, the same daily run retrains a champion older than
`training.max_age_days` on the newest day's window, even when no day drifted (`retrain_stale_champion`).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import CronTriggerTimetable, dag, task

from assets import PIPELINES, PipelineAssets
from landfall.airflow.deadline_sensor import DeadlineSensor
from landfall.airflow.deadlines import freshness_deadline
from landfall.core.catalog import DRIFT_TASK, LATE_ROLLUP_TASK, STALE_CHAMPION_TASK
from landfall.pipeline.keys import raw_head_key


def freshness_dag(pipeline: PipelineAssets):
    name, settings = pipeline.name, pipeline.settings
    datasets, quarantine = pipeline.training_dataset, pipeline.quarantine

    @dag(
        dag_id=pipeline.names.freshness_dag,
        schedule=CronTriggerTimetable("0 0 * * *", timezone="UTC"),
        catchup=False,
        max_active_runs=3,
        deadline=freshness_deadline(name, settings.landing.expected_by),
        tags=["landfall", name, "operations", "deadline"],
        doc_md=__doc__,
    )
    def landfall_freshness():
        day = "{{ macros.ds_add(ds, -1) }}"  # the day before the run's date: the day that just ended
        ingested = S3KeySensor(
            task_id="wait_for_raw_partition",
            # The day's raw head, or one of its hours' (raw/date=<day>T<HH>/_head.json), written by publish.
            bucket_key=raw_head_key(settings.storage, day + "*"),
            wildcard_match=True,
            bucket_name=settings.storage.datasets_bucket,
            aws_conn_id=settings.storage.aws_conn_id,
            deferrable=True,
            poke_interval=60,
            timeout=timedelta(days=2).total_seconds(),
            inlets=[pipeline.raw],
        )

        @task.short_circuit
        def landed_hourly(watched: str) -> bool:
            """Only a day landed hour by hour waits for its deadline; a daily landing ends the run here."""
            from landfall.airflow.tasks.rollup import raw_heads

            return raw_heads(name, watched)[1]

        deadline = DeadlineSensor(
            task_id="wait_for_deadline",
            target_time="{{ ds }}T" + settings.landing.expected_by.isoformat() + "+00:00",
        )

        @task(multiple_outputs=False, task_id=LATE_ROLLUP_TASK, outlets=[datasets])
        def roll_up_late_day(watched: str, outlet_events=None, run_id=None) -> dict:
            """The hours there at the deadline, rolled up for training; an alert names the missing ones."""
            from landfall.airflow.tasks.rollup import late_rollup

            rollup = late_rollup(name, watched, run_id)
            outlet_events[datasets].add_partitions([watched])
            outlet_events[datasets].extra = rollup
            return rollup

        @task(multiple_outputs=False, outlets=[quarantine], trigger_rule="all_skipped")
        def report_refused_day(outlet_events=None, run_id=None, ti=None) -> dict:
            """The quarantine event and alert of a day the deadline rollup refused (no training for it)."""
            from landfall.airflow.tasks.rollup import REFUSED_DAY_KEY, report_refused_day

            refused = ti.xcom_pull(task_ids=LATE_ROLLUP_TASK, key=REFUSED_DAY_KEY)
            return report_refused_day(name, refused, outlet_events[quarantine], run_id)

        @task(multiple_outputs=False, task_id=DRIFT_TASK, outlets=[pipeline.drift_report], retries=0)
        def compare_with_reference(published: dict, outlet_events=None) -> dict:
            """The rolled-up day against the champion's training window, as for a day preprocess
            published (an `on_drift` train run of the day waits for this report)."""
            from landfall.airflow.tasks.drift import drift_report

            return drift_report(name, published, outlet_events[pipeline.drift_report])

        @task(multiple_outputs=False, task_id=STALE_CHAMPION_TASK, inlets=[datasets], outlets=[datasets])
        def retrain_stale_champion(inlet_events=None, outlet_events=None) -> dict:
            """training.retrain: on_drift: a champion older than training.max_age_days is retrained on
            the newest day's window (its training_dataset event raised again); skips otherwise."""
            from landfall.airflow.tasks.retrain import retrain_stale_champion

            newest_first = inlet_events[datasets].ascending(False).limit(50)
            return retrain_stale_champion(name, newest_first, outlet_events[datasets])

        retrain_stale_champion()
        rolled_up = ingested >> landed_hourly(day) >> deadline >> roll_up_late_day(day)
        compare_with_reference(rolled_up)
        # report_refused_day is skipped when the rollup failed (all_skipped): this leaf fails the run then.
        rolled_up >> [report_refused_day(), EmptyOperator(task_id="late_day_rolled_up")]

    return landfall_freshness()


for _pipeline in PIPELINES:
    freshness_dag(_pipeline)
