"""Code versions derived from what changes an asset's output.

An asset's ``code_version`` is a short hash over its logic version and every setting that changes
its rows: the shot detector and its thresholds, the encoding, the long-take thresholds, the model
refs (backend:model@revision), the prompt texts, the generation parameters. A changed setting gives
a new code version; the stale-partition sensor (``vidgraph/defs/operations.py``) compares the
version each partition was materialized with against the current one and re-runs exactly the
stale partitions.

Asset modules call these functions for their ``code_version=`` (default settings);
``build_defs`` applies :func:`code_versions` with the resources the code location really uses, so
a deployment that changes a threshold through a resource gets a version that follows it.
A new asset adds ``VERSIONERS[name] = lambda resources: ...`` (a function of the resources dict).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

# Bump a logic version when the asset's code changes its output for the same settings.
# raw_clips 2: rows are spans (clip files only by the clip_files setting); long_takes 2: OCR decides
# overlaid text; frame_captions 2: the keyframe rule, word band and three caption levels;
# raw_clips 3: the detector finds dissolves between moving shots (16-px blend residual);
# raw_clips 4: the detector measures 128-px frames, the 2 fps flow is Farneback on 80-px frames
# (3 levels, 15-px window), keyframes are shrunk plane by plane; long_takes 3: hot histogram
# windows whose spans overlap are one dissolve. The caption assets also hash their module's own logic version (CAPTION/AUDIO/MERGE_LOGIC_VERSION).
LOGIC_VERSIONS = {"source_videos": "1", "raw_clips": "4", "long_takes": "3", "frame_captions": "2",
                  "audio_captions": "1", "merged_captions": "1"}


def version_of(asset: str, parts: Mapping[str, Any]) -> str:
    """``<asset prefix>-<16 hex>`` over the logic version and ``parts`` (JSON, keys sorted)."""
    blob = json.dumps({"logic": LOGIC_VERSIONS.get(asset, "1"), **parts}, sort_keys=True, default=str)
    return f"{asset[:2]}-" + hashlib.sha256(blob.encode()).hexdigest()[:16]


def _policy(ingest_settings=None) -> dict:
    from vidgraph.media.probe import InputPolicy

    return asdict(ingest_settings.policy() if ingest_settings is not None else InputPolicy())


def source_videos_version(ingest_settings=None) -> str:
    """The input policy decides which files are accepted or quarantined."""
    return version_of("source_videos", {"policy": _policy(ingest_settings)})


def raw_clips_version(ingest_settings=None, detector=None) -> str:
    """Shot detector and thresholds, analysis sampling, clip encoding, input policy."""
    from vidgraph.stages.raw_clips import RawClipsSettings

    s = RawClipsSettings()
    det = detector or s.detector
    return version_of(
        "raw_clips",
        {
            "detector": det.describe(),
            "analysis": s.analysis.describe(),
            "encoding": s.encoding.describe(),
            "policy": _policy(ingest_settings),
        },
    )


def long_takes_version(long_take_settings=None, clip_scorer=None) -> str:
    """Every threshold of the filter, the flow scorer, and the semantic scorer when it is on."""
    from vidgraph.media.longtake import LongTakeConfig, dynamic_scorer_json

    config = long_take_settings.config() if long_take_settings is not None else LongTakeConfig()
    scorer = {}
    if clip_scorer is not None and clip_scorer.enabled:
        scorer = {"model": clip_scorer.model, "revision": clip_scorer.revision, "label": clip_scorer.label}
    return version_of("long_takes", {"thresholds": config.describe(), "dynamic": dynamic_scorer_json(), "scorer": scorer})


# Caption settings that only the checks read: changing them re-judges, it does not re-caption.
# (The word band is not among them: it is in the summary prompt and sets max_new_tokens.)
CAPTION_CHECK_KEYS = frozenset({"max_repetition", "repetition_n"})


def _load_profile(profile_name: str | None):
    from vidgraph.models.profiles import default_profile_name, load_profile

    return load_profile(profile_name or default_profile_name(), resolve=False)


def _prompts(names) -> str:
    """sha256 over the named prompt templates only: a change to another asset's prompt leaves
    this version alone (every prompt file is hashed by none)."""
    from vidgraph.captions.prompts import _hash_templates

    return _hash_templates(names)


def frame_captions_version(profile_name: str | None = None) -> str:
    """Model refs, the frame-caption prompt texts, generation and caption settings."""
    from vidgraph.captions.frame_captions import CAPTION_LOGIC_VERSION
    from vidgraph.captions.prompts import FRAME_CAPTION_TEMPLATES

    profile = _load_profile(profile_name)
    return version_of(
        "frame_captions",
        {
            "caption_logic": CAPTION_LOGIC_VERSION,
            "models": [profile.vlm.ref, profile.llm.ref],
            "prompts": _prompts(FRAME_CAPTION_TEMPLATES.values()),
            "generation": asdict(profile.generation),
            "captions": {k: v for k, v in profile.captions.items() if k not in CAPTION_CHECK_KEYS},
        },
    )


def audio_captions_version(audio_settings=None) -> str:
    """ASR (model@revision), audio tagger, text model, VAD, the audio prompts, generation and
    every audio threshold (AudioSettings; the WARN check's speech share excluded)."""
    from vidgraph.captions.audio_captions import AUDIO_LOGIC_VERSION, AUDIO_TEMPLATES, AudioConfig
    from vidgraph.models.asr import asr_model_revision
    from vidgraph.models.vad import MODEL_FILE, silero_version

    profile = _load_profile(getattr(audio_settings, "profile", None))
    asr = profile.asr
    config = audio_settings.config() if audio_settings is not None else AudioConfig()
    return version_of(
        "audio_captions",
        {
            "audio_logic": AUDIO_LOGIC_VERSION,
            "models": [
                f"{asr.backend}:{asr.source or asr.model}@{asr_model_revision(asr.source or asr.model, asr.revision)}",
                profile.audio_tagger.ref if profile.audio_tagger else "no-tagger",
                profile.llm.ref,
                f"silero-vad:{MODEL_FILE}@{silero_version()}",
            ],
            "prompts": _prompts(AUDIO_TEMPLATES.values()),
            "generation": asdict(profile.generation),
            "config": config.as_dict(),
        },
    )


# MergeSettings fields that only the checks read (rate bands): changing them re-judges, not re-merges.
MERGE_CHECK_KEYS = frozenset({"min_parse_rate", "max_parse_rate", "min_verified_rate", "max_verified_rate", "min_rows_for_rates"})


def merged_captions_version(merge_settings=None, profile_name: str | None = None) -> str:
    """Text model and verifier refs, the sentence embedder, the merge prompts (only those),
    generation, the verification threshold, word limits and quoting limit."""
    from vidgraph.captions.merge import MERGE_LOGIC_VERSION, MERGE_TEMPLATES
    from vidgraph.defs.resources import MergeSettings

    profile = _load_profile(profile_name)
    s = merge_settings if merge_settings is not None else MergeSettings()
    params = {k: v for k, v in s.model_dump().items() if k not in MERGE_CHECK_KEYS}
    params["embedder_model"] = params.get("embedder_model") or "packaged:all-MiniLM-L6-v2"
    return version_of(
        "merged_captions",
        {
            "merge_logic": MERGE_LOGIC_VERSION,
            "models": [profile.llm.ref, profile.verifier_spec().ref],
            "prompts": _prompts(MERGE_TEMPLATES.values()),
            "generation": asdict(profile.generation),
            "settings": params,
        },
    )


def _profile(resources: Mapping) -> str | None:
    settings = resources.get("caption_settings")
    return getattr(settings, "profile", None) or None


# Asset name -> its code version as a function of the code location's resources.
VERSIONERS: dict[str, Callable[[Mapping], str]] = {
    "source_videos": lambda r: source_videos_version(r.get("ingest_settings")),
    "raw_clips": lambda r: raw_clips_version(r.get("ingest_settings")),
    "long_takes": lambda r: long_takes_version(r.get("long_take_settings"), r.get("clip_scorer")),
    "frame_captions": lambda r: frame_captions_version(_profile(r)),
    "audio_captions": lambda r: audio_captions_version(r.get("audio_settings")),
    "merged_captions": lambda r: merged_captions_version(r.get("merge_settings"), _profile(r)),
}


def code_versions(resources: Mapping | None = None) -> dict[str, str]:
    """Asset name -> code version for these resources (defaults where one is missing)."""
    resources = resources or {}
    return {name: fn(resources) for name, fn in VERSIONERS.items()}
