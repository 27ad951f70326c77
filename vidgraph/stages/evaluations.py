"""Evaluations of a release: VideoMind layer retrieval and Movie101v2-style narration scoring.

* Retrieval: each clip's layer text (factual, abstract, intent) is a query against the gallery of
  every clip's merged-caption embedding (MiniLM); R@1/5/10 and mean rank of the right clip per
  layer. Layers that carry distinct information retrieve differently.
* Narration: the text model writes a narration from the clip's factual layer; a judge compares it
  with the reference (a human reference from a gold verdict, else the verified merged caption).
  L1: environment and characters, integers 0-5; L2: plot 0-5. The judge must answer with a JSON
  object of exactly those keys; a bad answer is retried, and a score that never parses is -1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vidgraph.captions.prompts import load_template

LAYERS = ("factual", "abstract", "intent")
NARRATION_TEMPLATES = {"narrate": "narration_v1", "l1": "narration_judge_l1_v1", "l2": "narration_judge_l2_v1"}
L1_KEYS = ("environment", "characters")
L2_KEYS = ("plot",)


def layer_text(record: dict, layer: str) -> str:
    if layer == "factual":
        parts = [record.get(f"factual_{k}") for k in ("visual", "audio", "ocr", "asr", "source")]
    elif layer == "abstract":
        tags = record.get("abstract_tags") or {}
        parts = [record.get("abstract_summary"), *(tags.get(k) for k in ("subject", "place", "time", "event"))]
    elif layer == "intent":
        parts = [record.get("intent_uploader"), record.get("intent_subject")]
    else:
        raise ValueError(f"unknown layer {layer!r}")
    return " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())


def retrieval_metrics(query_vecs: np.ndarray, gallery_vecs: np.ndarray) -> dict:
    """Query i's right answer is gallery item i. Ranks are 1-based; ties count against the query."""
    sims = query_vecs @ gallery_vecs.T
    right = np.diag(sims)
    ranks = 1 + (sims > right[:, None]).sum(axis=1) + ((sims == right[:, None]).sum(axis=1) - 1)
    return {
        "queries": int(len(ranks)),
        "r1": float(np.mean(ranks <= 1)), "r5": float(np.mean(ranks <= 5)), "r10": float(np.mean(ranks <= 10)),
        "mean_rank": float(np.mean(ranks)), "median_rank": float(np.median(ranks)),
    }


def layer_retrieval(records: Sequence[dict], embedder) -> list[dict]:
    """One row per layer, over the clips that have both a merged caption and that layer's text."""
    rows = []
    for layer in LAYERS:
        use = [r for r in records if layer_text(r, layer) and (r.get("merged_caption") or "").strip()]
        if len(use) < 2:
            rows.append({"layer": layer, "queries": len(use), "r1": None, "r5": None, "r10": None, "mean_rank": None, "median_rank": None})
            continue
        q = embedder.encode([layer_text(r, layer) for r in use])
        g = embedder.encode([r["merged_caption"] for r in use])
        rows.append({"layer": layer, **retrieval_metrics(q, g)})
    return rows


# -- narration scoring -------------------------------------------------------------------------

_JSON_OBJECT = re.compile(r"^\s*(?:```(?:json)?\s*)?(\{[^{}]*\})\s*(?:```)?\s*$", re.S)


def parse_scores(text: str | None, keys: Sequence[str]) -> dict[str, int] | None:
    """The judge's answer as {key: int 0..5}, or None unless it is exactly such a JSON object
    (a fenced code block around it is allowed; prose, missing or extra keys, floats are not)."""
    if not text:
        return None
    m = _JSON_OBJECT.match(text)
    if not m:
        return None
    try:
        obj = json.loads(m.group(1))
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or set(obj) != set(keys):
        return None
    out = {}
    for k in keys:
        v = obj[k]
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 5:
            return None
        out[k] = v
    return out


@dataclass
class JudgeOutcome:
    scores: dict[str, int]  # -1 for a score that never parsed
    attempts: int
    raw: str


def judge(model, prompt: str, keys: Sequence[str], params, max_attempts: int = 3) -> JudgeOutcome:
    """Ask until the answer parses strictly, at most ``max_attempts`` times."""
    from vidgraph.models.backends import user

    raw = ""
    text = prompt
    for attempt in range(1, max_attempts + 1):
        res = model.generate([[user(text)]], params)[0]
        raw = res.text or (res.error or "")
        parsed = parse_scores(res.text, keys)
        if parsed is not None:
            return JudgeOutcome(parsed, attempt, raw)
        text = prompt + "\n\nYour previous answer could not be parsed. Answer with only the JSON object " + \
            json.dumps({k: 0 for k in keys}) + " with integers from 0 to 5."
    return JudgeOutcome({k: -1 for k in keys}, max_attempts, raw)


def narration_prompt_hash() -> str:
    from vidgraph.captions.prompts import prompt_hash

    return prompt_hash(NARRATION_TEMPLATES.values())


def narration_input(record: dict) -> str:
    return layer_text(record, "factual") or (record.get("caption") or "")


def score_narrations(items: Sequence[dict], narrator, judge_model, params, max_attempts: int = 3) -> list[dict]:
    """``items``: clip_id, reference, source (what the narrator sees). One row per item."""
    from vidgraph.models.backends import user

    t = {k: load_template(v) for k, v in NARRATION_TEMPLATES.items()}
    requests = [[user(t["narrate"].render(description=it["source"]))] for it in items]
    narrations = narrator.generate(requests, params) if requests else []
    rows = []
    for it, res in zip(items, narrations):
        narration = (res.text or "").strip()
        l1 = judge(judge_model, t["l1"].render(reference=it["reference"], narration=narration), L1_KEYS, params, max_attempts)
        l2 = judge(judge_model, t["l2"].render(reference=it["reference"], narration=narration), L2_KEYS, params, max_attempts)
        rows.append({
            "clip_id": it["clip_id"], "reference_kind": it["reference_kind"], "reference": it["reference"],
            "narration": narration, "narration_error": res.error or "",
            "environment": l1.scores["environment"], "characters": l1.scores["characters"], "plot": l2.scores["plot"],
            "l1_attempts": l1.attempts, "l2_attempts": l2.attempts, "l1_raw": l1.raw[:500], "l2_raw": l2.raw[:500],
        })
    return rows


def narration_means(rows: Sequence[dict]) -> dict:
    """Mean of each score over the answers that parsed, how many parsed, and the mean with -1 kept
    (Movie101v2 reports -1 for unparsed answers, which pulls its mean down)."""
    out = {"items": len(rows)}
    for k in (*L1_KEYS, *L2_KEYS):
        vals = [r[k] for r in rows]
        ok = [v for v in vals if v >= 0]
        out[f"{k}_mean"] = round(float(np.mean(ok)), 4) if ok else None
        out[f"{k}_parsed"] = len(ok)
        out[f"{k}_mean_with_unparsed"] = round(float(np.mean(vals)), 4) if vals else None
    return out
