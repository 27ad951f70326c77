"""Resources: the dataset root and the input policy, chosen by environment.

Secrets are never fields here: S3 credentials come from the standard AWS variables
(``AWS_ACCESS_KEY_ID``...) read by the store at run time, as dagster-aws's S3Resource does.
"""

from __future__ import annotations

import os

from dagster import ConfigurableResource, EnvVar

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


def _env_or(name: str, default: str):
    """An EnvVar when the variable is set (so the UI shows where the value comes from)."""
    return EnvVar(name) if os.environ.get(name) else default


def build_resources(
    root: str | None = None, landing: str | None = None, shard_size: int | None = None, profile: str | None = None
) -> dict:
    """Resources for the current environment: VIDGRAPH_ROOT, VIDGRAPH_LANDING, VIDGRAPH_SHARD_SIZE,
    and the model profile VIDGRAPH_PROFILE (tiny by default)."""
    from vidgraph.defs.frame_captions import CaptionSettings
    from vidgraph.defs.long_takes import ClipScorerResource, LongTakeSettings
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
    }
