"""Import one DAG file the way the DAG processor does, with the network switched off; print timings.

Run as a subprocess by test_dag_integrity.py so each file is measured in a fresh interpreter.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

started = time.perf_counter()
import airflow.sdk  # noqa: E402,F401  - the DAG processor has this loaded before it parses any file

airflow_import_s = time.perf_counter() - started


class NetworkAtParseTime(RuntimeError):
    pass


def _refuse(*args, **kwargs):
    raise NetworkAtParseTime(f"a DAG file opened a network connection at parse time: {args[1:]}")


socket.socket.connect = _refuse  # type: ignore[method-assign]
socket.create_connection = _refuse  # type: ignore[assignment]

path = Path(sys.argv[1])
sys.path.insert(0, str(path.parents[1]))  # the DAG folder, as Airflow puts it on sys.path
from airflow.dag_processing.dagbag import DagBag  # noqa: E402

started = time.perf_counter()
bag = DagBag(dag_folder=str(path), safe_mode=False)
parse_s = time.perf_counter() - started
print(
    json.dumps(
        {
            "file": str(path),
            "airflow_import_s": airflow_import_s,
            "parse_s": parse_s,
            "dag_ids": sorted(bag.dag_ids),
            "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
        }
    )
)
