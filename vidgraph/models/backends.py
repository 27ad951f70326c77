"""Model backends: one chat-style interface, two implementations.

* :class:`TransformersChatModel` runs a local Hugging Face model (image+text VLM, text LLM, or
  Whisper-style ASR) on CPU or GPU, loaded once and batched.
* :class:`OpenAIChatModel` talks to any OpenAI-compatible ``/chat/completions`` server (vLLM,
  SGLang, Ollama, hosted APIs) with a concurrency cap, timeouts and retries.

A request is a list of :class:`ChatMessage` (OpenAI chat form). ``generate`` takes a batch of
requests and returns one :class:`GenerationResult` per request, in order. A failure on one request
is recorded in that result's ``error`` and never raised; only configuration problems (a model that
cannot be loaded at all) raise.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import random
import threading
import time
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger(__name__)

__all__ = [
    "AudioPart", "ChatMessage", "ChatModel", "GenerationParams", "GenerationResult", "ImagePart",
    "ModelNotAvailableError", "OpenAIChatModel", "Request", "TextPart", "TransformersChatModel",
    "system", "user",
]


# --------------------------------------------------------------------------------------------
# Data types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationParams:
    """Decoding parameters. ``temperature == 0`` means greedy (deterministic) decoding."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True, eq=False)
class ImagePart:
    image: Any  # PIL.Image.Image


@dataclass(frozen=True, eq=False)
class AudioPart:
    """Mono audio samples (1-D float array in [-1, 1]) at ``sampling_rate`` Hz."""

    array: Any  # numpy.ndarray
    sampling_rate: int = 16000


Part = Union[TextPart, ImagePart, AudioPart]


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: tuple[Part, ...]

    def __post_init__(self):
        if self.role not in ("system", "user", "assistant"):
            raise ValueError(f"unknown role {self.role!r}")
        content = self.content
        if isinstance(content, (str, TextPart, ImagePart, AudioPart)):
            content = (content,)
        object.__setattr__(self, "content", tuple(_as_part(p) for p in content))

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def images(self) -> list:
        return [p.image for p in self.content if isinstance(p, ImagePart)]

    @property
    def audios(self) -> list[AudioPart]:
        return [p for p in self.content if isinstance(p, AudioPart)]


Request = list[ChatMessage]


def _as_part(p: Any) -> Part:
    if isinstance(p, (TextPart, ImagePart, AudioPart)):
        return p
    if isinstance(p, str):
        return TextPart(p)
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        Image = None
    if Image is not None and isinstance(p, Image.Image):
        return ImagePart(p)
    raise TypeError(f"unsupported content part: {type(p).__name__}")


def user(*parts: Any) -> ChatMessage:
    """A user message from strings, PIL images, or parts, in order."""
    return ChatMessage("user", tuple(parts))


def system(text: str) -> ChatMessage:
    return ChatMessage("system", (TextPart(text),))


@dataclass
class GenerationResult:
    text: str | None
    error: str | None
    model_id: str
    revision: str
    latency_s: float
    extra: dict[str, Any] = field(default_factory=dict)  # backend specific, e.g. ASR segments

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None


class ModelNotAvailableError(RuntimeError):
    """The configured model cannot be loaded (missing locally while offline, bad path, ...)."""


# --------------------------------------------------------------------------------------------
# Interface
# --------------------------------------------------------------------------------------------


class ChatModel(ABC):
    """Batched chat generation. Implementations never raise for a per-request failure."""

    model_id: str
    revision: str

    @abstractmethod
    def generate(self, requests: Sequence[Request], params: GenerationParams | None = None
                 ) -> list[GenerationResult]:
        """One result per request, in the order of ``requests``."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Provenance: backend, model id, revision and settings. Never contains secrets."""

    def close(self) -> None:  # pragma: no cover - trivial
        pass

    def _result(self, text=None, error=None, latency_s=0.0, extra=None) -> GenerationResult:
        return GenerationResult(text=text, error=error, model_id=self.model_id, revision=self.revision,
                                latency_s=float(latency_s), extra=extra or {})


def _short_error(e: BaseException, limit: int = 500) -> str:
    msg = f"{type(e).__name__}: {e}"
    return msg if len(msg) <= limit else msg[:limit] + "..."


# --------------------------------------------------------------------------------------------
# Local transformers backend
# --------------------------------------------------------------------------------------------


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _looks_like_path(s: str) -> bool:
    return s.startswith(("/", "./", "../", "~", ".\\")) or os.path.isabs(s) or s.count("/") > 1


def _local_fingerprint(path: Path) -> str:
    """Cheap content identity of a local model folder: config files' bytes plus weight file sizes."""
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        if not f.is_file():
            continue
        h.update(f.relative_to(path).as_posix().encode())
        if f.suffix in (".json", ".jinja", ".txt", ".model") and f.stat().st_size < 5_000_000:
            h.update(f.read_bytes())
        else:
            h.update(str(f.stat().st_size).encode())
    return "local-" + h.hexdigest()[:16]


def _cached_commit(repo_id: str, revision: str | None) -> str | None:
    """Commit hash of a hub model in the local cache, or None if it is not cached."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    try:
        p = try_to_load_from_cache(repo_id, "config.json", revision=revision or "main")
    except Exception:  # noqa: BLE001 - malformed ids etc.
        return None
    if isinstance(p, str):
        parts = Path(p).parts
        if "snapshots" in parts:
            return parts[parts.index("snapshots") + 1]
        return revision or "main"
    return None


def missing_model_message(model_id: str, revision: str | None, reason: str = "") -> str:
    rev = revision or "main"
    where = "the Hugging Face hub is offline (HF_HUB_OFFLINE=1)" if _offline() else "it could not be loaded"
    msg = (
        f"Model '{model_id}' (revision {rev}) is not available in the local Hugging Face cache and {where}. "
        f"To install it, on a connected machine run `huggingface-cli download {model_id} --revision {rev}` "
        f"(or `hf download {model_id} --revision {rev}`) and copy the cache folder (HF_HOME, default "
        f"~/.cache/huggingface) to this machine, or point the profile's model at a local folder made with "
        f"save_pretrained. For a smoke run without real weights use `--profile tiny`."
    )
    if reason:
        msg += f" ({reason})"
    return msg


class TransformersChatModel(ChatModel):
    """A local transformers model, loaded lazily once and batched.

    ``kind``: ``"vlm"`` (AutoModelForImageTextToText + AutoProcessor), ``"text"``
    (AutoModelForCausalLM + AutoTokenizer) or ``"asr"`` (AutoModelForSpeechSeq2Seq + AutoProcessor;
    each request must hold one :class:`AudioPart`, its text is ignored; ``extra["segments"]``
    holds ``{start_s, end_s, text}`` chunks).

    ``revision`` is recorded as the resolved commit of a cached hub model, or ``local-<hash>`` (a
    fingerprint of the config files and weight sizes) for a local folder.
    """

    KINDS = ("vlm", "text", "asr")

    def __init__(self, path_or_id: str | os.PathLike, revision: str | None = None, device: str = "auto",
                 dtype: str = "auto", batch_size: int = 8, kind: str = "vlm", language: str | None = None,
                 trust_remote_code: bool = False, name: str | None = None):
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, got {kind!r}")
        self.path_or_id = str(path_or_id)
        # Recorded model id: ``name`` when given (e.g. "tiny:vlm" for a resolved local folder).
        self.model_id = name or self.path_or_id
        self.requested_revision = revision or None
        self.revision = revision or ""
        self.device_pref = device
        self.dtype_pref = dtype
        self.batch_size = max(1, int(batch_size))
        self.kind = kind
        self.language = language or None
        self.trust_remote_code = trust_remote_code
        self._model = None
        self._processor = None  # processor (vlm/asr) or tokenizer (text)
        self._device = None
        self._dtype = None
        self._lock = threading.Lock()

    # -- loading ------------------------------------------------------------------------------

    def _resolve_source(self) -> tuple[str, dict]:
        """Where to load from, plus from_pretrained kwargs; raises ModelNotAvailableError early."""
        src = os.path.expanduser(self.path_or_id)
        if os.path.isdir(src):
            self.revision = self.requested_revision or _local_fingerprint(Path(src))
            return src, {}
        if _looks_like_path(self.path_or_id) or os.path.exists(src):
            raise ModelNotAvailableError(
                f"Model path '{self.path_or_id}' does not exist or is not a folder. Point the profile at a "
                f"folder made with save_pretrained, or use a hub id; for a smoke run use `--profile tiny`.")
        commit = _cached_commit(self.path_or_id, self.requested_revision)
        if commit is None and _offline():
            raise ModelNotAvailableError(missing_model_message(self.path_or_id, self.requested_revision))
        self.revision = commit or self.requested_revision or "main"
        kw: dict[str, Any] = {}
        if self.requested_revision:
            kw["revision"] = self.requested_revision
        if _offline():
            kw["local_files_only"] = True
        return self.path_or_id, kw

    def _pick_device_dtype(self):
        import torch

        dev = self.device_pref
        if dev in ("auto", "", None):
            dev = "cuda" if torch.cuda.is_available() else "cpu"
        if self.dtype_pref in ("auto", "", None):
            if str(dev).startswith("cuda"):
                dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            else:
                dtype = torch.float32
        else:
            dtype = getattr(torch, self.dtype_pref)
        return dev, dtype

    def load(self) -> None:
        """Load model and processor once (thread safe). Raises ModelNotAvailableError."""
        with self._lock:
            if self._model is not None:
                return
            import transformers as tf

            src, kw = self._resolve_source()
            dev, dtype = self._pick_device_dtype()
            kw["trust_remote_code"] = self.trust_remote_code
            try:
                if self.kind == "vlm":
                    proc = tf.AutoProcessor.from_pretrained(src, **kw)
                    model = tf.AutoModelForImageTextToText.from_pretrained(src, dtype=dtype, **kw)
                    tok = proc.tokenizer
                elif self.kind == "text":
                    proc = tf.AutoTokenizer.from_pretrained(src, **kw)
                    model = tf.AutoModelForCausalLM.from_pretrained(src, dtype=dtype, **kw)
                    tok = proc
                else:
                    proc = tf.AutoProcessor.from_pretrained(src, **kw)
                    model = tf.AutoModelForSpeechSeq2Seq.from_pretrained(src, dtype=dtype, **kw)
                    tok = proc.tokenizer
            except OSError as e:
                raise ModelNotAvailableError(
                    missing_model_message(self.path_or_id, self.requested_revision, _short_error(e, 300))
                ) from e
            if not os.path.isdir(src):  # a hub model: record the commit it was loaded from
                self.revision = _cached_commit(self.path_or_id, self.requested_revision) or self.revision
            tok.padding_side = "left"  # decoder-only batched generation needs left padding
            if tok.pad_token is None and tok.eos_token is not None:
                tok.pad_token = tok.eos_token
            model.to(dev)
            model.eval()
            self._processor, self._model, self._device, self._dtype = proc, model, dev, dtype
            log.info("loaded %s (%s) on %s as %s", self.model_id, self.kind, dev, dtype)

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def describe(self) -> dict[str, Any]:
        d = {"backend": "transformers", "model_id": self.model_id, "revision": self.revision,
             "path": self.path_or_id if self.path_or_id != self.model_id else None,
             "kind": self.kind, "batch_size": self.batch_size,
             "device": str(self._device or self.device_pref), "dtype": str(self._dtype or self.dtype_pref)}
        if self.kind == "asr":
            d["language"] = self.language
        return d

    # -- generation ---------------------------------------------------------------------------

    def generate(self, requests: Sequence[Request], params: GenerationParams | None = None
                 ) -> list[GenerationResult]:
        params = params or GenerationParams()
        requests = list(requests)
        if not requests:
            return []
        self.load()
        results: list[GenerationResult | None] = [None] * len(requests)
        for start in range(0, len(requests), self.batch_size):
            idx = list(range(start, min(start + self.batch_size, len(requests))))
            chunk = [requests[i] for i in idx]
            t0 = time.perf_counter()
            try:
                outs = self._run_batch(chunk, params)
                dt = time.perf_counter() - t0
                for i, (text, extra) in zip(idx, outs):
                    results[i] = self._result(text=text, latency_s=dt, extra=extra)
            except Exception as e:  # noqa: BLE001 - isolate the failing request
                if len(chunk) == 1:
                    results[idx[0]] = self._result(error=_short_error(e), latency_s=time.perf_counter() - t0)
                    continue
                log.warning("batch of %d failed (%s); retrying one by one", len(chunk), _short_error(e, 200))
                for i in idx:
                    t1 = time.perf_counter()
                    try:
                        (text, extra), = self._run_batch([requests[i]], params)
                        results[i] = self._result(text=text, latency_s=time.perf_counter() - t1, extra=extra)
                    except Exception as e1:  # noqa: BLE001
                        results[i] = self._result(error=_short_error(e1), latency_s=time.perf_counter() - t1)
        return results  # type: ignore[return-value]

    def _gen_kwargs(self, params: GenerationParams) -> dict[str, Any]:
        import torch

        kw: dict[str, Any] = {"max_new_tokens": params.max_new_tokens}
        if params.greedy:
            kw.update(do_sample=False)
        else:
            kw.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        torch.manual_seed(params.seed)
        return kw

    def _run_batch(self, chunk: list[Request], params: GenerationParams) -> list[tuple[str, dict]]:
        import torch

        with torch.inference_mode():
            if self.kind == "asr":
                return self._run_asr(chunk, params)
            if self.kind == "vlm":
                convs = [_to_hf_conversation(r, multimodal=True) for r in chunk]
                inputs = self._processor.apply_chat_template(
                    convs, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
                    processor_kwargs={"padding": True})
                tok = self._processor.tokenizer
            else:
                tok = self._processor
                convs = [_to_hf_conversation(r, multimodal=False) for r in chunk]
                if getattr(tok, "chat_template", None):
                    inputs = tok.apply_chat_template(
                        convs, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
                        padding=True)
                else:
                    texts = ["".join(f"{m['role']}: {m['content']}\n" for m in c) + "assistant:" for c in convs]
                    inputs = tok(texts, return_tensors="pt", padding=True)
            inputs = inputs.to(self._device)
            if "pixel_values" in inputs:
                inputs["pixel_values"] = inputs["pixel_values"].to(self._dtype)
            out = self._model.generate(**inputs, **self._gen_kwargs(params), pad_token_id=tok.pad_token_id)
            new = out[:, inputs["input_ids"].shape[1]:]
            texts = tok.batch_decode(new, skip_special_tokens=True)
        return [(t.strip(), {}) for t in texts]

    def _run_asr(self, chunk: list[Request], params: GenerationParams) -> list[tuple[str, dict]]:
        import numpy as np

        audios, durations = [], []
        for r in chunk:
            parts = [a for m in r for a in m.audios]
            if len(parts) != 1:
                raise ValueError(f"an ASR request needs exactly one audio part, got {len(parts)}")
            a = parts[0]
            arr = np.asarray(a.array, dtype=np.float32).reshape(-1)
            sr = getattr(self._processor.feature_extractor, "sampling_rate", 16000)
            if a.sampling_rate != sr and len(arr):
                n = int(round(len(arr) * sr / a.sampling_rate))
                arr = np.interp(np.linspace(0, len(arr) - 1, n), np.arange(len(arr)), arr).astype(np.float32)
            audios.append(arr)
            durations.append(len(arr) / sr)
        long_form = max(durations) > 30.0
        fe_kw = dict(truncation=False, padding="longest") if long_form else {}
        sr = getattr(self._processor.feature_extractor, "sampling_rate", 16000)
        inputs = self._processor(audios, sampling_rate=sr, return_tensors="pt", return_attention_mask=True, **fe_kw)
        inputs = inputs.to(self._device)
        inputs["input_features"] = inputs["input_features"].to(self._dtype)
        kw = self._gen_kwargs(params)
        if self.language:
            kw["language"] = self.language
        out = self._model.generate(**inputs, **kw, task="transcribe", return_timestamps=True,
                                   return_segments=True)
        tok = self._processor.tokenizer
        res = []
        for i, dur in enumerate(durations):
            segs = []
            for s in out["segments"][i]:
                start, end = float(s["start"]), float(s["end"])
                if start >= dur:
                    continue
                text = tok.decode(s["tokens"], skip_special_tokens=True).strip()
                segs.append({"start_s": round(start, 3), "end_s": round(min(end, dur), 3), "text": text})
            text = tok.decode(out["sequences"][i], skip_special_tokens=True).strip()
            res.append((text, {"segments": segs}))
        return res


def _to_hf_conversation(request: Request, multimodal: bool) -> list[dict]:
    conv = []
    for m in request:
        if multimodal:
            content = []
            for p in m.content:
                if isinstance(p, TextPart):
                    content.append({"type": "text", "text": p.text})
                elif isinstance(p, ImagePart):
                    content.append({"type": "image", "image": p.image})
                else:
                    raise ValueError("audio parts are not supported by an image-text model")
            conv.append({"role": m.role, "content": content})
        else:
            if m.images or m.audios:
                raise ValueError("a text model cannot take image or audio parts")
            conv.append({"role": m.role, "content": m.text})
    return conv


# --------------------------------------------------------------------------------------------
# OpenAI-compatible HTTP backend
# --------------------------------------------------------------------------------------------


def image_to_data_url(image, fmt: str = "JPEG", quality: int = 90) -> str:
    buf = io.BytesIO()
    img = image.convert("RGB") if fmt.upper() == "JPEG" and image.mode != "RGB" else image
    img.save(buf, format=fmt, quality=quality) if fmt.upper() == "JPEG" else img.save(buf, format=fmt)
    mime = "jpeg" if fmt.upper() == "JPEG" else fmt.lower()
    return f"data:image/{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _audio_to_wav_b64(part: AudioPart) -> str:
    import wave

    import numpy as np

    pcm = (np.clip(np.asarray(part.array, dtype=np.float32).reshape(-1), -1, 1) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(part.sampling_rate))
        w.writeframes(pcm.tobytes())
    return base64.b64encode(buf.getvalue()).decode("ascii")


def to_openai_messages(request: Request) -> list[dict]:
    """OpenAI chat form: plain string content for text-only messages, content parts otherwise."""
    msgs = []
    for m in request:
        if not m.images and not m.audios:
            msgs.append({"role": m.role, "content": m.text})
            continue
        content = []
        for p in m.content:
            if isinstance(p, TextPart):
                content.append({"type": "text", "text": p.text})
            elif isinstance(p, ImagePart):
                content.append({"type": "image_url", "image_url": {"url": image_to_data_url(p.image)}})
            else:
                content.append({"type": "input_audio", "input_audio": {"data": _audio_to_wav_b64(p),
                                                                       "format": "wav"}})
        msgs.append({"role": m.role, "content": content})
    return msgs


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class _RetryableError(Exception):
    def __init__(self, msg: str, retry_after: float | None = None):
        super().__init__(msg)
        self.retry_after = retry_after


class OpenAIChatModel(ChatModel):
    """OpenAI-compatible chat completions over HTTP (vLLM, SGLang, Ollama, hosted APIs).

    Retries 429, 5xx, timeouts and connection errors with exponential backoff (``backoff_s * 2**n``,
    or the server's ``Retry-After`` when longer, capped at ``max_backoff_s``). Runs at most
    ``max_concurrency`` requests at once. The API key is only ever sent in the Authorization header.

    An endpoint is not trusted either: each attempt has a total deadline of ``timeout_s`` (not
    just a per-read timeout, which a server trickling a byte at a time never trips), a response
    body is read up to ``max_response_bytes`` and nested at most ``max_json_depth`` deep, and it
    must have the chat-completion shape; anything else becomes the row's error.
    """

    max_response_bytes = 8 << 20
    max_json_depth = 32

    def __init__(self, base_url: str, model: str, api_key: str | None = None, max_concurrency: int = 4,
                 timeout_s: float = 60.0, max_retries: int = 3, backoff_s: float = 0.5, revision: str = "",
                 max_backoff_s: float = 30.0, extra_body: dict | None = None):
        import httpx

        if not base_url:
            raise ValueError("OpenAIChatModel needs a base_url, e.g. http://127.0.0.1:8000/v1")
        self.base_url = base_url.rstrip("/")
        self.model_id = model
        self.revision = revision or ""
        self.max_concurrency = max(1, int(max_concurrency))
        self.timeout_s = float(timeout_s)
        self.max_retries = max(0, int(max_retries))
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.extra_body = dict(extra_body or {})
        self.__api_key = api_key or None
        headers = {"Content-Type": "application/json"}
        if self.__api_key:
            headers["Authorization"] = f"Bearer {self.__api_key}"
        self._client = httpx.Client(timeout=httpx.Timeout(self.timeout_s), headers=headers,
                                    limits=httpx.Limits(max_connections=self.max_concurrency * 2))

    def __repr__(self) -> str:
        return f"OpenAIChatModel(base_url={_redact_url(self.base_url)!r}, model={self.model_id!r})"

    def describe(self) -> dict[str, Any]:
        return {"backend": "openai", "model_id": self.model_id, "revision": self.revision,
                "base_url": _redact_url(self.base_url), "max_concurrency": self.max_concurrency,
                "timeout_s": self.timeout_s, "max_retries": self.max_retries}

    def close(self) -> None:
        self._client.close()

    def _scrub(self, s: str) -> str:
        if self.__api_key:
            s = s.replace(self.__api_key, "***")
        return s

    def payload(self, request: Request, params: GenerationParams) -> dict[str, Any]:
        body = {"model": self.model_id, "messages": to_openai_messages(request),
                "max_tokens": params.max_new_tokens, "temperature": params.temperature,
                "top_p": params.top_p, "seed": params.seed}
        body.update(self.extra_body)
        return body

    def generate(self, requests: Sequence[Request], params: GenerationParams | None = None
                 ) -> list[GenerationResult]:
        params = params or GenerationParams()
        requests = list(requests)
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(requests)),
                                thread_name_prefix="openai-chat") as pool:
            return list(pool.map(lambda r: self._one(r, params), requests))

    def _one(self, request: Request, params: GenerationParams) -> GenerationResult:
        import httpx

        t0 = time.perf_counter()
        try:
            body = self.payload(request, params)
        except Exception as e:  # noqa: BLE001
            return self._result(error=self._scrub(_short_error(e)), latency_s=time.perf_counter() - t0)
        url = f"{self.base_url}/chat/completions"
        last = "no attempt"
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            try:
                status, headers, raw = self._post(url, body)
                if status == 429 or status >= 500:
                    raise _RetryableError(f"HTTP {status}: {_text(raw, 200)}", _retry_after(headers.get("retry-after")))
                if status >= 400:
                    return self._result(error=self._scrub(f"HTTP {status}: {_text(raw, 300)}"),
                                        latency_s=time.perf_counter() - t0)
                text = _parse_completion(_loads_bounded(raw, self.max_json_depth))
                extra = {"attempts": attempt + 1}
                return self._result(text=text, latency_s=time.perf_counter() - t0, extra=extra)
            except _RetryableError as e:
                last, retry_after = str(e), e.retry_after
            except httpx.TimeoutException as e:
                last, retry_after = f"timeout after {self.timeout_s}s ({type(e).__name__})", None
            except httpx.TransportError as e:
                last, retry_after = f"connection error ({type(e).__name__}: {e})", None
            except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError) as e:
                return self._result(error=self._scrub(f"malformed response: {_short_error(e, 200)}"),
                                    latency_s=time.perf_counter() - t0)
            if attempt + 1 < attempts:
                delay = self.backoff_s * (2 ** attempt) * (1.0 + 0.1 * random.random())
                if retry_after is not None:
                    delay = max(delay, retry_after)
                time.sleep(min(delay, self.max_backoff_s))
        return self._result(error=self._scrub(f"{last} (gave up after {attempts} attempts)"),
                            latency_s=time.perf_counter() - t0)


    def _post(self, url: str, body: dict) -> tuple[int, Any, bytes]:
        """POST and read the answer within ``timeout_s`` in total and ``max_response_bytes``."""
        import httpx

        deadline = time.monotonic() + self.timeout_s
        # Each read waits at most what is left of the deadline, and the deadline is checked
        # after every chunk: a trickling server cannot stretch one request.
        with self._client.stream("POST", url, json=body, timeout=httpx.Timeout(self.timeout_s)) as resp:
            declared = resp.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_response_bytes:
                raise ValueError(f"response of {declared} bytes is over the limit of {self.max_response_bytes}")
            data = bytearray()
            for chunk in resp.iter_bytes():  # decoded chunk by chunk: a gzip bomb is bounded too
                data += chunk
                if len(data) > self.max_response_bytes:
                    raise ValueError(f"response over the limit of {self.max_response_bytes} bytes")
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout(f"no complete response within {self.timeout_s}s")
            return resp.status_code, resp.headers, bytes(data)


def _text(raw: bytes, limit: int) -> str:
    return raw[:limit].decode("utf-8", "replace")


def _loads_bounded(raw: bytes, max_depth: int):
    """JSON with at most ``max_depth`` levels of nesting, checked before parsing (a 100k-deep
    document would otherwise end in a RecursionError inside the parser)."""
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return json.loads(raw)
    depth = 0
    in_string = escaped = False
    for b in raw:  # bytes: one pass, no decoding
        if in_string:
            if escaped:
                escaped = False
            elif b == 0x5C:  # backslash
                escaped = True
            elif b == 0x22:
                in_string = False
        elif b == 0x22:
            in_string = True
        elif b in (0x5B, 0x7B):
            depth += 1
            if depth > max_depth:
                raise ValueError(f"response nested deeper than {max_depth} levels")
        elif b in (0x5D, 0x7D):
            depth -= 1
    return json.loads(raw)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _parse_completion(data) -> str:
    """The text of a chat completion, checked against the shape the API promises:
    ``{"choices": [{"message": {"content": str | [{"text": str}, ...]}}]}``."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ValueError("'choices' is missing or not a non-empty list")
    choice = choices[0]
    msg = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(msg, dict):
        raise ValueError(f"'choices[0].message' is not an object (got {type(msg).__name__})")
    content = msg.get("content")
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        if not all(isinstance(t, str) for t in parts if t is not None):
            raise ValueError("a content part's 'text' is not a string")
        content = "".join(t for t in parts if t)
    if content is None:
        raise ValueError("no content in the first choice")
    if not isinstance(content, str):
        raise ValueError(f"'content' is not a string (got {type(content).__name__})")
    return content.strip()

