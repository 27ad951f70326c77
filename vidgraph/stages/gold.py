"""The gold test set's review packages and the verdicts that come back.

A package is, per batch, ``batch.jsonl`` (one item per clip) and ``batch.html``: a static page
with each clip's keyframes, captions and transcript and a verdict form. Its button saves a JSON
file (``verdicts-<batch>.json``); dropped into the verdicts folder, it is read by the
``gold_verdicts`` sensor. No server is involved: the page works from the file system.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

from vidgraph.storage.schemas import GOLD_VERDICTS_SCHEMA

VERDICTS_ASSET = "gold_verdicts"
VERDICTS = ("accept", "fix", "reject")

VERDICTS_SCHEMA = GOLD_VERDICTS_SCHEMA


class VerdictFileError(ValueError):
    pass


def parse_verdict_file(data: bytes, name: str) -> list[dict]:
    """Rows of one verdict file; raises VerdictFileError naming what is wrong."""
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise VerdictFileError(f"{name}: not JSON ({e})") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("verdicts"), list):
        raise VerdictFileError(f"{name}: expected an object with a 'verdicts' list")
    rows = []
    for i, v in enumerate(doc["verdicts"]):
        if not isinstance(v, dict) or not isinstance(v.get("clip_id"), str) or not v["clip_id"]:
            raise VerdictFileError(f"{name}: verdict {i} has no clip_id")
        if v.get("verdict") not in VERDICTS:
            raise VerdictFileError(f"{name}: verdict {i} ({v['clip_id']}) is {v.get('verdict')!r}, not one of {VERDICTS}")
        ref = str(v.get("reference_caption") or "")
        if v["verdict"] == "fix" and not ref.strip():
            raise VerdictFileError(f"{name}: verdict {i} ({v['clip_id']}) is 'fix' without a reference_caption")
        rows.append({
            "clip_id": v["clip_id"], "release": str(doc.get("release") or ""), "batch": str(doc.get("batch") or ""),
            "reviewer": str(doc.get("reviewer") or ""), "verdict": v["verdict"], "reference_caption": ref,
            "notes": str(v.get("notes") or ""), "source_file": name, "reviewed_at": str(doc.get("reviewed_at") or ""),
        })
    return rows


def latest_verdicts(rows: Sequence[dict]) -> dict[str, dict]:
    """clip_id -> its latest verdict (by reviewed_at, then file name)."""
    out: dict[str, dict] = {}
    for r in sorted(rows, key=lambda r: (r["reviewed_at"], r["source_file"])):
        out[r["clip_id"]] = r
    return out


def review_item(record: dict, keyframes: Sequence[str]) -> dict:
    return {
        "clip_id": record["clip_id"], "video_id": record["video_id"], "duration_s": record.get("duration_s"),
        "stratum": record.get("stratum"), "keyframes": list(keyframes),
        "merged_caption": record.get("merged_caption") or "", "frame_caption": record.get("caption") or "",
        "audio_caption": record.get("audio_caption") or "", "transcript": record.get("transcript") or "",
        "factual_visual": record.get("factual_visual") or "", "abstract_summary": record.get("abstract_summary") or "",
    }


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>gold review {batch}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}} .clip{{border:1px solid #ccc;margin:1em 0;padding:.5em}}
img{{height:110px;margin:2px}} dt{{font-weight:bold}} textarea{{width:100%}}</style></head>
<body><h1>Gold review: release {release}, batch {batch}</h1>
<p>For each clip choose <b>accept</b> (the merged caption is right), <b>fix</b> (write the right one) or
<b>reject</b>. Then press <i>Save verdicts</i> and drop the JSON file into the verdicts folder.</p>
<label>Reviewer <input id="reviewer"></label>
<form id="f">
{items}
</form>
<button onclick="save()">Save verdicts</button>
<script>
const RELEASE = {release_js}, BATCH = {batch_js}, CLIPS = {clips_js};
function save() {{
  const verdicts = [];
  for (const c of CLIPS) {{
    const v = document.querySelector(`input[name="v-${{c}}"]:checked`);
    if (!v) continue;
    verdicts.push({{clip_id: c, verdict: v.value,
      reference_caption: document.getElementById(`ref-${{c}}`).value,
      notes: document.getElementById(`notes-${{c}}`).value}});
  }}
  const doc = {{release: RELEASE, batch: BATCH, reviewer: document.getElementById("reviewer").value,
               reviewed_at: new Date().toISOString(), verdicts}};
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([JSON.stringify(doc, null, 1)], {{type: "application/json"}}));
  a.download = `verdicts-${{BATCH}}.json`;
  a.click();
}}
</script></body></html>
"""

_ITEM = """<div class="clip" id="{cid}"><h3>{cid} <small>{duration:.1f}s, {stratum}</small></h3>
<div>{images}</div>
<dl><dt>merged caption</dt><dd>{merged}</dd><dt>frame caption</dt><dd>{frame}</dd>
<dt>audio caption</dt><dd>{audio}</dd><dt>transcript</dt><dd>{transcript}</dd></dl>
{radios}
<label>reference caption (for fix)<textarea id="ref-{cid}" rows="2"></textarea></label>
<label>notes<textarea id="notes-{cid}" rows="1"></textarea></label></div>"""


def review_html(release: str, batch: str, items: Sequence[dict]) -> str:
    e = html.escape
    blocks = []
    for it in items:
        cid = e(it["clip_id"])
        radios = " ".join(f'<label><input type="radio" name="v-{cid}" value="{v}"> {v}</label>' for v in VERDICTS)
        blocks.append(_ITEM.format(
            cid=cid, duration=float(it.get("duration_s") or 0), stratum=e(str(it.get("stratum") or "")),
            images="".join(f'<img src="{e(k)}" alt="keyframe">' for k in it["keyframes"]),
            merged=e(it["merged_caption"]), frame=e(it["frame_caption"]), audio=e(it["audio_caption"]),
            transcript=e(it["transcript"]), radios=radios,
        ))
    # Values go into the script as JSON with '<' escaped, so no caption text can close the tag.
    js = lambda v: json.dumps(v).replace("<", "\\u003c")  # noqa: E731
    return _PAGE.format(release=e(release), batch=e(batch), items="\n".join(blocks), release_js=js(release),
                        batch_js=js(batch), clips_js=js([it["clip_id"] for it in items]))


def write_review_package(store, folder: Path, release: str, gold: Sequence[dict], records: dict[str, dict],
                         keyframes: dict[str, list[dict]]) -> dict[str, int]:
    """Write ``<batch>.jsonl``, ``<batch>.html`` and the keyframes they show into ``folder``."""
    batches: dict[str, list[dict]] = {}
    for g in gold:
        if g["batch"] and g["clip_id"] in records:
            batches.setdefault(g["batch"], []).append(g)
    sizes = {}
    for batch, items in sorted(batches.items()):
        out = []
        for g in items:
            names = []
            for k in keyframes.get(g["clip_id"], []):
                rel = f"keyframes/{g['clip_id']}/{k['keyframe_index']:03d}.jpg"
                dst = folder / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(store.read_bytes(store.path(k["path"])))
                names.append(rel)
            out.append({**review_item(records[g["clip_id"]], names), "verified": g["verified"], "verdict": g["verdict"]})
        with open(folder / f"{batch}.jsonl", "w") as f:
            for it in out:
                f.write(json.dumps(it) + "\n")
        (folder / f"{batch}.html").write_text(review_html(release, batch, out))
        sizes[batch] = len(out)
    return sizes
