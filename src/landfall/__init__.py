"""Landfall: event-driven, asset-scheduled ML training on Apache Airflow 3."""

__version__ = "0.1.0"
