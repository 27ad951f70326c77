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
