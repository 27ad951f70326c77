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
