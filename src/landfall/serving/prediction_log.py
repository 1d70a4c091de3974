"""The served predictions, kept: every row the scoring service answered through predict or invocations
(not the canary's staging rows), with its request id, time, model version, the row's id, the row as
validated and its answer, written to S3 as parquet by a background thread.

A request only appends to a list under a lock. The writer wakes when `flush_rows` rows wait or
`flush_seconds` passed since the oldest, and writes one file per day of answer (UTC):
`<predictions_prefix>/date=<YYYY-MM-DD>/<first answer time>-<batch id>.parquet`. What S3 refuses stays
queued and is tried again at the next flush; beyond `max_pending_rows` the oldest rows are dropped and
counted as lost. `stop()` (a graceful shutdown) writes what waits; a killed process loses at most the
rows not written yet. The counts (`written_rows`, `pending_rows`, `lost_rows`, `failed_writes`) are in
`GET /v1/models`, and the first failed write of an outage raises an alert.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

COLUMNS = (
    "request_id",
    "answered_at",
    "pipeline",
    "model",
    "model_version",
    "run_id",
    "row_id",
    "row",
    "prediction",
    "probabilities",
)
"""The parquet columns. `row`, `prediction` and `probabilities` are JSON text: one file layout for every
pipeline's schema and task (a later reader parses them back into the pipeline's rows and answers)."""


@dataclass
class LogCounts:
    written_rows: int = 0
    written_files: int = 0
    pending_rows: int = 0
    lost_rows: int = 0
    failed_writes: int = 0
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Pending:
    records: list[dict[str, Any]] = field(default_factory=list)
    oldest: float | None = None  # time.monotonic() of the oldest waiting row


class PredictionLog:
    def __init__(
        self,
        pipeline: str,
        model: str,
        put: Callable[[str, bytes], None],
        prefix: str,
        id_column: str,
        flush_rows: int,
        flush_seconds: float,
        max_pending_rows: int,
        alert: Callable[[str, str, dict[str, Any]], Any] | None = None,
    ) -> None:
        self.pipeline, self.model, self.put, self.prefix, self.id_column = (
            pipeline,
            model,
            put,
            prefix,
            id_column,
        )
        self.flush_rows, self.flush_seconds, self.max_pending_rows = (
            flush_rows,
            flush_seconds,
            max_pending_rows,
        )
        self.alert = alert
        self.counts = LogCounts()
        self._pending = _Pending()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._in_outage = False
        self._retry_at = 0.0  # time.monotonic() before which a refused write is not tried again
        self._thread = threading.Thread(target=self._run, name=f"prediction-log-{pipeline}", daemon=True)

    # ---- the request side: cheap, never blocks on S3 ----------------------------------------------------

    def record(self, request_id: str, rows: list[dict[str, Any]], answer: dict[str, Any]) -> None:
        """Queue one answered request's rows (`answer` as the service sent it)."""
        answered_at = datetime.now(UTC).isoformat(timespec="microseconds")
        probabilities = answer.get("probabilities")
        records = [
            {
                "request_id": request_id,
                "answered_at": answered_at,
                "pipeline": self.pipeline,
                "model": self.model,
                "model_version": str(answer.get("version")),
                "run_id": answer.get("run_id"),
                "row_id": _plain_id(row.get(self.id_column)),
                "row": json.dumps(row, default=str),
                "prediction": json.dumps(prediction),
                "probabilities": json.dumps(probabilities[index]) if probabilities else None,
            }
            for index, (row, prediction) in enumerate(zip(rows, answer["predictions"], strict=True))
        ]
        if self._stopping.is_set():  # after the final write: nothing would write these
            self.counts.lost_rows += len(records)
            return
        with self._lock:
            first = self._pending.oldest is None
            if first:
                self._pending.oldest = time.monotonic()
            self._pending.records.extend(records)
            self._drop_overflow()
            self.counts.pending_rows = len(self._pending.records)
            full = len(self._pending.records) >= self.flush_rows
        if first or full:  # the writer counts flush_seconds from this row, or writes now
            self._wake.set()

    def _drop_overflow(self) -> None:
        over = len(self._pending.records) - self.max_pending_rows
        if over > 0:  # S3 refused for long: the oldest rows go, counted
            del self._pending.records[:over]
            self.counts.lost_rows += over

    # ---- the writer thread ---------------------------------------------------------------------------------

    def start(self) -> PredictionLog:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 4.0) -> None:
        """Write what waits, then stop the writer (a graceful shutdown loses nothing S3 accepts)."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        else:
            self.flush()
        if self._thread.is_alive():  # the last write outlasted the stop: say so, do not claim it done
            log.error(
                "Prediction log of %s: the last write did not finish in %.0fs", self.pipeline, timeout_s
            )
        log.info("Prediction log of %s stopped: %s", self.pipeline, self.counts.as_dict())

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                oldest, waiting = self._pending.oldest, len(self._pending.records)
            backing_off = self._retry_at - time.monotonic()
            if backing_off > 0:  # S3 refused the last write: not again before flush_seconds
                self._wake.wait(backing_off)
                self._wake.clear()
                continue
            due = None if oldest is None else oldest + self.flush_seconds - time.monotonic()
            if waiting >= self.flush_rows or (due is not None and due <= 0):
                self.flush()
                continue
            self._wake.wait(self.flush_seconds if due is None else due)
            self._wake.clear()
        self.flush()

    def flush(self) -> int:
        """Write every waiting row (one file per day); returns the rows written. Rows S3 refused go back
        to the front of the queue."""
        with self._lock:
            records, self._pending = self._pending.records, _Pending()
            self.counts.pending_rows = 0
        if not records:
            return 0
        written = 0
        failed: list[dict[str, Any]] = []
        for day, batch in _by_day(records).items():
            first = batch[0]["answered_at"][11:19].replace(":", "")  # HHMMSS: files list in answer order
            key = f"{self.prefix}/date={day}/{first}-{uuid.uuid4().hex[:12]}.parquet"
            try:
                self.put(key, _parquet(batch))
            except Exception as error:  # S3 away: keep the rows, count the failure, serving goes on
                failed.extend(batch)
                self._failed(error, len(batch))
            else:
                written += len(batch)
                self.counts.written_rows += len(batch)
                self.counts.written_files += 1
        if failed:
            with self._lock:
                self._pending.records[:0] = failed
                self._pending.oldest = time.monotonic()
                self._retry_at = time.monotonic() + self.flush_seconds  # tried again after flush_seconds
                self._drop_overflow()
                self.counts.pending_rows = len(self._pending.records)
        elif self._in_outage:
            self._in_outage = False
            log.info("Prediction log of %s writes again", self.pipeline)
        return written

    def _failed(self, error: Exception, rows: int) -> None:
        self.counts.failed_writes += 1
        self.counts.last_error = f"{type(error).__name__}: {error}"
        log.error(
            "Prediction log of %s: %d row(s) not written (%s); kept for the next flush",
            self.pipeline,
            rows,
            error,
        )
        if not self._in_outage:
            self._in_outage = True
            if self.alert is not None:
                self.alert(
                    "prediction_log_failed",
                    f"The scoring service cannot write {self.pipeline}'s prediction log to s3 "
                    f"({self.counts.last_error}): rows are kept in memory up to "
                    f"serving.log_max_pending_rows ({self.max_pending_rows}), then the oldest are lost",
                    {"pipeline": self.pipeline, "prefix": self.prefix},
                )


def _plain_id(value: Any) -> str | None:
    return None if value is None else str(value)


def _by_day(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    days: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        days.setdefault(record["answered_at"][:10], []).append(record)
    return days


def _parquet(records: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(records, schema=pa.schema([(name, pa.string()) for name in COLUMNS]))
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def read_log(body: bytes) -> list[dict[str, Any]]:
    """The records of one log file, `row`, `prediction` and `probabilities` parsed back."""
    import pyarrow.parquet as pq

    records = pq.read_table(io.BytesIO(body)).to_pylist()
    for record in records:
        for name in ("row", "prediction", "probabilities"):
            if record[name] is not None:
                record[name] = json.loads(record[name])
    return records


def s3_put(bucket: str) -> Callable[[str, bytes], None]:
    """A bounded S3 put to `bucket` with the process's credentials (AWS_* variables, as MLflow uses)."""
    import boto3

    from landfall.pipeline.s3 import call_bounds

    # Bounded well inside a graceful stop's grace period (the stack's 5 s; set Kubernetes' above it).
    client = boto3.client("s3", config=call_bounds(3.0).botocore_config())

    def put(key: str, body: bytes) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/vnd.apache.parquet")

    return put
