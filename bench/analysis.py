"""The cost of vidgraph's single analysis pass against decode alone and against a two-pass way.

For each video, in the same run (best of --repeats, the three measurements interleaved):
  (a) decode: PyAV decode of every frame, no conversion, with the analysis pass's decoder
      threading (vidgraph.media.analysis.configure_decoder);
  (b) vidgraph: analyze_video (cuts, per-frame signals, 2 fps Farneback flow, quality,
      keyframes) in one decode;
  (c) two passes: the `scenedetect` CLI (`scenedetect -i VIDEO detect-content`, its defaults,
      its own downscale) as a subprocess, plus a separate PyAV decode computing Farneback flow at
      the same sampling (2 fps, 160 px wide grey frames, the same Farneback parameters).

Videos: vidgraph's synthetic samples, ../shared/media (skipped when absent), and a synthetic
1280x720 H.264 video of 40 s with camera motion.

    python bench/analysis.py                 # print the table
    python bench/analysis.py --write         # and record it in bench/README.md, "## Analysis pass"
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidgraph.media.analysis import FARNEBACK_PARAMS, AnalysisConfig, analyze_video, configure_decoder  # noqa: E402
from vidgraph.media.decode import even_size, iter_video_frames  # noqa: E402
from vidgraph.media.synthetic import Scene, SyntheticSpec, write_samples, write_video  # noqa: E402

from readme import write_section  # noqa: E402  (bench/readme.py)

SHARED_MEDIA = Path(os.environ.get("VIDGRAPH_SHARED_MEDIA", ROOT.parent / "shared" / "media"))
CACHE = ROOT / "bench" / ".cache" / "analysis"
SCENEDETECT = Path(sys.executable).with_name("scenedetect")


def synthetic_720p() -> Path:
    path = CACHE / "synthetic_720p_40s.mp4"
    if not path.exists():
        s = 24
        spec = SyntheticSpec(
            [Scene(10 * s, "pan", seed=61, speed=4.0), Scene(10 * s, "zoom", seed=62),
             Scene(10 * s, "object", seed=63, speed=6.0, transition="dissolve", transition_frames=16),
             Scene(10 * s, "tilt", seed=64, speed=2.0, transition="fade", transition_frames=16)],
            width=1280, height=720, fps=s, audio=True,
        )
        write_video(path.with_suffix(".tmp.mp4"), spec).replace(path)
    return path


def decode_only(path: Path) -> int:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        configure_decoder(s)
        n = 0
        for _ in iter_video_frames(c, s):
            n += 1
    return n


def flow_pass(path: Path, cfg: AnalysisConfig = AnalysisConfig()) -> int:
    """The second pass of the two-pass way: decode again, Farneback flow at 2 fps."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        configure_decoder(s)
        fw, fh = even_size(cfg.flow_width, s.codec_context.width, s.codec_context.height)
        prev = None
        next_t = 0.0
        n = 0
        for df in iter_video_frames(c, s):
            if df.t_s + 1e-6 >= next_t:
                next_t += 1.0 / cfg.sample_fps * max(1, int((df.t_s - next_t) * cfg.sample_fps) + 1)
                gray = df.frame.to_ndarray(width=fw, height=fh, format="gray")
                if prev is not None:
                    cv2.calcOpticalFlowFarneback(prev, gray, None, **FARNEBACK_PARAMS, flags=0)
                    n += 1
                prev = gray
    return n


def two_pass(path: Path) -> None:
    subprocess.run([str(SCENEDETECT), "-i", str(path), "detect-content"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    flow_pass(path)


def timed(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def info(path: Path) -> tuple[str, int]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return f"{s.codec_context.width}x{s.codec_context.height} {s.codec_context.name}", s.frames


def verdict(rows) -> str:
    """Whether this run met the targets on the 720p videos, in words."""
    hd = [(name, a, b, c) for name, desc, n, a, b, c in rows if desc.startswith("1280x720")]
    if not hd:
        return "No 720p video in this run."
    ba = [b / a for _, a, b, _ in hd]
    cb = [c / b for _, _, b, c in hd]
    parts = [
        f"b/a {min(ba):.2f}-{max(ba):.2f}: " + ("met." if max(ba) <= 1.3 else "**missed**."),
        f"c/b {min(cb):.2f}-{max(cb):.2f}: " + ("met." if min(cb) >= 2 else "**missed**."),
    ]
    return "In this run: " + " ".join(parts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--write", action="store_true", help="record the table in bench/README.md")
    ap.add_argument("--only", help="only videos whose name contains this")
    args = ap.parse_args(argv)
    CACHE.mkdir(parents=True, exist_ok=True)
    videos = write_samples(CACHE / "samples")
    if SHARED_MEDIA.is_dir():
        videos += sorted(p for p in SHARED_MEDIA.iterdir() if p.suffix in (".mp4", ".mpg", ".avi", ".mov"))
    else:
        print(f"real videos skipped: {SHARED_MEDIA} not found")
    videos.append(synthetic_720p())
    if args.only:
        videos = [v for v in videos if args.only in v.name]
    load = os.getloadavg()[0]
    rows = []
    for v in videos:
        best = {"a": float("inf"), "b": float("inf"), "c": float("inf")}
        n = decode_only(v)  # warm the page cache
        for _ in range(args.repeats):
            best["a"] = min(best["a"], timed(decode_only, v))
            best["b"] = min(best["b"], timed(analyze_video, v))
            best["c"] = min(best["c"], timed(two_pass, v))
        desc, _ = info(v)
        rows.append((v.name, desc, n, best["a"], best["b"], best["c"]))
        print(f"{v.name:28s} {desc:22s} {n:6d} frames  a {best['a']:6.2f}s  b {best['b']:6.2f}s  c {best['c']:6.2f}s"
              f"  b/a {best['b'] / best['a']:.2f}  c/b {best['c'] / best['b']:.2f}", flush=True)
    tab = [
        "| video | size, codec | frames | (a) decode s | (b) vidgraph s | (c) two passes s | b/a | c/b |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, desc, n, a, b, c in rows:
        tab.append(f"| {name} | {desc} | {n} | {a:.2f} | {b:.2f} | {c:.2f} | {b / a:.2f} | {c / b:.2f} |")
    print("\n".join(tab))
    if args.write:
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        cmd = "python bench/analysis.py --write" + (f" --repeats {args.repeats}" if args.repeats != 3 else "")
        body = f"""`bench/analysis.py` times, per video and in the same run: (a) PyAV decode of every frame, no conversion, with the analysis pass's decoder threading (`configure_decoder`: frame + slice threads); (b) vidgraph's whole analysis, `analyze_video` (cuts with the default detector, per-frame signals, 2 fps Farneback flow, quality, keyframes) in one decode; (c) the two-pass way: the `scenedetect -i VIDEO detect-content` CLI (its defaults and its own downscale) as a subprocess, plus a second PyAV decode computing Farneback flow at 2 fps on 160-px grey frames. Best of {args.repeats} per measurement, interleaved.

Last run: {now}, `{cmd}`. Machine: {platform.machine()}, 2 CPU cores shared with other work (1-min load average at the start {load:.2f}), Python {platform.python_version()}, PyAV {av.__version__}, OpenCV {cv2.__version__}.

{chr(10).join(tab)}

Targets: b/a <= 1.3 and c/b >= 2 on 720p video (`cockatoo.mp4`, `synthetic_720p_40s.mp4`). {verdict(rows)}
"""
        write_section(ROOT / "bench" / "README.md", "## Analysis pass\n\n" + body)
        print("wrote bench/README.md ## Analysis pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
