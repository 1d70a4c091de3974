"""Where the repository's own files are: the config file, the DAG folder, the Airflow config template.

An installed package (the Airflow image) points LANDFALL_CONFIG at its config instead.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_CONFIG_FILE = REPO_ROOT / "config" / "landfall.yaml"
DAGS_FOLDER = REPO_ROOT / "dags"
PIPELINES_FOLDER = REPO_ROOT / "pipelines"  # the pipelines' own code (trainers, features)
AIRFLOW_CFG_TEMPLATE = REPO_ROOT / "airflow.cfg.template"
