"""long_takes: LVD-2M-style filtering of raw clips from the stored signals (no new decode).

One row per raw clip with every metric, ``passed`` and the reasons it failed; each clip's
keyframes (one every 2 s, picked from the analysis pass's keyframes) are copied beside, with
their timestamps in a ``keyframes`` table, for the caption stages.
"""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vidgraph.media.longtake import LongTakeConfig, dynamic_scorer_json, evaluate_clip, failure_reasons, select_keyframes
from vidgraph.stages.raw_clips import (
    FRAME_SIGNALS_TABLE,
    SAMPLE_SIGNALS_TABLE,
    VIDEO_KEYFRAMES_TABLE,
    signals_from_table,
)
from vidgraph.stages.source_videos import StageResult
from vidgraph.storage.schemas import CLIP_KEYFRAMES_SCHEMA, CLIP_OCR_SCHEMA, LONG_TAKES_SCHEMA, QUARANTINE_SCHEMA
from vidgraph.storage.store import DatasetStore

ASSET = "long_takes"
KEYFRAMES_TABLE = "clip_keyframes"  # the catalog view of the same name
KEYFRAMES_DIR = "keyframes"
OCR_TABLE = "clip_ocr"  # the catalog view of the same name
OCR_BATCH = 64
ID_COLUMNS = ["clip_id", "video_id", "shard", "start_frame", "end_frame", "start_s", "end_s"]


def _by_video(table: pa.Table) -> dict[str, pa.Table]:
    if table.num_rows == 0:
        return {}
    ids = table.column("video_id").to_numpy(zero_copy_only=False)
    return {str(v): table.filter(pa.array(ids == v)) for v in np.unique(ids)}


def build_long_takes(
    store: DatasetStore,
    shard: str,
    config: LongTakeConfig = LongTakeConfig(),
    scorer=None,
    ocr=None,
) -> StageResult:
    """Evaluate every raw clip of ``shard``; ``scorer`` (a ClipScorer) adds semantic quality,
    scoring all keyframes of the shard in one batched pass; ``ocr`` (an OcrEngine) reads the text
    on the keyframes of the clips that pass every other test (see ocr_otherwise_passing)."""
    clips = store.read_table("raw_clips", shard).to_pylist()
    frames = _by_video(store.read_table("raw_clips", shard, FRAME_SIGNALS_TABLE))
    samples = _by_video(store.read_table("raw_clips", shard, SAMPLE_SIGNALS_TABLE))
    video_kfs: dict[str, list[dict]] = defaultdict(list)
    for k in store.read_table("raw_clips", shard, VIDEO_KEYFRAMES_TABLE).to_pylist():
        video_kfs[k["video_id"]].append(k)
    for kfs in video_kfs.values():
        kfs.sort(key=lambda k: k["frame_index"])
    signals = {vid: ({k: v for k, v in signals_from_table(t).items() if k != "frame_index"}) for vid, t in frames.items()}
    sample_signals = {vid: signals_from_table(t) for vid, t in samples.items()}

    rows, kf_rows, images = [], [], []
    filter_config = config.to_json()
    semantic_scorer = json.dumps(scorer.describe(), sort_keys=True) if scorer is not None else ""
    with store.staging_dir() as staging:
        for clip in clips:
            vid = clip["video_id"]
            metrics = evaluate_clip(
                clip["start_frame"], clip["end_frame"], clip["start_s"], clip["end_s"],
                signals[vid], sample_signals.get(vid, {}), config, fps=clip["fps"],
            )
            analysis_params = json.loads(clip.get("analysis_params") or "{}")
            metrics["dynamic_scorer"] = dynamic_scorer_json(analysis_config=analysis_params)
            kfs = video_kfs[vid]
            chosen = select_keyframes(
                clip["start_frame"], clip["end_frame"],
                [k["frame_index"] for k in kfs], [k["t_s"] for k in kfs], config.keyframe_every_s,
            )
            clip_images = []
            folder = staging / KEYFRAMES_DIR / clip["clip_id"]
            for i, idx in enumerate(chosen):
                k = kfs[idx]
                data = store.read_bytes(store.path(k["path"]))
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{i:03d}.jpg").write_bytes(data)
                clip_images.append(data)
                kf_rows.append(
                    {
                        "clip_id": clip["clip_id"],
                        "video_id": vid,
                        "keyframe_index": i,
                        "frame_index": k["frame_index"],
                        "t_s": k["t_s"],
                        "t_clip_s": round(k["t_s"] - clip["start_s"], 6),
                        "width": k["width"],
                        "height": k["height"],
                        "path": f"{ASSET}/{shard}/{KEYFRAMES_DIR}/{clip['clip_id']}/{i:03d}.jpg",
                    }
                )
            images.append(clip_images)
            rows.append(
                {
                    **{c: clip[c] for c in ID_COLUMNS},
                    **metrics,
                    "semantic_score": None,
                    "keyframe_count": len(chosen),
                    "semantic_scorer": semantic_scorer,
                    "filter_config": filter_config,
                }
            )
        if scorer is not None:
            _score(rows, images, scorer, config)
        if ocr is not None:
            ocr_rows = ocr_otherwise_passing(rows, images, kf_rows, ocr, config)
            pq.write_table(pa.Table.from_pylist(ocr_rows, schema=CLIP_OCR_SCHEMA), staging / f"{OCR_TABLE}.parquet")
        table = pa.Table.from_pylist(rows, schema=LONG_TAKES_SCHEMA)
        pq.write_table(pa.Table.from_pylist(kf_rows, schema=CLIP_KEYFRAMES_SCHEMA), staging / f"{KEYFRAMES_TABLE}.parquet")
        pq.write_table(table, staging / f"{ASSET}.parquet", compression="zstd")
        store.publish_shard(ASSET, shard, staging)
    return StageResult(table, QUARANTINE_SCHEMA.empty_table(), inputs=len(clips))


def _score(rows: list[dict], images: list[list[bytes]], scorer, config: LongTakeConfig) -> None:
    """Score every keyframe of the shard in one batched call; a clip's score is its mean."""
    flat = [img for clip_images in images for img in clip_images]
    if not flat:
        return
    from vidgraph.models.clip_scorer import decode_jpeg

    scores = scorer.score_images([decode_jpeg(b) for b in flat])
    pos = 0
    for row, clip_images in zip(rows, images):
        n = len(clip_images)
        if n:
            row["semantic_score"] = float(np.mean(scores[pos : pos + n]))
            row["reasons"] = failure_reasons(row, config)
            row["passed"] = not row["reasons"]
        pos += n


def ocr_otherwise_passing(rows: list[dict], images: list[list[bytes]], kf_rows: list[dict], ocr, config: LongTakeConfig) -> list[dict]:
    """OCR of the keyframes of every clip that passes all tests but overlaid text, in one batched
    call; sets the rows' OCR metrics, re-judges them (the overlaid-text metric now comes from the
    text boxes) and returns the ``clip_ocr`` rows. Clips that fail on other grounds are not read."""
    from vidgraph.media.longtake import ocr_text_metrics
    from vidgraph.media.ocr import clean_text

    times: dict[str, list[float]] = defaultdict(list)
    for k in kf_rows:
        times[k["clip_id"]].append(k["t_clip_s"])
    todo = [i for i, r in enumerate(rows) if not set(r["reasons"]) - {"overlaid_text"} and images[i]]
    flat = [img for i in todo for img in images[i]]
    # Batches of OCR_BATCH keyframes: recognition is batched across them, and decoded frames of a
    # long shard never all sit in memory at once.
    results = [fo for i in range(0, len(flat), OCR_BATCH) for fo in ocr.read_jpegs(flat[i : i + OCR_BATCH])]
    model = ocr.model
    out, pos = [], 0
    for i in todo:
        row, n = rows[i], len(images[i])
        frames = results[pos : pos + n]
        pos += n
        row.update(ocr_text_metrics([f.area_frac for f in frames], config), ocr_model=model)
        row["reasons"] = failure_reasons(row, config)
        row["passed"] = not row["reasons"]
        for k, (t, f) in enumerate(zip(times[row["clip_id"]], frames)):
            out.append(
                {
                    "clip_id": row["clip_id"],
                    "video_id": row["video_id"],
                    "keyframe_index": k,
                    "t_clip_s": t,
                    "text": clean_text(f.text, 1000),
                    "boxes": [{"text": line.text, "score": line.score, "quad": line.quad} for line in f.lines],
                    "area_frac": f.area_frac,
                    "ocr_model": model,
                }
            )
    return out
