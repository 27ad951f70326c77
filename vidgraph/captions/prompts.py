"""Versioned prompt templates (``vidgraph/prompts/<name>_v<N>.txt``, ``{placeholder}`` syntax).

A template file is never edited once used for a dataset: a changed prompt is a new file with the
next version, and the active versions are chosen in :data:`FRAME_CAPTION_TEMPLATES`. Rows record
:func:`prompt_hash` of the templates they used; the asset code version includes
:func:`prompts_version`.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Iterable, Mapping

# Role in the frame-caption stage -> template name (file stem) in vidgraph/prompts/.
FRAME_CAPTION_TEMPLATES: Mapping[str, str] = {
    "system": "system_v1",
    "first": "diffsw_first_v1",
    "window": "diffsw_window_v1",  # the opening keyframe of a later window
    "diff": "diffsw_diff_v1",
    "summary": "diffsw_summary_v2",  # v2: a word band, timestamps allowed, order of events kept
    "dense": "dense_segment_v1",
    "refine": "lvd_refine_v1",
    "rewrite": "lvd_rewrite_v1",
}


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    text: str

    @property
    def placeholders(self) -> frozenset[str]:
        return frozenset(f for _, f, _, _ in string.Formatter().parse(self.text) if f)

    def render(self, **values) -> str:
        missing = {p.split(".")[0].split("[")[0] for p in self.placeholders} - set(values)
        if missing:
            raise KeyError(f"template {self.name!r} needs {sorted(missing)}")
        return self.text.format(**values).strip()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def _prompt_dir():
    return resources.files("vidgraph") / "prompts"


def template_names() -> list[str]:
    return sorted(p.name[:-4] for p in _prompt_dir().iterdir() if p.name.endswith(".txt"))


@lru_cache(maxsize=None)
def load_template(name: str) -> PromptTemplate:
    f = _prompt_dir() / f"{name}.txt"
    if not f.is_file():
        raise FileNotFoundError(f"no prompt template {name!r}; available: {template_names()}")
    return PromptTemplate(name=name, text=f.read_text(encoding="utf-8"))


def frame_caption_templates() -> dict[str, PromptTemplate]:
    return {role: load_template(name) for role, name in FRAME_CAPTION_TEMPLATES.items()}


def _hash_templates(names: Iterable[str]) -> str:
    h = hashlib.sha256()
    for name in sorted(set(names)):
        h.update(name.encode())
        h.update(b"\0")
        h.update(load_template(name).text.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def prompt_hash(names: Iterable[str] | None = None) -> str:
    """sha256 over the named templates' names and texts (default: the active frame-caption set)."""
    return _hash_templates(FRAME_CAPTION_TEMPLATES.values() if names is None else names)


def prompts_version() -> str:
    """sha256 over every template file; changes whenever any prompt file changes or is added."""
    return _hash_templates(template_names())
