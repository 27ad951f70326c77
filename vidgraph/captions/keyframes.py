"""ShareGPT4Video's keyframe rule and the caption windows (pure logic, no I/O).

Candidates are the frames sampled every ``every_s`` seconds plus the clip's last frame. The first
candidate is kept; each later one is kept only if its distance (an :class:`ImageEncoder`'s) to
the last *kept* keyframe is above the threshold; the last frame is always kept. A 2-s sample that
falls closer than ``every_s - tolerance`` before the last frame is not a candidate, so every kept
keyframe is at least that far from the next one.

When more keyframes are kept than ``max_keyframes``, the differential captions run in consecutive
windows of at most ``max_keyframes`` keyframes that overlap by one: every pair of adjacent kept
keyframes is one differential step in exactly one window, and no kept keyframe is ever skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

# Keyframes land on the first frame at or after each 2-s mark, so their spacing wobbles by up to a
# frame; 0.25 s covers frame rates down to 4 fps.
GAP_TOLERANCE_S = 0.25


@dataclass(frozen=True)
class KeyframeSelection:
    candidate_ts: list[float]
    kept: list[int]  # indices into the candidates, in time order
    distances: list[float | None]  # each candidate's distance to the last kept one before it

    @property
    def kept_ts(self) -> list[float]:
        return [self.candidate_ts[i] for i in self.kept]


def keyframe_candidates(samples: Sequence[tuple[float, Any]], last: tuple[float, Any] | None,
                        every_s: float = 2.0, tolerance_s: float = GAP_TOLERANCE_S) -> list[tuple[float, Any]]:
    """The 2-s samples in time order, then the last frame (when known). Samples too close before the
    last frame give way to it."""
    samples = sorted(samples, key=lambda kv: float(kv[0]))
    if last is None:
        return list(samples)
    t_last = float(last[0])
    keep = [s for s in samples if float(s[0]) <= t_last - (every_s - tolerance_s)]
    return keep + [last]


def select_keyframes(candidate_ts: Sequence[float], embeddings: Sequence[Any], distance, threshold: float,
                     last_is_final: bool = True) -> KeyframeSelection:
    """Greedy redundancy rule over ``candidates`` (their embeddings and a distance function).

    ``last_is_final``: the last candidate is the clip's last frame and is kept whatever its distance.
    """
    ts = [float(t) for t in candidate_ts]
    n = len(ts)
    if n == 0:
        return KeyframeSelection([], [], [])
    kept, dists = [0], [None]
    for i in range(1, n):
        d = float(distance(embeddings[i], embeddings[kept[-1]]))
        dists.append(d)
        if d > threshold or (last_is_final and i == n - 1):
            kept.append(i)
    return KeyframeSelection(ts, kept, dists)


def keyframe_windows(n: int, max_keyframes: int | None) -> list[tuple[int, int]]:
    """``[start, end)`` index ranges of consecutive windows of at most ``max_keyframes`` keyframes,
    overlapping by one keyframe; one window when everything fits."""
    if n <= 0:
        return []
    if not max_keyframes or n <= max_keyframes:
        return [(0, n)]
    size = max(2, int(max_keyframes))  # a window needs two keyframes for one differential step
    out, start = [], 0
    while True:
        end = min(n, start + size)
        out.append((start, end))
        if end == n:
            return out
        start = end - 1


def keyframe_rule_problems(keyframe_ts: Sequence[float], candidate_ts: Sequence[float], duration_s: float,
                           every_s: float = 2.0, tolerance_s: float = GAP_TOLERANCE_S,
                           last_frame_within_s: float = 0.5) -> list[str]:
    """Why a row's keyframes break the rule (empty: they keep it): in order, at least
    ``every_s - tolerance_s`` apart, taken from the candidates, the first and the last frame present."""
    ts = [float(t) for t in keyframe_ts]
    if not ts:
        return ["no keyframes"]
    out = []
    if any(b <= a for a, b in zip(ts, ts[1:])):
        out.append("keyframes out of order")
    gaps = [b - a for a, b in zip(ts, ts[1:])]
    if gaps and min(gaps) < every_s - tolerance_s - 1e-6:
        out.append(f"keyframes {min(gaps):.2f} s apart, less than {every_s - tolerance_s:g} s")
    cands = [float(t) for t in candidate_ts]
    if cands:
        if not set(ts) <= set(cands):
            out.append("a keyframe is not a candidate")
        if ts[0] != cands[0]:
            out.append("first candidate not kept")
        if ts[-1] != cands[-1]:
            out.append("last candidate not kept")
    if ts[-1] < float(duration_s) - last_frame_within_s:
        out.append(f"last keyframe at {ts[-1]:.2f} s, the clip ends at {float(duration_s):.2f} s")
    return out


def row_keyframe_problems(row: dict) -> list[str]:
    """:func:`keyframe_rule_problems` for a frame_captions row, with the rule it recorded. A row whose
    last frame could not be read (its error says so) is not blamed for a missing last frame."""
    import json

    if not row.get("keyframe_ts") and row.get("error"):
        return []  # accounted for by its error
    rule = json.loads(row.get("keyframe_rule") or "{}")
    problems = keyframe_rule_problems(row.get("keyframe_ts") or [], row.get("candidate_keyframe_ts") or [],
                                      row["duration_s"], float(rule.get("every_s", 2.0)),
                                      float(rule.get("gap_tolerance_s", GAP_TOLERANCE_S)))
    if not rule.get("last_frame", True) and row.get("error"):
        problems = [p for p in problems if not p.startswith("last keyframe at")]
    return problems
