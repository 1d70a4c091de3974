"""The S3 operations the pipeline relies on, each with its protocol quirks handled here and only here.

Works on any boto3-compatible client (AWS S3, SeaweedFS). The conditional forms (If-None-Match,
If-Match, x-amz-copy-source-if-match) are what make the pipeline's records safe under concurrent runs:
AWS S3 supports them for PUT, copy and DELETE; so does SeaweedFS (checked by the integration tests).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from botocore.exceptions import ClientError

CHUNK = 8 * 1024 * 1024


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def status_of(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def not_found(error: ClientError) -> bool:
    return error_code(error) in ("404", "NoSuchKey", "NotFound") or status_of(error) == 404


def precondition_failed(error: ClientError) -> bool:
    """The object was not in the state a conditional request required (412), or a concurrent
    conditional write won (409 ConditionalRequestConflict on AWS)."""
    return error_code(error) in ("PreconditionFailed", "412", "ConditionalRequestConflict") or status_of(
        error
    ) in (409, 412)


def head(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if not_found(error):
            return None
        raise


def exists(s3: Any, bucket: str, key: str) -> bool:
    return head(s3, bucket, key) is not None


def _md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode()


def cas_condition(etag: str | None) -> dict[str, str]:
    """The precondition of a compare-and-set write: only over the version `etag`, or only where
    nothing is yet (`etag=None`)."""
    return {"IfMatch": f'"{etag}"'} if etag else {"IfNoneMatch": "*"}


def put_bytes(s3: Any, bucket: str, key: str, body: bytes, **extra: Any) -> str:
    """PUT with a Content-MD5, so S3 refuses a body damaged in transit (an S3 PUT is all-or-nothing);
    returns the new ETag."""
    md5 = _md5(body)
    return str(s3.put_object(Bucket=bucket, Key=key, Body=body, ContentMD5=md5, **extra)["ETag"]).strip('"')


def put_json(s3: Any, bucket: str, key: str, value: Any, **extra: Any) -> str:
    body = json.dumps(value, indent=1, sort_keys=True).encode()
    return put_bytes(s3, bucket, key, body, ContentType="application/json", **extra)


def put_json_if_absent(s3: Any, bucket: str, key: str, value: Any) -> bool:
    """Create `key` only if nothing is there; False when another writer was first."""
    try:
        put_json(s3, bucket, key, value, IfNoneMatch="*")
        return True
    except ClientError as error:
        if precondition_failed(error):
            return False
        raise


def put_json_if_match(s3: Any, bucket: str, key: str, value: Any, etag: str | None) -> bool:
    """Compare-and-set: replace the object only if it still has `etag` (or create it only if absent,
    for `etag=None`); False when someone else changed it first."""
    try:
        put_json(s3, bucket, key, value, **cas_condition(etag))
        return True
    except ClientError as error:
        if precondition_failed(error):
            return False
        raise


def get_json(s3: Any, bucket: str, key: str) -> tuple[Any, str] | None:
    """(value, ETag) of a JSON object, or None when it does not exist."""
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if not_found(error):
            return None
        raise
    return json.loads(response["Body"].read()), str(response["ETag"]).strip('"')


async def aget_bytes(client: Any, bucket: str, key: str) -> tuple[bytes, str] | None:
    """(body, ETag) through an async (aiobotocore) client, or None when the object does not exist."""
    try:
        answer = await client.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if not_found(error):
            return None
        raise
    return await answer["Body"].read(), str(answer["ETag"]).strip('"')


async def aput_bytes_if_match(
    client: Any, bucket: str, key: str, body: bytes, etag: str | None, **extra: Any
) -> str | None:
    """Compare-and-set PUT through an async client (`put_json_if_match`'s condition): the new ETag, or
    None when someone else changed the object first."""
    try:
        answer = await client.put_object(
            Bucket=bucket, Key=key, Body=body, ContentMD5=_md5(body), **cas_condition(etag), **extra
        )
    except ClientError as error:
        if precondition_failed(error):
            return None
        raise
    return str(answer["ETag"]).strip('"')


def copy_if_match(s3: Any, bucket: str, source: str, target: str, etag: str, **extra: Any) -> bool:
    """Server-side copy of exactly the version `etag` of `source` (no bytes through this process);
    False when `source` no longer has that ETag (or is gone)."""
    try:
        s3.copy_object(
            Bucket=bucket,
            Key=target,
            CopySource={"Bucket": bucket, "Key": source},
            CopySourceIfMatch=f'"{etag}"',
            **extra,
        )
        return True
    except ClientError as error:
        if precondition_failed(error) or not_found(error):
            return False
        raise


def delete_if_match(s3: Any, bucket: str, key: str, etag: str) -> bool:
    """Delete `key` only while it is still the version `etag`: a newer PUT of the same key survives."""
    try:
        s3.delete_object(Bucket=bucket, Key=key, IfMatch=f'"{etag}"')
        return True
    except ClientError as error:
        if precondition_failed(error) or not_found(error):
            return False
        raise


def remove_empty_folders(s3: Any, bucket: str, keys: Iterable[str], under: str) -> None:
    """Remove the folders of `keys` below the prefix `under` that are empty now, deepest first.

    A store with real directories (SeaweedFS's filer) keeps a folder whose last object was deleted and
    goes on listing it, so the landing watcher would take a file landed there again for one in a folder
    it already knows (found by the next sweep, minutes later, not by the next poll). Deleting `<folder>/`
    removes it there only while it is empty (a folder holding anything stays), and is a no-op on AWS
    S3, which has no folders to keep."""
    folders: set[str] = set()
    for key in keys:
        parts = key.removeprefix(f"{under}/").split("/")[:-1] if key.startswith(f"{under}/") else []
        folders.update(f"{under}/{'/'.join(parts[:depth])}/" for depth in range(1, len(parts) + 1))
    for folder in sorted(folders, key=lambda name: name.count("/"), reverse=True):
        try:
            s3.delete_object(Bucket=bucket, Key=folder)
        except ClientError as error:
            if not not_found(error):
                raise


def download_version(s3: Any, bucket: str, key: str, etag: str, target: BinaryIO) -> str | None:
    """Stream exactly the version `etag` of `key` into `target` in bounded memory; return its sha256,
    or None when the object is gone or was replaced."""
    try:
        response = s3.get_object(Bucket=bucket, Key=key, IfMatch=f'"{etag}"')
    except ClientError as error:
        if precondition_failed(error) or not_found(error):
            return None
        raise
    digest = hashlib.sha256()
    body = response["Body"]
    while chunk := body.read(CHUNK):
        digest.update(chunk)
        target.write(chunk)
    target.flush()
    return digest.hexdigest()


def _transfer() -> Any:
    """Multipart transfers with 2 parts in flight, not boto3's 10: about 16 MB of buffers instead of 80,
    which matters to a task that streams a gigabyte day in a few hundred MB."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(max_concurrency=2, multipart_chunksize=CHUNK, multipart_threshold=CHUNK)


def upload_file(s3: Any, bucket: str, key: str, path: Path, **extra: Any) -> None:
    """Upload a local file (multipart for big ones; a multipart upload is committed whole or not at all)."""
    s3.upload_file(str(path), bucket, key, ExtraArgs=extra or None, Config=_transfer())


def download_file(s3: Any, bucket: str, key: str, path: Path) -> None:
    """Download an object to a local file in bounded memory."""
    s3.download_file(bucket, key, str(path), Config=_transfer())


def list_keys(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    """Every object under `prefix` (all pages)."""
    found: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.extend(page.get("Contents", []))
    return found


# ---- bounded calls ------------------------------------------------------------------------------------

_BACKOFF_CAP_S = 20.0  # botocore's standard retry mode waits rand(0, 1) * min(2 ** n, 20) s before retry n
_RETRY_AFTER_S = 5.0  # ... and up to 5 s more when the server sends x-amz-retry-after


@dataclass(frozen=True)
class CallBounds:
    """Timeouts and attempts of a client whose every call must end in bounded time, even one to a
    server that accepts the connection and never answers."""

    connect_timeout_s: float
    read_timeout_s: float  # the longest wait for the next bytes of an answer
    attempts: int  # in all, the first one included

    @property
    def worst_case_s(self) -> float:
        """How long one call can take when every attempt hangs: each attempt's connect and read
        timeouts, and the longest back-off botocore sleeps between attempts."""
        backoff = sum(min(2.0**n, _BACKOFF_CAP_S) + _RETRY_AFTER_S for n in range(self.attempts - 1))
        return self.attempts * (self.connect_timeout_s + self.read_timeout_s) + backoff

    def botocore_config(self, wait_s: float = 0.0) -> Any:
        """The client config; `wait_s` is what a call itself may wait by design (an SQS long poll)."""
        from botocore.config import Config

        return Config(
            connect_timeout=self.connect_timeout_s,
            read_timeout=self.read_timeout_s + wait_s,
            retries={"mode": "standard", "total_max_attempts": self.attempts},
        )


def call_bounds(budget_s: float, attempts: int = 3) -> CallBounds:
    """Bounds whose worst case fits in `budget_s` (from 0.2 s up): up to `attempts` (fewer when the
    back-off between them would leave an attempt less than 2 s), connect at most 5 s, read at most 60 s."""
    tries = max(1, attempts)
    while tries > 1 and (budget_s - CallBounds(0, 0, tries).worst_case_s) / tries < 2.0:
        tries -= 1
    per_attempt = max((budget_s - CallBounds(0, 0, tries).worst_case_s) / tries, 0.2)
    connect = min(5.0, per_attempt / 4)
    return CallBounds(connect, min(60.0, per_attempt - connect), tries)
