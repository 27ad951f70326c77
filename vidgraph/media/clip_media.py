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


def clip_media(store: DatasetStore, clip: dict, source: dict | None) -> ClipMedia:
    """The file and span to read for one ``raw_clips`` row (``source``: its ``source_videos`` row)."""
    duration = float(clip["end_s"]) - float(clip["start_s"])
    path = clip.get("path") or ""
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
    out = {}
    for clip in store.read_table("raw_clips", shard).to_pylist():
        if clip_ids is None or clip["clip_id"] in clip_ids:
            out[clip["clip_id"]] = clip_media(store, clip, sources.get(clip["video_id"]))
    return out


@contextmanager
def local_clip_media(store: DatasetStore, media: ClipMedia) -> Iterator[str]:
    """A local path for the media file (a temporary copy when the root is on S3)."""
    suffix = "." + media.path.rsplit(".", 1)[-1] if "." in media.path.rsplit("/", 1)[-1] else ""
    with store.local_copy(media.path, suffix=suffix) as local:
        yield local
