"""raw_clips: one decode pass per video for cuts and signals; shots recorded as spans.

Shots are spans of their source video (frames, seconds, signals, keyframes), as LVD-2M and
Panda-70M publish them. Clip files are written by the ``clip_files`` setting: ``passing`` (the
default: the long_takes step cuts only the clips that pass, see vidgraph.stages.clip_files),
``all`` (cut here, every shot) or ``none``. The rows never depend on the setting; consumers read
a clip through vidgraph.media.clip_media (its file when there is one, else its span).

Besides the clip table the shard keeps the per-frame and per-sample signals of the analysis
pass and its keyframes, so long_takes never decodes the videos again. Each video is decoded
(and cut) in a worker process: a native crash quarantines that video, not the run.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vidgraph.faults import reraise_if_infrastructure
from vidgraph.media.analysis import AnalysisConfig, VideoAnalysis
from vidgraph.media.cutting import ClipEncoding
from vidgraph.media.isolate import run_isolated
from vidgraph.media.jobs import analyze_job, cut_job  # noqa: F401 - run in the media worker; re-exported
from vidgraph.media.probe import InputPolicy, InputRejected
from vidgraph.media.shots import ShotDetectorConfig, shot_problems
from vidgraph.progress import video_done
from vidgraph.stages.source_videos import StageResult, quarantine_row, set_aside
from vidgraph.storage.schemas import QUARANTINE_SCHEMA, RAW_CLIPS_SCHEMA, VIDEO_KEYFRAMES_SCHEMA
from vidgraph.storage.store import DatasetStore

ASSET = "raw_clips"
FRAME_SIGNALS_TABLE = "frame_signals"
SAMPLE_SIGNALS_TABLE = "sample_signals"
VIDEO_KEYFRAMES_TABLE = "video_keyframes"
CLIP_FILES = ("passing", "all", "none")


@dataclass(frozen=True)
class RawClipsSettings:
    detector: ShotDetectorConfig = ShotDetectorConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    encoding: ClipEncoding = ClipEncoding()
    policy: InputPolicy = InputPolicy()
    clip_files: str = "passing"  # which clips get a file: passing (long_takes cuts them), all, none
    isolate: bool = True  # decode each video in a worker process

    def __post_init__(self):
        if self.clip_files not in CLIP_FILES:
            raise ValueError(f"clip_files must be one of {', '.join(CLIP_FILES)}, not {self.clip_files!r}")


def worker_deadline_s(policy: InputPolicy) -> float:
    """Hard limit for one worker job: the decode limit (checked inside) with room to spare."""
    return policy.decode_timeout_s * 1.5 + 60.0


def clip_path(shard: str, clip_id: str) -> str:
    """Where raw_clips writes a clip's file (with ``clip_files: all``), relative to the root."""
    return f"{ASSET}/{shard}/media/{clip_id}.mp4"


def clip_id_for(video_id: str, index: int) -> str:
    return f"{video_id}-c{index:04d}"


def signal_table(video_id: str, arrays: dict[str, np.ndarray], index_name: str | None) -> pa.Table:
    """Columns of one video's signals (any numeric arrays the analysis produced)."""
    n = len(next(iter(arrays.values()))) if arrays else 0
    cols = {"video_id": pa.array([video_id] * n, pa.string())}
    if index_name:
        cols[index_name] = pa.array(np.arange(n, dtype=np.int64))
    for k, v in arrays.items():
        cols[k] = pa.array(np.asarray(v))
    return pa.table(cols)


def signals_from_table(table: pa.Table, drop: tuple[str, ...] = ("video_id",)) -> dict[str, np.ndarray]:
    return {c: table.column(c).to_numpy() for c in table.column_names if c not in drop}


def clip_file_problem(path, row: dict, decode: str = "all") -> str:
    """Why the clip file at ``path`` does not match its row, in words ("" when it does): it must
    decode, hold the row's number of frames, and its video track must last the row's duration
    (shots.frame_end_times: the last frame is shown until the clip's end, a stall included)
    within half a frame. Infrastructure faults (S3, disk) are raised, not reported.

    ``decode="all"`` decodes every frame (the asset checks). ``decode="ends"`` (the stages,
    right after cutting) counts and times every packet of an H.264/HEVC file, one per frame,
    and decodes its first and last GOP: where a smart cut re-encoded frames and joined them to
    copied ones; the GOPs between are the source's own packets, decoded by the analysis pass.
    ``decode="packets"`` decodes nothing: for a file the cutter copied whole from the source's
    packets. The blocking checks still decode every file."""
    from vidgraph.media.decode import iter_video_frames
    from vidgraph.media.probe import open_input
    from vidgraph.media.shots import nominal_frame_s

    try:
        with open_input(path) as container:
            stream = container.streams.video[0]
            # Only frames and times are compared, not pixels: no deblocking (about 30 % of the decode).
            stream.codec_context.options = {"skip_loop_filter": "all"}
            if decode in ("ends", "packets") and stream.codec_context.name in ("h264", "hevc"):
                times, problem = _packet_times_decoding_ends(container, stream, decode == "ends")
                if problem:
                    return problem
            else:
                times = [df.t_s for df in iter_video_frames(container, stream)]
            track_s = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
    except Exception as e:  # noqa: BLE001 - a failure to decode is the finding
        reraise_if_infrastructure(e)  # an S3 outage is not a broken clip
        return f"the clip file does not decode: {type(e).__name__}: {e}"
    if len(times) != row["n_frames"]:
        return f"the clip file has {len(times)} frames, its row says {row['n_frames']}"
    if track_s is None:  # a container without a track duration: the last frame lasts a nominal one
        track_s = times[-1] + nominal_frame_s(times, row["fps"])
    if abs(track_s - row["duration_s"]) > 0.5 / row["fps"] + 1e-3:
        return f"the clip file lasts {track_s:.3f}s, its row says {row['duration_s']:.3f}s"
    return ""


def cut_time_check(f) -> str:
    """How much of a clip file just cut is decoded to check it (``clip_file_problem``): nothing
    when the cutter copied all its frames from the source's packets, else its first and last GOP."""
    return "packets" if f.method == "smart" and f.copied_frames == f.n_frames else "ends"


def _packet_times_decoding_ends(container, stream, decode_ends: bool = True) -> tuple[list[float], str]:
    """Presentation times of every video packet (relative to the first), and a problem when
    the file does not start with a keyframe or (``decode_ends``) its first or last GOP does not
    decode to one frame per packet."""
    import av

    packets = [p for p in container.demux(stream) if p.size]
    if not packets:
        return [], "the clip file has no video packet"
    if any(p.pts is None for p in packets):
        return [], "a packet of the clip file has no timestamp"
    tb = float(stream.time_base)
    pts = sorted(p.pts for p in packets)
    times = [(x - pts[0]) * tb for x in pts]
    keys = [i for i, p in enumerate(packets) if p.is_keyframe]
    if not keys or keys[0] != 0:
        return times, "the clip file does not start with a keyframe"
    spans = [(0, keys[1] if len(keys) > 1 else len(packets))] if decode_ends else []
    if decode_ends and len(keys) > 1:
        spans.append((keys[-1], len(packets)))
    for a, b in spans:
        ctx = av.CodecContext.create(stream.codec_context.name, "r")
        ctx.extradata = stream.codec_context.extradata
        ctx.options = {"skip_loop_filter": "all"}
        got = 0
        for p in packets[a:b]:
            got += len(ctx.decode(p))
        got += len(ctx.decode(None))
        if got != b - a:
            return times, f"packets {a}-{b - 1} of the clip file decode to {got} frames, not {b - a}"
    return times, ""


def _published_clips(store: DatasetStore, shard: str) -> dict[str, list[dict]]:
    """The shard's current clip rows by video, for reusing unchanged clip files."""
    if not store.exists(store.table_path(ASSET, shard)):
        return {}
    out: dict[str, list[dict]] = {}
    for row in store.read_table(ASSET, shard).to_pylist():
        out.setdefault(row["video_id"], []).append(row)
    return out


def _reuse_clip_files(store: DatasetStore, previous: list[dict], shots, encoding: str, out_paths) -> bool:
    """Copy the published files when the same video was cut at the same frames with the same
    encoding: re-runs then give identical files (x264 output is not byte-reproducible)."""
    if not previous or len(previous) != len(shots):
        return False
    previous = sorted(previous, key=lambda r: r["clip_index"])
    same = all(
        (r["start_frame"], r["end_frame"], r["encoding"]) == (s.start_frame, s.end_frame, encoding)
        for r, s in zip(previous, shots)
    )
    if not same or not all(store.exists(store.path(r["path"])) for r in previous):
        return False
    for r, out in zip(previous, out_paths):
        src = store.path(r["path"])
        if store.is_local:
            os.link(src, out)  # same disk: no copy
        else:
            out.write_bytes(store.read_bytes(src))
    # A file cut before the last frame lasted until the clip's end (a clip ending on a stall)
    # does not match its row: cut them all again.
    if any(clip_file_problem(out, r, decode="ends") for r, out in zip(previous, out_paths)):
        for out in out_paths:
            out.unlink(missing_ok=True)
        return False
    return True


def build_raw_clips(
    store: DatasetStore, shard: str, settings: RawClipsSettings = RawClipsSettings(), job=analyze_job, log=None
) -> StageResult:
    """``job`` (the analysis of one video, run in a worker) is replaceable for fault tests;
    ``log`` (a callable) hears about clip files that could not be written."""
    aside = set_aside(store, shard)  # set aside by hand since source_videos ran: skipped
    videos = [v for v in store.read_table("source_videos", shard).to_pylist() if v["sha256"] not in aside]
    published = _published_clips(store, shard)
    clip_rows: list[dict] = []
    frame_tables: list[pa.Table] = []
    sample_tables: list[pa.Table] = []
    keyframe_rows: list[dict] = []
    quarantined: list[dict] = []
    detector_params = json.dumps(settings.detector.describe(), sort_keys=True)
    encoding = json.dumps(settings.encoding.describe(), sort_keys=True)
    analysis_params = json.dumps(settings.analysis.describe(), sort_keys=True)
    deadline = worker_deadline_s(settings.policy)
    with store.staging_dir() as staging:
        for video in videos:
            vid = video["video_id"]
            media = store.path(video["media_path"])
            started = time.monotonic()
            try:
                with store.local_copy(media, suffix=".video") as local:
                    analysis, audio_note = run_isolated(
                        job, local, settings.detector, settings.analysis, settings.policy,
                        timeout_s=deadline, isolate=settings.isolate,
                    )
                    clip_ids = [clip_id_for(vid, i) for i in range(len(analysis.shots))]
                    # Rows that break the rules the checks hold (cover the video, no shot under the
                    # minimum) set this video aside; the shard's other videos carry on.
                    problems = shot_problems(analysis.shots, analysis.n_frames, settings.detector.effective_min_scene_len)
                    if problems:
                        raise InputRejected("its clips cannot be verified: " + "; ".join(problems[:3]))
                    if settings.clip_files == "all":
                        _cut_all(store, local, published.get(vid, []), analysis, clip_ids, staging, encoding, settings, log)
            except InputRejected as e:
                quarantined.append(quarantine_row(video["landing_path"], e.reason, ASSET, shard, video["sha256"], vid))
                continue
            except Exception as e:  # noqa: BLE001 - a video the decoder chokes on must not stop the shard
                reraise_if_infrastructure(e)  # S3/network/disk faults retry the step; they are not the file's
                quarantined.append(
                    quarantine_row(video["landing_path"], f"decode failed: {type(e).__name__}: {e}", ASSET, shard, video["sha256"], vid)
                )
                continue
            has_audio = bool(video.get("has_audio")) and not audio_note
            if audio_note and log is not None:
                log(f"{vid}: kept without its sound: {audio_note}")
            # Clip files are even-sized (yuv420p); smart-cut sources are even already.
            width, height = analysis.width // 2 * 2, analysis.height // 2 * 2
            video_done(ASSET, video["relpath"], analysis.n_frames, analysis.duration_s, started, f"{len(analysis.shots)} clips")
            for i, shot in enumerate(analysis.shots):
                clip_rows.append(
                    {
                        "clip_id": clip_ids[i],
                        "video_id": vid,
                        "shard": shard,
                        "clip_index": i,
                        "start_frame": shot.start_frame,
                        "end_frame": shot.end_frame,
                        "n_frames": shot.n_frames,
                        "start_s": round(shot.start_s, 6),
                        "end_s": round(shot.end_s, 6),
                        "duration_s": round(shot.duration_s, 6),
                        "fps": analysis.fps,
                        "width": width,
                        "height": height,
                        "has_audio": has_audio,
                        "audio_note": audio_note,
                        "path": clip_path(shard, clip_ids[i]),
                        "detector": settings.detector.detector,
                        "detector_params": detector_params,
                        "encoding": encoding,
                        "analysis_params": analysis_params,
                    }
                )
            frame_tables.append(signal_table(vid, analysis.frames, "frame_index"))
            sample_tables.append(signal_table(vid, analysis.samples, None))
            keyframe_rows.extend(_write_keyframes(staging, shard, vid, analysis))
        table = pa.Table.from_pylist(clip_rows, schema=RAW_CLIPS_SCHEMA)
        _concat_write(staging / f"{FRAME_SIGNALS_TABLE}.parquet", frame_tables)
        _concat_write(staging / f"{SAMPLE_SIGNALS_TABLE}.parquet", sample_tables)
        pq.write_table(pa.Table.from_pylist(keyframe_rows, schema=VIDEO_KEYFRAMES_SCHEMA), staging / f"{VIDEO_KEYFRAMES_TABLE}.parquet")
        # The asset's own table last: it marks the shard complete.
        pq.write_table(table, staging / f"{ASSET}.parquet", compression="zstd")
        qtable = pa.Table.from_pylist(quarantined, schema=QUARANTINE_SCHEMA)
        store.write_table("quarantine", shard, qtable, name=ASSET)  # before publishing: see source_videos
        store.publish_shard(ASSET, shard, staging)
    return StageResult(table, qtable, inputs=len(videos))


def _cut_all(store, local, previous, analysis, clip_ids, staging, encoding, settings, log) -> None:
    """``clip_files: all``: a file for every shot. A video whose files cannot be cut keeps its
    rows (its clips are then read as spans of the source), so rows never depend on cutting."""
    out_paths = [staging / "media" / f"{cid}.mp4" for cid in clip_ids]
    out_paths[0].parent.mkdir(parents=True, exist_ok=True)
    if _reuse_clip_files(store, previous, analysis.shots, encoding, out_paths):
        return
    try:
        files = run_isolated(cut_job, local, analysis.shots, out_paths, settings.encoding, settings.policy,
                             timeout_s=worker_deadline_s(settings.policy), isolate=settings.isolate)
        for cid, shot, out, f in zip(clip_ids, analysis.shots, out_paths, files):
            row = {"n_frames": shot.n_frames, "fps": analysis.fps, "duration_s": round(shot.duration_s, 6)}
            if problem := clip_file_problem(out, row, decode=cut_time_check(f)):
                raise ValueError(f"{cid}: {problem}")
    except Exception as e:  # noqa: BLE001 - the rows stand; their clips are read as spans
        reraise_if_infrastructure(e)
        for p in out_paths:
            p.unlink(missing_ok=True)
        if log is not None:
            log(f"clip files of {clip_ids[0].rsplit('-', 1)[0]} not written: {type(e).__name__}: {e}")


def _concat_write(path, tables: list[pa.Table]) -> None:
    if tables:
        table = pa.concat_tables(tables, promote_options="permissive")
    else:
        table = pa.table({"video_id": pa.array([], pa.string())})
    pq.write_table(table, path, compression="zstd")


def _write_keyframes(staging, shard: str, video_id: str, analysis: VideoAnalysis) -> list[dict]:
    rows = []
    folder = staging / "keyframes" / video_id
    folder.mkdir(parents=True, exist_ok=True)
    for kf in analysis.keyframes:
        name = f"{kf.frame_index:07d}.jpg"
        (folder / name).write_bytes(kf.jpeg)
        rows.append(
            {
                "video_id": video_id,
                "frame_index": kf.frame_index,
                "t_s": round(kf.t_s, 6),
                "width": kf.width,
                "height": kf.height,
                "path": f"{ASSET}/{shard}/keyframes/{video_id}/{name}",
            }
        )
    return rows
