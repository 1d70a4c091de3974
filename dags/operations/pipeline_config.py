"""Invalid pipelines, shown where Airflow users look for a broken DAG: this file's import error.

Airflow 3.3 marks every DAG of a file stale when the file has an import error (even the DAGs it did
load), so an invalid pipeline cannot fail inside the files that build every pipeline's DAGs: there it is
left out (`assets.PIPELINES`), and the other pipelines parse and run. This file holds no DAG; it raises,
naming each invalid pipeline, its keys and where to set them (`landfall check` prints the same).
"""

from __future__ import annotations

from assets import INVALID_PIPELINES
from landfall.core.settings import ConfigError, config_file

if INVALID_PIPELINES:
    raise ConfigError(
        f"pipelines left out of the DAGs until {config_file()} is fixed (landfall check says the same):\n"
        + "\n".join(
            f"{name}:\n" + "\n".join(problems) for name, problems in sorted(INVALID_PIPELINES.items())
        )
    )
