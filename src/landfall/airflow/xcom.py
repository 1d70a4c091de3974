"""`XComObjectStorageBackend` that refuses to hand a task a storage path in place of its value.

Upstream, a value whose object is missing on read (failed upload, lifecycle rule, wrong bucket) is
silently returned as the path string, so a downstream task computes on garbage. This subclass
verifies each object right after writing it and raises on a missing object when reading.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from airflow.providers.common.io.xcom.backend import XComObjectStorageBackend
from airflow.sdk import ObjectStoragePath


class XComObjectMissing(RuntimeError):
    """An XCom points at an object-storage value that is not there."""


def _stored_path(stored: Any) -> ObjectStoragePath | None:
    """The object-storage path an XCom row points at, or None for a value kept in the database."""
    if not isinstance(stored, str):
        return None
    try:
        return XComObjectStorageBackend._get_full_path(stored)
    except (TypeError, ValueError):
        return None


def _verify_written(path: ObjectStoragePath | None) -> None:
    if path is not None and not path.exists():
        raise XComObjectMissing(f"XCom value was written to {path} but the object is not there")


class VerifiedObjectStorageXCom(XComObjectStorageBackend):
    @staticmethod
    def _write_large_value(
        value: Any, get_path: Callable[[str], ObjectStoragePath]
    ) -> ObjectStoragePath | None:
        path = XComObjectStorageBackend._write_large_value(value, get_path)
        _verify_written(path)
        return path

    @staticmethod
    def serialize_value(value: Any, **kwargs: Any) -> bytes | str:  # type: ignore[override]
        result = XComObjectStorageBackend.serialize_value(value, **kwargs)
        try:
            stored = json.loads(result)
        except (TypeError, ValueError):
            return result
        _verify_written(_stored_path(stored))
        return result

    @staticmethod
    def deserialize_value(result: Any) -> Any:
        from airflow.sdk.bases.xcom import BaseXCom

        stored = BaseXCom.deserialize_value(result)
        path = _stored_path(stored)
        if path is not None and not path.exists():
            raise XComObjectMissing(
                f"XCom value stored at {stored} is missing from object storage; re-run the upstream task"
            )
        return XComObjectStorageBackend.deserialize_value(result)
