"""A partition is a shard of source videos; shards are added as videos land."""

from dagster import DynamicPartitionsDefinition

shards = DynamicPartitionsDefinition(name="shards")

from dagster import Backoff, Jitter, RetryPolicy  # noqa: E402

# A step that still fails after the S3 client's own retries (a long outage, a reset
# connection) is retried whole; steps are idempotent, so a retry is safe.
STEP_RETRY = RetryPolicy(max_retries=2, delay=5, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)

# A release (`v1`, `2026-12-01`, ...) snapshots every shard materialized so far; added by
# `vidgraph release NAME` (or in the UI) before its assets are materialized.
releases = DynamicPartitionsDefinition(name="releases")
# Asset groups of the release end of the graph: never part of a shard's run.
RELEASE_GROUPS = ("release", "evaluation")
