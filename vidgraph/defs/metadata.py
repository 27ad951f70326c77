"""Metadata a person wants to see in the UI: counts, preview tables, contact sheets."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import cv2
import numpy as np
from dagster import AssetCheckResult, MetadataValue


def md_table(rows: Sequence[dict], columns: Sequence[str] | None = None, limit: int = 10) -> MetadataValue:
    rows = list(rows)
    if not rows:
        return MetadataValue.md("_no rows_")
    columns = list(columns or rows[0].keys())
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows[:limit]:
        out.append("| " + " | ".join(_cell(r.get(c)) for c in columns) + " |")
    if len(rows) > limit:
        out.append(f"\n_{len(rows) - limit} more rows_")
    return MetadataValue.md("\n".join(out))


def failing_rows_result(failures: list[dict], store=None, shard: str | None = None, stage: str | None = None, **counts) -> AssetCheckResult:
    """A check that passes when no row fails; the failing rows are shown in its metadata.

    With ``store`` and ``shard``, each failing row that names a video (``video_id``, or a
    ``clip_id`` made from one) also names the landed file (``file``: its landing relpath), so a
    person can find the video without looking up hashes; with ``stage`` too, each such row says
    the stage and what to do (set the video aside with ``vidgraph quarantine add``), and the
    check's description says it in words."""
    description = None
    if failures and store is not None and shard:
        failures = with_landed_files(failures, store, shard, stage)
        files = sorted({r["file"] for r in failures if r.get("file")})
        if stage and files:
            description = (
                f"{len(failures)} row(s) of {stage} failed, from {len(files)} video(s): {', '.join(files[:5])}. "
                f"If the video is at fault, set it aside and re-run the shard: {quarantine_hint(files[0], stage, failures[0])}"
            )
    return AssetCheckResult(
        passed=not failures,
        description=description,
        metadata={**counts, "failing_rows": len(failures), "failures": md_table(failures, limit=50)},
    )


def _problem_text(row: dict) -> str:
    for k in ("problem", "reason", "cause", "error"):
        if row.get(k):
            return str(row[k])
    return "failed a check"


def quarantine_hint(file: str, stage: str, row: dict) -> str:
    """The command that sets ``file`` aside with the failing row's cause as its reason."""
    reason = f"{stage}: {_problem_text(row)}"[:120].replace("'", "")
    return f"vidgraph quarantine add '{file}' --reason '{reason}'"


def _video_of(row: dict) -> str | None:
    if row.get("video_id"):
        return row["video_id"]
    clip = str(row.get("clip_id") or "")
    return clip.split("-c")[0] if clip.startswith("v") and "-c" in clip else None  # clip_id_for: <video_id>-cNNNN


def with_landed_files(rows: list[dict], store, shard: str, stage: str | None = None) -> list[dict]:
    """``rows`` with a ``file`` column (the landing relpath from source_videos) after the id
    columns; with ``stage``, also ``stage`` and ``to_do`` (the quarantine command) at the end."""
    path = store.table_path("source_videos", shard)
    if not store.exists(path):
        return rows
    names = {r["video_id"]: r["relpath"] for r in store.read_table("source_videos", shard).select(["video_id", "relpath"]).to_pylist()}
    out = []
    for r in rows:
        vid = _video_of(r)
        if vid is None or "file" in r:
            out.append(r)
            continue
        ids = {k: v for k, v in r.items() if k in ("clip_id", "video_id")}
        row = {**ids, "file": names.get(vid, ""), **{k: v for k, v in r.items() if k not in ids}}
        if stage and row["file"]:
            row["stage"] = stage
            row["to_do"] = quarantine_hint(row["file"], stage, r)
        out.append(row)
    return out


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    s = str(v) if v is not None else ""
    return s.replace("|", "\\|").replace("\n", " ")[:200]


def contact_sheet(images: Sequence[bytes], labels: Sequence[str], thumb_w: int = 160, cols: int = 6) -> bytes | None:
    """A JPEG grid of keyframes with a label under each."""
    thumbs = []
    for data, label in zip(images, labels):
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            continue
        h = int(img.shape[0] * thumb_w / img.shape[1])
        t = cv2.resize(img, (thumb_w, h), interpolation=cv2.INTER_AREA)
        band = np.zeros((16, thumb_w, 3), np.uint8)
        cv2.putText(band, label[:26], (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1)
        thumbs.append(np.vstack([t, band]))
    if not thumbs:
        return None
    th = max(t.shape[0] for t in thumbs)
    thumbs = [np.pad(t, ((0, th - t.shape[0]), (0, 0), (0, 0))) for t in thumbs]
    while len(thumbs) % cols and len(thumbs) > cols:
        thumbs.append(np.zeros_like(thumbs[0]))
    rows = [np.hstack(thumbs[i:i + cols]) for i in range(0, len(thumbs), cols)]
    ok, buf = cv2.imencode(".jpg", np.vstack(rows), [cv2.IMWRITE_JPEG_QUALITY, 80])
    return buf.tobytes() if ok else None


# Inline images are served small: every metadata value lives in the run and index databases
# (a full contact sheet was ~175 KB per shard). Full-size images go to files: image_file.
INLINE_MAX_WIDTH = 320


def _shrink(data: bytes, max_width: int = INLINE_MAX_WIDTH) -> tuple[bytes, str] | None:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return None
    if img.shape[1] > max_width:
        img = cv2.resize(img, (max_width, max(1, int(img.shape[0] * max_width / img.shape[1]))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 70])
    return (buf.tobytes(), "image/jpeg") if ok else None


def image_md(data: bytes | None, alt: str, mime: str = "image/jpeg") -> MetadataValue:
    """A small inline preview (at most INLINE_MAX_WIDTH px wide, JPEG); prefer image_file."""
    if not data:
        return MetadataValue.md("_no image_")
    small = _shrink(data)
    if small is not None:
        data, mime = small
    return MetadataValue.md(f"![{alt}](data:{mime};base64,{base64.b64encode(data).decode()})")


def image_file(store, asset: str, shard: str, name: str, data: bytes | None) -> MetadataValue:
    """Write an image next to the shard (``ROOT/<asset>/<shard>/plots/<name>``) and link it.

    Call after the shard is published (publishing replaces the shard folder). The metadata holds
    the file's path, not its bytes."""
    if not data:
        return MetadataValue.md("_no image_")
    path = store.path(asset, shard, "plots", name)
    store.write_bytes(path, data)
    return MetadataValue.path(store.uri(asset, shard, "plots", name))


def bar_chart_png(counts, edges, title: str, marks: dict[str, float] | None = None, size=(480, 220)) -> bytes | None:
    """A histogram as a small PNG (no plotting library needed): bars, axis labels, threshold marks."""
    counts = np.asarray(counts)
    if counts.size == 0:
        return None
    w, h = size
    left, bottom, top = 40, 30, 24
    img = np.full((h, w, 3), 255, np.uint8)
    plot_w, plot_h = w - left - 10, h - bottom - top
    lo, hi = float(edges[0]), float(edges[-1])
    peak = max(int(counts.max()), 1)
    bw = plot_w / len(counts)
    for i, c in enumerate(counts):
        x0 = int(left + i * bw)
        y0 = int(top + plot_h * (1 - c / peak))
        cv2.rectangle(img, (x0 + 1, y0), (int(x0 + bw) - 1, top + plot_h), (180, 120, 60), -1)
    cv2.line(img, (left, top + plot_h), (left + plot_w, top + plot_h), (0, 0, 0), 1)
    for name, v in (marks or {}).items():
        if lo <= v <= hi:
            x = int(left + (v - lo) / (hi - lo) * plot_w)
            cv2.line(img, (x, top), (x, top + plot_h), (40, 40, 220), 1)
            cv2.putText(img, name, (x + 2, top + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (40, 40, 220), 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, title, (left, 16), font, 0.45, (0, 0, 0), 1)
    cv2.putText(img, f"{lo:.3g}", (left, h - 10), font, 0.35, (0, 0, 0), 1)
    cv2.putText(img, f"{hi:.3g}", (left + plot_w - 30, h - 10), font, 0.35, (0, 0, 0), 1)
    cv2.putText(img, str(peak), (4, top + 8), font, 0.35, (0, 0, 0), 1)
    cv2.putText(img, "0", (4, top + plot_h), font, 0.35, (0, 0, 0), 1)
    ok, buf = cv2.imencode(".png", img)
    return buf.tobytes() if ok else None


# Timeline colours (BGR) by audio label.
TIMELINE_COLOURS = {"speech": (60, 140, 230), "music": (200, 120, 40), "speech+music": (170, 60, 170),
                    "other": (120, 160, 120), "silence": (225, 225, 225)}


def timelines_png(rows: Sequence[dict], limit: int = 20, width: int = 560) -> bytes | None:
    """Each clip's audio timeline as one bar (speech, music, speech+music, other, silence), longest
    clip full width, with a legend: a PNG written as a file next to the shard (image_file)."""
    rows = [r for r in rows if r.get("timeline")][:limit]
    if not rows:
        return None
    left, bar, gap, top = 150, 14, 6, 28
    h = top + len(rows) * (bar + gap) + 8
    img = np.full((h, width, 3), 255, np.uint8)
    longest = max(float(r.get("duration_s") or r["timeline"][-1]["end_s"]) for r in rows) or 1.0
    span = width - left - 10
    font = cv2.FONT_HERSHEY_SIMPLEX
    x = 4
    for label, colour in TIMELINE_COLOURS.items():
        cv2.rectangle(img, (x, 6), (x + 10, 16), colour, -1)
        cv2.putText(img, label, (x + 13, 15), font, 0.35, (0, 0, 0), 1)
        x += 16 + 7 * len(label)
    for i, r in enumerate(rows):
        y = top + i * (bar + gap)
        cv2.putText(img, str(r["clip_id"])[-22:], (4, y + bar - 3), font, 0.33, (0, 0, 0), 1)
        for seg in r["timeline"]:
            x0 = left + int(seg["start_s"] / longest * span)
            x1 = max(x0 + 1, left + int(seg["end_s"] / longest * span))
            cv2.rectangle(img, (x0, y), (x1, y + bar), TIMELINE_COLOURS.get(seg["label"], (0, 0, 0)), -1)
    ok, buf = cv2.imencode(".png", img)
    return buf.tobytes() if ok else None
