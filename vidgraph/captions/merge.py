"""merged_captions logic: MMTrail's merge of picture and sound, VideoMind's layers, 6W, verified intents.

Pure logic (no Dagster, no file I/O). One chain of prompts per clip, each step batched across the
clips of a shard:

1. **MMTrail merge** and the five **factual** elements (visual, audio, OCR, ASR, source text) in one
   batch: every prompt has fixed slots, and an empty slot is left out (an element with no input is
   "" without a model call).
2. **Abstract**: SUMMARY / SUBJECT / PLACE / TIME / EVENT lines, parsed strictly.
3. **Intents** in the fixed form "[subject] through [action] aims to [intent]", as the uploader
   and as the main subject (llm), and again from the verifier (another model, or the same one with
   other prompts); the pairs are compared by sentence-embedding cosine.
4. **6W** from the parsed parts: who/how/why from the subject's intent, where/when/what from the
   abstract tags. A line that does not follow its form is a parse failure with its raw text; no
   field is ever guessed.

Transcript, OCR, source text and the upstream captions enter prompts only through
:func:`quote_untrusted`: inside ``<<<BEGIN NAME>>>`` / ``<<<END NAME>>>`` lines that the text
itself cannot forge, under a system prompt that says quoted data is content, not instructions.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..models.backends import ChatMessage, ChatModel, GenerationParams, Request, TextPart
from .prompts import PromptTemplate, load_template, prompt_hash, prompts_version

# Bump when the merge logic changes outputs (prompts and models are versioned separately).
MERGE_LOGIC_VERSION = "1"

MERGE_TEMPLATES: Mapping[str, str] = {
    "system": "merge_system_v1",
    "merge": "mmtrail_merge_v1",
    "factual_visual": "vm_factual_visual_v1",
    "factual_audio": "vm_factual_audio_v1",
    "factual_ocr": "vm_factual_ocr_v1",
    "factual_asr": "vm_factual_asr_v1",
    "factual_source": "vm_factual_source_v1",
    "abstract": "vm_abstract_v1",
    "intent_uploader": "vm_intent_uploader_v1",
    "intent_subject": "vm_intent_subject_v1",
    "verify_uploader": "vm_verify_uploader_v1",
    "verify_subject": "vm_verify_subject_v1",
}
FACTUAL = ("visual", "audio", "ocr", "asr", "source")
ROLES = ("uploader", "subject")
ABSTRACT_LABELS = ("summary", "subject", "place", "time", "event")
SIXW = ("who", "what", "when", "where", "why", "how")

DEFAULT_WORD_LIMITS = {"merge": 120, "factual": 60}
DEFAULT_MAX_QUOTED_CHARS = 4000  # per quoted block: transcripts and uploader text are untrusted


def merge_templates() -> dict[str, PromptTemplate]:
    return {role: load_template(name) for role, name in MERGE_TEMPLATES.items()}


def merge_prompt_hash() -> str:
    return prompt_hash(MERGE_TEMPLATES.values())


def merged_captions_code_version(*model_refs: str, embedder: str = "", threshold: float | None = None) -> str:
    blob = json.dumps({"logic": MERGE_LOGIC_VERSION, "prompts": prompts_version(), "models": list(model_refs),
                       "embedder": embedder, "threshold": threshold}, sort_keys=True)
    return "mc-" + hashlib.sha256(blob.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Untrusted text
# --------------------------------------------------------------------------------------------

_MARKERS = re.compile(r"<{3,}|>{3,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def clean_untrusted(text: str | None, limit: int = DEFAULT_MAX_QUOTED_CHARS) -> str:
    """Untrusted text made safe to quote: NFC, no control or bidi characters, no runs of ``<``/``>``
    (so it cannot close its own quote block), at most ``limit`` characters."""
    if not text:
        return ""
    s = unicodedata.normalize("NFC", str(text)).replace("\r\n", "\n").replace("\r", "\n")
    s = _CONTROL.sub(" ", s)
    s = _MARKERS.sub(lambda m: m.group(0)[0] * 2, s)
    s = re.sub(r"[ \t]+", " ", s).strip()
    if len(s) > limit:
        s = s[:limit].rstrip() + " [truncated]"
    return s


def quote_untrusted(name: str, text: str | None, limit: int = DEFAULT_MAX_QUOTED_CHARS) -> str:
    """``text`` as quoted data between delimiter lines; "" when there is no text (the slot is left out)."""
    body = clean_untrusted(text, limit)
    if not body:
        return ""
    label = re.sub(r"[^A-Z0-9 ]", "", name.upper())
    return f"<<<BEGIN {label}>>>\n{body}\n<<<END {label}>>>"


# --------------------------------------------------------------------------------------------
# Inputs of one clip
# --------------------------------------------------------------------------------------------


@dataclass
class ClipInputs:
    """Everything the merge knows about one passing long take (upstream rows flattened)."""

    clip_id: str
    video_id: str
    duration_s: float
    caption: str = ""  # frame_captions: the DiffSW summary
    refined_caption: str = ""
    concise_caption: str = ""
    dense_captions: list[dict] = field(default_factory=list)  # {start_s, end_s, text}
    ocr_text: str = ""
    has_audio: bool = False
    audio_class: str = ""
    timeline: list[dict] = field(default_factory=list)  # {start_s, end_s, label, confidence}
    transcript: str = ""
    music_tags: list[str] = field(default_factory=list)
    tempo_bpm: float | None = None
    music_captions: list[dict] = field(default_factory=list)  # {start_s, end_s, text}
    audio_caption: str = ""
    source_title: str = ""
    source_description: str = ""
    source_tags: list[str] = field(default_factory=list)
    source_license: str = ""
    error: str = ""  # an upstream problem: no generation for this clip


def _span(d: Mapping[str, Any]) -> str:
    return f"[{float(d.get('start_s') or 0):.1f}-{float(d.get('end_s') or 0):.1f} s]"


def visual_text(c: ClipInputs) -> str:
    parts = []
    if c.concise_caption:
        parts.append(f"Concise: {c.concise_caption}")
    if c.refined_caption:
        parts.append(f"Refined: {c.refined_caption}")
    if c.caption:
        parts.append(f"Detailed: {c.caption}")
    dense = [f"{_span(d)} {d['text']}" for d in c.dense_captions if d.get("text")]
    if dense:
        parts.append("Timeline:\n" + "\n".join(dense))
    return "\n".join(parts)


def music_text(c: ClipInputs) -> str:
    if not c.has_audio:
        return ""
    lines = [f"{_span(m)} {m['text']}" for m in c.music_captions if m.get("text")]
    spans = [t for t in c.timeline if t.get("label") in ("music", "speech+music")]
    if not lines and spans:
        lines = [f"{_span(t)} music" for t in spans]
    if not lines:
        return ""
    if c.music_tags:
        lines.append("Tags: " + ", ".join(c.music_tags))
    if c.tempo_bpm:
        lines.append(f"Tempo: about {float(c.tempo_bpm):.0f} BPM")
    return "\n".join(lines)


def ambience_text(c: ClipInputs) -> str:
    if not c.has_audio:
        return ""
    lines = [f"{_span(t)} {t.get('label')}" for t in c.timeline if t.get("label") == "other"]
    if c.audio_caption:
        lines.append(c.audio_caption)
    return "\n".join(lines)


def audio_text(c: ClipInputs) -> str:
    """The sound apart from speech, for the factual audio element."""
    if not c.has_audio:
        return ""
    lines = [f"{_span(t)} {t.get('label')}" for t in c.timeline if t.get("label")]
    music = music_text(c)
    if music:
        lines.append("Music:\n" + music)
    if c.audio_caption:
        lines.append("Overall: " + c.audio_caption)
    return "\n".join(lines)


def source_text(c: ClipInputs) -> str:
    parts = []
    if c.source_title:
        parts.append(f"Title: {c.source_title}")
    if c.source_description:
        parts.append(f"Description: {c.source_description}")
    if c.source_tags:
        parts.append("Tags: " + ", ".join(c.source_tags))
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------


def _request(templates: Mapping[str, PromptTemplate], text: str) -> Request:
    return [ChatMessage("system", (TextPart(templates["system"].render()),)), ChatMessage("user", (TextPart(text),))]


def merge_slots(c: ClipInputs, limit: int = DEFAULT_MAX_QUOTED_CHARS) -> str:
    """The MMTrail prompt's fixed slots, in order; an empty slot is left out."""
    slots = [
        ("VISUAL (authoritative)", quote_untrusted("visual", visual_text(c), limit)),
        ("MUSIC", quote_untrusted("music", music_text(c), limit)),
        ("SPEECH (transcript)", quote_untrusted("transcript", c.transcript if c.has_audio else "", limit)),
        ("AMBIENCE", quote_untrusted("ambience", ambience_text(c), limit)),
    ]
    if not c.has_audio:
        slots.append(("SOUND", "none: the clip has no sound track"))  # our own words, not quoted data
    return "\n\n".join(f"{name}:\n{body}" for name, body in slots if body)


def factual_inputs(c: ClipInputs, limit: int = DEFAULT_MAX_QUOTED_CHARS) -> dict[str, tuple[str, str]]:
    """element -> (placeholder, quoted block); a missing input gives "" (no model call)."""
    return {
        "visual": ("visual", quote_untrusted("visual", visual_text(c), limit)),
        "audio": ("audio", quote_untrusted("sound", audio_text(c), limit)),
        "ocr": ("ocr", quote_untrusted("on-screen text", c.ocr_text, limit)),
        "asr": ("transcript", quote_untrusted("transcript", c.transcript if c.has_audio else "", limit)),
        "source": ("source", quote_untrusted("uploader text", source_text(c), limit)),
    }


def facts_block(factual: Mapping[str, str], limit: int = DEFAULT_MAX_QUOTED_CHARS) -> str:
    """The factual layer as quoted blocks (model output derived from untrusted text stays quoted)."""
    names = {"visual": "visual facts", "audio": "sound facts", "ocr": "on-screen text facts",
             "asr": "speech facts", "source": "uploader text facts"}
    return "\n\n".join(q for k in FACTUAL if (q := quote_untrusted(names[k], factual.get(k, ""), limit)))


def abstract_block(summary: str, tags: Mapping[str, str], limit: int = DEFAULT_MAX_QUOTED_CHARS) -> str:
    lines = [f"Summary: {summary}"] if summary else []
    lines += [f"{k.capitalize()}: {tags[k]}" for k in ("subject", "place", "time", "event") if tags.get(k)]
    return quote_untrusted("abstract", "\n".join(lines), limit)


# --------------------------------------------------------------------------------------------
# Strict parsers
# --------------------------------------------------------------------------------------------

_PART = r"\[?\s*(?P<{0}>[^\[\]\n]*?[^\[\]\s\n][^\[\]\n]*?)\s*\]?"
INTENT_RE = re.compile(
    r"^" + _PART.format("subject") + r"\s+through\s+" + _PART.format("action")
    + r"\s+aims\s+to\s+" + _PART.format("intent") + r"\s*\.?$",
    re.IGNORECASE,
)
_ABSTRACT_LINE = re.compile(r"^(SUMMARY|SUBJECT|PLACE|TIME|EVENT)\s*:\s*(\S.*)$")


@dataclass(frozen=True)
class Intent:
    subject: str
    action: str
    intent: str


def parse_intent(text: str | None) -> Intent | None:
    """The parts of one "[subject] through [action] aims to [intent]" line, or None.

    The whole answer must be that one line (surrounding whitespace and a final full stop
    allowed): an answer with anything else, e.g. an explanation or a second line, does not parse.
    """
    if not text:
        return None
    s = text.strip()
    if "\n" in s:
        return None
    m = INTENT_RE.match(s)
    if not m:
        return None
    parts = {k: m.group(k).strip() for k in ("subject", "action", "intent")}
    if not all(parts.values()):
        return None
    return Intent(**parts)


def parse_abstract(text: str | None) -> tuple[str, dict[str, str], list[dict]]:
    """(summary, {subject, place, time, event}, parse failures). Every non-empty line must be
    ``LABEL: value`` with a known label, each label once; anything else is a failure."""
    values: dict[str, str] = {}
    failures: list[dict] = []
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        m = _ABSTRACT_LINE.match(line.strip())
        if not m or m.group(1).lower() in values:
            failures.append({"field": "abstract", "raw": line.strip()[:500]})
            continue
        values[m.group(1).lower()] = m.group(2).strip()
    for label in ABSTRACT_LABELS:
        if label not in values:
            failures.append({"field": f"abstract.{label}", "raw": (text or "").strip()[:500]})
    tags = {k: values.get(k, "") for k in ("subject", "place", "time", "event")}
    return values.get("summary", ""), tags, failures


def sixw(subject_intent: Intent | None, tags: Mapping[str, str]) -> dict[str, str]:
    """who/how/why from the main subject's own intent line, where/when/what from the abstract."""
    i = subject_intent
    return {
        "who": i.subject if i else "",
        "what": tags.get("event", ""),
        "when": tags.get("time", ""),
        "where": tags.get("place", ""),
        "why": i.intent if i else "",
        "how": i.action if i else "",
    }


# --------------------------------------------------------------------------------------------
# The chain
# --------------------------------------------------------------------------------------------


def _run(model: ChatModel, jobs: list[tuple[str, str, Request]], params: GenerationParams,
         errors: dict[str, list[str]]) -> dict[tuple[str, str], str]:
    """Generate for (clip_id, step, request) jobs in one batch; failures go to ``errors``."""
    if not jobs:
        return {}
    out = {}
    for (cid, step, _), r in zip(jobs, model.generate([j[2] for j in jobs], params)):
        if r.error is None and r.text is not None:
            out[(cid, step)] = r.text.strip()
        else:
            errors[cid].append(f"{step}: {r.error or 'no output'}")
    return out


def merge_clips(clips: Sequence[ClipInputs], llm: ChatModel, verifier: ChatModel, embedder,
                params: GenerationParams, *, threshold: float = 0.6,
                word_limits: Mapping[str, int] | None = None,
                max_quoted_chars: int = DEFAULT_MAX_QUOTED_CHARS) -> list[dict[str, Any]]:
    """One row dict per clip, in input order (the merged_captions columns, less ``shard``).

    Never raises for one clip: model failures and upstream problems go to the row's ``error``.
    ``embedder`` has ``encode(texts)`` -> unit vectors, ``model_id`` and ``revision``.
    """
    t = merge_templates()
    limits = {**DEFAULT_WORD_LIMITS, **(word_limits or {})}
    ids = [c.clip_id for c in clips]
    if len(set(ids)) != len(ids):
        raise ValueError("clip_id values must be unique within a shard")
    errors: dict[str, list[str]] = {c.clip_id: ([c.error] if c.error else []) for c in clips}
    live = [c for c in clips if not c.error]

    # 1. The MMTrail merge and the factual elements.
    jobs = []
    for c in live:
        jobs.append((c.clip_id, "merge", _request(t, t["merge"].render(
            duration_s=c.duration_s, slots=merge_slots(c, max_quoted_chars), max_words=limits["merge"]))))
        for element, (placeholder, block) in factual_inputs(c, max_quoted_chars).items():
            if block:
                text = t[f"factual_{element}"].render(duration_s=c.duration_s, max_words=limits["factual"],
                                                      **{placeholder: block})
                jobs.append((c.clip_id, f"factual_{element}", _request(t, text)))
    first = _run(llm, jobs, params, errors)
    factual = {c.clip_id: {e: first.get((c.clip_id, f"factual_{e}"), "") for e in FACTUAL} for c in live}

    # 2. The abstract.
    have_facts = [c for c in live if any(factual[c.clip_id].values())]
    abstract_raw = _run(llm, [(c.clip_id, "abstract", _request(t, t["abstract"].render(
        facts=facts_block(factual[c.clip_id], max_quoted_chars)))) for c in have_facts], params, errors)
    abstracts = {cid: parse_abstract(raw) for (cid, _), raw in abstract_raw.items()}

    # 3. Intents (llm, after the abstract) and the verifier's independent intents (facts only).
    jobs, vjobs = [], []
    for c in have_facts:
        facts = facts_block(factual[c.clip_id], max_quoted_chars)
        if c.clip_id in abstracts:
            summary, tags, _ = abstracts[c.clip_id]
            ab = abstract_block(summary, tags, max_quoted_chars)
            for role in ROLES:
                jobs.append((c.clip_id, f"intent_{role}",
                             _request(t, t[f"intent_{role}"].render(facts=facts, abstract=ab))))
        for role in ROLES:
            vjobs.append((c.clip_id, f"verify_{role}", _request(t, t[f"verify_{role}"].render(facts=facts))))
    intents = _run(llm, jobs, params, errors)
    checks = _run(verifier, vjobs, params, errors)

    # 4. Similarity of each role's two intents, for the pairs where both lines parse.
    pairs = []
    for c in have_facts:
        for role in ROLES:
            a, b = intents.get((c.clip_id, f"intent_{role}")), checks.get((c.clip_id, f"verify_{role}"))
            if parse_intent(a) and parse_intent(b):
                pairs.append(((c.clip_id, role), a, b))
    sims: dict[tuple[str, str], float] = {}
    if pairs:
        vecs = embedder.encode([a for _, a, _ in pairs] + [b for _, _, b in pairs])
        n = len(pairs)
        for k, (key, _, _) in enumerate(pairs):
            sims[key] = float((vecs[k] * vecs[n + k]).sum())

    gen_params = json.dumps({"llm": params.as_dict(), "verifier": params.as_dict(), "word_limits": limits,
                             "verify_threshold": threshold, "max_quoted_chars": max_quoted_chars}, sort_keys=True)
    phash = merge_prompt_hash()
    rows = []
    for c in clips:
        cid = c.clip_id
        f = factual.get(cid, {e: "" for e in FACTUAL})
        summary, tags, failures = abstracts.get(cid, ("", {k: "" for k in ("subject", "place", "time", "event")}, []))
        failures = list(failures)
        lines = {}
        for role in ROLES:
            for step, key in ((f"intent_{role}", (cid, f"intent_{role}")), (f"intent_{role}_verifier", (cid, f"verify_{role}"))):
                raw = (intents if step == f"intent_{role}" else checks).get(key)
                lines[step] = raw or ""
                if raw is not None and parse_intent(raw) is None:
                    failures.append({"field": step, "raw": raw[:500]})
        sim = {role: sims.get((cid, role)) for role in ROLES}
        rows.append({
            "clip_id": cid, "video_id": c.video_id, "duration_s": float(c.duration_s),
            "merged_caption": first.get((cid, "merge"), ""),
            **{f"factual_{e}": f[e] for e in FACTUAL},
            "abstract_summary": summary, "abstract_tags": tags,
            "intent_uploader": lines["intent_uploader"], "intent_subject": lines["intent_subject"],
            "intent_uploader_verifier": lines["intent_uploader_verifier"],
            "intent_subject_verifier": lines["intent_subject_verifier"],
            "intent_similarity_uploader": sim["uploader"], "intent_similarity_subject": sim["subject"],
            "verified": all(s is not None and s >= threshold for s in sim.values()),
            "sixw": sixw(parse_intent(lines["intent_subject"]), tags),
            "parse_failures": failures,
            "llm_model_id": llm.model_id, "llm_revision": llm.revision,
            "verifier_model_id": verifier.model_id, "verifier_revision": verifier.revision,
            "embedder_model_id": getattr(embedder, "model_id", ""), "embedder_revision": getattr(embedder, "revision", ""),
            "prompt_hash": phash, "gen_params": gen_params,
            "error": "; ".join(errors[cid]),
        })
    return rows


# Words that say someone speaks: the check that a merged caption mentions speech only where a
# transcript exists looks for these (and for quoted words).
SPEECH_WORDS = re.compile(
    r"\b(says?|said|saying|speak(s|ing)?|spoke|speech|voices?|talk(s|ing|ed)?|narrat\w*|tells?|told|"
    r"asks?|asked|shouts?|shouted|whispers?|dialogue|conversation|announc\w*|commentary|sings?|singing|lyrics?)\b",
    re.IGNORECASE,
)


def mentions_speech(text: str | None) -> str | None:
    """The first speech word or quoted phrase in ``text``, or None."""
    if not text:
        return None
    m = SPEECH_WORDS.search(text) or re.search(r"\"[^\"]{2,}\"", text)
    return m.group(0) if m else None
