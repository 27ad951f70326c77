"""Silero VAD, the ONNX model that the ``silero-vad`` wheel ships, run with onnxruntime.

The model file is found from the installed package without importing it: ``import silero_vad``
calls ``torch.set_num_threads(1)`` for the whole process, which would slow every other model.
The loop is the package's own (512-sample chunks at 16 kHz with 64 samples of context and a
carried state), without torch.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from pathlib import Path

import numpy as np

CHUNK = 512  # samples at 16 kHz (32 ms)
CONTEXT = 64
MODEL_FILE = "silero_vad.onnx"


def silero_model_path() -> Path:
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the silero-vad package is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"silero-vad is installed but has no {MODEL_FILE}")
    return path


def silero_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("silero-vad")


class SileroVAD:
    """Speech probability per 32 ms chunk of 16 kHz mono audio."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else silero_model_path()
        self._session = None
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return f"silero-vad/{self.path.name}"

    @property
    def revision(self) -> str:
        try:
            return silero_version() + "-" + hashlib.sha256(self.path.read_bytes()).hexdigest()[:10]
        except Exception:  # noqa: BLE001 - provenance only
            return "unknown"

    def _load(self):
        if self._session is None:
            import onnxruntime

            opts = onnxruntime.SessionOptions()
            opts.inter_op_num_threads = 1
            opts.intra_op_num_threads = 1
            self._session = onnxruntime.InferenceSession(str(self.path), providers=["CPUExecutionProvider"],
                                                         sess_options=opts)
        return self._session

    def probabilities(self, audio: np.ndarray, sr: int = 16000) -> np.ndarray:
        """One speech probability per ``CHUNK`` samples (the last chunk zero-padded)."""
        if sr != 16000:
            raise ValueError("SileroVAD here takes 16 kHz audio")
        x = np.asarray(audio, np.float32).reshape(-1)
        n = int(np.ceil(len(x) / CHUNK))
        if n == 0:
            return np.zeros(0, np.float32)
        padded = np.zeros(n * CHUNK + CONTEXT, np.float32)
        padded[CONTEXT:CONTEXT + len(x)] = x
        with self._lock:
            sess = self._load()
            state = np.zeros((2, 1, 128), np.float32)
            sr_arr = np.array(16000, dtype=np.int64)
            out = np.zeros(n, np.float32)
            for i in range(n):
                chunk = padded[i * CHUNK: i * CHUNK + CHUNK + CONTEXT][None, :]
                prob, state = sess.run(None, {"input": chunk, "state": state, "sr": sr_arr})
                out[i] = float(prob.reshape(-1)[0])
        return out


def speech_spans(probs: np.ndarray, threshold: float = 0.5, min_speech_s: float = 0.25,
                 min_silence_s: float = 0.3, pad_s: float = 0.03, chunk_s: float = CHUNK / 16000,
                 duration_s: float | None = None) -> list[tuple[float, float, float]]:
    """Speech spans ``(start_s, end_s, mean_prob)`` from chunk probabilities, Silero's way:
    enter at ``threshold``, leave below ``threshold - 0.15``, bridge pauses shorter than
    ``min_silence_s``, drop spans shorter than ``min_speech_s``, pad each side by ``pad_s``."""
    neg = max(threshold - 0.15, 0.01)
    spans, start, last_speech = [], None, None
    for i, p in enumerate(probs):
        t = i * chunk_s
        if p >= threshold:
            if start is None:
                start = t
            last_speech = t + chunk_s
        elif start is not None and p < neg and t - last_speech >= min_silence_s:
            spans.append((start, last_speech))
            start = None
    if start is not None:
        spans.append((start, last_speech))
    end_all = duration_s if duration_s is not None else len(probs) * chunk_s
    out = []
    for a, b in spans:
        if b - a < min_speech_s:
            continue
        ia, ib = int(a / chunk_s), max(int(a / chunk_s) + 1, int(round(b / chunk_s)))
        out.append((max(0.0, a - pad_s), min(end_all, b + pad_s), float(np.mean(probs[ia:ib]))))
    return out
