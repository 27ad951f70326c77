"""Resources and settings: the dataset root, the input policy, the filter thresholds, the caption profile.

Settings classes live here, not in the asset modules, so assets import settings and never each other.

Secrets are never fields here: S3 credentials come from the standard AWS variables
(``AWS_ACCESS_KEY_ID``...) read by the store at run time, as dagster-aws's S3Resource does.
"""

from __future__ import annotations

import os
from dataclasses import fields, replace

from dagster import ConfigurableResource, EnvVar
from pydantic import PrivateAttr

from vidgraph.media.longtake import LongTakeConfig
from vidgraph.media.probe import InputPolicy
from vidgraph.storage.store import DatasetStore

DEFAULT_ROOT = "./vidgraph-data"
DEFAULT_LANDING = "./landing"


def default_root() -> str:
    return os.environ.get("VIDGRAPH_ROOT", DEFAULT_ROOT)


class DatasetStoreResource(ConfigurableResource):
    """The dataset root: a folder, or s3://bucket/prefix (endpoint from AWS_ENDPOINT_URL)."""

    root: str = DEFAULT_ROOT

    def get_store(self) -> DatasetStore:
        return DatasetStore(self.root)


class IngestSettings(ConfigurableResource):
    """Where new videos land, how many go in one shard, and what is accepted."""

    landing_dir: str = DEFAULT_LANDING
    shard_size: int = 8
    min_file_age_s: float = 0.0
    max_bytes: int = InputPolicy.max_bytes
    max_duration_s: float = InputPolicy.max_duration_s
    max_width: int = InputPolicy.max_width
    max_height: int = InputPolicy.max_height
    decode_timeout_s: float = InputPolicy.decode_timeout_s

    def policy(self) -> InputPolicy:
        return InputPolicy(
            max_bytes=self.max_bytes,
            max_duration_s=self.max_duration_s,
            max_width=self.max_width,
            max_height=self.max_height,
            decode_timeout_s=self.decode_timeout_s,
        )


_DEFAULTS = LongTakeConfig()


class LongTakeSettings(ConfigurableResource):
    """Thresholds of the long-take filter (LVD-2M defaults), and the pass-rate band its check expects."""

    min_duration_s: float = _DEFAULTS.min_duration_s
    min_dynamic_degree: float = _DEFAULTS.min_dynamic_degree
    max_dynamic_degree: float = _DEFAULTS.max_dynamic_degree
    max_jitter: float = _DEFAULTS.max_jitter
    max_black_frac: float = _DEFAULTS.max_black_frac
    max_uniform_frac: float = _DEFAULTS.max_uniform_frac
    min_sharpness: float = _DEFAULTS.min_sharpness
    max_blurry_frac: float = _DEFAULTS.max_blurry_frac
    reject_text: bool = _DEFAULTS.reject_text
    min_semantic_score: float = _DEFAULTS.min_semantic_score
    keyframe_every_s: float = _DEFAULTS.keyframe_every_s
    # The WARN check: a pass rate outside this band usually means a threshold went wrong.
    min_pass_rate: float = 0.01
    max_pass_rate: float = 0.95
    min_clips_for_pass_rate: int = 5
    # How many passing clips the re-measure check decodes again.
    recheck_sample: int = 3

    def config(self) -> LongTakeConfig:
        names = {f.name for f in fields(LongTakeConfig)}
        return replace(_DEFAULTS, **{k: v for k, v in self.model_dump().items() if k in names})


class ClipScorerResource(ConfigurableResource):
    """Optional semantic quality: a transformers image classifier scores each clip's keyframes (off by default)."""

    enabled: bool = False
    model: str = "tiny:scorer"  # hub id, local folder, or tiny:scorer
    revision: str = ""
    label: str = ""  # for multi-label models: the label that means good quality
    batch_size: int = 32

    _scorer = PrivateAttr(default=None)

    def get_scorer(self):
        if not self.enabled:
            return None
        if self._scorer is None:
            from vidgraph.models.clip_scorer import ClipScorer
            from vidgraph.models.profiles import resolve_model

            self._scorer = ClipScorer(resolve_model(self.model), self.revision or None, self.label or None,
                                      batch_size=self.batch_size, name=self.model)
        return self._scorer


class CaptionSettings(ConfigurableResource):
    """The model profile whose generation parameters and check thresholds the caption stages use."""

    profile: str = "tiny"

    def load(self):
        from vidgraph.models.profiles import load_profile

        return load_profile(self.profile, resolve=False)


class IngestScheduleSettings(ConfigurableResource):
    """How the ingest schedule closes shards: the longest a partial shard waits to fill, and a bound per tick."""

    shard_max_wait_s: float = 3600.0
    max_videos_per_tick: int = 512


def _env_or(name: str, default: str):
    """An EnvVar when the variable is set (so the UI shows where the value comes from)."""
    return EnvVar(name) if os.environ.get(name) else default


def build_resources(
    root: str | None = None, landing: str | None = None, shard_size: int | None = None, profile: str | None = None
) -> dict:
    """Resources for the current environment: VIDGRAPH_ROOT, VIDGRAPH_LANDING, VIDGRAPH_SHARD_SIZE,
    and the model profile VIDGRAPH_PROFILE (tiny by default)."""
    from vidgraph.models.profiles import default_profile_name, load_profile

    name = profile or default_profile_name()
    models = load_profile(name, resolve=False)
    return {
        "vlm": models.vlm.resource(),
        "llm": models.llm.resource(),
        "caption_settings": CaptionSettings(profile=name),
        "long_take_settings": LongTakeSettings(),
        "clip_scorer": ClipScorerResource(enabled=os.environ.get("VIDGRAPH_CLIP_SCORER", "") not in ("", "0", "off")),
        "store": DatasetStoreResource(root=root or _env_or("VIDGRAPH_ROOT", DEFAULT_ROOT)),
        "ingest_settings": IngestSettings(
            landing_dir=landing or _env_or("VIDGRAPH_LANDING", DEFAULT_LANDING),
            shard_size=shard_size or int(os.environ.get("VIDGRAPH_SHARD_SIZE", "8")),
        ),
        "ingest_schedule_settings": IngestScheduleSettings(),
    }
