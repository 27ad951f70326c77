"""Benchmark: peak memory (RSS) of the decode pass and the clip cutter on a long 720p video.

Decoding streams, one frame at a time, so peak memory should not grow with the video's length.
This generates a synthetic 1280x720 video of ``--minutes`` (10 by default, H.264 + AAC, cached
under bench/.cache/) and a short one of ``--compare-minutes`` made the same way, then measures,
each in a fresh Python process:

- ``imports``: the interpreter with av, cv2, numpy, pyarrow, vidgraph.media and vidgraph.stages
  imported (the floor; every other step imports the same);
- ``decode``: PyAV decode of every video frame, nothing else (the baseline);
- ``analyze``: ``vidgraph.media.analysis.analyze_video`` (cuts, signals, flow, keyframes);
- ``cut``: ``vidgraph.media.cutting.cut_clips`` for the shots ``analyze`` found (H.264 + AAC clips);
- ``raw_clips``: the whole ``raw_clips`` stage (``vidgraph.stages.raw_clips.build_raw_clips``: the
  analysis pass, clip files, signal tables and keyframes) for a shard holding just this video,
  ingested into a local dataset root under bench/.cache/ beforehand.

For scale, the report also gives what a decode that kept every frame would hold: every decoded
frame at full size (yuv420p) and every frame at the analysis size (BGR).

Peak RSS is the child's VmHWM (/proc/self/status), the high-water mark of its own address space;
``ru_maxrss`` is not used, as Linux carries it over from the parent across fork and exec.

    python bench/memory.py                  # 10 min and 1 min, writes bench/README.md's ## Memory
    python bench/memory.py --minutes 2 --no-readme

Writes (or replaces) the ``## Memory`` section of bench/README.md unless ``--no-readme``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from readme import write_section  # noqa: E402  (bench/readme.py)

SECTION = "## Memory"
CACHE = ROOT / "bench" / ".cache"
WIDTH, HEIGHT, FPS = 1280, 720, 24
SCENE_S = 60  # one scene (one shot) per minute
KINDS = ("pan", "static", "tilt", "object")
STEPS = ("imports", "decode", "analyze", "cut", "raw_clips")


def video_spec(minutes: float):
    from vidgraph.media.synthetic import Scene, SyntheticSpec

    total = int(round(minutes * 60 * FPS))
    per = SCENE_S * FPS
    scenes, i = [], 0
    while total > 0:
        n = min(per, total)
        scenes.append(Scene(n, KINDS[i % len(KINDS)], seed=500 + i, speed=1.0))
        total -= n
        i += 1
    # ultrafast: generating 14,400 frames of 720p stays a few minutes on a small machine.
    return SyntheticSpec(
        scenes, width=WIDTH, height=HEIGHT, fps=FPS, audio=True, extra_options={"crf": "23", "preset": "ultrafast"}
    )


def cached_video(minutes: float) -> Path:
    from vidgraph.media.synthetic import write_video

    path = CACHE / f"synthetic_{WIDTH}x{HEIGHT}_{FPS}fps_{minutes:g}min.mp4"
    if not path.exists():
        t0 = time.monotonic()
        print(f"generating {path.name} ...", flush=True)
        tmp = path.with_suffix(".tmp.mp4")
        write_video(tmp, video_spec(minutes)).replace(path)
        print(f"  {time.monotonic() - t0:.0f}s, {path.stat().st_size / 1e6:.1f} MB", flush=True)
    return path


# --- the child ----------------------------------------------------------------------------------


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def prepare_shard(video: Path) -> tuple[Path, str]:
    """A local dataset root whose one shard holds ``video`` (ingested, source_videos built)."""
    import shutil

    from vidgraph.ingest import ingest
    from vidgraph.stages.source_videos import build_source_videos
    from vidgraph.storage.store import DatasetStore

    base = CACHE / f"{video.stem}.stage"
    shutil.rmtree(base, ignore_errors=True)
    landing = base / "landing"
    landing.mkdir(parents=True)
    os.link(video, landing / video.name)  # same disk: no copy
    store = DatasetStore(str(base / "root"))
    (shard,) = ingest(landing, store).new_shards
    result = build_source_videos(store, shard, landing_root=landing)
    assert result.table.num_rows == 1, result.quarantine.to_pylist()
    return base, shard


def child(step: str, video: str, shots_json: str | None) -> dict:
    import av  # noqa: F401
    import cv2  # noqa: F401
    import numpy as np  # noqa: F401

    from vidgraph.media.analysis import analyze_video
    from vidgraph.media.cutting import cut_clips
    from vidgraph.media.probe import open_input
    from vidgraph.media.shots import Shot
    from vidgraph.stages.raw_clips import build_raw_clips  # noqa: F401 - pyarrow, the stage: part of the floor
    from vidgraph.storage.store import DatasetStore  # noqa: F401

    out: dict = {"step": step, "rss_after_imports_kib": _rss_kib("VmRSS")}
    t0 = time.monotonic()
    if step == "decode":
        with open_input(video) as c:
            out["frames"] = sum(1 for _ in c.decode(c.streams.video[0]))
    elif step == "analyze":
        a = analyze_video(video)
        out["frames"] = a.n_frames
        out["shots"] = [s.as_dict() for s in a.shots]
        out["keyframes"] = len(a.keyframes)
    elif step == "raw_clips":
        base, shard = video, shots_json  # for this step: the prepared folder and the shard
        from vidgraph.stages.raw_clips import RawClipsSettings

        # Every clip cut, in this process: the same work as before clip_files/isolation existed,
        # and the decode's memory is this process's (the media worker would hide it).
        settings = RawClipsSettings(clip_files="all", isolate=False)
        result = build_raw_clips(DatasetStore(str(Path(base) / "root")), shard, settings)
        assert result.quarantine.num_rows == 0, result.quarantine.to_pylist()
        out["clips"] = result.table.num_rows
        out["frames"] = sum(result.table.column("n_frames").to_pylist())
    elif step == "cut":
        shots = [Shot(**s) for s in json.loads(Path(shots_json).read_text())]
        with tempfile.TemporaryDirectory(dir=CACHE) as td:
            clips = cut_clips(video, shots, [Path(td) / f"clip_{i:03d}.mp4" for i in range(len(shots))])
            out["frames"] = sum(c.n_frames for c in clips)
            out["clips"] = len(clips)
            out["clip_bytes"] = sum(c.path.stat().st_size for c in clips)
    out["seconds"] = round(time.monotonic() - t0, 2)
    out["peak_rss_kib"] = _rss_kib("VmHWM")
    out["ru_maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # includes the parent's, see above
    return out


def run_child(step: str, video: Path, shots_json: Path | str | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", step, str(video)]
    if shots_json is not None:
        cmd.append(str(shots_json))
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if run.returncode != 0:
        raise SystemExit(f"{step} failed:\n{run.stderr}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def measure(video: Path) -> dict[str, dict]:
    results: dict[str, dict] = {}
    for step in ("imports", "decode", "analyze"):
        results[step] = run_child(step, video)
        print(f"  {step:8} peak {results[step]['peak_rss_kib'] / 1024:7.1f} MiB  {results[step]['seconds']:6.1f}s", flush=True)
    shots = CACHE / f"{video.stem}.shots.json"
    shots.write_text(json.dumps(results["analyze"].pop("shots")))
    results["cut"] = run_child("cut", video, shots)
    print(f"  {'cut':8} peak {results['cut']['peak_rss_kib'] / 1024:7.1f} MiB  {results['cut']['seconds']:6.1f}s", flush=True)
    base, shard = prepare_shard(video)
    try:
        results["raw_clips"] = run_child("raw_clips", base, shard)
    finally:
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    r = results["raw_clips"]
    print(f"  {'raw_clips':8} peak {r['peak_rss_kib'] / 1024:7.1f} MiB  {r['seconds']:6.1f}s", flush=True)
    return results


# --- the report ---------------------------------------------------------------------------------

_WHAT = {
    "imports": "interpreter + av, cv2, numpy, pyarrow, vidgraph.media and vidgraph.stages imported",
    "decode": "PyAV decode of every frame (baseline)",
    "analyze": "`analyze_video`: cuts, signals, flow, keyframes",
    "cut": "`cut_clips`: one H.264 + AAC clip per shot",
    "raw_clips": "the `raw_clips` stage (`build_raw_clips`): analysis, clips, signals, keyframes",
}


LOAD_AT_START = os.getloadavg()[0]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _mem_total_gib() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def render_section(runs: dict[float, dict[str, dict]], minutes: list[float], command: str) -> str:
    import av

    mib = lambda kib: f"{kib / 1024:.0f}"  # noqa: E731
    lines = [
        SECTION,
        "",
        "`bench/memory.py` measures peak resident memory (VmHWM of /proc/self/status) of each step in a "
        "fresh Python process, on synthetic 1280x720 H.264 + AAC videos (24 fps, one 60 s scene per minute: "
        "pan, static, tilt, moving object). Decoding streams frame by frame, so the peak should not depend on the "
        "video's length.",
        "",
        f"Last run: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, `{command}`",
        "",
        f"- Machine: {_cpu_model()}, {platform.machine()}, {os.cpu_count()} CPU cores, {_mem_total_gib():.0f} GiB RAM, "
        f"no GPU used; 1-min load average at the start {LOAD_AT_START:.2f} (the cores are shared, so times vary; "
        f"peak RSS does not depend on the load). Python {platform.python_version()}, "
        f"PyAV {av.__version__} (FFmpeg {getattr(av, 'ffmpeg_version_info', '?')}).",
        "",
    ]
    head = "| step | " + " | ".join(f"peak RSS, {m:g} min (MiB)" for m in minutes) + f" | time, {minutes[0]:g} min |"
    lines += [head, "|---|" + "---:|" * (len(minutes) + 1)]
    for step in STEPS:
        cells = [mib(runs[m][step]["peak_rss_kib"]) for m in minutes]
        secs = runs[minutes[0]][step]["seconds"]
        lines.append(f"| {step}: {_WHAT[step]} | " + " | ".join(cells) + f" | {secs:.0f} s |")
    long = runs[minutes[0]]
    frames = long["decode"]["frames"]
    floor = long["imports"]["peak_rss_kib"]
    full = frames * WIDTH * HEIGHT * 3 // 2  # yuv420p bytes per decoded frame
    aw, ah = 256, round(256 * HEIGHT / WIDTH / 2) * 2  # AnalysisConfig.width, even height
    small = frames * aw * ah * 3
    peak = max(long[s]["peak_rss_kib"] for s in STEPS)
    lines += [
        "",
        f"The {minutes[0]:g}-minute video: {frames} frames, {long['cut']['clips']} shots/clips, "
        f"{long['analyze']['keyframes']} keyframes. Above the import floor ({floor / 1024:.0f} MiB), `analyze_video` "
        f"adds {(long['analyze']['peak_rss_kib'] - floor) / 1024:.0f} MiB, `cut_clips` "
        f"{(long['cut']['peak_rss_kib'] - floor) / 1024:.0f} MiB and the whole `raw_clips` stage "
        f"{(long['raw_clips']['peak_rss_kib'] - floor) / 1024:.0f} MiB.",
        "",
        f"For scale, a decode that kept every frame would need {full / 2**30:.1f} GiB for the {frames} decoded "
        f"frames at {WIDTH}x{HEIGHT} (yuv420p, 1.5 bytes per pixel), and still {small / 2**30:.2f} GiB at the "
        f"analysis size ({aw}x{ah} BGR); the largest peak measured here is {peak / 1024:.0f} MiB. What does grow "
        "with length is what the stage keeps per video until the shard is written: the per-frame signal arrays "
        "(a few float64 per frame) and the keyframe JPEGs (one per 2 s)"
        + (
            f"; {minutes[0] / minutes[1]:g} times the length adds "
            f"{(long['raw_clips']['peak_rss_kib'] - runs[minutes[1]]['raw_clips']['peak_rss_kib']) / 1024:.0f} MiB "
            "to the stage's peak."
            if len(minutes) > 1
            else "."
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        print(json.dumps(child(argv[1], argv[2], argv[3] if len(argv) > 3 else None)))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--compare-minutes", type=float, default=1.0, help="a shorter video for comparison (0: none)")
    ap.add_argument("--readme", type=Path, default=ROOT / "bench" / "README.md")
    ap.add_argument("--no-readme", action="store_true")
    args = ap.parse_args(argv)
    CACHE.mkdir(parents=True, exist_ok=True)
    minutes = [args.minutes] + ([args.compare_minutes] if args.compare_minutes else [])
    runs = {}
    for m in minutes:
        video = cached_video(m)
        print(f"{video.name}:", flush=True)
        runs[m] = measure(video)
    section = render_section(runs, minutes, " ".join(["python bench/memory.py", *argv]))
    print()
    print(section)
    if not args.no_readme:
        write_section(args.readme, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
