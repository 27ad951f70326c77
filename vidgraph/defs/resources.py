"""Resources and settings: the dataset root, the input policy, the filter thresholds, the caption profile.

Settings classes live here, not in the asset modules, so assets import settings and never each other.

Secrets are never fields here: S3 credentials come from the standard AWS variables
(``AWS_ACCESS_KEY_ID``...) read by the store at run time, as dagster-aws's S3Resource does.
"""

from __future__ import annotations

import os
from dataclasses import fields, replace
from functools import lru_cache

from dagster import ConfigurableResource, EnvVar
from pydantic import PrivateAttr

from vidgraph.captions.audio_captions import AudioConfig
from vidgraph.config import env_number, shard_size_from_env
from vidgraph.ingest import DEFAULT_SETTLE_S
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
    min_file_age_s: float = DEFAULT_SETTLE_S  # files modified more recently may still be uploading
    max_bytes: int = InputPolicy.max_bytes
    max_duration_s: float = InputPolicy.max_duration_s
    max_width: int = InputPolicy.max_width
    max_height: int = InputPolicy.max_height
    decode_timeout_s: float = InputPolicy.decode_timeout_s
    # The scan index under the root (ROOT/_state/landing_index.parquet): unchanged files are not hashed again.
    scan_index: bool = True
    # An s3:// landing: keys listed per scan, after the cursor in ROOT/_state/landing_cursor.json.
    max_keys_per_scan: int = 10_000
    # What happens to a landed file once its checked copy is in the root: keep, move (to move_to;
    # empty: LANDING/.ingested) or delete. Files refused by source_videos are always kept.
    after_ingest: str = "keep"
    move_to: str = ""

    def after_ingest_policy(self):
        from vidgraph.landing import AfterIngest, check_move_to

        policy = AfterIngest(self.after_ingest.strip().lower(), self.move_to)
        if policy.action == "move":
            check_move_to(self.landing_dir, policy.target(self.landing_dir))
        return policy

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
    # OCR of otherwise-passing clips; where it ran, overlaid text is judged from its text boxes.
    ocr: bool = _DEFAULTS.ocr
    ocr_min_area_frac: float = _DEFAULTS.ocr_min_area_frac
    # The WARN check: a pass rate outside this band usually means a threshold went wrong.
    min_pass_rate: float = 0.01
    max_pass_rate: float = 0.95
    min_clips_for_pass_rate: int = 5
    # How many passing clips the re-measure check decodes again.
    recheck_sample: int = 3

    def config(self) -> LongTakeConfig:
        names = {f.name for f in fields(LongTakeConfig)}
        return replace(_DEFAULTS, **{k: v for k, v in self.model_dump().items() if k in names})


class ClipFileSettings(ConfigurableResource):
    """Which clips get a file (passing: after the long-take verdict; all; none) and how they are cut."""

    clip_files: str = "passing"
    # Copy whole GOPs of H.264/HEVC sources, re-encode only the seams; False: re-encode every frame.
    smart_cut: bool = True
    # Decode and cut each video in a worker process, so a native crash costs one video.
    isolate_decoding: bool = True

    def apply(self, settings):
        """``settings`` (a RawClipsSettings) with these choices."""
        return replace(settings, clip_files=self.clip_files, isolate=self.isolate_decoding,
                       encoding=replace(settings.encoding, smart=self.smart_cut))


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


class MergeSettings(ConfigurableResource):
    """merged_captions: the verification threshold, the sentence embedder, and the bands its WARN checks expect."""

    # Cosine of the two intents (llm and verifier) per role; both roles must reach it.
    verify_threshold: float = 0.6
    embedder_model: str = ""  # a local all-MiniLM-style folder; "" = the packaged all-MiniLM-L6-v2
    merge_max_words: int = 120
    factual_max_words: int = 60
    max_quoted_chars: int = 4000  # per quoted block of untrusted text (transcript, OCR, uploader text)
    min_parse_rate: float = 0.8
    max_parse_rate: float = 1.0
    min_verified_rate: float = 0.3
    max_verified_rate: float = 1.0
    min_rows_for_rates: int = 1

    def word_limits(self) -> dict:
        return {"merge": self.merge_max_words, "factual": self.factual_max_words}
_AUDIO = AudioConfig()


class AudioSettings(ConfigurableResource):
    """audio_captions: the model profile (generation parameters) and every audio threshold."""

    profile: str = "tiny"
    # Share of a clip that is speech above which a transcript is expected (the WARN check).
    min_speech_share_for_transcript: float = 0.1
    hop_s: float = _AUDIO.hop_s
    silence_dbfs: float = _AUDIO.silence_dbfs
    min_silence_s: float = _AUDIO.min_silence_s
    vad_threshold: float = _AUDIO.vad_threshold
    vad_min_speech_s: float = _AUDIO.vad_min_speech_s
    vad_min_silence_s: float = _AUDIO.vad_min_silence_s
    music_threshold: float = _AUDIO.music_threshold
    speech_music_threshold: float = _AUDIO.speech_music_threshold
    tagger_weight: float = _AUDIO.tagger_weight
    tagger_window_s: float = _AUDIO.tagger_window_s
    tagger_hop_s: float = _AUDIO.tagger_hop_s
    pulse_floor: float = _AUDIO.pulse_floor
    pulse_span: float = _AUDIO.pulse_span
    tonality_floor: float = _AUDIO.tonality_floor
    tonality_span: float = _AUDIO.tonality_span
    context_s: float = _AUDIO.context_s
    min_segment_s: float = _AUDIO.min_segment_s
    music_tag_threshold: float = _AUDIO.music_tag_threshold
    max_music_tags: int = _AUDIO.max_music_tags
    min_music_caption_s: float = _AUDIO.min_music_caption_s
    asr_pad_s: float = _AUDIO.asr_pad_s
    asr_max_gap_s: float = _AUDIO.asr_max_gap_s
    compression_ratio_threshold: float = _AUDIO.compression_ratio_threshold
    logprob_threshold: float = _AUDIO.logprob_threshold
    no_speech_threshold: float = _AUDIO.no_speech_threshold
    caption_max_words: int = _AUDIO.caption_max_words

    def config(self) -> AudioConfig:
        return AudioConfig.from_mapping(self.model_dump())

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
    from vidgraph.models.resources import AudioTaggerResource, SpeechRecognizerResource

    name = profile or default_profile_name()
    models = load_profile(name, resolve=False)
    resources = {
        "vlm": models.vlm.resource(),
        "llm": models.llm.resource(),
        "verifier": models.verifier_spec().resource(),
        "merge_settings": MergeSettings(),
        "caption_settings": CaptionSettings(profile=name),
        "asr": SpeechRecognizerResource.from_spec(models.asr),
        "audio_tagger": AudioTaggerResource.from_spec(models.audio_tagger),
        "audio_settings": AudioSettings(profile=name),
        "long_take_settings": LongTakeSettings(),
        "clip_file_settings": ClipFileSettings(
            clip_files=os.environ.get("VIDGRAPH_CLIP_FILES", "passing"),
            isolate_decoding=os.environ.get("VIDGRAPH_ISOLATE_DECODING", "1") not in ("0", "off", "false"),
        ),
        "clip_scorer": ClipScorerResource(enabled=os.environ.get("VIDGRAPH_CLIP_SCORER", "") not in ("", "0", "off")),
        "store": DatasetStoreResource(root=root or _env_or("VIDGRAPH_ROOT", DEFAULT_ROOT)),
        "ingest_settings": IngestSettings(
            landing_dir=landing or _env_or("VIDGRAPH_LANDING", DEFAULT_LANDING),
            shard_size=shard_size or shard_size_from_env(),
            min_file_age_s=env_number("VIDGRAPH_SETTLE_S", DEFAULT_SETTLE_S, minimum=0),
            scan_index=os.environ.get("VIDGRAPH_SCAN_INDEX", "on").strip().lower() not in ("0", "off", "false", "no"),
            after_ingest=os.environ.get("VIDGRAPH_AFTER_INGEST", "keep").strip().lower() or "keep",
            move_to=os.environ.get("VIDGRAPH_MOVE_TO", ""),
        ),
        "ingest_schedule_settings": IngestScheduleSettings(),
    }
    resources.update(build_release_resources(root))
    return resources


# -- releases (issue 11) -----------------------------------------------------------------------


class SentenceEmbedderResource(ConfigurableResource):
    """Sentence embeddings (the packaged all-MiniLM-L6-v2 unless a local folder is given)."""

    model: str = "packaged:all-MiniLM-L6-v2"
    batch_size: int = 64

    def get_embedder(self):
        return _sentence_embedder(self.model, self.batch_size)


@lru_cache(maxsize=2)
def _sentence_embedder(model: str, batch_size: int):
    # One loaded model per process: the steps of a run (and the release's assets) share it.
    from vidgraph.models.embeddings import SentenceEmbedder

    return SentenceEmbedder(model, batch_size=batch_size)


class NearDuplicateSettings(ConfigurableResource):
    """Thresholds of the near-duplicate groups (perceptual hash bits, caption cosine) and the index."""

    max_keyframes: int = 3
    max_hash_distance: int = 6
    visual_min_caption_sim: float = 0.5
    caption_only_sim: float = 0.95
    simhash_max_distance: int = 11
    bands: int = 4

    def config(self):
        from vidgraph.stages.near_duplicates import NearDuplicateConfig

        return NearDuplicateConfig(**self.model_dump())


class ReleaseSettings(ConfigurableResource):
    """How a release is split, how big its gold set is, how it is exported, where verdicts land."""

    salt: str = "vidgraph-v1"
    train_share: float = 0.8
    validation_share: float = 0.1
    test_share: float = 0.1
    duration_edges_s: list[float] = [15.0, 30.0, 60.0]
    share_tolerance: float = 0.1
    min_clips_for_shares: int = 50  # the share check judges only releases at least this big
    gold_size: int = 1000  # MMTrail: 1,000 test clips; VideoMind: 3,000
    gold_batch_size: int = 50
    wds_shard_size: int = 500  # samples per WebDataset tar
    decode_sample: int = 3  # exported clips the media check decodes
    verdicts_dir: str = "./gold-verdicts"  # reviewers drop the review page's JSON files here

    def config(self):
        from vidgraph.stages.benchmark_split import SplitConfig

        return SplitConfig(
            salt=self.salt, shares=(self.train_share, self.validation_share, self.test_share),
            duration_edges_s=tuple(self.duration_edges_s), share_tolerance=self.share_tolerance,
            gold_size=self.gold_size, gold_batch_size=self.gold_batch_size,
        )


class EvaluationSettings(ConfigurableResource):
    """The release evaluations: which split retrieval uses, and the narration judge's budget."""

    retrieval_split: str = "test"  # or "all"
    max_judge_attempts: int = 3
    max_new_tokens: int = 96
    narration_limit: int = 0  # 0: every gold clip


def build_release_resources(root: str | None = None) -> dict:
    """The release assets' resources (merged into build_resources)."""
    return {
        "sentence_embedder": SentenceEmbedderResource(),
        "near_duplicate_settings": NearDuplicateSettings(),
        "release_settings": ReleaseSettings(
            verdicts_dir=_env_or("VIDGRAPH_VERDICTS", os.path.join(root or default_root(), "gold-verdicts"))
        ),
        "evaluation_settings": EvaluationSettings(),
    }
