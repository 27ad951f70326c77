"""Small hand-built upstream tables for the release tests: the contract columns of source_videos,
raw_clips, long_takes (+ clip_keyframes with real JPEGs), audio_captions and merged_captions, for
as many shards as a test adds. One real synthetic MP4 serves as every source video; half the clips
get a clip file, the others are read as a span of the source (as raw_clips may do)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa

from vidgraph.media.synthetic import Scene, SyntheticSpec, write_video
from vidgraph.storage.schemas import CLIP_KEYFRAMES_SCHEMA, LONG_TAKES_SCHEMA, RAW_CLIPS_SCHEMA, SOURCE_VIDEOS_SCHEMA
from vidgraph.storage.store import DatasetStore

FPS = 24
SOURCE_FRAMES = 48  # two 1 s scenes: clip 0 = frames [0, 24), clip 1 = [24, 48)

CAPTIONS = [
    "A red sports car drives along a coastal highway at sunset.",
    "A chef slices onions on a wooden board in a busy restaurant kitchen.",
    "Children play football on a muddy field while rain falls.",
    "An old man feeds pigeons on a bench in a quiet city park.",
    "A surfer rides a large wave under a cloudy sky.",
    "A woman paints a landscape on a canvas in a sunlit studio.",
    "Snow covers a mountain village as smoke rises from chimneys.",
    "A cat sleeps on a windowsill next to a potted plant.",
    "Two musicians play violin and cello on a concert stage.",
    "A crowded train station at rush hour with commuters hurrying.",
    "A drone view of green rice terraces on a hillside.",
    "A mechanic repairs a motorcycle engine in a small garage.",
    "Fireworks explode above a river during a night festival.",
    "A baker pulls fresh bread loaves out of a stone oven.",
    "A horse gallops across a dry desert plain.",
    "Scientists look at samples through microscopes in a laboratory.",
    "A kayaker paddles through a narrow canyon river.",
    "Autumn leaves fall in a forest as a hiker walks a trail.",
    "A street market sells colorful fruit and spices.",
    "A skateboarder performs tricks in an empty concrete skatepark.",
    "A lighthouse stands on rocks as storm waves crash.",
    "A farmer drives a tractor through a wheat field.",
    "A scuba diver swims beside a coral reef with tropical fish.",
    "A family eats dinner around a table and laughs.",
    "A plane takes off from a runway at dawn.",
    "A blacksmith hammers glowing metal on an anvil.",
    "Penguins waddle across ice on an Antarctic shore.",
    "A dancer spins on a rooftop with the city skyline behind.",
    "A librarian shelves books in a tall wooden library.",
    "A volcano erupts and sends lava down its slope.",
]
AUDIO_CLASSES = ["speech", "music", "silence", "speech+music"]


def keyframe_jpeg(seed: int, variant: int = 0, size=(96, 64)) -> bytes:
    """A smooth random picture per seed; ``variant`` > 0 re-encodes it slightly changed (a near duplicate)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (6, 8, 3)).astype(np.uint8)
    img = cv2.resize(small, size, interpolation=cv2.INTER_CUBIC)
    quality = 90
    if variant:
        img = cv2.convertScaleAbs(img, alpha=1.0, beta=4 * variant)  # brighter
        quality = 70
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


@dataclass
class ClipSpec:
    caption: str
    image_seed: int
    duration_s: float = 20.0
    audio_class: str = "speech"
    variant: int = 0  # >0: the keyframes are a re-encode of image_seed's
    language: str = "en"


@dataclass
class VideoSpec:
    video_id: str
    clips: list[ClipSpec]
    license: str = "cc-by-4.0"


def source_mp4(folder: Path) -> Path:
    p = folder / "source.mp4"
    if not p.exists():
        spec = SyntheticSpec([Scene(24, "pan", seed=1), Scene(24, "object", seed=2)], width=160, height=96, fps=FPS)
        write_video(p, spec)
    return p


@dataclass
class ReleaseWorld:
    root: Path
    source: Path
    store: DatasetStore = field(init=False)

    def __post_init__(self):
        self.store = DatasetStore(str(self.root))
        self._clip_bytes: bytes | None = None

    def _clip_file(self) -> bytes:
        if self._clip_bytes is None:
            from vidgraph.media.cutting import cut_clips
            from vidgraph.media.shots import Shot

            out = self.root.parent / f"{self.root.name}-clip.mp4"
            cut_clips(self.source, [Shot(0, 24, 0.0, 1.0)], [out])
            self._clip_bytes = out.read_bytes()
        return self._clip_bytes

    def add_shard(self, shard: str, videos: list[VideoSpec], frame_captions: bool = False) -> None:
        st = self.store
        sv, rc, lt, kf, ac, mc, fc = [], [], [], [], [], [], []
        for v in videos:
            media = f"source_videos/{shard}/media/{v.video_id}.mp4"
            Path(st.path(media)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.source, st.path(media))
            sv.append({"video_id": v.video_id, "shard": shard, "sha256": v.video_id, "relpath": f"{v.video_id}.mp4",
                       "landing_path": "", "media_path": media, "container": "mp4", "video_codec": "h264",
                       "width": 160, "height": 96, "duration_s": 2.0, "avg_fps": FPS, "has_audio": True,
                       "source_title": f"title {v.video_id}", "source_description": "", "source_license": v.license,
                       "source_url": "", "source_tags": []})
            for i, c in enumerate(v.clips):
                cid = f"{v.video_id}-c{i:04d}"
                a, b = (0, 24) if i % 2 == 0 else (24, 48)
                path = ""
                if i % 2 == 0:  # even clips have a clip file, odd ones are read as a span of the source
                    path = f"raw_clips/{shard}/media/{cid}.mp4"
                    Path(st.path(path)).parent.mkdir(parents=True, exist_ok=True)
                    Path(st.path(path)).write_bytes(self._clip_file())
                rc.append({"clip_id": cid, "video_id": v.video_id, "shard": shard, "clip_index": i, "start_frame": a,
                           "end_frame": b, "n_frames": 24, "start_s": a / FPS, "end_s": b / FPS, "duration_s": 1.0,
                           "fps": FPS, "width": 160, "height": 96, "has_audio": True, "path": path})
                lt.append({"clip_id": cid, "video_id": v.video_id, "shard": shard, "start_frame": a, "end_frame": b,
                           "start_s": a / FPS, "end_s": b / FPS, "duration_s": c.duration_s, "n_frames": 24,
                           "passed": True, "reasons": [], "dynamic_degree": 0.01 + 0.001 * (c.image_seed % 30),
                           "camera_motion": "pan", "keyframe_count": 3, "filter_config": "{}"})
                for k in range(3):
                    kpath = f"long_takes/{shard}/keyframes/{cid}/{k:03d}.jpg"
                    Path(st.path(kpath)).parent.mkdir(parents=True, exist_ok=True)
                    Path(st.path(kpath)).write_bytes(keyframe_jpeg(c.image_seed * 10 + k, c.variant))
                    kf.append({"clip_id": cid, "video_id": v.video_id, "keyframe_index": k, "frame_index": a + 8 * k,
                               "t_s": (a + 8 * k) / FPS, "t_clip_s": 8 * k / FPS, "width": 96, "height": 64, "path": kpath})
                speech = c.audio_class in ("speech", "speech+music")
                ac.append({
                    "clip_id": cid, "video_id": v.video_id, "shard": shard, "duration_s": c.duration_s, "has_audio": True,
                    "audio_error": "", "timeline": [{"start_s": 0.0, "end_s": c.duration_s, "label": c.audio_class, "confidence": 0.9}],
                    "speech_share": 1.0 if speech else 0.0, "music_share": 1.0 if "music" in c.audio_class else 0.0,
                    "silence_share": 1.0 if c.audio_class == "silence" else 0.0, "audio_class": c.audio_class,
                    "transcript": f"Someone says: {c.caption}" if speech else "",
                    "asr_segments": [{"start_s": 0.0, "end_s": 2.0, "text": c.caption, "avg_logprob": -0.2,
                                      "no_speech_prob": 0.01, "compression_ratio": 1.2}] if speech else [],
                    "language": c.language if speech else "", "music_tags": ["piano"] if "music" in c.audio_class else [],
                    "tempo_bpm": 100.0 if "music" in c.audio_class else None, "loudness_dbfs": -20.0,
                    "music_captions": [{"start_s": 0.0, "end_s": c.duration_s, "text": "calm piano"}] if "music" in c.audio_class else [],
                    "audio_caption": f"{c.audio_class} in the background", "asr_model_id": "tiny.en", "asr_revision": "r1",
                    "tagger_model_id": "tiny:tagger", "tagger_revision": "t1", "llm_model_id": "tiny:llm", "llm_revision": "l1",
                    "prompt_hash": "audiohash", "params": "{}", "error": "",
                })
                mc.append({
                    "clip_id": cid, "video_id": v.video_id, "shard": shard, "duration_s": c.duration_s,
                    "merged_caption": c.caption, "factual_visual": f"Visual: {c.caption}", "factual_audio": f"{c.audio_class}",
                    "factual_ocr": "", "factual_asr": ac[-1]["transcript"], "factual_source": f"title {v.video_id}",
                    "abstract_summary": f"In short: {c.caption.lower()}",
                    "abstract_tags": {"subject": c.caption.split()[1], "place": "somewhere", "time": "day", "event": "scene"},
                    "intent_uploader": f"[uploader] through [filming] aims to [show {c.caption.lower()}]",
                    "intent_subject": "[subject] through [acting] aims to [be seen]",
                    "intent_uploader_verifier": "", "intent_subject_verifier": "",
                    "intent_similarity_uploader": 0.9, "intent_similarity_subject": 0.8, "verified": True,
                    "sixw": {"who": "someone", "what": c.caption, "when": "day", "where": "here", "why": "", "how": ""},
                    "parse_failures": [], "llm_model_id": "tiny:llm", "llm_revision": "l1", "verifier_model_id": "tiny:llm",
                    "verifier_revision": "l1", "embedder_model_id": "packaged:all-MiniLM-L6-v2", "embedder_revision": "e1",
                    "prompt_hash": "mergehash", "gen_params": json.dumps({"temperature": 0}), "error": "",
                })
                if frame_captions:
                    fc.append({"clip_id": cid, "video_id": v.video_id, "shard": shard, "duration_s": c.duration_s,
                               "caption": c.caption, "word_count": len(c.caption.split()),
                               "dense_captions": [{"start_s": 0.0, "end_s": c.duration_s, "text": c.caption, "keyframe_ts": [0.0]}],
                               "refined_caption": c.caption, "concise_caption": " ".join(c.caption.split()[:5]),
                               "llm_model_id": "tiny:llm", "prompt_hash": "framehash", "error": ""})
        st.write_table("source_videos", shard, pa.Table.from_pylist(sv).cast(_widen(SOURCE_VIDEOS_SCHEMA, sv)))
        st.write_table("raw_clips", shard, pa.Table.from_pylist(rc, schema=_subset(RAW_CLIPS_SCHEMA, rc)))
        st.write_table("long_takes", shard, pa.Table.from_pylist(lt, schema=_subset(LONG_TAKES_SCHEMA, lt)))
        st.write_table("long_takes", shard, pa.Table.from_pylist(kf, schema=CLIP_KEYFRAMES_SCHEMA), name="clip_keyframes")
        st.write_table("audio_captions", shard, pa.Table.from_pylist(ac))
        st.write_table("merged_captions", shard, pa.Table.from_pylist(mc))
        if fc:
            st.write_table("frame_captions", shard, pa.Table.from_pylist(fc))


def _subset(schema: pa.Schema, rows: list[dict]) -> pa.Schema:
    names = set(rows[0]) if rows else set()
    return pa.schema([f for f in schema if f.name in names])


def _widen(schema: pa.Schema, rows: list[dict]) -> pa.Schema:
    known = {f.name: f for f in schema}
    inferred = pa.Table.from_pylist(rows).schema
    return pa.schema([known.get(f.name, f) if f.name in known else f for f in inferred])


def videos(prefix: str, n: int, clips_per_video: int = 2, start: int = 0) -> list[VideoSpec]:
    """``n`` distinct videos with distinct pictures and captions, varied durations and audio classes."""
    out = []
    for i in range(start, start + n):
        k = i * clips_per_video
        assert k + clips_per_video <= len(CAPTIONS), "distinct captions run out: fewer videos"
        clips = [ClipSpec(CAPTIONS[k + j],
                          image_seed=1000 + i * clips_per_video + j, duration_s=[12.0, 22.0, 40.0, 75.0][(i + j) % 4],
                          audio_class=AUDIO_CLASSES[(i * 3 + j) % len(AUDIO_CLASSES)])
                 for j in range(clips_per_video)]
        out.append(VideoSpec(f"{prefix}{i:04d}", clips))
    return out
