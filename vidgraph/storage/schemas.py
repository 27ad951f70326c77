"""Arrow schemas of the tables every shard writes, so shards always union cleanly."""

import pyarrow as pa

LEDGER_SCHEMA = pa.schema(
    [
        ("shard", pa.string()),
        ("sha256", pa.string()),
        ("landing_path", pa.string()),
        ("relpath", pa.string()),
        ("size_bytes", pa.int64()),
        ("ingested_at", pa.string()),
        # The path as the file system spells it (os.fsencode): lossless where the name is not
        # valid UTF-8; landing_path and relpath then show the odd bytes as \xNN.
        ("landing_path_bytes", pa.binary()),
    ]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("sha256", pa.string()),
        ("reason", pa.string()),
        ("stage", pa.string()),  # ingest | source_videos | raw_clips | ...
        ("shard", pa.string()),
        ("video_id", pa.string()),
    ]
)

SOURCE_VIDEOS_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("shard", pa.string()),
        ("sha256", pa.string()),
        ("relpath", pa.string()),
        ("landing_path", pa.string()),
        ("media_path", pa.string()),
        ("container", pa.string()),
        ("video_codec", pa.string()),
        ("pix_fmt", pa.string()),
        ("bit_depth", pa.int32()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("rotation", pa.int32()),
        ("duration_s", pa.float64()),
        ("avg_fps", pa.float64()),
        ("real_fps", pa.float64()),
        ("is_vfr", pa.bool_()),
        ("n_frames_declared", pa.int64()),
        ("time_base", pa.string()),
        ("has_audio", pa.bool_()),
        ("audio_codec", pa.string()),
        ("audio_sample_rate", pa.int32()),
        ("audio_channels", pa.int32()),
        ("size_bytes", pa.int64()),
        # From an ingest sidecar NAME.json / NAME.txt (untrusted, size-limited text); "" when absent.
        ("source_title", pa.string()),
        ("source_description", pa.string()),
        ("source_license", pa.string()),
        ("source_url", pa.string()),
        ("source_tags", pa.list_(pa.string())),
        ("source_sidecar", pa.string()),  # the sidecar's file name, "" when none
        ("source_sidecar_error", pa.string()),  # why a sidecar was not used, "" when none
    ]
)

RAW_CLIPS_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("video_id", pa.string()),
        ("shard", pa.string()),
        ("clip_index", pa.int32()),
        ("start_frame", pa.int64()),
        ("end_frame", pa.int64()),
        ("n_frames", pa.int64()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("duration_s", pa.float64()),
        ("fps", pa.float64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("has_audio", pa.bool_()),
        ("path", pa.string()),
        ("detector", pa.string()),
        ("detector_params", pa.string()),  # JSON
        ("encoding", pa.string()),  # JSON
        ("analysis_params", pa.string()),  # JSON: the decode pass's sampling and sizes
        ("audio_note", pa.string()),  # why the sound was left out ("" when kept or absent)
    ]
)

VIDEO_KEYFRAMES_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("frame_index", pa.int64()),
        ("t_s", pa.float64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("path", pa.string()),
    ]
)

LONG_TAKES_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("video_id", pa.string()),
        ("shard", pa.string()),
        ("start_frame", pa.int64()),
        ("end_frame", pa.int64()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("duration_s", pa.float64()),
        ("n_frames", pa.int64()),
        ("passed", pa.bool_()),
        ("reasons", pa.list_(pa.string())),
        ("inner_cut_frames", pa.list_(pa.int64())),  # on the source video's frame numbers
        ("gradual_transitions", pa.string()),  # JSON list of {kind, start, end}
        ("dynamic_degree", pa.float64()),  # mean Farneback flow, fraction of the diagonal per second
        ("dynamic_p50", pa.float64()),
        ("dynamic_p90", pa.float64()),
        ("static_pair_frac", pa.float64()),
        ("flow_pairs", pa.int32()),
        ("pan_x_per_s", pa.float64()),
        ("pan_y_per_s", pa.float64()),
        ("zoom_per_s", pa.float64()),
        ("jitter_per_s", pa.float64()),
        ("camera_motion", pa.string()),
        ("black_frac", pa.float64()),
        ("uniform_frac", pa.float64()),
        ("sharpness_median", pa.float64()),
        ("blurry_frac", pa.float64()),
        ("text_frac", pa.float64()),
        ("luma_mean", pa.float64()),
        ("semantic_score", pa.float64()),
        ("keyframe_count", pa.int32()),
        ("dynamic_scorer", pa.string()),  # JSON: flow algorithm, parameters, frame size, sampling
        ("semantic_scorer", pa.string()),  # JSON, empty when off
        ("filter_config", pa.string()),  # JSON: every threshold the verdict used
        # OCR on the keyframes of clips that pass every other test (null where OCR did not run):
        # share of keyframes with text covering at least ocr_min_area_frac, mean text area share
        ("ocr_text_frac", pa.float64()),
        ("ocr_area_frac", pa.float64()),
        ("ocr_model", pa.string()),
    ]
)

CLIP_KEYFRAMES_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("video_id", pa.string()),
        ("keyframe_index", pa.int32()),
        ("frame_index", pa.int64()),
        ("t_s", pa.float64()),  # on the source video's clock
        ("t_clip_s", pa.float64()),  # from the clip's start
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("path", pa.string()),
    ]
)

FRAME_CAPTIONS_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("video_id", pa.string()),
        ("shard", pa.string()),
        ("duration_s", pa.float64()),
        ("caption", pa.string()),
        ("word_count", pa.int32()),
        ("diff_captions", pa.list_(pa.struct([("t_s", pa.float64()), ("text", pa.string())]))),
        (
            "dense_captions",
            pa.list_(
                pa.struct(
                    [
                        ("start_s", pa.float64()),
                        ("end_s", pa.float64()),
                        ("text", pa.string()),
                        ("keyframe_ts", pa.list_(pa.float64())),
                    ]
                )
            ),
        ),
        ("keyframe_ts", pa.list_(pa.float64())),
        ("vlm_model_id", pa.string()),
        ("vlm_revision", pa.string()),
        ("llm_model_id", pa.string()),
        ("llm_revision", pa.string()),
        ("prompt_hash", pa.string()),
        ("gen_params", pa.string()),  # JSON
        ("error", pa.string()),
        # LVD-2M's second and third levels, and each level's prompt hash
        ("refined_caption", pa.string()),
        ("concise_caption", pa.string()),
        ("dense_prompt_hash", pa.string()),
        ("refine_prompt_hash", pa.string()),
        ("rewrite_prompt_hash", pa.string()),
        # On-screen text (OCR of the clip's 2-s keyframes, from long_takes): untrusted data
        ("ocr_text", pa.string()),
        ("ocr", pa.list_(pa.struct([("t_s", pa.float64()), ("text", pa.string()), ("area_frac", pa.float64())]))),
        ("ocr_model", pa.string()),
        ("ocr_area_frac", pa.float64()),  # mean share of the frame covered by text boxes
        # ShareGPT4Video's keyframe rule: candidates (2-s samples + last frame), each one's distance to
        # the last kept keyframe, the windows of the differential captions, the rule and encoder (JSON)
        ("candidate_keyframe_ts", pa.list_(pa.float64())),
        ("keyframe_distances", pa.list_(pa.float64())),
        (
            "keyframe_windows",
            pa.list_(pa.struct([("start_s", pa.float64()), ("end_s", pa.float64()), ("keyframe_ts", pa.list_(pa.float64()))])),
        ),
        ("keyframe_rule", pa.string()),
    ]
)

# OCR of each passing long take's keyframes (side table of long_takes, view `clip_ocr`). Text is
# untrusted data: control characters removed, length capped.
CLIP_OCR_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("video_id", pa.string()),
        ("keyframe_index", pa.int32()),
        ("t_clip_s", pa.float64()),
        ("text", pa.string()),  # the keyframe's lines, top to bottom, joined by " / "
        (
            "boxes",
            pa.list_(
                pa.struct(
                    [
                        ("text", pa.string()),
                        ("score", pa.float64()),
                        ("quad", pa.list_(pa.float64())),  # x0,y0..x3,y3 as fractions of width/height
                    ]
                )
            ),
        ),
        ("area_frac", pa.float64()),  # share of the frame covered by the boxes (union)
        ("ocr_model", pa.string()),
    ]
)

_SPAN = pa.struct([("start_s", pa.float64()), ("end_s", pa.float64())])

AUDIO_CAPTIONS_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("video_id", pa.string()),
        ("shard", pa.string()),
        ("duration_s", pa.float64()),
        ("has_audio", pa.bool_()),
        ("audio_error", pa.string()),  # "" when none
        (
            "timeline",  # tiles [0, duration_s]; label: speech | music | speech+music | other | silence
            pa.list_(pa.struct([("start_s", pa.float64()), ("end_s", pa.float64()), ("label", pa.string()),
                                ("confidence", pa.float64())])),
        ),
        ("speech_share", pa.float64()),
        ("music_share", pa.float64()),
        ("silence_share", pa.float64()),
        ("audio_class", pa.string()),  # the dominant label, "none" without audio
        ("transcript", pa.string()),
        (
            "asr_segments",
            pa.list_(pa.struct([("start_s", pa.float64()), ("end_s", pa.float64()), ("text", pa.string()),
                                ("avg_logprob", pa.float64()), ("no_speech_prob", pa.float64()),
                                ("compression_ratio", pa.float64())])),
        ),
        # Segments the hallucination filter dropped, and why.
        ("asr_dropped", pa.list_(pa.struct([("start_s", pa.float64()), ("end_s", pa.float64()),
                                            ("text", pa.string()), ("reason", pa.string())]))),
        ("speech_spans", pa.list_(_SPAN)),  # what was sent to ASR (before padding/joining)
        ("language", pa.string()),
        ("music_tags", pa.list_(pa.string())),
        ("tempo_bpm", pa.float64()),  # null when no music
        ("loudness_dbfs", pa.float64()),
        ("music_captions", pa.list_(pa.struct([("start_s", pa.float64()), ("end_s", pa.float64()),
                                               ("text", pa.string())]))),
        ("audio_caption", pa.string()),
        ("source_sample_rate", pa.int32()),
        ("source_channels", pa.int32()),
        ("asr_backend", pa.string()),
        ("asr_model_id", pa.string()),
        ("asr_revision", pa.string()),
        ("tagger_model_id", pa.string()),
        ("tagger_revision", pa.string()),
        ("llm_model_id", pa.string()),
        ("llm_revision", pa.string()),
        ("vad_model_id", pa.string()),
        ("vad_revision", pa.string()),
        ("prompt_hash", pa.string()),
        ("params", pa.string()),  # JSON: every threshold and the generation parameters
        ("error", pa.string()),  # "" when none
    ]
)

MERGED_CAPTIONS_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("video_id", pa.string()),
        ("shard", pa.string()),
        ("duration_s", pa.float64()),
        ("merged_caption", pa.string()),  # MMTrail: picture authoritative, sound woven in
        ("factual_visual", pa.string()),  # VideoMind factual layer, five elements
        ("factual_audio", pa.string()),
        ("factual_ocr", pa.string()),
        ("factual_asr", pa.string()),
        ("factual_source", pa.string()),
        ("abstract_summary", pa.string()),
        ("abstract_tags", pa.struct([("subject", pa.string()), ("place", pa.string()), ("time", pa.string()), ("event", pa.string())])),
        ("intent_uploader", pa.string()),  # raw "[subject] through [action] aims to [intent]" lines
        ("intent_subject", pa.string()),
        ("intent_uploader_verifier", pa.string()),
        ("intent_subject_verifier", pa.string()),
        ("intent_similarity_uploader", pa.float64()),
        ("intent_similarity_subject", pa.float64()),
        ("verified", pa.bool_()),
        (
            "sixw",
            pa.struct([(k, pa.string()) for k in ("who", "what", "when", "where", "why", "how")]),
        ),
        ("parse_failures", pa.list_(pa.struct([("field", pa.string()), ("raw", pa.string())]))),
        ("llm_model_id", pa.string()),
        ("llm_revision", pa.string()),
        ("verifier_model_id", pa.string()),
        ("verifier_revision", pa.string()),
        ("embedder_model_id", pa.string()),
        ("embedder_revision", pa.string()),
        ("prompt_hash", pa.string()),
        ("gen_params", pa.string()),  # JSON
        ("error", pa.string()),  # "" when none
    ]
)
# -- releases (issue 11) -----------------------------------------------------------------------

NEAR_DUPLICATES_SCHEMA = pa.schema([
    ("clip_id", pa.string()), ("video_id", pa.string()), ("shard", pa.string()),
    ("group_id", pa.string()), ("group_size", pa.int32()),
    ("phashes", pa.list_(pa.string())),  # hex, one per hashed keyframe
    ("embedder_model_id", pa.string()), ("embedder_revision", pa.string()), ("params", pa.string()),  # JSON thresholds
])

NEAR_DUPLICATE_PAIRS_SCHEMA = pa.schema([
    ("clip_a", pa.string()), ("clip_b", pa.string()), ("video_a", pa.string()), ("video_b", pa.string()),
    ("hash_distance", pa.int32()), ("caption_sim", pa.float64()), ("reason", pa.string()),
])

BENCHMARK_SPLIT_SCHEMA = pa.schema([
    ("release", pa.string()), ("clip_id", pa.string()), ("video_id", pa.string()), ("shard", pa.string()),
    ("split", pa.string()), ("component", pa.string()), ("group_id", pa.string()),
    ("duration_s", pa.float64()), ("duration_bucket", pa.string()), ("audio_class", pa.string()),
    ("stratum", pa.string()), ("assignment", pa.string()),  # kept | joined | hashed | bridge
    ("first_release", pa.string()), ("frozen", pa.bool_()), ("params", pa.string()),  # frozen: a verified gold clip
])

GOLD_SET_SCHEMA = pa.schema([
    ("release", pa.string()), ("clip_id", pa.string()), ("video_id", pa.string()), ("shard", pa.string()),
    ("stratum", pa.string()), ("batch", pa.string()), ("added_in_release", pa.string()),
    ("verified", pa.bool_()), ("verdict", pa.string()), ("reference_caption", pa.string()),
    ("frozen_record", pa.string()),  # JSON of the clip's exported record when it was verified
])

GOLD_VERDICTS_SCHEMA = pa.schema([
    ("clip_id", pa.string()), ("release", pa.string()), ("batch", pa.string()), ("reviewer", pa.string()),
    ("verdict", pa.string()), ("reference_caption", pa.string()), ("notes", pa.string()),
    ("source_file", pa.string()), ("reviewed_at", pa.string()),
])

RETRIEVAL_EVAL_SCHEMA = pa.schema([
    ("release", pa.string()), ("layer", pa.string()), ("queries", pa.int64()),
    ("r1", pa.float64()), ("r5", pa.float64()), ("r10", pa.float64()),
    ("mean_rank", pa.float64()), ("median_rank", pa.float64()),
    ("split", pa.string()), ("embedder_model_id", pa.string()), ("embedder_revision", pa.string()),
])

NARRATION_EVAL_SCHEMA = pa.schema([
    ("release", pa.string()), ("clip_id", pa.string()), ("reference_kind", pa.string()), ("reference", pa.string()),
    ("narration", pa.string()), ("narration_error", pa.string()),
    ("environment", pa.int32()), ("characters", pa.int32()), ("plot", pa.int32()),  # 0-5, -1 never parsed
    ("l1_attempts", pa.int32()), ("l2_attempts", pa.int32()), ("l1_raw", pa.string()), ("l2_raw", pa.string()),
    ("llm_model_id", pa.string()), ("llm_revision", pa.string()), ("judge_model_id", pa.string()),
    ("judge_revision", pa.string()), ("prompt_hash", pa.string()), ("gen_params", pa.string()),
])

# clip_files/<shard>/clip_files.parquet: the clip files cut after the long-take verdict
# (``clip_files: passing``), one row per file attempted.
CLIP_FILES_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("video_id", pa.string()),
        ("shard", pa.string()),
        ("start_frame", pa.int64()),
        ("end_frame", pa.int64()),
        ("n_frames", pa.int64()),
        ("path", pa.string()),  # "" when the file could not be written (then the span is read)
        ("method", pa.string()),  # smart (GOPs copied) | encode (every frame re-encoded) | ""
        ("copied_frames", pa.int64()),
        ("encoding", pa.string()),  # JSON
        ("error", pa.string()),
    ]
)

# One row per failed run, written by the run-failure sensor (vidgraph/defs/operations.py).
RUN_FAILURES_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("job_name", pa.string()),
        ("partition", pa.string()),
        ("assets", pa.list_(pa.string())),  # the run's asset selection; empty: the whole job
        ("failed_at", pa.string()),  # UTC, ISO 8601
        ("cause", pa.string()),  # the run's failure message
        ("failed_steps", pa.list_(pa.struct([("step", pa.string()), ("error", pa.string()), ("message", pa.string())]))),
        ("retried", pa.bool_()),  # a step was retried before the run failed
    ]
)
