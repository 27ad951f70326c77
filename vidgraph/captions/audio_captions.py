"""Audio captions for long takes: pure logic (no Dagster, no store).

Per clip (16 kHz mono samples, see :mod:`vidgraph.media.audio`):

1. **Timeline** on a grid of ``hop_s`` frames, tiling ``[0, duration_s]``:
   silence where the level stays under ``silence_dbfs`` for at least ``min_silence_s``; speech
   where Silero VAD finds it; elsewhere music or other from a music score that mixes the audio
   tagger's ``Music`` probability (weight ``tagger_weight``) with signal evidence (tonality =
   1 - spectral flatness, onset periodicity), so that even the tiny random tagger separates a
   tone or a beat from noise. Speech frames with strong music evidence (tagger or pulse, not
   tonality: voices are tonal) are ``speech+music``. Runs shorter than ``min_segment_s`` are
   merged into a neighbour.
2. **ASR** on the speech spans only, hallucinated segments dropped (see :mod:`vidgraph.models.asr`).
3. **Music**: tags (the tagger's genre/instrument/mood labels), tempo and loudness per music
   span, turned by the text model into one short caption per span; then one audio caption
   per clip from a versioned prompt.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping, Sequence

import numpy as np

from ..media.audio import SAMPLE_RATE, estimate_tempo, frame_dbfs, level_dbfs, music_features_blocked
from ..models.asr import AsrResult, HallucinationThresholds, SpeechRecognizer, merge_spans
from ..models.audio_tagger import AudioTagger, is_music_tag, music_index
from ..models.backends import ChatMessage, ChatModel, GenerationParams, Request, TextPart
from ..models.vad import SileroVAD, speech_spans
from .prompts import load_template, prompt_hash

# Bump when the audio logic changes outputs (models, prompts, thresholds are versioned apart).
AUDIO_LOGIC_VERSION = "1"
LABELS = ("speech", "music", "speech+music", "other", "silence")
AUDIO_TEMPLATES: Mapping[str, str] = {"system": "audio_system_v1", "music": "audio_music_v1", "clip": "audio_clip_v1"}


@dataclass(frozen=True)
class AudioConfig:
    """Every threshold of the audio stage (recorded in each row's ``params``)."""

    hop_s: float = 0.1
    silence_dbfs: float = -45.0
    min_silence_s: float = 0.5
    vad_threshold: float = 0.5
    vad_min_speech_s: float = 0.25
    vad_min_silence_s: float = 0.3
    music_threshold: float = 0.5
    speech_music_threshold: float = 0.65
    tagger_weight: float = 0.5
    tagger_window_s: float = 2.0
    tagger_hop_s: float = 1.0
    pulse_floor: float = 0.2  # onset periodicity below this is no evidence of a beat
    pulse_span: float = 0.15  # ... and this far above it, full evidence
    tonality_floor: float = 0.5  # whitened-spectrum tonality of noise is about 0.4-0.5
    tonality_span: float = 0.2
    context_s: float = 2.5
    min_segment_s: float = 0.3
    music_tag_threshold: float = 0.1
    max_music_tags: int = 5
    min_music_caption_s: float = 1.0
    asr_pad_s: float = 0.2
    asr_max_gap_s: float = 1.0
    compression_ratio_threshold: float = 2.4
    logprob_threshold: float = -1.0
    no_speech_threshold: float = 0.6
    caption_max_words: int = 40

    def hallucination(self) -> HallucinationThresholds:
        return HallucinationThresholds(self.compression_ratio_threshold, self.logprob_threshold,
                                       self.no_speech_threshold)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "AudioConfig":
        names = {f.name for f in fields(cls)}
        return replace(cls(), **{k: v for k, v in values.items() if k in names})


@dataclass
class AudioAnalysis:
    duration_s: float
    timeline: list[dict] = field(default_factory=list)
    shares: dict[str, float] = field(default_factory=dict)
    audio_class: str = "none"
    speech: list[tuple[float, float]] = field(default_factory=list)
    music_spans: list[dict] = field(default_factory=list)  # {start_s, end_s, tags, tempo_bpm, loudness_dbfs}
    music_tags: list[str] = field(default_factory=list)
    tempo_bpm: float | None = None
    loudness_dbfs: float | None = None
    asr: AsrResult = field(default_factory=AsrResult)


# --------------------------------------------------------------------------------------------
# Timeline
# --------------------------------------------------------------------------------------------


def _close_gaps(active: np.ndarray, max_gap: int) -> np.ndarray:
    """Fill runs of False shorter than ``max_gap`` that lie between True frames."""
    out = active.copy()
    idx = np.flatnonzero(active)
    for a, b in zip(idx[:-1], idx[1:]):
        if 1 < b - a <= max_gap:
            out[a:b] = True
    return out


def _fill_from_active(values: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Values of inactive (quiet) frames taken from the nearest active frame."""
    idx = np.flatnonzero(active)
    if not len(idx):
        return values
    nearest = idx[np.clip(np.searchsorted(idx, np.arange(len(values))), 0, len(idx) - 1)]
    left = idx[np.clip(np.searchsorted(idx, np.arange(len(values))) - 1, 0, len(idx) - 1)]
    pick = np.where(np.abs(left - np.arange(len(values))) < np.abs(nearest - np.arange(len(values))), left, nearest)
    return np.where(active, values, values[pick])


def _runs(labels: list[str]) -> list[list]:
    runs: list[list] = []
    for i, l in enumerate(labels):
        if runs and runs[-1][0] == l:
            runs[-1][2] = i + 1
        else:
            runs.append([l, i, i + 1])
    return runs


def _merge_short(runs: list[list], min_frames: int) -> list[list]:
    """Merge runs shorter than ``min_frames`` into their longer neighbour (silence runs are kept)."""
    changed = True
    while changed and len(runs) > 1:
        changed = False
        for k, (label, a, b) in enumerate(runs):
            if b - a >= min_frames or label == "silence":
                continue
            left = runs[k - 1] if k else None
            right = runs[k + 1] if k + 1 < len(runs) else None
            target = max((r for r in (left, right) if r), key=lambda r: r[2] - r[1])
            target[1], target[2] = min(target[1], a), max(target[2], b)
            del runs[k]
            merged = []
            for r in runs:  # join equal neighbours
                if merged and merged[-1][0] == r[0]:
                    merged[-1][2] = r[2]
                else:
                    merged.append(r)
            runs[:] = merged
            changed = True
            break
    return runs


def tagger_music_per_frame(tagger: AudioTagger | None, x: np.ndarray, n: int, cfg: AudioConfig
                           ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, list[str]]:
    """(music probability per frame, window scores, window starts, labels); Nones without a tagger."""
    if tagger is None or not len(x):
        return None, None, None, []
    scores, starts = tagger.tag_windows(x, SAMPLE_RATE, cfg.tagger_window_s, cfg.tagger_hop_s)
    labels = tagger.labels
    mi = music_index(labels)
    if mi is None:
        return None, scores, starts, labels
    centres = (np.arange(n) + 0.5) * cfg.hop_s
    per = np.zeros(n)
    count = np.zeros(n)
    for s, p in zip(starts, scores[:, mi]):
        m = (centres >= s) & (centres < s + cfg.tagger_window_s)
        per[m] += p
        count[m] += 1
    nearest = np.clip(np.searchsorted(starts, centres) - 1, 0, len(starts) - 1)
    per = np.where(count > 0, per / np.maximum(count, 1), scores[nearest, mi])
    return per, scores, starts, labels


def build_timeline(x: np.ndarray, duration_s: float, vad_probs: np.ndarray, cfg: AudioConfig,
                   tagger_music: np.ndarray | None = None) -> tuple[list[dict], list[tuple[float, float]]]:
    """Segments tiling ``[0, duration_s]`` and the VAD speech spans (clip seconds)."""
    hop = cfg.hop_s
    n = max(1, int(np.ceil(duration_s / hop - 1e-9)))
    db = frame_dbfs(x, SAMPLE_RATE, hop)[:n]
    db = np.pad(db, (0, n - len(db)), constant_values=-120.0)
    loud = db >= cfg.silence_dbfs
    active = _close_gaps(loud, int(round(cfg.min_silence_s / hop)))
    spans = speech_spans(vad_probs, cfg.vad_threshold, cfg.vad_min_speech_s, cfg.vad_min_silence_s,
                         duration_s=duration_s)
    centres = (np.arange(n) + 0.5) * hop
    chunk_s = 512 / SAMPLE_RATE
    speech_prob = np.zeros(n)
    is_speech = np.zeros(n, bool)
    for a, b, _ in spans:
        is_speech |= (centres >= a) & (centres < b)
    if len(vad_probs):
        speech_prob = vad_probs[np.clip((centres / chunk_s).astype(int), 0, len(vad_probs) - 1)]
    feats = music_features_blocked(x, SAMPLE_RATE, hop, n, cfg.context_s)
    tonal = np.clip((_fill_from_active(feats["tonality"], loud) - cfg.tonality_floor) / cfg.tonality_span, 0, 1)
    pulse = np.clip((feats["pulse"] - cfg.pulse_floor) / cfg.pulse_span, 0, 1) * feats["modulation"]
    w = cfg.tagger_weight if tagger_music is not None else 0.0
    tm = tagger_music if tagger_music is not None else np.zeros(n)
    music = (1 - w) * np.maximum(tonal, pulse) + w * tm
    music_over_speech = (1 - w) * pulse + w * tm
    labels, conf = [], np.zeros(n)
    for i in range(n):
        if not active[i] and not is_speech[i]:
            labels.append("silence")
            conf[i] = float(np.clip(0.5 + (cfg.silence_dbfs - db[i]) / 20, 0.5, 1.0))
        elif is_speech[i]:
            both = music_over_speech[i] >= cfg.speech_music_threshold
            labels.append("speech+music" if both else "speech")
            conf[i] = min(speech_prob[i], music_over_speech[i]) if both else speech_prob[i]
        elif music[i] >= cfg.music_threshold:
            labels.append("music")
            conf[i] = music[i]
        else:
            labels.append("other")
            conf[i] = 1 - music[i]
    runs = _merge_short(_runs(labels), int(round(cfg.min_segment_s / hop)))
    timeline = []
    for label, a, b in runs:
        start, end = round(a * hop, 3), round(min(b * hop, duration_s), 3)
        if label != "silence":  # a merged run's confidence: how well its frames fit the label
            sel = conf[a:b] if all(l == label for l in labels[a:b]) else np.array(
                [conf[i] if labels[i] == label else 1 - conf[i] for i in range(a, b)])
        else:
            sel = conf[a:b]
        timeline.append({"start_s": start, "end_s": end, "label": label, "confidence": round(float(np.mean(sel)), 3)})
    if timeline:
        timeline[0]["start_s"] = 0.0
        timeline[-1]["end_s"] = round(float(duration_s), 3)
    return timeline, [(a, b) for a, b, _ in spans]


def shares(timeline: Sequence[Mapping], duration_s: float) -> dict[str, float]:
    tot = {l: 0.0 for l in LABELS}
    for s in timeline:
        tot[s["label"]] += s["end_s"] - s["start_s"]
    d = max(duration_s, 1e-9)
    return {"speech_share": round((tot["speech"] + tot["speech+music"]) / d, 4),
            "music_share": round((tot["music"] + tot["speech+music"]) / d, 4),
            "silence_share": round(tot["silence"] / d, 4)}


def dominant_label(timeline: Sequence[Mapping]) -> str:
    tot: dict[str, float] = {}
    for s in timeline:
        tot[s["label"]] = tot.get(s["label"], 0.0) + s["end_s"] - s["start_s"]
    return max(tot, key=tot.get) if tot else "none"


def timeline_tiles(timeline: Sequence[Mapping], duration_s: float, tol: float = 1e-3) -> str | None:
    """None when the segments tile ``[0, duration_s]`` exactly with known labels, else the problem."""
    if not timeline:
        return "empty timeline"
    if abs(timeline[0]["start_s"]) > tol:
        return f"starts at {timeline[0]['start_s']}"
    for a, b in zip(timeline[:-1], timeline[1:]):
        if abs(a["end_s"] - b["start_s"]) > tol:
            return f"gap or overlap at {a['end_s']}..{b['start_s']}"
    for s in timeline:
        if s["label"] not in LABELS:
            return f"unknown label {s['label']!r}"
        if s["end_s"] <= s["start_s"]:
            return f"empty segment at {s['start_s']}"
    if abs(timeline[-1]["end_s"] - duration_s) > tol:
        return f"ends at {timeline[-1]['end_s']}, clip is {duration_s}"
    return None


# --------------------------------------------------------------------------------------------
# One clip: timeline, ASR, music descriptors (no text model yet)
# --------------------------------------------------------------------------------------------


def _music_tags(scores, starts, labels, a: float, b: float, cfg: AudioConfig) -> list[str]:
    if scores is None or not labels:
        return []
    m = (starts < b) & (starts + cfg.tagger_window_s > a)
    if not m.any():
        m = np.zeros(len(starts), bool)
        m[int(np.argmin(np.abs(starts - a)))] = True
    mean = scores[m].mean(axis=0)
    order = np.argsort(-mean)
    return [labels[i] for i in order if is_music_tag(labels[i]) and mean[i] >= cfg.music_tag_threshold][:cfg.max_music_tags]


def analyze_audio(x: np.ndarray, duration_s: float, cfg: AudioConfig, vad: SileroVAD, tagger: AudioTagger | None,
                  recognizer: SpeechRecognizer | None) -> AudioAnalysis:
    """Timeline, shares, ASR on speech and the music descriptors of one clip's audio."""
    x = np.asarray(x, np.float32)
    n = max(1, int(np.ceil(duration_s / cfg.hop_s - 1e-9)))
    probs = vad.probabilities(x) if len(x) else np.zeros(0, np.float32)
    tag_music, scores, starts, labels = tagger_music_per_frame(tagger, x, n, cfg)
    timeline, spans = build_timeline(x, duration_s, probs, cfg, tag_music)
    out = AudioAnalysis(duration_s=duration_s, timeline=timeline, shares=shares(timeline, duration_s),
                        audio_class=dominant_label(timeline), loudness_dbfs=round(level_dbfs(x), 2))
    speech_segs = [(s["start_s"], s["end_s"]) for s in timeline if s["label"] in ("speech", "speech+music")]
    out.speech = speech_segs
    if recognizer is not None and speech_segs:
        gated = merge_spans(speech_segs, duration_s, cfg.asr_pad_s, cfg.asr_max_gap_s)
        out.asr = recognizer.transcribe(x, gated, cfg.hallucination())
    for s in timeline:
        if s["label"] not in ("music", "speech+music"):
            continue
        a, b = s["start_s"], s["end_s"]
        piece = x[int(a * SAMPLE_RATE): int(b * SAMPLE_RATE)]
        out.music_spans.append({"start_s": a, "end_s": b, "tags": _music_tags(scores, starts, labels, a, b, cfg),
                                "tempo_bpm": estimate_tempo(piece, SAMPLE_RATE),
                                "loudness_dbfs": round(level_dbfs(piece), 1)})
    if out.music_spans:
        longest = max(out.music_spans, key=lambda m: m["end_s"] - m["start_s"])
        out.tempo_bpm = longest["tempo_bpm"]
        seen: list[str] = []
        for m in sorted(out.music_spans, key=lambda m: m["start_s"] - m["end_s"]):
            seen += [t for t in m["tags"] if t not in seen]
        out.music_tags = seen[:cfg.max_music_tags]
    return out


# --------------------------------------------------------------------------------------------
# Text: music captions and the clip's audio caption
# --------------------------------------------------------------------------------------------


def audio_templates():
    return {role: load_template(name) for role, name in AUDIO_TEMPLATES.items()}


def _system(t) -> ChatMessage:
    return ChatMessage("system", (TextPart(t["system"].render()),))


def music_caption_request(span: Mapping, cfg: AudioConfig, t=None) -> Request:
    t = t or audio_templates()
    tempo = f"{span['tempo_bpm']:.0f} BPM" if span.get("tempo_bpm") else "no steady beat"
    text = t["music"].render(tags=", ".join(span["tags"]) or "none", tempo=tempo,
                             loudness_dbfs=f"{span['loudness_dbfs']:.1f}",
                             duration_s=f"{span['end_s'] - span['start_s']:.1f}", max_words=cfg.caption_max_words // 2)
    return [_system(t), ChatMessage("user", (TextPart(text),))]


def clip_caption_request(a: AudioAnalysis, cfg: AudioConfig, t=None) -> Request:
    t = t or audio_templates()
    other = sum(s["end_s"] - s["start_s"] for s in a.timeline if s["label"] == "other") / max(a.duration_s, 1e-9)
    timeline = "; ".join(f"{s['start_s']:.1f}-{s['end_s']:.1f} s {s['label']}" for s in a.timeline[:12])
    transcript = a.asr.transcript
    text = t["clip"].render(
        duration_s=f"{a.duration_s:.1f}", speech_pct=round(100 * a.shares.get("speech_share", 0)),
        music_pct=round(100 * a.shares.get("music_share", 0)), silence_pct=round(100 * a.shares.get("silence_share", 0)),
        other_pct=round(100 * other), tags=", ".join(a.music_tags) or "none",
        tempo=f"{a.tempo_bpm:.0f} BPM" if a.tempo_bpm else "none",
        loudness_dbfs=f"{a.loudness_dbfs:.1f}" if a.loudness_dbfs is not None else "n/a",
        transcript=(transcript[:300] + ("..." if len(transcript) > 300 else "")) or "(none)",
        timeline=timeline, max_words=cfg.caption_max_words)
    return [_system(t), ChatMessage("user", (TextPart(text),))]


def audio_prompt_hash() -> str:
    return prompt_hash(AUDIO_TEMPLATES.values())


def caption_analyses(analyses: Sequence[AudioAnalysis | None], llm: ChatModel | None, params: GenerationParams,
                     cfg: AudioConfig) -> tuple[list[list[dict]], list[str], list[list[str]]]:
    """Music captions per music span and one audio caption per clip, in one batched call.

    Returns (music_captions per clip, audio_caption per clip, errors per clip). ``None``
    analyses (clips without usable audio) get nothing; ``llm=None`` skips the text model.
    """
    t = audio_templates()
    music: list[list[dict]] = [[] for _ in analyses]
    captions = ["" for _ in analyses]
    errors: list[list[str]] = [[] for _ in analyses]
    if llm is None:
        return music, captions, errors
    jobs: list[tuple[int, int | None, Request]] = []
    for i, a in enumerate(analyses):
        if a is None:
            continue
        for k, span in enumerate(a.music_spans):
            if span["end_s"] - span["start_s"] >= cfg.min_music_caption_s:
                jobs.append((i, k, music_caption_request(span, cfg, t)))
        jobs.append((i, None, clip_caption_request(a, cfg, t)))
    results = llm.generate([r for _, _, r in jobs], params) if jobs else []
    for (i, k, _), r in zip(jobs, results):
        ok = r.error is None and r.text is not None
        if k is None:
            captions[i] = (r.text or "").strip() if ok else ""
        else:
            span = analyses[i].music_spans[k]
            if ok:
                music[i].append({"start_s": span["start_s"], "end_s": span["end_s"], "text": r.text.strip()})
        if not ok:
            where = "audio caption" if k is None else f"music caption {k}"
            errors[i].append(f"{where}: {r.error or 'no output'}")
    return music, captions, errors


def audio_row(a: AudioAnalysis | None, music_captions: list[dict], audio_caption: str, duration_s: float,
              has_audio: bool, readable: bool = True) -> dict[str, Any]:
    """The analysis part of an ``audio_captions`` row (ids and provenance are added by the caller).

    Without an analysis: a clip with no audio track is one ``silence`` segment (nothing is
    heard); a clip whose sound could not be read (``readable=False``) has an empty timeline.
    """
    if a is None:
        silent = not has_audio and readable
        tl = [{"start_s": 0.0, "end_s": round(float(duration_s), 3), "label": "silence", "confidence": 1.0}] \
            if silent else []
        return {"timeline": tl, "speech_share": 0.0, "music_share": 0.0, "silence_share": 1.0 if silent else 0.0,
                "audio_class": "none", "transcript": "",
                "asr_segments": [], "asr_dropped": [], "language": "", "music_tags": [], "tempo_bpm": None,
                "loudness_dbfs": None, "music_captions": [], "audio_caption": "", "speech_spans": []}
    return {"timeline": a.timeline, **a.shares, "audio_class": a.audio_class, "transcript": a.asr.transcript,
            "asr_segments": [s.as_dict() for s in a.asr.segments],
            "asr_dropped": [{k: d[k] for k in ("start_s", "end_s", "text", "reason")} for d in a.asr.dropped],
            "language": a.asr.language, "music_tags": a.music_tags, "tempo_bpm": a.tempo_bpm,
            "loudness_dbfs": a.loudness_dbfs, "music_captions": music_captions, "audio_caption": audio_caption,
            "speech_spans": [{"start_s": s, "end_s": e} for s, e in a.speech]}


def audio_params_json(cfg: AudioConfig, params: GenerationParams, vad: SileroVAD, extra: Mapping | None = None) -> str:
    return json.dumps({"audio": cfg.as_dict(), "generation": params.as_dict(), "vad_model": vad.model_id,
                       "vad_revision": vad.revision, **(extra or {})}, sort_keys=True, default=str)


def audio_captions_code_version(*model_refs: str, cfg: AudioConfig | None = None) -> str:
    """Logic version + the audio prompts + model refs (asr, tagger, llm, vad) + every threshold."""
    from .prompts import _hash_templates

    blob = json.dumps({"logic": AUDIO_LOGIC_VERSION, "prompts": _hash_templates(AUDIO_TEMPLATES.values()),
                       "models": list(model_refs), "config": (cfg or AudioConfig()).as_dict()}, sort_keys=True)
    return "ac-" + hashlib.sha256(blob.encode()).hexdigest()[:16]
