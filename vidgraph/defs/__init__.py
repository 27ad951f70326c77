"""Dagster wiring of vidgraph: assets, checks, sensors and resources (logic lives elsewhere)."""
