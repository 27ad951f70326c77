"""release_exports: one release as files people load: Parquet + JSONL per split, WebDataset tar
shards (clip mp4 + json), the per-paper views (LVD-2M, MMTrail, VideoMind), plots and a
Hugging Face dataset card, all under ``ROOT/releases/<release>/``.

A record is one clip with every column of the tables it came from (full provenance): the
merged captions' columns as they are, then audio_captions, frame_captions, long_takes and
source_videos; a name that is already taken gets its table as prefix (``audio_captions__error``).
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from vidgraph.stages.benchmark_split import SPLITS, split_report

RELEASES_DIR = "releases"
KEY_COLUMNS = ("clip_id", "video_id", "shard")
# Tables joined into a record, in order; merged_captions is required, the rest are optional.
CLIP_TABLES = ("merged_captions", "audio_captions", "frame_captions", "long_takes")
LONG_TAKE_SKIP = ("passed", "reasons")  # every released clip passed
CAPTION_FIELDS = ("merged_caption", "caption", "refined_caption", "concise_caption", "audio_caption", "transcript")


def release_dir(store, release: str, *parts: str) -> str:
    return store.path(RELEASES_DIR, release, *parts)


def _add(record: dict, table: str, row: dict, skip: Sequence[str] = ()) -> None:
    for k, v in row.items():
        if k in KEY_COLUMNS or k in skip:
            continue
        record[f"{table}__{k}" if k in record else k] = v


def build_records(store, split_rows: Sequence[dict]) -> list[dict]:
    """One flat record per clip of the split (excluded clips left out), in clip_id order."""
    wanted = {r["clip_id"]: r for r in split_rows if r["split"] in SPLITS}
    shards = sorted({r["shard"] for r in wanted.values()})
    tables: dict[str, dict[str, dict]] = {t: {} for t in CLIP_TABLES}
    sources: dict[str, dict] = {}
    for shard in shards:
        for t in CLIP_TABLES:
            if store.exists(store.table_path(t, shard)):
                for row in store.read_table(t, shard).to_pylist():
                    if row["clip_id"] in wanted:
                        tables[t][row["clip_id"]] = row
        if store.exists(store.table_path("source_videos", shard)):
            for row in store.read_table("source_videos", shard).to_pylist():
                sources[row["video_id"]] = row
    records = []
    for cid in sorted(wanted):
        s = wanted[cid]
        rec = {"clip_id": cid, "video_id": s["video_id"], "shard": s["shard"], "release": s["release"],
               "split": s["split"], "duplicate_group": s["group_id"], "stratum": s["stratum"]}
        for t in CLIP_TABLES:
            if cid in tables[t]:
                _add(rec, t, tables[t][cid], LONG_TAKE_SKIP if t == "long_takes" else ())
        src = sources.get(s["video_id"], {})
        _add(rec, "source_videos", {k if k.startswith("source_") else f"source_{k}": v for k, v in src.items() if k not in KEY_COLUMNS})
        records.append(rec)
    return records


def freeze(record: dict) -> str:
    """A record as JSON, to keep a verified gold clip's content unchanged in later releases."""
    return json.dumps({k: v for k, v in record.items() if k not in ("release", "split")}, sort_keys=True, default=str)


def apply_frozen(records: list[dict], frozen: dict[str, str]) -> int:
    """Replace the content of frozen gold clips by their frozen JSON; returns how many."""
    n = 0
    for rec in records:
        f = frozen.get(rec["clip_id"])
        if f:
            for k, v in json.loads(f).items():
                if k in rec:
                    rec[k] = v
            n += 1
    return n


def records_table(records: Sequence[dict]) -> pa.Table:
    # Columns a clip lacks (an optional table) are null, so every split has the same schema.
    names = list(dict.fromkeys(k for r in records for k in r))
    return pa.Table.from_pylist([{k: r.get(k) for k in names} for r in records])


# -- per-paper views ---------------------------------------------------------------------------


def _s(v) -> str:
    return v if isinstance(v, str) else ""


def lvd2m_view(r: dict) -> dict:
    return {
        "clip_id": r["clip_id"], "video_id": r["video_id"], "split": r["split"],
        "start_s": r.get("start_s"), "end_s": r.get("end_s"), "duration_s": r.get("duration_s"),
        "raw_captions": [{"start_s": d.get("start_s"), "end_s": d.get("end_s"), "text": d.get("text")} for d in (r.get("dense_captions") or [])],
        "refined_caption": _s(r.get("refined_caption")), "rewritten_caption": _s(r.get("concise_caption")),
        "dynamic_degree": r.get("dynamic_degree"),
    }


def mmtrail_view(r: dict) -> dict:
    frames = r.get("dense_captions") or []
    return {
        "clip_id": r["clip_id"], "video_id": r["video_id"], "split": r["split"],
        "timestamp": [r.get("start_s"), r.get("end_s")], "duration_s": r.get("duration_s"),
        "frame_captions": [{"start_s": d.get("start_s"), "end_s": d.get("end_s"), "text": d.get("text")} for d in frames]
        or [{"t_s": d.get("t_s"), "text": d.get("text")} for d in (r.get("diff_captions") or [])],
        "video_caption": _s(r.get("caption")),
        "music_captions": [{"start_s": m.get("start_s"), "end_s": m.get("end_s"), "text": m.get("text")} for m in (r.get("music_captions") or [])],
        "music_tags": list(r.get("music_tags") or []), "tempo_bpm": r.get("tempo_bpm"),
        "transcript": _s(r.get("transcript")), "language": _s(r.get("language")),
        "asr_segments": [{"start_s": a.get("start_s"), "end_s": a.get("end_s"), "text": a.get("text")} for a in (r.get("asr_segments") or [])],
        "audio_caption": _s(r.get("audio_caption")), "merged_caption": _s(r.get("merged_caption")),
    }


def videomind_view(r: dict) -> dict:
    return {
        "clip_id": r["clip_id"], "video_id": r["video_id"], "split": r["split"],
        "factual": {k: _s(r.get(f"factual_{k}")) for k in ("visual", "audio", "ocr", "asr", "source")},
        "abstract": {"summary": _s(r.get("abstract_summary")), "tags": r.get("abstract_tags") or {}},
        "intent": {
            "uploader": _s(r.get("intent_uploader")), "subject": _s(r.get("intent_subject")),
            "uploader_verifier": _s(r.get("intent_uploader_verifier")), "subject_verifier": _s(r.get("intent_subject_verifier")),
            "similarity_uploader": r.get("intent_similarity_uploader"), "similarity_subject": r.get("intent_similarity_subject"),
            "verified": r.get("verified"),
        },
        "sixw": r.get("sixw") or {},
    }


VIEWS = {"lvd2m": lvd2m_view, "mmtrail": mmtrail_view, "videomind": videomind_view}


# -- media -------------------------------------------------------------------------------------


class ClipMediaReader:
    """A clip's MP4 bytes: its clip file, or its span cut from the source video. The shard's
    raw_clips / source_videos rows are read once per shard; media are read one clip at a time."""

    def __init__(self, store):
        self.store = store
        self._shard: str | None = None
        self._media: dict = {}
        self._frames: dict = {}

    def _load(self, shard: str) -> None:
        from vidgraph.media.clip_media import clip_media_for_shard

        if shard != self._shard:
            self._media = clip_media_for_shard(self.store, shard)
            self._frames = {r["clip_id"]: r for r in self.store.read_table("raw_clips", shard)
                            .select(["clip_id", "start_frame", "end_frame"]).to_pylist()}
            self._shard = shard

    def read(self, shard: str, clip_id: str) -> bytes | str:
        """The bytes, or an error string when the clip cannot be read (its sample is then left out)."""
        from vidgraph.media.clip_media import local_clip_media
        from vidgraph.media.cutting import cut_clips
        from vidgraph.media.shots import Shot

        try:
            self._load(shard)
            m = self._media.get(clip_id)
            if m is None:
                return "no raw_clips row"
            if m.is_clip_file:
                return self.store.read_bytes(m.path)
            r = self._frames[clip_id]
            with local_clip_media(self.store, m) as src, tempfile.TemporaryDirectory() as tmp:
                dst = Path(tmp) / f"{clip_id}.mp4"
                cut_clips(src, [Shot(int(r["start_frame"]), int(r["end_frame"]), m.start_s, m.end_s)], [dst])
                return dst.read_bytes()
        except Exception as e:  # noqa: BLE001 - one unreadable clip leaves only its sample out
            return f"{type(e).__name__}: {e}"


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # identical inputs give identical tars
    tar.addfile(info, io.BytesIO(data))


# -- plots and card ----------------------------------------------------------------------------


def _words(text) -> int:
    return len(text.split()) if isinstance(text, str) else 0


def write_plots(records: Sequence[dict], out_dir: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    plots = {}

    def save(name, fig):
        p = out_dir / f"{name}.png"
        fig.tight_layout()
        fig.savefig(p, dpi=80)
        plt.close(fig)
        plots[name] = p

    def hist(name, values, title, xlabel):
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.hist([v for v in values if v is not None], bins=20, color="#3c78b4")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("clips")
        save(name, fig)

    def bars(name, counter, title):
        fig, ax = plt.subplots(figsize=(5, 3))
        items = counter.most_common(15)
        ax.bar([str(k) for k, _ in items], [v for _, v in items], color="#3c78b4")
        ax.set_title(title)
        ax.set_ylabel("clips")
        ax.tick_params(axis="x", labelrotation=30)
        save(name, fig)

    hist("durations", [r.get("duration_s") for r in records], "clip durations", "seconds")
    hist("caption_lengths", [_words(r.get("merged_caption")) for r in records], "merged caption length", "words")
    hist("dynamic_degree", [r.get("dynamic_degree") for r in records], "dynamic degree", "diagonal / s")
    bars("audio_classes", Counter(r.get("audio_class") or "none" for r in records), "audio classes")
    bars("languages", Counter(r.get("language") or "unknown" for r in records), "transcript languages")
    return plots


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


PROVENANCE_SUFFIXES = ("model_id", "revision", "prompt_hash")


def provenance(records: Sequence[dict]) -> list[dict]:
    """Distinct (column, value) pairs of the model, revision and prompt-hash columns."""
    seen = Counter()
    for r in records:
        for k, v in r.items():
            if isinstance(v, str) and v and k.endswith(PROVENANCE_SUFFIXES):
                seen[(k, v)] += 1
    return [{"column": k, "value": v, "clips": n} for (k, v), n in sorted(seen.items())]


def licences(records: Sequence[dict]) -> Counter:
    return Counter((r.get("source_license") or "unknown") for r in records)


def dataset_card(release: str, records: Sequence[dict], split_files: dict[str, str], plots: dict[str, Path],
                 extra: dict | None = None) -> str:
    lic = licences(records)
    known = sorted(k for k in lic if k != "unknown")
    yaml_license = known[0].lower() if len(known) == 1 and "unknown" not in lic else "other"
    by_split = Counter(r["split"] for r in records)
    hours = sum(float(r.get("duration_s") or 0.0) for r in records) / 3600
    lines = [
        "---",
        f"license: {yaml_license}",
        f"pretty_name: vidgraph {release}",
        "task_categories:",
        "- video-text-to-text",
        "- text-to-video",
        "language:",
        *[f"- {lang}" for lang in sorted({r.get("language") for r in records if r.get("language")} or {"en"})],
        "size_categories:",
        f"- {_size_category(len(records))}",
        "tags:",
        "- video-captioning",
        "- long-take",
        *(["configs:", "- config_name: default", "  data_files:"] if split_files else []),
        *[f"  - split: {s}\n    path: {p}" for s, p in split_files.items()],
        "---",
        "",
        f"# vidgraph release `{release}`",
        "",
        "Long-take clips with frame, audio and merged captions (LVD-2M, MMTrail, VideoMind layers), "
        "split by source video and near-duplicate group so no video or duplicate crosses splits.",
        "",
        "## Size",
        "",
        f"- clips: {len(records)}",
        f"- source videos: {len({r['video_id'] for r in records})}",
        f"- hours: {hours:.3f}",
        "",
        "| split | clips | hours |",
        "|---|---:|---:|",
        *[f"| {s} | {by_split[s]} | {sum(float(r.get('duration_s') or 0) for r in records if r['split'] == s) / 3600:.3f} |" for s in SPLITS],
        "",
        "## Strata (duration bucket / audio class)",
        "",
        "| stratum | clips | train | validation | test |",
        "|---|---:|---:|---:|---:|",
        *[f"| {r['stratum']} | {r['clips']} | {r['train']} | {r['validation']} | {r['test']} |" for r in split_report(records)],
        "",
        "## Loading",
        "",
        "```python",
        "from datasets import load_dataset",
        'ds = load_dataset("parquet", data_files={' + ", ".join(f'"{s}": "{p}"' for s, p in split_files.items()) + "})",
        "```",
        "",
        "WebDataset shards (clip `mp4` + `json` per sample) are under `wds/`; per-paper views under `views/`.",
        "",
        "## Plots",
        "",
        *[f"![{name}](plots/{p.name})" for name, p in plots.items()],
        "",
        "## Licences (recorded at ingest)",
        "",
        "| licence | clips |",
        "|---|---:|",
        *[f"| {k} | {n} |" for k, n in sorted(lic.items())],
        "",
        "## Models, revisions and prompt hashes",
        "",
        "| column | value | clips |",
        "|---|---|---:|",
        *[f"| {p['column']} | {p['value']} | {p['clips']} |" for p in provenance(records)],
        "",
    ]
    if extra:
        lines += ["## Release parameters", "", "```json", json.dumps(extra, indent=2, sort_keys=True, default=str), "```", ""]
    return "\n".join(lines)


# -- the whole export --------------------------------------------------------------------------


@dataclass
class ExportResult:
    records: list[dict]
    files: dict[str, list[str]] = field(default_factory=dict)  # kind -> paths (store paths)
    samples: dict[str, int] = field(default_factory=dict)  # split -> samples in tars
    media_errors: list[dict] = field(default_factory=list)
    plots: dict[str, str] = field(default_factory=dict)


def export_release(store, release: str, records: list[dict], wds_shard_size: int = 500,
                   card_extra: dict | None = None) -> ExportResult:
    """Write every file of the release into a staging folder, then publish it in one step."""
    result = ExportResult(records)
    with store.staging_dir() as staging:
        table = records_table(records) if records else pa.table({})
        split_files = {}
        for s in SPLITS:
            part = [r for r in records if r["split"] == s]
            if not part:
                continue
            (staging / "data").mkdir(exist_ok=True)
            idx = [i for i, r in enumerate(records) if r["split"] == s]
            pq.write_table(table.take(idx), staging / "data" / f"{s}.parquet", compression="zstd")
            with open(staging / "data" / f"{s}.jsonl", "w") as f:
                for r in part:
                    f.write(json.dumps(r, default=str, sort_keys=True) + "\n")
            split_files[s] = f"data/{s}.parquet"
        (staging / "views").mkdir()
        for name, view in VIEWS.items():
            with open(staging / "views" / f"{name}.jsonl", "w") as f:
                for r in records:
                    f.write(json.dumps(view(r), default=str) + "\n")
        # WebDataset: tar shards per split; one clip's media in memory at a time, read in shard order.
        (staging / "wds").mkdir()
        reader = ClipMediaReader(store)
        for s in SPLITS:
            part = sorted((r for r in records if r["split"] == s), key=lambda r: (r["shard"], r["clip_id"]))
            for n_tar, start in enumerate(range(0, len(part), max(1, wds_shard_size))):
                with tarfile.open(staging / "wds" / f"{s}-{n_tar:05d}.tar", "w") as tar:
                    for r in part[start:start + wds_shard_size]:
                        data = reader.read(r["shard"], r["clip_id"])
                        if not isinstance(data, bytes):
                            result.media_errors.append({"clip_id": r["clip_id"], "error": data})
                            continue
                        _tar_add(tar, f"{r['clip_id']}.mp4", data)
                        _tar_add(tar, f"{r['clip_id']}.json", json.dumps(r, default=str, sort_keys=True).encode())
                        result.samples[s] = result.samples.get(s, 0) + 1
        plots = write_plots(records, staging / "plots")
        (staging / "DATASET_CARD.md").write_text(dataset_card(release, records, split_files, plots, card_extra))
        rel = Path(RELEASES_DIR) / release
        for p in sorted(staging.rglob("*")):
            if p.is_file():
                kind = p.relative_to(staging).parts[0] if len(p.relative_to(staging).parts) > 1 else "card"
                result.files.setdefault(kind, []).append(str(rel / p.relative_to(staging)))
        result.plots = {name: str(rel / "plots" / p.name) for name, p in plots.items()}
        # Keep the gold review packages (written by gold_set) when the exports are replaced.
        gold_prefix = release_dir(store, release, "gold")
        for path in store.list_files(gold_prefix):
            dst = staging / "gold" / path[len(gold_prefix) + 1:]
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(store.read_bytes(path))
        store.publish_shard(RELEASES_DIR, release, staging)
    return result
