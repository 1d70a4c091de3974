"""Event triggers that the Airflow triggerer imports from this installed package."""

from landfall.triggers.s3_landing import S3LandingTrigger

__all__ = ["S3LandingTrigger"]
