"""merged_captions: MMTrail merge, VideoMind factual/abstract/intent layers, 6W and verified intents."""

import json

import numpy as np
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from vidgraph.captions.merge import mentions_speech, merged_captions_code_version, parse_intent
from vidgraph.defs.executors import GPU_OP_TAGS
from vidgraph.defs.metadata import bar_chart_png, failing_rows_result, image_md, md_table
from vidgraph.defs.partitions import STEP_RETRY, shards
from vidgraph.defs.resources import CaptionSettings, DatasetStoreResource, MergeSettings
from vidgraph.models.profiles import default_profile_name, load_profile
from vidgraph.models.resources import ChatModelResource
from vidgraph.stages.merged_captions import ASSET, UPSTREAMS, build_merged_captions, shared_embedder

INTENT_FIELDS = ("intent_uploader", "intent_subject", "intent_uploader_verifier", "intent_subject_verifier")


def _code_version() -> str:
    profile = load_profile(default_profile_name(), resolve=False)
    s = MergeSettings()
    return merged_captions_code_version(profile.llm.ref, profile.verifier_spec().ref,
                                        embedder=s.embedder_model or "packaged:all-MiniLM-L6-v2",
                                        threshold=s.verify_threshold)


@asset(
    partitions_def=shards,
    retry_policy=STEP_RETRY,
    group_name="captions",
    # By key: audio_captions is defined in its own module; this one never imports another asset.
    deps=[AssetKey(u) for u in UPSTREAMS],
    code_version=_code_version(),
    op_tags=GPU_OP_TAGS,
    pool="gpu",
    kinds={"pytorch", "parquet"},
)
def merged_captions(
    context: AssetExecutionContext,
    store: DatasetStoreResource,
    llm: ChatModelResource,
    verifier: ChatModelResource,
    caption_settings: CaptionSettings,
    merge_settings: MergeSettings,
) -> MaterializeResult:
    """One caption per long take merging picture and sound, with VideoMind's layers, 6W tags and verified intents."""
    profile = caption_settings.load()
    st = store.get_store()
    shard = context.partition_key
    embedder = shared_embedder(merge_settings.embedder_model)
    # A profile without a verifier repeats the llm: share its loaded weights instead of loading them twice.
    same = verifier.model_dump() == llm.model_dump()
    result = build_merged_captions(
        st, shard, llm.get_model(), llm.get_model() if same else verifier.get_model(), embedder, profile.generation,
        threshold=merge_settings.verify_threshold, word_limits=merge_settings.word_limits(),
        max_quoted_chars=merge_settings.max_quoted_chars,
    )
    rows = result.table.to_pylist()
    for r in rows:
        if r["error"]:
            context.log.warning(f"merge error on {r['clip_id']}: {r['error']}")
    rates = rates_of(rows)
    # Each preview row names the command that prints the clip's whole chain, from landing to this row.
    preview = [{"clip_id": r["clip_id"], "lineage": f"`vidgraph lineage {r['clip_id']}`", "verified": r["verified"],
                "merged_caption": (r["merged_caption"] or "")[:100], "error": r["error"]} for r in rows]
    sims = [s for r in rows for s in (r["intent_similarity_uploader"], r["intent_similarity_subject"]) if s is not None]
    hist = None
    if sims:
        counts, edges = np.histogram(sims, bins=20, range=(-0.2, 1.0))
        hist = bar_chart_png(counts, edges, "intent similarity (llm vs verifier)", {"threshold": merge_settings.verify_threshold})
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "errors": sum(1 for r in rows if r["error"]),
            "intent_parse_rate": round(rates["parse_rate"], 3),
            "verified_rate": round(rates["verified_rate"], 3),
            "profile": profile.name,
            "llm": MetadataValue.json(llm.describe()),
            "verifier": MetadataValue.json(verifier.describe()),
            "embedder": MetadataValue.json({"model": embedder.model_id, "revision": embedder.revision}),
            "preview": md_table(preview),
            "intent_similarity_histogram": image_md(hist, "intent similarity", "image/png"),
            "location": MetadataValue.path(st.uri(ASSET, shard)),
        }
    )


def rates_of(rows: list[dict]) -> dict:
    """Share of generated intent lines that parse, and share of generated rows that are verified."""
    lines = [r[f] for r in rows for f in INTENT_FIELDS if r[f]]
    generated = [r for r in rows if not r["error"] or r["merged_caption"]]
    return {
        "intent_lines": len(lines),
        "parse_rate": sum(parse_intent(x) is not None for x in lines) / len(lines) if lines else 0.0,
        "rows": len(generated),
        "verified_rate": sum(bool(r["verified"]) for r in generated) / len(generated) if generated else 0.0,
    }


@asset_check(asset=merged_captions, blocking=True, partitions_def=shards)
def every_long_take_merged(context: AssetCheckExecutionContext, store: DatasetStoreResource) -> AssetCheckResult:
    """Every passing long take has a merged caption, or an error recorded on its row."""
    return coverage_result(store.get_store(), context.partition_key)


def coverage_result(st, shard: str) -> AssetCheckResult:
    passing = {r["clip_id"] for r in st.read_table("long_takes", shard).to_pylist() if r["passed"]}
    rows = {r["clip_id"]: r for r in st.read_table(ASSET, shard).to_pylist()}
    missing = sorted(passing - set(rows))
    extra = sorted(set(rows) - passing)
    empty = sorted(c for c, r in rows.items() if not r["merged_caption"] and not r["error"])
    return AssetCheckResult(
        passed=not missing and not empty and not extra,
        metadata={
            "passing_long_takes": len(passing),
            "merged": sum(1 for r in rows.values() if r["merged_caption"]),
            "errors": sum(1 for r in rows.values() if r["error"]),
            "missing": md_table([{"clip_id": c} for c in missing]),
            "not_a_passing_long_take": md_table([{"clip_id": c} for c in extra]),
            "neither_caption_nor_error": md_table([{"clip_id": c} for c in empty]),
        },
    )


@asset_check(asset=merged_captions, blocking=True, partitions_def=shards)
def upstream_rows_present(context: AssetCheckExecutionContext, store: DatasetStoreResource) -> AssetCheckResult:
    """Every row has its upstream rows in frame_captions and audio_captions."""
    return upstream_result(store.get_store(), context.partition_key)


def upstream_result(st, shard: str) -> AssetCheckResult:
    have = {}
    for up in UPSTREAMS:
        path = st.table_path(up, shard)
        have[up] = set(st.read_table(up, shard).column("clip_id").to_pylist()) if st.exists(path) else set()
    failures = [
        {"clip_id": r["clip_id"], "missing_in": ", ".join(up for up in UPSTREAMS if r["clip_id"] not in have[up])}
        for r in st.read_table(ASSET, shard).select(["clip_id"]).to_pylist()
        if any(r["clip_id"] not in have[up] for up in UPSTREAMS)
    ]
    return failing_rows_result(failures, **{f"{up}_rows": len(have[up]) for up in UPSTREAMS})


def _band_result(value: float, n: int, lo: float, hi: float, min_n: int, **meta) -> AssetCheckResult:
    judged = n >= min_n
    return AssetCheckResult(
        passed=(not judged) or lo <= value <= hi,
        severity=AssetCheckSeverity.WARN,
        metadata={**meta, "rate": round(value, 3), "band": json.dumps([lo, hi]), "judged": judged},
    )


@asset_check(asset=merged_captions, partitions_def=shards)
def intent_parse_rate_in_band(
    context: AssetCheckExecutionContext, store: DatasetStoreResource, merge_settings: MergeSettings
) -> AssetCheckResult:
    """The share of intent lines in the form "[subject] through [action] aims to [intent]" lies in the band."""
    return parse_rate_result(store.get_store(), context.partition_key, merge_settings)


def parse_rate_result(st, shard: str, s: MergeSettings) -> AssetCheckResult:
    rows = st.read_table(ASSET, shard).to_pylist()
    r = rates_of(rows)
    bad = [{"clip_id": x["clip_id"], "field": p["field"], "raw": p["raw"][:100]}
           for x in rows for p in x["parse_failures"] if p["field"].startswith("intent")]
    return _band_result(r["parse_rate"], r["intent_lines"], s.min_parse_rate, s.max_parse_rate, s.min_rows_for_rates,
                        intent_lines=r["intent_lines"], failures=md_table(bad, limit=30))


@asset_check(asset=merged_captions, partitions_def=shards)
def verified_rate_in_band(
    context: AssetCheckExecutionContext, store: DatasetStoreResource, merge_settings: MergeSettings
) -> AssetCheckResult:
    """The share of rows whose intents the verifier confirmed (cosine >= threshold, both roles) lies in the band."""
    return verified_rate_result(store.get_store(), context.partition_key, merge_settings)


def verified_rate_result(st, shard: str, s: MergeSettings) -> AssetCheckResult:
    rows = st.read_table(ASSET, shard).to_pylist()
    r = rates_of(rows)
    return _band_result(r["verified_rate"], r["rows"], s.min_verified_rate, s.max_verified_rate, s.min_rows_for_rates,
                        rows=r["rows"], threshold=s.verify_threshold)


@asset_check(asset=merged_captions, partitions_def=shards)
def speech_only_with_transcript(context: AssetCheckExecutionContext, store: DatasetStoreResource) -> AssetCheckResult:
    """A merged caption mentions speech (speech words or quoted words) only where the clip has a transcript."""
    return speech_result(store.get_store(), context.partition_key)


def speech_result(st, shard: str) -> AssetCheckResult:
    transcripts = {}
    if st.exists(st.table_path("audio_captions", shard)):
        for a in st.read_table("audio_captions", shard).to_pylist():
            transcripts[a["clip_id"]] = (a.get("transcript") or "").strip()
    rows = [r for r in st.read_table(ASSET, shard).to_pylist() if r["merged_caption"]]
    failures = [
        {"clip_id": r["clip_id"], "mentions": word, "caption": r["merged_caption"][:100]}
        for r in rows
        if not transcripts.get(r["clip_id"]) and (word := mentions_speech(r["merged_caption"]))
    ]
    result = failing_rows_result(failures, captions=len(rows), with_transcript=sum(1 for t in transcripts.values() if t))
    return AssetCheckResult(passed=result.passed, severity=AssetCheckSeverity.WARN, metadata=result.metadata)
