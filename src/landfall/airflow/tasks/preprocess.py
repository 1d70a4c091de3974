"""The body of the preprocess DAG's task: the current raw version of a partition becomes features and a
three-way split under the processed prefix (large data never travels through XCom: URIs do)."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from landfall.airflow.tasks.ingest import s3_client
from landfall.core.settings import get_settings
from landfall.pipeline import s3 as s3ops
from landfall.pipeline.keys import processed_head_key, processed_key, statistics_key
from landfall.pipeline.prepare import prepare
from landfall.pipeline.publish import advance_ordered_head, current_head, raw_partitions

log = logging.getLogger(__name__)


def raw_partition(pipeline: str, extra: dict[str, Any], partition: str) -> dict[str, Any]:
    """The partition this run prepares: the head the raw event published, checked against the current
    head (a newer landing of the day may have been published since; it has a run of its own)."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    published = raw_partitions(extra).get(partition)
    if published is None:
        raise AirflowFailException(f"the raw_daily event carries no partition {partition!r}")
    settings = get_settings(pipeline)
    head = current_head(s3_client(settings), settings.storage, partition)
    if head is not None and head["version"] != published["version"]:
        raise AirflowSkipException(
            f"{partition}: version {published['version']} was superseded by {head['version']}, "
            "which has its own preprocess run"
        )
    return published


def preprocess(pipeline: str, raw: dict[str, Any], partition: str) -> dict[str, Any]:
    """Raw version (one or many files) -> features + train/validation/test splits and the canary sample
    under the processed prefix, streamed through local files in bounded memory; then the partition's
    processed head names it, unless a newer raw version's preprocessing got there first."""
    from airflow.sdk.exceptions import AirflowFailException

    from landfall.pipeline.features import feature_builder, fingerprint
    from landfall.pipeline.user_code import UserCodeError

    settings = get_settings(pipeline)
    storage, training = settings.storage, settings.training
    s3 = s3_client(settings)
    try:  # the pipeline's features function, imported from its code folder now (never at parse time)
        build = feature_builder(settings.features, settings.landing, settings.code_root)
        features_by = fingerprint(settings.features, settings.code_root)
    except UserCodeError as error:
        raise AirflowFailException(str(error)) from error
    bucket = storage.datasets_bucket
    sources = [str(uri) for uri in raw.get("files") or [raw["uri"]]]
    with tempfile.TemporaryDirectory(prefix="landfall-preprocess-") as scratch:
        local = []
        for index, uri in enumerate(sources):
            source_bucket, _, key = uri.removeprefix("s3://").partition("/")
            path = Path(scratch) / f"raw-{index:05d}.parquet"
            s3ops.download_file(s3, source_bucket, key, path)
            local.append(path)
        out_dir = Path(scratch) / "out"
        out_dir.mkdir()
        try:
            prepared = prepare(
                local,
                settings.landing,
                training.validation_fraction,
                training.test_fraction,
                settings.deploy.canary_rows,
                out_dir,
                task=training.task,
                build=build,
            )
        except UserCodeError as error:  # the features function failed on this day's rows: not retried
            raise AirflowFailException(f"{partition}: {error}") from error
        uris = {}
        for name, path in prepared.files.items():
            target = processed_key(storage, partition, raw["version"], name)
            s3ops.upload_file(s3, bucket, target, path, ContentType="application/vnd.apache.parquet")
            uris[f"{name}_uri"] = f"s3://{bucket}/{target}"
        target = statistics_key(storage, partition, raw["version"])
        body = json.dumps(prepared.statistics, separators=(",", ":")).encode()  # 10,000 values a column
        s3ops.put_bytes(s3, bucket, target, body, ContentType="application/json")
        uris["statistics_uri"] = f"s3://{bucket}/{target}"
        if "error" in prepared.statistics:
            log.warning("Partition %s: no drift statistics (%s)", partition, prepared.statistics["error"])
    rows = {f"rows_{name}": count for name, count in prepared.rows.items()}
    log.info(
        "Partition %s (version %s, %d raw file(s)): %s rows, %d features",
        partition,
        raw["version"],
        len(sources),
        rows,
        len(prepared.features),
    )
    dataset = {
        "partition": partition,
        "version": raw["version"],
        **rows,
        # Rows and rows per label class of the whole partition: a day rolled up from its hours gets the
        # whole-day verdict (min_rows, both classes) from these, without reading its hours again.
        "rows": sum(prepared.rows.values()),
        "label_counts": prepared.label_counts,
        "features": prepared.features,
        # What built them: "schema", or the pipeline's function and its source hash (a window refuses to
        # mix days built by different functions).
        "features_by": features_by,
        "source_sha256": raw.get("sha256"),
        "backfill": bool(raw.get("backfill")),
        **uris,
    }
    head = {**dataset, "last_modified": raw.get("last_modified", 0), "etag": raw.get("etag", "")}
    if advance_ordered_head(s3, bucket, processed_head_key(storage, partition), head) is None:
        from airflow.sdk.exceptions import AirflowSkipException

        # A newer raw version of the partition was prepared meanwhile (and published by its own run):
        # publishing this one now would train on superseded data.
        raise AirflowSkipException(
            f"{partition}: version {raw['version']} was superseded while it was prepared; not published"
        )
    return dataset
