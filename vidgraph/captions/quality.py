"""Pure caption-quality measures, used by the caption asset checks."""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

_WORD = re.compile(r"[\w']+", re.UNICODE)


def words(text: str | None) -> list[str]:
    return _WORD.findall((text or "").lower())


def word_count(text: str | None) -> int:
    """Number of whitespace-separated words (0 for None/empty)."""
    return len((text or "").split())


def repetition_ratio(text: str | None, n: int = 3) -> float:
    """Fraction of the word n-grams that repeat an earlier n-gram: (total - distinct) / total.

    0.0 for text with fewer than ``n`` words. "a b c a b c" with n=3 -> 1/4 = 0.25.
    Degenerate outputs ("the the the the ...") approach 1.0.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    toks = words(text)
    grams = [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]
    if not grams:
        return 0.0
    return (len(grams) - len(set(grams))) / len(grams)


def dense_timestamps_ok(dense: Iterable[Mapping[str, Any]], clip_duration: float, tol: float = 1e-3) -> bool:
    """Dense captions: each ``0 <= start_s < end_s <= clip_duration``, in order, not overlapping."""
    prev_end = 0.0
    any_seg = False
    for seg in dense:
        any_seg = True
        try:
            s, e = float(seg["start_s"]), float(seg["end_s"])
        except (KeyError, TypeError, ValueError):
            return False
        if s < -tol or e > clip_duration + tol or not s < e or s < prev_end - tol:
            return False
        prev_end = e
    return any_seg or clip_duration <= tol


def caption_problems(row: Mapping[str, Any], *, min_words: int = 1, max_words: int = 400,
                     max_repetition: float = 0.5, n: int = 3) -> list[str]:
    """Reasons a frame-caption row fails the checks (empty list = passes).

    A row with a recorded ``error`` is accounted for (it is not a quality failure).
    """
    if row.get("error"):
        return []
    problems = []
    caption = row.get("caption")
    wc = word_count(caption)
    if not caption or not str(caption).strip():
        problems.append("empty caption")
    elif not min_words <= wc <= max_words:
        problems.append(f"word count {wc} outside [{min_words}, {max_words}]")
    rr = repetition_ratio(caption, n)
    if rr > max_repetition:
        problems.append(f"repetition ratio {rr:.2f} > {max_repetition}")
    dense = row.get("dense_captions")
    duration = row.get("duration_s")
    if dense is not None and duration is not None and not dense_timestamps_ok(dense, float(duration)):
        problems.append("dense caption timestamps out of order or outside the clip")
    return problems


LEVEL_COLUMNS = ("refined_caption", "concise_caption", "dense_prompt_hash", "refine_prompt_hash", "rewrite_prompt_hash")


def missing_caption_levels(row: Mapping[str, Any]) -> list[str]:
    """LVD-2M's three levels a frame-caption row lacks (empty: all there, or an error recorded)."""
    if row.get("error"):
        return []
    missing = []
    dense = row.get("dense_captions") or []
    if not dense or any(not (d.get("text") or "").strip() for d in dense):
        missing.append("segment captions")
    missing += [c for c in LEVEL_COLUMNS if not (row.get(c) or "").strip()]
    return missing
