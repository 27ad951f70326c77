"""raw_clips: shot detection in one decode pass; shots as spans, clip files by the clip_files setting."""


import json
from collections import defaultdict

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from pydantic import Field

from vidgraph.defs.guards import require_ingested
from vidgraph.defs.metadata import contact_sheet, failing_rows_result, image_file, md_table
from vidgraph.defs.partitions import STEP_RETRY, shards
from vidgraph.defs.resources import ClipFileSettings, DatasetStoreResource, IngestSettings
from vidgraph.defs.source_videos import accounting, source_videos
from vidgraph.media.clip_media import clip_media_for_shard, local_clip_media
from vidgraph.defs.versions import raw_clips_version
from vidgraph.media.shots import DETECTORS, Shot, ShotDetectorConfig, shot_problems
from vidgraph.stages.raw_clips import (
    ASSET, FRAME_SIGNALS_TABLE, VIDEO_KEYFRAMES_TABLE, RawClipsSettings, build_raw_clips, clip_file_problem,
)

PREVIEW_COLUMNS = ["clip_id", "start_frame", "end_frame", "start_s", "end_s", "duration_s", "has_audio"]


def _defaults(attr: str) -> str:
    """Each detector's default for ``attr`` (an effective_* property), read from the code."""
    return ", ".join(f"{d} {getattr(ShotDetectorConfig(detector=d), attr):g}" for d in DETECTORS)


class RawClipsConfig(Config):
    detector: str = Field(default=ShotDetectorConfig().detector, description=f"one of {', '.join(DETECTORS)}")
    threshold: float | None = Field(default=None, description=f"detector threshold; empty for its default ({_defaults('effective_threshold')})")
    min_scene_len: int | None = Field(
        default=None,
        description=f"minimum shot length in frames, shorter shots are merged; empty for the detector's default ({_defaults('effective_min_scene_len')})",
    )

    def detector_config(self) -> ShotDetectorConfig:
        return ShotDetectorConfig(detector=self.detector, threshold=self.threshold, min_scene_len=self.min_scene_len)


@asset(partitions_def=shards, retry_policy=STEP_RETRY, group_name="clips", code_version=raw_clips_version(), deps=[source_videos], kinds={"video", "parquet"})
def raw_clips(
    context: AssetExecutionContext,
    config: RawClipsConfig,
    store: DatasetStoreResource,
    ingest_settings: IngestSettings,
    clip_file_settings: ClipFileSettings,
) -> MaterializeResult:
    """Shots found in one low-res decode, as spans with signals and keyframes (clip files by the clip_files setting)."""
    st = store.get_store()
    shard = context.partition_key
    require_ingested(st, shard, "source_videos")
    settings = clip_file_settings.apply(RawClipsSettings(detector=config.detector_config(), policy=ingest_settings.policy()))
    result = build_raw_clips(st, shard, settings, log=context.log.warning)
    rows = result.table.to_pylist()
    quarantined = result.quarantine.to_pylist()
    for q in quarantined:
        context.log.warning(f"quarantined {q['path']!r}: {q['reason']}")
    sheet = _clip_sheet(st, shard, rows)
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "videos": len({r["video_id"] for r in rows}),
            "quarantined": len(quarantined),
            "mean_clip_s": round(sum(r["duration_s"] for r in rows) / max(1, len(rows)), 2),
            "detector": MetadataValue.json(settings.detector.describe()),
            "clip_files": settings.clip_files,
            "without_sound": md_table([r for r in rows if r["audio_note"]], ["clip_id", "audio_note"]),
            "preview": md_table(rows, PREVIEW_COLUMNS),
            "quarantine": md_table(quarantined, ["path", "reason"]),
            "first_frames": image_file(st, ASSET, shard, "first_frames.jpg", sheet),
            "location": MetadataValue.path(st.uri(ASSET, shard)),
        }
    )


def _clip_sheet(st, shard: str, rows: list[dict], limit: int = 18) -> bytes | None:
    """The first keyframe inside each clip, as one contact sheet."""
    if not rows or not st.exists(st.table_path(ASSET, shard, VIDEO_KEYFRAMES_TABLE)):
        return None
    kfs = defaultdict(list)
    for k in st.read_table(ASSET, shard, VIDEO_KEYFRAMES_TABLE).to_pylist():
        kfs[k["video_id"]].append(k)
    images, labels = [], []
    for r in rows[:limit]:
        inside = [k for k in kfs[r["video_id"]] if r["start_frame"] <= k["frame_index"] < r["end_frame"]]
        if inside:
            images.append(st.read_bytes(st.path(inside[0]["path"])))
            labels.append(f"{r['clip_id'][-5:]} {r['duration_s']:.1f}s")
    return contact_sheet(images, labels)


@asset_check(asset=raw_clips, blocking=True, partitions_def=shards)
def every_video_accounted_for(context: AssetCheckExecutionContext, store: DatasetStoreResource) -> AssetCheckResult:
    """Every source video of the shard has clips or is in the quarantine."""
    return accounting(store.get_store(), context.partition_key, "source_videos", ASSET, ASSET, "video_id")


@asset_check(asset=raw_clips, blocking=True, partitions_def=shards)
def clips_cover_each_video(context: AssetCheckExecutionContext, store: DatasetStoreResource) -> AssetCheckResult:
    """Each video's clips start at frame 0, follow each other with no gap or overlap, end at its last frame, and none is under the minimum length."""
    st = store.get_store()
    shard = context.partition_key
    clips = st.read_table(ASSET, shard).to_pylist()
    frames = st.read_table(ASSET, shard, FRAME_SIGNALS_TABLE)
    n_frames = {}
    if frames.num_rows:
        counts = frames.group_by("video_id").aggregate([("frame_index", "count")])
        n_frames = dict(zip(counts.column("video_id").to_pylist(), counts.column("frame_index_count").to_pylist()))
    return failing_rows_result(coverage_failures(clips, n_frames), st, shard, ASSET, clips=len(clips), videos=len(n_frames))


def coverage_failures(clips: list[dict], n_frames: dict[str, int]) -> list[dict]:
    """One failing row per problem of a video's clips (media.shots.shot_problems: the rules
    raw_clips applies before it publishes a video, with the minimum its detector was given)."""
    by_video = defaultdict(list)
    for c in clips:
        by_video[c["video_id"]].append(c)
    failures = []
    for vid, cs in sorted(by_video.items()):
        cs.sort(key=lambda c: c["clip_index"])
        shots = [Shot(c["start_frame"], c["end_frame"], c["start_s"], c["end_s"]) for c in cs]
        min_len = int(json.loads(cs[0]["detector_params"] or "{}").get("min_scene_len", 1))
        for problem in shot_problems(shots, n_frames.get(vid, 0), min_len):
            failures.append({"video_id": vid, "problem": problem})
    return failures


@asset_check(asset=raw_clips, blocking=True, partitions_def=shards)
def clip_files_decode(context: AssetCheckExecutionContext, store: DatasetStoreResource) -> AssetCheckResult:
    """Every clip file raw_clips wrote decodes, with its row's frame count and its row's duration (the last frame lasts until the clip's end)."""
    st = store.get_store()
    shard = context.partition_key
    clips = st.read_table(ASSET, shard).to_pylist()
    checked, failures = verify_clip_files(st, shard, clips, only_under=f"{ASSET}/")
    return failing_rows_result(failures, st, shard, ASSET, clips=len(clips), clips_decoded=checked)


def verify_clip_files(st, shard: str, clips: list[dict], only_under: str = "") -> tuple[int, list[dict]]:
    """Decode each clip's file (found through clip_media; spans are skipped) and compare it with
    its row (stages.raw_clips.clip_file_problem). Returns (files decoded, failures)."""
    media = clip_media_for_shard(st, shard, {c["clip_id"] for c in clips})
    failures, checked = [], 0
    for c in clips:
        m = media.get(c["clip_id"])
        if m is None or not m.is_clip_file or (only_under and not m.path.startswith(st.path(only_under.rstrip("/")))):
            continue
        checked += 1
        with local_clip_media(st, m) as local:
            problem = clip_file_problem(local, c)
        if problem:
            failures.append({"clip_id": c["clip_id"], "problem": problem})
    return checked, failures
