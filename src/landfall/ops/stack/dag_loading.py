"""Start-up is over when every DAG file is loaded: healthy processes are not enough, because until a DAG
is serialized its asset watcher is not registered and a file landed right after `up` would wait unseen."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from landfall.core.paths import DAGS_FOLDER
from landfall.ops.airflow_api import AirflowApi
from landfall.ops.stack.components import StackError


def wait_for_dags(
    api: AirflowApi, deadline: float, echo: Callable[[str], None], dag_ids: set[str] | None = None
) -> None:
    """Wait until the dag-processor has parsed every DAG file once and built every DAG in `dag_ids`
    (each pipeline's chain: a pipeline added to a running stack has DAGs before it has files).

    Healthy components are not enough: until a DAG is serialized its asset watcher is not
    registered, so a file landed right after `up` would wait unseen. A file that fails to import
    counts as parsed; its error is printed, because the UI would only show a banner.
    """
    expected = dag_files()
    while True:
        dags = api.get("dags", limit=1000)["dags"]
        parsed = {dag["relative_fileloc"] for dag in dags}
        errors = {
            _relative_to_dags(error["filename"]): error["stack_trace"]
            for error in api.get("importErrors", limit=1000)["import_errors"]
        }
        missing = expected - parsed - set(errors)
        if not set(errors) - NO_DAG_FILES:  # a DAG file failing to import may never build its DAGs
            missing |= (dag_ids or set()) - {dag["dag_id"] for dag in dags}
        if not missing:
            break
        if time.monotonic() > deadline:
            raise StackError(
                f"the dag-processor has not parsed {', '.join(sorted(missing))} yet; "
                "see `landfall logs dag-processor`"
            )
        time.sleep(0.5)
    for filename, trace in sorted(errors.items()):
        echo(f"  WARNING: dags/{filename} failed to import:\n{trace.strip()[-1500:]}")
    echo(f"  {len(expected - set(errors))} of {len(expected)} DAG files are loaded")


NO_DAG_FILES = {"operations/pipeline_config.py"}
"""Files in the DAG folder that hold no DAG: the one that reports invalid pipelines by failing to import."""


def dag_files() -> set[str]:
    """The DAG files (relative to dags/) the dag-processor must load: every module in producers/,
    consumers/ and operations/ (assets/ only names Assets) that builds DAGs."""
    return {
        path.relative_to(DAGS_FOLDER).as_posix()
        for folder in ("producers", "consumers", "operations")
        for path in (DAGS_FOLDER / folder).glob("*.py")
        if not path.name.startswith("_")
    } - NO_DAG_FILES


def _relative_to_dags(filename: str) -> str:
    """Import errors name their file relative to the bundle (dags/), older releases absolutely."""
    path = Path(filename)
    return path.relative_to(DAGS_FOLDER).as_posix() if path.is_relative_to(DAGS_FOLDER) else path.as_posix()
