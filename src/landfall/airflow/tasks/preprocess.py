"""The body of the preprocess DAG's task: the current raw version of a partition becomes features and a
three-way split under the processed prefix (large data never travels through XCom: URIs do)."""

from __future__ import annotations

import io
import logging
from typing import Any

from landfall.airflow.tasks.ingest import s3_client
from landfall.core.settings import get_settings
from landfall.pipeline import s3 as s3ops
from landfall.pipeline.canary import CANARY_SPLIT, sample
from landfall.pipeline.features import split
from landfall.pipeline.keys import processed_key
from landfall.pipeline.publish import current_head, raw_partitions

log = logging.getLogger(__name__)


def raw_partition(extra: dict[str, Any], partition: str) -> dict[str, Any]:
    """The partition this run prepares: the head the raw event published, checked against the current
    head (a newer landing of the day may have been published since; it has a run of its own)."""
    from airflow.exceptions import AirflowFailException, AirflowSkipException

    published = raw_partitions(extra).get(partition)
    if published is None:
        raise AirflowFailException(f"the raw_daily event carries no partition {partition!r}")
    settings = get_settings()
    head = current_head(s3_client(settings), settings.storage, partition)
    if head is not None and head["version"] != published["version"]:
        raise AirflowSkipException(
            f"{partition}: version {published['version']} was superseded by {head['version']}, "
            "which has its own preprocess run"
        )
    return published


def preprocess(raw: dict[str, Any], partition: str) -> dict[str, Any]:
    """Raw version -> features + train/validation/test splits under the processed prefix."""
    import pandas as pd

    settings = get_settings()
    storage, training = settings.storage, settings.training
    s3 = s3_client(settings)
    bucket, _, key = str(raw["uri"]).removeprefix("s3://").partition("/")
    frame = pd.read_parquet(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    splits = split(frame, settings.landing, training.validation_fraction, training.test_fraction)
    uris, rows = {}, {}
    for name, part in splits.items():
        buffer = io.BytesIO()
        part.to_parquet(buffer, index=False)
        target = processed_key(storage, partition, raw["version"], name)
        s3ops.put_bytes(s3, storage.datasets_bucket, target, buffer.getvalue())
        uris[f"{name}_uri"] = f"s3://{storage.datasets_bucket}/{target}"
        rows[f"rows_{name}"] = len(part)
    # The deploy canary's rows: the head of the test split as clients send them (raw columns, no label).
    canary = sample(
        frame,
        settings.landing,
        training.validation_fraction,
        training.test_fraction,
        settings.deploy.canary_rows,
    )
    buffer = io.BytesIO()
    canary.to_parquet(buffer, index=False)
    target = processed_key(storage, partition, raw["version"], CANARY_SPLIT)
    s3ops.put_bytes(s3, storage.datasets_bucket, target, buffer.getvalue())
    uris["canary_uri"] = f"s3://{storage.datasets_bucket}/{target}"
    features = [c for c in splits["train"].columns if c != settings.landing.label]
    log.info(
        "Partition %s (version %s): %s rows, %d features", partition, raw["version"], rows, len(features)
    )
    return {
        "partition": partition,
        "version": raw["version"],
        **rows,
        "features": features,
        "source_sha256": raw.get("sha256"),
        **uris,
    }
