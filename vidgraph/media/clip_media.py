"""Where a clip's pictures and sound are read from: its clip file, or its span of the source video.

Every consumer of clip media (checks, captions, the audio stage, exports) goes through
:func:`clip_media_for_shard` / :func:`local_clip_media`, so none of them depends on whether
``raw_clips`` wrote a file for the clip. Times are seconds inside the file that is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from vidgraph.storage.store import DatasetStore


@dataclass(frozen=True)
class ClipMedia:
    clip_id: str
    video_id: str
    path: str  # store path (local path or s3:// URI) of the file to read
    start_s: float  # the clip's span inside that file
    end_s: float
    is_clip_file: bool

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


# Where the long_takes step writes the passing clips' files (vidgraph.stages.clip_files).
CLIP_FILES_ASSET = "clip_files"


def clip_media(store: DatasetStore, clip: dict, source: dict | None, clip_files: dict[str, str] | None = None) -> ClipMedia:
    """The file and span to read for one ``raw_clips`` row (``source``: its ``source_videos`` row).

    Looked up in order: raw_clips' own file (``clip_files: all``), the file cut after the
    long-take verdict (``clip_files``: clip_id -> path from that table, when the caller has read
    it; else its conventional place), and the clip's span of the source video.
    """
    duration = float(clip["end_s"]) - float(clip["start_s"])
    candidates = [clip.get("path") or ""]
    if clip_files is not None:
        candidates.append(clip_files.get(clip["clip_id"], ""))
    elif clip.get("shard"):
        candidates.append(f"{CLIP_FILES_ASSET}/{clip['shard']}/media/{clip['clip_id']}.mp4")
    for path in candidates:
        if path and store.exists(store.path(path)):
            return ClipMedia(clip["clip_id"], clip["video_id"], store.path(path), 0.0, duration, True)
    if source is None or not source.get("media_path"):
        raise FileNotFoundError(f"clip {clip['clip_id']}: no clip file and no source video to read its span from")
    return ClipMedia(
        clip["clip_id"], clip["video_id"], store.path(source["media_path"]),
        float(clip["start_s"]), float(clip["end_s"]), False,
    )


def clip_media_for_shard(store: DatasetStore, shard: str, clip_ids: set[str] | None = None) -> dict[str, ClipMedia]:
    """``clip_id`` -> :class:`ClipMedia` for the raw clips of a shard (all, or those in ``clip_ids``)."""
    sources = {r["video_id"]: r for r in store.read_table("source_videos", shard).to_pylist()}
    files: dict[str, str] = {}
    if store.exists(store.table_path(CLIP_FILES_ASSET, shard)):
        t = store.read_table(CLIP_FILES_ASSET, shard).select(["clip_id", "path"]).to_pylist()
        files = {r["clip_id"]: r["path"] for r in t if r["path"]}
    out = {}
    for clip in store.read_table("raw_clips", shard).to_pylist():
        if clip_ids is None or clip["clip_id"] in clip_ids:
            out[clip["clip_id"]] = clip_media(store, clip, sources.get(clip["video_id"]), files)
    return out


@contextmanager
def local_clip_media(store: DatasetStore, media: ClipMedia) -> Iterator[str]:
    """A local path for the media file (a temporary copy when the root is on S3)."""
    suffix = "." + media.path.rsplit(".", 1)[-1] if "." in media.path.rsplit("/", 1)[-1] else ""
    with store.local_copy(media.path, suffix=suffix) as local:
        yield local


@contextmanager
def local_clip_file(store: DatasetStore, media: ClipMedia, clip: dict) -> Iterator[str]:
    """A local file holding exactly the clip (for tools that want a whole file, e.g. a re-analysis):
    its clip file, or its span cut from the source into a temporary file (smart-cut when the
    source allows, so this costs little more than decoding the span)."""
    if media.is_clip_file:
        with local_clip_media(store, media) as local:
            yield local
        return
    import tempfile
    from pathlib import Path

    from vidgraph.media.cutting import cut_clips
    from vidgraph.media.shots import Shot

    shot = Shot(int(clip["start_frame"]), int(clip["end_frame"]), float(clip["start_s"]), float(clip["end_s"]))
    with local_clip_media(store, media) as source, tempfile.TemporaryDirectory(prefix="vidgraph-span-") as d:
        out = Path(d) / f"{media.clip_id}.mp4"
        cut_clips(source, [shot], [out])
        yield str(out)
