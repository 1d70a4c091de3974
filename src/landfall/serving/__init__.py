"""The scoring service: serves the model that holds the `champion` alias, follows it, and has a staging
slot for the canary check before a promotion (`python -m landfall.serving`)."""
