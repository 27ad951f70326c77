"""Deterministic errors fail at once: a retry cannot fix them, and hides their message.

Dagster's RetryPolicy retries any exception; ``Failure(allow_retries=False)`` is the one way a
step opts out. Steps call :func:`require_ingested` first, so a partition that was never ingested
(typed by hand in the Materialize dialog, say) is refused in one attempt with a message that says
what to do, instead of three ``FileNotFoundError`` attempts.
"""

from __future__ import annotations

from dagster import Failure, MetadataValue

from vidgraph.storage.store import DatasetStore

INGEST_HINT = "Shards are created by `vidgraph ingest LANDING` (or the landing sensor / ingest schedule); pick one of those."


def require_ingested(store: DatasetStore, shard: str, *upstream: str) -> None:
    """Raise a non-retryable Failure unless ``shard`` has a row in the ingest ledger and each
    ``upstream`` asset has its table for the shard."""
    if store.exists(store.table_path("ingest_ledger", shard)):
        missing = [a for a in upstream if not store.exists(store.table_path(a, shard))]
        if missing:
            raise Failure(
                description=(
                    f"{', '.join(missing)} has no table for shard {shard!r} yet: materialize "
                    f"{' and '.join(missing)} for this partition first (automation does so once it is ingested)."
                ),
                metadata={"shard": shard, "missing": ", ".join(missing)},
                allow_retries=False,
            )
        return
    from vidgraph.ingest import ledger_shards

    known = ledger_shards(store)
    shown = ", ".join(known[-5:]) if known else "(none yet)"
    raise Failure(
        description=(
            f"partition {shard!r} was never ingested: the ingest ledger of {store.root_uri} has no entry for it. "
            f"{INGEST_HINT} Known shards (latest): {shown}."
        ),
        metadata={"shard": shard, "known_shards": len(known), "ledger": MetadataValue.path(store.uri("ingest_ledger"))},
        allow_retries=False,
    )


def fail_fast(message: str, **metadata) -> Failure:
    """A Failure that is not retried, for errors that a retry cannot fix (bad settings, bad input)."""
    return Failure(description=message, metadata=metadata or None, allow_retries=False)
