"""Caption logic (pure): frame captions, prompt templates and quality measures."""

from .frame_captions import (CAPTION_LOGIC_VERSION, ClipKeyframes, DenseStep, DiffSWStep, build_dense_requests,
                             build_diffsw_requests, build_refine_request, build_rewrite_request,
                             build_summary_request, caption_clips, choose_keyframes, dense_segments,
                             frame_captions_code_version, level_prompt_hashes, segment_keyframe_indices,
                             tokens_for_words, word_limits_from_profile)
from .keyframes import (KeyframeSelection, keyframe_candidates, keyframe_rule_problems, keyframe_windows,
                        select_keyframes)
from .prompts import (FRAME_CAPTION_TEMPLATES, PromptTemplate, frame_caption_templates, load_template,
                      prompt_hash, prompts_version)
from .quality import caption_problems, dense_timestamps_ok, repetition_ratio, word_count

__all__ = [
    "CAPTION_LOGIC_VERSION", "ClipKeyframes", "DenseStep", "DiffSWStep", "FRAME_CAPTION_TEMPLATES",
    "PromptTemplate", "build_dense_requests", "build_diffsw_requests", "build_summary_request", "caption_clips",
    "caption_problems", "dense_segments", "dense_timestamps_ok", "frame_caption_templates",
    "frame_captions_code_version", "load_template", "prompt_hash", "prompts_version", "repetition_ratio",
    "segment_keyframe_indices", "word_count", "build_refine_request", "build_rewrite_request", "choose_keyframes",
    "level_prompt_hashes", "tokens_for_words", "word_limits_from_profile", "KeyframeSelection",
    "keyframe_candidates", "keyframe_rule_problems", "keyframe_windows", "select_keyframes",
]
