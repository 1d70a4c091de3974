"""Opening parquet for streaming reads, in one place: every reader of a landed or prepared file uses it.

pyarrow's defaults pre-buffer a whole row group of every column ahead of the reader; without that, and
with a buffered stream, pages are read as they are decoded. Measured on 1M-row groups: preprocessing a
day peaked at 427 MB with the defaults, 240 MB without pre-buffering.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import pyarrow.parquet as pq


def open_streaming(source: str | Path | BinaryIO) -> pq.ParquetFile:
    """A parquet file (a path, or a seekable binary file read from its start) opened for streaming."""
    if not isinstance(source, (str, Path)):
        source.seek(0)
    return pq.ParquetFile(source, memory_map=False, buffer_size=1 << 20, pre_buffer=False)
