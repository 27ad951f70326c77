"""frame_captions: differential sliding-window and three-level dense captions of the passing long takes."""

import time
from collections.abc import Callable

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from vidgraph.captions.frame_captions import frame_captions_code_version, word_limits_from_profile
from vidgraph.captions.keyframes import row_keyframe_problems
from vidgraph.captions.quality import dense_timestamps_ok, missing_caption_levels, repetition_ratio, word_count
from vidgraph.defs.long_takes import long_takes
from vidgraph.defs.executors import GPU_OP_TAGS
from vidgraph.defs.guards import require_ingested
from vidgraph.defs.metadata import failing_rows_result, md_table
from vidgraph.defs.partitions import STEP_RETRY, shards
from vidgraph.defs.resources import CaptionSettings, DatasetStoreResource
from vidgraph.defs.versions import frame_captions_version
from vidgraph.models.resources import ChatModelResource
from vidgraph.progress import stage_done
from vidgraph.stages.frame_captions import ASSET, build_frame_captions


def _code_version() -> str:
    return frame_captions_version()  # models, prompts, keyframe encoder, generation and caption settings


@asset(
    partitions_def=shards,
    retry_policy=STEP_RETRY,
    group_name="captions",
    deps=[long_takes],
    code_version=_code_version(),
    op_tags=GPU_OP_TAGS,
    pool="gpu",  # deployments cap concurrent GPU steps with `dagster instance concurrency set gpu N`
    kinds={"pytorch", "parquet"},
)
def frame_captions(
    context: AssetExecutionContext,
    store: DatasetStoreResource,
    vlm: ChatModelResource,
    llm: ChatModelResource,
    caption_settings: CaptionSettings,
) -> MaterializeResult:
    """ShareGPT4Video differential sliding-window captions, LVD-2M three-level captions and OCR text per long take."""
    from vidgraph.models.image_encoder import build_image_encoder

    profile = caption_settings.load()
    st = store.get_store()
    shard = context.partition_key
    require_ingested(st, shard, "long_takes")
    started = time.monotonic()
    encoder = build_image_encoder(profile.captions.get("keyframe_encoder"))
    try:
        result = build_frame_captions(st, shard, vlm.get_model(), llm.get_model(), profile.generation, profile.captions,
                                      encoder=encoder)
    finally:
        encoder.close()
    rows = result.table.to_pylist()
    stage_done(ASSET, shard, len(rows), "clips", sum(r["duration_s"] or 0.0 for r in rows), started)
    errors = [r for r in rows if r["error"]]
    for r in errors:
        context.log.warning(f"caption error on {r['clip_id']}: {r['error']}")
    preview = [{"clip_id": r["clip_id"], "words": r["word_count"], "keyframes": f"{len(r['keyframe_ts'])}/{len(r['candidate_keyframe_ts'])}",
                "caption": (r["caption"] or "")[:120], "concise": (r["concise_caption"] or "")[:80], "error": r["error"]} for r in rows]
    kept = sum(len(r["keyframe_ts"]) for r in rows)
    candidates = sum(len(r["candidate_keyframe_ts"]) for r in rows)
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "errors": len(errors),
            "mean_words": round(sum(r["word_count"] for r in rows) / max(1, len(rows)), 1),
            "profile": profile.name,
            "keyframes_kept": kept,
            "keyframe_candidates": candidates,
            "keyframe_encoder": MetadataValue.json(encoder.describe()),
            "clips_with_ocr_text": sum(1 for r in rows if r["ocr_text"]),
            "vlm": MetadataValue.json(vlm.describe()),
            "llm": MetadataValue.json(llm.describe()),
            "preview": md_table(preview),
            "location": MetadataValue.path(st.uri(ASSET, shard)),
        }
    )


@asset_check(asset=frame_captions, blocking=True, partitions_def=shards)
def every_long_take_captioned(context: AssetCheckExecutionContext, store: DatasetStoreResource) -> AssetCheckResult:
    """Every passing long take has a caption, or an error recorded on its row."""
    st = store.get_store()
    shard = context.partition_key
    passing = {r["clip_id"] for r in st.read_table("long_takes", shard).to_pylist() if r["passed"]}
    rows = {r["clip_id"]: r for r in st.read_table(ASSET, shard).to_pylist()}
    missing = sorted(passing - set(rows))
    empty = sorted(c for c, r in rows.items() if not r["caption"] and not r["error"])
    return AssetCheckResult(
        passed=not missing and not empty,
        metadata={
            "passing_long_takes": len(passing),
            "captioned": sum(1 for r in rows.values() if r["caption"]),
            "errors": sum(1 for r in rows.values() if r["error"]),
            "missing": md_table([{"clip_id": c} for c in missing]),
            "neither_caption_nor_error": md_table([{"clip_id": c} for c in empty]),
        },
    )


def _row_check(st, shard: str, problem: Callable[[dict], str | None]) -> AssetCheckResult:
    rows = [r for r in st.read_table(ASSET, shard).to_pylist() if r["caption"]]
    failures = [{"clip_id": r["clip_id"], "problem": p, "caption": r["caption"][:100]} for r in rows if (p := problem(r))]
    return failing_rows_result(failures, st, shard, captions=len(rows))


@asset_check(asset=frame_captions, partitions_def=shards)
def caption_length_in_band(
    context: AssetCheckExecutionContext, store: DatasetStoreResource, caption_settings: CaptionSettings
) -> AssetCheckResult:
    """Summaries are non-empty and their word count lies in the profile's band (min_words..max_words, 200-400 for real profiles)."""
    limits = word_limits_from_profile(caption_settings.load().captions)
    lo, hi = limits["summary_min"], limits["summary"]
    return _row_check(
        store.get_store(),
        context.partition_key,
        lambda r: None if lo <= word_count(r["caption"]) <= hi else f"{word_count(r['caption'])} words, band [{lo}, {hi}]",
    )


@asset_check(asset=frame_captions, partitions_def=shards)
def no_degenerate_repetition(
    context: AssetCheckExecutionContext, store: DatasetStoreResource, caption_settings: CaptionSettings
) -> AssetCheckResult:
    """The share of repeated n-grams in a caption stays under the profile's max_repetition."""
    c = caption_settings.load().captions
    n, limit = int(c.get("repetition_n", 3)), float(c.get("max_repetition", 0.5))
    return _row_check(
        store.get_store(),
        context.partition_key,
        lambda r: None if (x := repetition_ratio(r["caption"], n)) <= limit else f"repeated {n}-grams {x:.2f} > {limit}",
    )


@asset_check(asset=frame_captions, partitions_def=shards)
def dense_timestamps_in_clip(context: AssetCheckExecutionContext, store: DatasetStoreResource) -> AssetCheckResult:
    """Dense-caption segments are in order and inside their clip."""
    return _row_check(
        store.get_store(),
        context.partition_key,
        lambda r: None if dense_timestamps_ok(r["dense_captions"], r["duration_s"]) else "segments out of order or outside the clip",
    )


@asset_check(asset=frame_captions, partitions_def=shards)
def keyframes_follow_the_rule(context: AssetCheckExecutionContext, store: DatasetStoreResource) -> AssetCheckResult:
    """Keyframes are in order, at least 2 s apart, drawn from the candidates, and the clip's last frame is present."""
    st = store.get_store()
    rows = st.read_table(ASSET, context.partition_key).to_pylist()
    failures = [{"clip_id": r["clip_id"], "problem": "; ".join(p), "keyframe_ts": str(r["keyframe_ts"])}
                for r in rows if (p := row_keyframe_problems(r))]
    kept = sum(len(r["keyframe_ts"] or []) for r in rows)
    cands = sum(len(r["candidate_keyframe_ts"] or []) for r in rows)
    return failing_rows_result(failures, clips=len(rows), keyframes_kept=kept, keyframe_candidates=cands)


@asset_check(asset=frame_captions, blocking=True, partitions_def=shards)
def three_caption_levels_present(context: AssetCheckExecutionContext, store: DatasetStoreResource) -> AssetCheckResult:
    """LVD-2M: every row has segment captions, a refined and a concise caption with their prompt hashes, or an error recorded."""
    st = store.get_store()
    rows = st.read_table(ASSET, context.partition_key).to_pylist()
    failures = [{"clip_id": r["clip_id"], "problem": "missing " + ", ".join(m)} for r in rows if (m := missing_caption_levels(r))]
    return failing_rows_result(failures, clips=len(rows))
