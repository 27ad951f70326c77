"""long_takes: LVD-2M-style long-take filter over the raw clips, from the stored signals."""

import hashlib
import json
import time
from collections import Counter

import numpy as np
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from vidgraph.defs.guards import require_ingested
from vidgraph.defs.metadata import bar_chart_png, contact_sheet, failing_rows_result, image_file, md_table
from vidgraph.defs.partitions import STEP_RETRY, shards
from vidgraph.defs.raw_clips import raw_clips
from vidgraph.defs.resources import ClipFileSettings, ClipScorerResource, DatasetStoreResource, IngestSettings, LongTakeSettings
from vidgraph.defs.versions import long_takes_version
from vidgraph.media.longtake import REASONS, LongTakeConfig, failure_reasons, gradual_transitions, inner_cuts
from vidgraph.progress import stage_done
from vidgraph.stages.long_takes import ASSET, KEYFRAMES_TABLE, build_long_takes

def ocr_engine(config: LongTakeConfig):
    """The packaged PP-OCRv4 engine when the settings switch OCR on (the default)."""
    if not config.ocr:
        return None
    from vidgraph.media.ocr import OcrEngine

    return OcrEngine()


PREVIEW_COLUMNS = ["clip_id", "duration_s", "passed", "reasons", "dynamic_degree", "camera_motion", "sharpness_median"]
@asset(
    partitions_def=shards,
    retry_policy=STEP_RETRY,
    group_name="clips",
    code_version=long_takes_version(),
    deps=[raw_clips],
    kinds={"parquet", "opencv"},
)
def long_takes(
    context: AssetExecutionContext,
    store: DatasetStoreResource,
    long_take_settings: LongTakeSettings,
    clip_scorer: ClipScorerResource,
    clip_file_settings: ClipFileSettings,
    ingest_settings: IngestSettings,
) -> MaterializeResult:
    """Every raw clip with its long-take metrics, verdict and reasons (LVD-2M filter); files for the passing clips."""
    st = store.get_store()
    shard = context.partition_key
    require_ingested(st, shard, "raw_clips")
    config = long_take_settings.config()
    started = time.monotonic()
    result = build_long_takes(st, shard, config, clip_scorer.get_scorer(), ocr=ocr_engine(config))
    rows = result.table.to_pylist()
    stage_done(ASSET, shard, len(rows), "clips", sum(r["duration_s"] for r in rows), started)
    passing = [r for r in rows if r["passed"]]
    files = write_clip_files(context, st, shard, {r["clip_id"] for r in passing}, clip_file_settings, ingest_settings)
    reasons = Counter(reason for r in rows for reason in r["reasons"])
    by_reason = [{"reason": "passed", "clips": len(passing)}] + [
        {"reason": reason, "clips": reasons[reason]} for reason in REASONS if reasons[reason]
    ]
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "passed": len(passing),
            "failed": len(rows) - len(passing),
            "pass_rate": round(len(passing) / len(rows), 3) if rows else 0.0,
            "passed_seconds": round(sum(r["duration_s"] for r in passing), 1),
            "by_reason": md_table(by_reason, limit=20),
            "camera_motion": MetadataValue.json(dict(Counter(r["camera_motion"] for r in rows))),
            "dynamic_degree_histogram": image_file(st, ASSET, shard, "dynamic_degree_histogram.png", _dynamic_histogram(rows, config)),
            "passing_keyframes": image_file(st, ASSET, shard, "passing_keyframes.jpg", _sheet(st, shard, passing)),
            "failing_keyframes": image_file(st, ASSET, shard, "failing_keyframes.jpg", _sheet(st, shard, [r for r in rows if not r["passed"]])),
            "preview": md_table(rows, PREVIEW_COLUMNS),
            "thresholds": MetadataValue.json(config.describe()),
            "location": MetadataValue.path(st.uri(ASSET, shard)),
            **files,
        }
    )


def write_clip_files(context, st, shard: str, passing: set[str], clip_settings: ClipFileSettings, ingest: IngestSettings) -> dict:
    """``clip_files: passing``: cut the passing clips' files after the verdict (smart cut where the
    source allows); with ``all``/``none`` publish an empty clip_files shard. Returns metadata."""
    from vidgraph.stages.clip_files import build_clip_files
    from vidgraph.stages.raw_clips import RawClipsSettings

    settings = clip_settings.apply(RawClipsSettings(policy=ingest.policy()))
    table = build_clip_files(st, shard, settings, passing, log=context.log.warning).to_pylist()
    methods = Counter(r["method"] or "failed" for r in table)
    return {
        "clip_files": settings.clip_files,
        "clip_files_written": sum(1 for r in table if r["path"]),
        "clip_file_methods": MetadataValue.json(dict(methods)),
    }


def _dynamic_histogram(rows: list[dict], config: LongTakeConfig) -> bytes | None:
    values = [r["dynamic_degree"] for r in rows if r["dynamic_degree"] is not None]
    if not values:
        return None
    hi = max(max(values), config.min_dynamic_degree * 2) * 1.05
    counts, edges = np.histogram(values, bins=20, range=(0.0, hi))
    return bar_chart_png(
        counts, edges, title="dynamic degree (diagonal/s)", marks={"min": config.min_dynamic_degree, "max": config.max_dynamic_degree}
    )


def _sheet(st, shard: str, rows: list[dict], limit: int = 6) -> bytes | None:
    """Three keyframes of each of a few clips, labelled with the verdict."""
    if not rows or not st.exists(st.table_path(ASSET, shard, KEYFRAMES_TABLE)):
        return None
    wanted = {r["clip_id"]: r for r in rows[:limit]}
    kfs: dict[str, list[dict]] = {}
    for k in st.read_table(ASSET, shard, KEYFRAMES_TABLE).to_pylist():
        if k["clip_id"] in wanted:
            kfs.setdefault(k["clip_id"], []).append(k)
    images, labels = [], []
    for clip_id, r in wanted.items():
        ks = sorted(kfs.get(clip_id, []), key=lambda k: k["keyframe_index"])
        pick = [ks[i] for i in sorted({0, len(ks) // 2, len(ks) - 1})] if ks else []
        for k in pick:
            images.append(st.read_bytes(st.path(k["path"])))
            verdict = "pass" if r["passed"] else ",".join(r["reasons"])
            # video id tail + clip number: clips of different videos stay apart on the sheet
            labels.append(f"{clip_id[-10:]} {k['t_clip_s']:.0f}s {verdict}")
    return contact_sheet(images, labels, cols=3)


@asset_check(asset=long_takes, blocking=True, partitions_def=shards)
def one_row_per_raw_clip(context: AssetCheckExecutionContext, store: DatasetStoreResource) -> AssetCheckResult:
    """Every raw clip of the shard has exactly one long_takes row, and there are no others."""
    st = store.get_store()
    shard = context.partition_key
    clips = [r["clip_id"] for r in st.read_table("raw_clips", shard).select(["clip_id"]).to_pylist()]
    rows = Counter(r["clip_id"] for r in st.read_table(ASSET, shard).select(["clip_id"]).to_pylist())
    failures = [{"clip_id": c, "problem": "the raw clip has no long_takes row"} for c in clips if c not in rows]
    failures += [{"clip_id": c, "problem": f"the raw clip has {n} long_takes rows"} for c, n in rows.items() if n > 1]
    failures += [{"clip_id": c, "problem": "a long_takes row for a clip raw_clips does not have"} for c in rows if c not in set(clips)]
    return failing_rows_result(failures, st, shard, ASSET, raw_clips=len(clips), rows=sum(rows.values()))


@asset_check(asset=long_takes, blocking=True, partitions_def=shards)
def passing_clips_meet_thresholds(
    context: AssetCheckExecutionContext, store: DatasetStoreResource, long_take_settings: LongTakeSettings
) -> AssetCheckResult:
    """Every clip marked passed meets every threshold of the current settings."""
    return thresholds_result(store.get_store(), context.partition_key, long_take_settings)


def thresholds_result(st, shard: str, settings: LongTakeSettings) -> AssetCheckResult:
    config = settings.config()
    rows = [r for r in st.read_table(ASSET, shard).to_pylist() if r["passed"]]
    failures = [
        {"clip_id": r["clip_id"], "problem": f"marked passed, but fails {', '.join(v)} under the current thresholds",
         "duration_s": r["duration_s"], "dynamic_degree": r["dynamic_degree"]}
        for r in rows
        if (v := failure_reasons(r, config))
    ]
    return failing_rows_result(failures, st, shard, ASSET, passing_clips=len(rows))


@asset_check(asset=long_takes, partitions_def=shards)
def sampled_passing_clips_have_no_cut(
    context: AssetCheckExecutionContext, store: DatasetStoreResource, long_take_settings: LongTakeSettings
) -> AssetCheckResult:
    """A sample of passing clips, decoded again from their clip files, shows no cut or transition inside."""
    from vidgraph.media.analysis import analyze_video
    from vidgraph.media.clip_media import clip_media_for_shard, local_clip_file
    from vidgraph.media.shots import ShotDetectorConfig

    st = store.get_store()
    shard = context.partition_key
    config = long_take_settings.config()
    passing = [r for r in st.read_table(ASSET, shard).to_pylist() if r["passed"]]
    # A stable sample: the same clips are re-measured on every run of the check.
    sample = sorted(passing, key=lambda r: hashlib.sha256(r["clip_id"].encode()).hexdigest())[: long_take_settings.recheck_sample]
    media = clip_media_for_shard(st, shard, {r["clip_id"] for r in sample})
    raw = {r["clip_id"]: r for r in st.read_table("raw_clips", shard).to_pylist() if r["clip_id"] in media}
    checked, failures = [], []
    # AdaptiveDetector (a different detector from the splitter's) plus the filter's own tests.
    detector = ShotDetectorConfig(detector="adaptive")
    for r in sample:
        # The clip file, or its span of the source cut to a temporary file.
        with local_clip_file(st, media[r["clip_id"]], raw[r["clip_id"]]) as local:
            a = analyze_video(local, detector)
        found = {
            "shots": len(a.shots),
            "inner_cuts": inner_cuts(a.frames, config),
            "transitions": [t["kind"] for t in gradual_transitions(a.frames, a.fps, config)],
        }
        checked.append({"clip_id": r["clip_id"], **found})
        if found["shots"] > 1 or found["inner_cuts"] or found["transitions"]:
            problem = (f"passed as one long take, but decoded again it has {found['shots']} shots, "
                       f"cuts at {found['inner_cuts'] or 'none'}, transitions {found['transitions'] or 'none'}")
            failures.append({"clip_id": r["clip_id"], "problem": problem})
    res = failing_rows_result(failures, st, shard, ASSET, passing_clips=len(passing))
    return AssetCheckResult(passed=res.passed, description=res.description,
                            metadata={**res.metadata, "re_measured": md_table(checked)})


@asset_check(asset=long_takes, partitions_def=shards)
def pass_rate_in_band(
    context: AssetCheckExecutionContext, store: DatasetStoreResource, long_take_settings: LongTakeSettings
) -> AssetCheckResult:
    """The share of clips that pass lies in the configured band (a threshold gone wrong shows here)."""
    return pass_rate_result(store.get_store(), context.partition_key, long_take_settings)


def pass_rate_result(st, shard: str, s: LongTakeSettings) -> AssetCheckResult:
    rows = st.read_table(ASSET, shard).select(["passed"]).column("passed").to_pylist()
    rate = sum(rows) / len(rows) if rows else 0.0
    judged = len(rows) >= s.min_clips_for_pass_rate
    return AssetCheckResult(
        passed=(not judged) or s.min_pass_rate <= rate <= s.max_pass_rate,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "clips": len(rows),
            "pass_rate": round(rate, 3),
            "band": json.dumps([s.min_pass_rate, s.max_pass_rate]),
            "judged": judged,
        },
    )


@asset_check(asset=long_takes, blocking=True, partitions_def=shards)
def passing_clip_files_decode(context: AssetCheckExecutionContext, store: DatasetStoreResource) -> AssetCheckResult:
    """Every clip file cut after the verdict decodes, with its row's frame count and duration."""
    from vidgraph.defs.raw_clips import verify_clip_files
    from vidgraph.stages.clip_files import ASSET as CLIP_FILES

    st = store.get_store()
    shard = context.partition_key
    written = set()
    if st.exists(st.table_path(CLIP_FILES, shard)):
        written = {r["clip_id"] for r in st.read_table(CLIP_FILES, shard).to_pylist() if r["path"]}
    clips = [c for c in st.read_table("raw_clips", shard).to_pylist() if c["clip_id"] in written]
    checked, failures = verify_clip_files(st, shard, clips, only_under=f"{CLIP_FILES}/")
    return failing_rows_result(failures, st, shard, "clip_files", clip_files=len(written), clips_decoded=checked)
