"""Import one DAG file the way the dag-processor does, with the network switched off; print timings.

    python -m landfall.ops.dagparse dags/producers/ingest.py

Run in a fresh interpreter per file (the DAG-integrity tests and `landfall bench` do), so one
file's imports cannot hide another's cost. `airflow.sdk` is imported first and timed apart: the
dag-processor has it loaded before it parses any file, so `parse_s` is what the file itself costs.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


class NetworkAtParseTime(RuntimeError):
    pass


def _refuse(*args: Any, **kwargs: Any) -> None:
    raise NetworkAtParseTime(f"a DAG file opened a network connection at parse time: {args[1:]}")


def parse(path: Path) -> dict[str, Any]:
    """Parse `path` in this interpreter (call it once per process) and report the timings."""
    started = time.perf_counter()
    import airflow.sdk  # noqa: F401

    airflow_import_s = time.perf_counter() - started
    socket.socket.connect = _refuse  # type: ignore[method-assign]
    socket.create_connection = _refuse  # type: ignore[assignment]
    sys.path.insert(0, str(path.resolve().parents[1]))  # the DAG folder, as Airflow puts it on sys.path
    from airflow.dag_processing.dagbag import DagBag

    started, cpu_started = time.perf_counter(), time.process_time()
    bag = DagBag(dag_folder=str(path), safe_mode=False)
    return {
        "file": str(path),
        "airflow_import_s": airflow_import_s,
        "parse_s": time.perf_counter() - started,
        # The parse's own CPU seconds: what the file costs whatever else the machine is running.
        "parse_cpu_s": time.process_time() - cpu_started,
        "dag_ids": sorted(bag.dag_ids),
        "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
    }


def parse_in_subprocess(path: Path, timeout_s: float = 120) -> dict[str, Any]:
    """`parse(path)` in a fresh interpreter; raises with its stderr if it crashed."""
    result = subprocess.run(
        [sys.executable, "-m", "landfall.ops.dagparse", str(path)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"parsing {path} crashed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(parse(Path(sys.argv[1]))))
