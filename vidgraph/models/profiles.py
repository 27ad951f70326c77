"""Named model profiles (``tiny``, ``small``, ``gpu``) from ``vidgraph/profiles.yaml``."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from .backends import ChatModel, GenerationParams, OpenAIChatModel, TransformersChatModel

PROFILE_ENV = "VIDGRAPH_PROFILE"
PROFILES_FILE_ENV = "VIDGRAPH_PROFILES_FILE"
DEFAULT_PROFILE = "tiny"
ROLES = ("vlm", "llm", "asr")
ROLE_KIND = {"vlm": "vlm", "llm": "text", "asr": "asr", "verifier": "text", "audio_tagger": "audio_tagger"}
# Roles a profile may leave out, and the role that stands in for each (None: the stage runs without it).
OPTIONAL_ROLES = {"verifier": "llm", "audio_tagger": None}
TINY_PREFIX = "tiny:"


class UnknownProfileError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


def profiles_file() -> Path:
    env = os.environ.get(PROFILES_FILE_ENV)
    return Path(env) if env else Path(__file__).resolve().parent.parent / "profiles.yaml"


def resolve_model(model: str, cache_dir: str | os.PathLike | None = None) -> str:
    """``tiny:<role>`` -> the cached tiny model folder (built on first use); anything else unchanged."""
    if model.startswith(TINY_PREFIX):
        from .tiny import ensure_tiny_models

        role = model[len(TINY_PREFIX):]
        paths = ensure_tiny_models(cache_dir)
        if role not in paths:
            raise ValueError(f"unknown tiny model {model!r}; known: {sorted(TINY_PREFIX + r for r in paths)}")
        return str(paths[role])
    return model


@dataclass(frozen=True)
class ModelSpec:
    """One model backend as configured in a profile."""

    role: str
    backend: str = "transformers"
    model: str = ""
    revision: str = ""
    base_url: str = ""
    api_key_env: str = "VIDGRAPH_API_KEY"
    batch_size: int = 8
    device: str = "auto"
    dtype: str = "auto"
    language: str = ""
    max_concurrency: int = 4
    timeout_s: float = 60.0
    max_retries: int = 3
    backoff_s: float = 0.5
    source: str = ""  # the configured model name when ``model`` was resolved (tiny:<role> -> a folder)

    @property
    def kind(self) -> str:
        return ROLE_KIND[self.role]

    @property
    def ref(self) -> str:
        """Stable identity for code versions: backend, model and revision (tiny: its build version)."""
        model = self.source or self.model
        if model.startswith(TINY_PREFIX):
            from .tiny import TINY_VERSION

            return f"{self.backend}:{model}@tiny-v{TINY_VERSION}"
        return f"{self.backend}:{model}@{self.revision or 'main'}"

    def resolved(self, cache_dir: str | os.PathLike | None = None) -> "ModelSpec":
        resolved = resolve_model(self.model, cache_dir)
        if resolved == self.model:
            return self
        return replace(self, model=resolved, source=self.source or self.model)

    def build(self) -> ChatModel:
        """Instantiate the backend (weights load lazily on first generate)."""
        if self.backend == "transformers":
            return TransformersChatModel(resolve_model(self.model), revision=self.revision or None,
                                         device=self.device, dtype=self.dtype, batch_size=self.batch_size,
                                         kind=self.kind, language=self.language or None,
                                         name=self.source or None)
        if self.backend == "openai":
            return OpenAIChatModel(self.base_url, self.model, api_key=os.environ.get(self.api_key_env) or None,
                                   max_concurrency=self.max_concurrency, timeout_s=self.timeout_s,
                                   max_retries=self.max_retries, backoff_s=self.backoff_s,
                                   revision=self.revision)
        raise ValueError(f"unknown backend {self.backend!r} for {self.role}; use 'transformers' or 'openai'")

    def resource(self):
        """The Dagster resource for this spec (see :mod:`vidgraph.models.resources`)."""
        from .resources import ChatModelResource

        return ChatModelResource.from_spec(self)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    vlm: ModelSpec
    llm: ModelSpec
    asr: ModelSpec
    generation: GenerationParams = field(default_factory=GenerationParams)
    captions: dict[str, Any] = field(default_factory=dict)
    audio_tagger: ModelSpec | None = None  # optional role (audio_captions)

    verifier: ModelSpec | None = None  # merged_captions' second opinion; None: the llm stands in

    def verifier_spec(self) -> ModelSpec:
        """The verifier, or the llm under the verifier role when the profile names none."""
        return self.verifier or replace(self.llm, role="verifier")

    def spec(self, role: str) -> ModelSpec:
        if role == "verifier":
            return self.verifier_spec()
        if role not in ROLES + tuple(OPTIONAL_ROLES):
            raise KeyError(f"unknown role {role!r}; roles are {ROLES + tuple(OPTIONAL_ROLES)}")
        return getattr(self, role)

    def fingerprint(self, roles: tuple[str, ...] = ROLES) -> str:
        """Hash of the model refs of ``roles`` (for asset code versions)."""
        refs = [self.spec(r).ref for r in roles]
        return hashlib.sha256(json.dumps(refs).encode()).hexdigest()[:12]


def _raw_profiles(path: Path | None = None) -> dict[str, Any]:
    p = path or profiles_file()
    with open(p, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    return data


def profile_names(path: Path | None = None) -> list[str]:
    return sorted((_raw_profiles(path).get("profiles") or {}).keys())


def default_profile_name() -> str:
    """``$VIDGRAPH_PROFILE``, else the profiles file's ``default:``, else ``tiny`` when the file
    has it, else its only profile (a file of one's own need not define ``tiny``)."""
    if os.environ.get(PROFILE_ENV):
        return os.environ[PROFILE_ENV]
    try:
        data = _raw_profiles()
    except (OSError, yaml.YAMLError):
        return DEFAULT_PROFILE  # load_profile reports the file's problem
    names = sorted((data.get("profiles") or {}) if isinstance(data, dict) else {})
    default = data.get("default") if isinstance(data, dict) else None
    if isinstance(default, str) and default in names:
        return default
    if DEFAULT_PROFILE in names or len(names) != 1:
        return DEFAULT_PROFILE
    return names[0]


# Caption settings that must be positive numbers (a zero segment length would divide by zero
# after every video is decoded), and those that may be zero.
_POSITIVE = ("dense_segment_s", "max_dense_images", "max_keyframes", "max_words", "repetition_n")
_NON_NEGATIVE = ("min_words", "max_repetition")
_SPEC_NUMBERS = {"batch_size": 1, "max_concurrency": 1, "timeout_s": 0.001, "max_retries": 0, "backoff_s": 0}


def validate_profile(profile: "Profile") -> "Profile":
    """Check the numbers of a profile before anything runs; ``ValueError`` names the bad one."""
    where = f"profile {profile.name!r}"

    def number(key: str, value, minimum: float, strict: bool = False) -> None:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value == value
        if not ok or value < minimum or (strict and value <= minimum):
            bound = f"> {minimum}" if strict else f">= {minimum}"
            raise ValueError(f"{where}: {key} must be a number {bound}, got {value!r}")

    for key in _POSITIVE:
        if profile.captions.get(key) is not None:
            number(f"captions.{key}", profile.captions[key], 0, strict=True)
    for key in _NON_NEGATIVE:
        if profile.captions.get(key) is not None:
            number(f"captions.{key}", profile.captions[key], 0)
    c = profile.captions
    if isinstance(c.get("min_words"), int | float) and isinstance(c.get("max_words"), int | float) and c["min_words"] > c["max_words"]:
        raise ValueError(f"{where}: captions.min_words ({c['min_words']}) is above captions.max_words ({c['max_words']})")
    g = profile.generation
    number("generation.max_new_tokens", g.max_new_tokens, 1)
    number("generation.temperature", g.temperature, 0)
    number("generation.top_p", g.top_p, 0, strict=True)
    for role in ROLES:
        spec = profile.spec(role)
        if spec.backend == "openai" and not spec.base_url:
            raise ValueError(f"{where}, {role}: the openai backend needs a base_url")
        for key, minimum in _SPEC_NUMBERS.items():
            number(f"{role}.{key}", getattr(spec, key), minimum)
    return profile


def _spec(role: str, raw: dict[str, Any], profile: str) -> ModelSpec:
    known = {f.name for f in fields(ModelSpec)} - {"role", "source"}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"profile {profile!r}, {role}: unknown keys {sorted(unknown)}; allowed: {sorted(known)}")
    if not raw.get("model"):
        raise ValueError(f"profile {profile!r}, {role}: 'model' is required")
    vals = {k: ("" if v is None else v) for k, v in raw.items()}
    return ModelSpec(role=role, **vals)


def load_profile(name: str | None = None, *, resolve: bool = True, path: Path | None = None) -> Profile:
    """Load a named profile (default: ``$VIDGRAPH_PROFILE`` or ``tiny``).

    With ``resolve=True`` ``tiny:<role>`` models are replaced by their local folders, building the
    tiny models on first use; ``resolve=False`` never touches the disk beyond the YAML file.
    """
    name = name or default_profile_name()
    data = _raw_profiles(path)
    profiles = data.get("profiles") or {}
    if name not in profiles:
        raise UnknownProfileError(
            f"unknown model profile {name!r}; available profiles: {', '.join(sorted(profiles))} "
            f"(defined in {path or profiles_file()})")
    raw = profiles[name] or {}
    missing = [r for r in ROLES if r not in raw]
    if missing:
        raise ValueError(f"profile {name!r} lacks roles {missing}")
    specs = {r: _spec(r, raw[r], name) for r in ROLES}
    if resolve:
        specs = {r: s.resolved() for r, s in specs.items()}
    optional = {r: _spec(r, raw[r], name) for r in OPTIONAL_ROLES if raw.get(r)}
    if resolve:
        optional = {r: s.resolved() for r, s in optional.items()}
    known_gen = {f.name for f in fields(GenerationParams)}
    if set(raw.get("generation") or {}) - known_gen:
        raise ValueError(f"profile {name!r}, generation: unknown keys {sorted(set(raw['generation']) - known_gen)}; "
                         f"allowed: {sorted(known_gen)}")
    gen = GenerationParams(**(raw.get("generation") or {}))
    return validate_profile(Profile(name=name, description=str(raw.get("description", "")).strip(), generation=gen,
                                    captions=dict(raw.get("captions") or {}), **specs, **optional))
