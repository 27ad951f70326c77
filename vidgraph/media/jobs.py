"""The media worker's jobs: one video's analysis pass, one video's clip files.

Kept in a module of their own that imports only the media code, so the worker's forkserver has
everything a job needs already imported (see vidgraph.media.isolate.PRELOAD) and a job costs a
fork, not an import of the stage modules (pyarrow, the store).
"""

from __future__ import annotations

from vidgraph.media.analysis import AnalysisConfig, VideoAnalysis, analyze_video
from vidgraph.media.cutting import ClipEncoding, ClipFile, audio_problem, cut_clips
from vidgraph.media.decode import frame_size_limit
from vidgraph.media.probe import InputPolicy
from vidgraph.media.shots import ShotDetectorConfig


def analyze_job(local: str, detector: ShotDetectorConfig, analysis: AnalysisConfig, policy: InputPolicy) -> tuple[VideoAnalysis, str]:
    """One video's analysis pass and why its sound cannot be used ("" when it can)."""
    with frame_size_limit(policy.max_width, policy.max_height):
        result = analyze_video(local, detector, analysis, policy)
    return result, audio_problem(local)


def cut_job(local: str, shots, out_paths, encoding: ClipEncoding, policy: InputPolicy) -> list[ClipFile]:
    """Clip files for some shots of one video."""
    with frame_size_limit(policy.max_width, policy.max_height):
        return cut_clips(local, shots, out_paths, encoding, policy.decode_timeout_s)
