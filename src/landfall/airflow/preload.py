"""Warm the task processes: import the heavy libraries once, in the process tasks are forked from.

The LocalExecutor forks its worker processes from the scheduler, and each task process is forked
from a worker; a Celery prefork worker forks its pool the same way. Modules imported before those
forks are already loaded in every task: a training trial spent about 4 of its 7 seconds importing
scikit-learn, skops, MLflow and matplotlib, each time. `landfall up` renders an
`airflow_local_settings.py` (imported by every Airflow component at start-up) that calls this; it
acts only in the processes that fork tasks.
"""

from __future__ import annotations

import importlib
import sys
import warnings

HEAVY_MODULES = (
    "pandas",
    "pyarrow.parquet",
    "sklearn.neural_network",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "sklearn.metrics",
    "skops.io",
    "mlflow",
    "mlflow.sklearn",
    "matplotlib.figure",
    "boto3",
)


def forks_tasks(argv: list[str]) -> bool:
    """The scheduler (LocalExecutor) and a Celery worker: the processes task processes are forked from."""
    return argv[1:2] == ["scheduler"] or argv[1:3] == ["celery", "worker"]


def warm_task_imports(argv: list[str] | None = None) -> list[str]:
    """Import HEAVY_MODULES when this process forks tasks; return what was imported."""
    if not forks_tasks(sys.argv if argv is None else argv):
        return []
    import matplotlib

    matplotlib.use("Agg")  # before pyplot/figure: no display in a worker
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in HEAVY_MODULES:
            importlib.import_module(name)
    return list(HEAVY_MODULES)
