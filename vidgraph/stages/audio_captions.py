"""audio_captions: timeline, transcript and captions of the sound of every passing long take."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vidgraph.captions.audio_captions import (
    AudioAnalysis,
    AudioConfig,
    analyze_audio,
    audio_params_json,
    audio_prompt_hash,
    audio_row,
    caption_analyses,
)
from vidgraph.media.audio import ClipAudio, load_clip_audio
from vidgraph.media.clip_media import clip_media_for_shard, local_clip_media
from vidgraph.models.asr import SpeechRecognizer
from vidgraph.models.audio_tagger import AudioTagger
from vidgraph.models.backends import ChatModel, GenerationParams
from vidgraph.models.vad import SileroVAD
from vidgraph.stages.source_videos import StageResult
from vidgraph.storage.schemas import AUDIO_CAPTIONS_SCHEMA, QUARANTINE_SCHEMA
from vidgraph.storage.store import DatasetStore

ASSET = "audio_captions"
log = logging.getLogger(__name__)


@dataclass
class AudioModels:
    vad: SileroVAD
    tagger: AudioTagger | None
    recognizer: SpeechRecognizer | None
    llm: ChatModel | None


def analyze_file(path: str, start_s: float, end_s: float | None, models: AudioModels, cfg: AudioConfig
                 ) -> tuple[ClipAudio | None, AudioAnalysis | None, str, str]:
    """Decode and analyse one span of one file: (audio, analysis, audio_error, error). Never raises
    for a bad file: a decode failure is ``audio_error``, a failure in the analysis is ``error``."""
    try:
        audio = load_clip_audio(path, start_s, end_s)
    except Exception as e:  # noqa: BLE001 - one clip's sound never blocks the shard
        return None, None, f"{type(e).__name__}: {e}"[:500], ""
    if not audio.has_audio:
        return audio, None, "", ""
    duration = (end_s - start_s) if end_s is not None else audio.duration_s
    try:
        analysis = analyze_audio(audio.samples, duration, cfg, models.vad, models.tagger, models.recognizer)
    except Exception as e:  # noqa: BLE001
        log.exception("audio analysis failed on %s", path)
        return audio, None, audio.error, f"analysis: {type(e).__name__}: {e}"[:500]
    return audio, analysis, audio.error, ""


def provenance(models: AudioModels, cfg: AudioConfig, params: GenerationParams) -> dict[str, Any]:
    r, t, llm = models.recognizer, models.tagger, models.llm
    return {
        "asr_backend": r.backend if r else "", "asr_model_id": r.model_id if r else "",
        "asr_revision": r.revision if r else "",
        "tagger_model_id": t.model_id if t else "", "tagger_revision": t.revision if t else "",
        "llm_model_id": llm.model_id if llm else "", "llm_revision": llm.revision if llm else "",
        "vad_model_id": models.vad.model_id, "vad_revision": models.vad.revision,
        "prompt_hash": audio_prompt_hash(),
        "params": audio_params_json(cfg, params, models.vad, {"asr": r.describe() if r else None}),
    }


def build_audio_captions(store: DatasetStore, shard: str, models: AudioModels, params: GenerationParams,
                         cfg: AudioConfig) -> StageResult:
    takes = sorted((r for r in store.read_table("long_takes", shard).to_pylist() if r["passed"]),
                   key=lambda r: r["clip_id"])
    media, media_error = {}, ""
    try:
        media = clip_media_for_shard(store, shard, {t["clip_id"] for t in takes})
    except Exception as e:  # noqa: BLE001 - e.g. a missing source table: every row says so
        media_error = f"clip media: {type(e).__name__}: {e}"[:500]
    rows, analyses = [], []
    for t in takes:
        duration = float(t["duration_s"])
        base = {"clip_id": t["clip_id"], "video_id": t["video_id"], "shard": shard, "duration_s": duration,
                "has_audio": False, "audio_error": "", "error": "", "source_sample_rate": None,
                "source_channels": None}
        m = media.get(t["clip_id"])
        audio = analysis = None
        if m is None:
            base["audio_error"] = media_error or "no clip media for this clip"
        else:
            try:
                with local_clip_media(store, m) as local:
                    audio, analysis, base["audio_error"], base["error"] = analyze_file(
                        local, m.start_s, m.start_s + duration, models, cfg)
            except FileNotFoundError as e:
                base["audio_error"] = f"FileNotFoundError: {e}"[:500]
        if audio is not None:
            base.update(has_audio=audio.has_audio, source_sample_rate=audio.source_rate or None,
                        source_channels=audio.source_channels or None)
        elif "AudioDecodeError" in base["audio_error"]:
            base["has_audio"] = True  # there is a stream; it did not decode
        if analysis is not None and analysis.asr.error:
            base["error"] = "; ".join(e for e in (base["error"], analysis.asr.error) if e)
        rows.append(base)
        analyses.append(analysis)
    music, captions, errors = caption_analyses(analyses, models.llm, params, cfg)
    prov = provenance(models, cfg, params) if rows else {}
    for base, a, mc, cap, errs in zip(rows, analyses, music, captions, errors):
        base.update(audio_row(a, mc, cap, base["duration_s"], base["has_audio"], readable=not base["audio_error"]))
        base.update(prov)
        if errs:
            base["error"] = "; ".join([e for e in (base["error"],) if e] + errs)
    table = pa.Table.from_pylist(rows, schema=AUDIO_CAPTIONS_SCHEMA)
    with store.staging_dir() as staging:
        pq.write_table(table, staging / f"{ASSET}.parquet", compression="zstd")
        store.publish_shard(ASSET, shard, staging)
    return StageResult(table, QUARANTINE_SCHEMA.empty_table(), inputs=len(takes))
