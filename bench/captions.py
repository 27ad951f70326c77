"""Benchmark: frame captioning throughput (clips/s), batched against unbatched, in one run.

Runs ``vidgraph.captions.caption_clips`` (DiffSW steps + summary + dense segments) on synthetic
keyframes. The local transformers backend is compared at ``--batch-size`` against batch size 1;
an OpenAI-compatible backend at ``--batch-size`` concurrent requests against 1. Model loading is
timed separately and excluded from the throughput (one warm-up pass runs first).

    python bench/captions.py                       # tiny random models, CPU
    python bench/captions.py --profile small       # real small models (weights must be cached)
    python bench/captions.py --model HuggingFaceTB/SmolVLM-256M-Instruct   # another VLM

Writes (or replaces) the ``## Captioning`` section of bench/README.md unless ``--no-readme``.

    python bench/captions.py --keyframe-rule           # the keyframe rule only (no model): calibration
                                                   # and keyframes kept per minute on ../shared/media

``--keyframe-rule`` calibrates the CPU keyframe distance on labelled synthetic pairs (redundant: the same
view re-encoded, noisy, flickering, a subject moved by 3 %, a 2 % pan; distinct: a new object over a
ninth of the frame, pans of 12 % and 25 %, a new scene), then samples every video of
``../shared/media`` every 2 s plus its last frame and reports the keyframes per minute before and
after ShareGPT4Video's redundancy rule. It writes the ``## Keyframe rule`` section.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from readme import write_section  # noqa: E402  (bench/readme.py)

SECTION = "## Captioning"
KEYFRAME_SECTION = "## Keyframe rule"
TEXT_SECTION = "## Overlaid text"
MEDIA = ROOT.parent / "shared" / "media"


def synthetic_clips(n_clips: int, n_keyframes: int, duration_s: float, size=(320, 180), seed: int = 0):
    """Clips whose keyframes are gradients with a square that moves between keyframes."""
    import numpy as np
    from PIL import Image

    from vidgraph.captions import ClipKeyframes

    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    clips = []
    for c in range(n_clips):
        base = rng.integers(0, 255, 3)
        kfs = []
        for k in range(n_keyframes):
            img = np.empty((h, w, 3), np.uint8)
            img[..., 0] = (xx * 255 // w + base[0]) % 256
            img[..., 1] = (yy * 255 // h + base[1]) % 256
            img[..., 2] = base[2]
            x0 = int((k + 1) * w / (n_keyframes + 2))
            img[h // 3: h // 3 + h // 4, x0: x0 + w // 8] = (255, 255, 255)
            t = duration_s * k / max(1, n_keyframes)
            kfs.append((round(t, 3), Image.fromarray(img)))
        clips.append(ClipKeyframes(f"bench-{c}", "bench-video", 0.0, duration_s, kfs))
    return clips


def _variant(spec, parallel: int):
    """The same model spec with batch size (local) or concurrency (HTTP) set to ``parallel``."""
    if spec.backend == "openai":
        return dataclasses.replace(spec, max_concurrency=parallel)
    return dataclasses.replace(spec, batch_size=parallel)


def run(args) -> dict:
    import torch

    from vidgraph.captions import caption_clips
    from vidgraph.models import load_profile

    torch.set_num_threads(args.threads or torch.get_num_threads())
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    profile = load_profile(args.profile)
    vlm_spec, llm_spec = profile.vlm, profile.llm
    if args.model:
        vlm_spec = dataclasses.replace(vlm_spec, backend="transformers", model=args.model, source="",
                                       revision=args.revision or "")
    if args.llm_model:
        llm_spec = dataclasses.replace(llm_spec, backend="transformers", model=args.llm_model, source="",
                                       revision=args.revision or "")
    params = profile.generation
    if args.max_new_tokens:
        params = dataclasses.replace(params, max_new_tokens=args.max_new_tokens)
    cap = profile.captions
    seg = args.dense_segment_s or float(cap.get("dense_segment_s", 4.0))
    clips = synthetic_clips(args.clips, args.keyframes, args.duration)

    variants = [(f"batched ({args.batch_size})", args.batch_size), ("unbatched (1)", 1)]
    models, warm = {}, {}
    for label, parallel in variants:
        vlm, llm = _variant(vlm_spec, parallel).build(), _variant(llm_spec, parallel).build()
        t0 = time.perf_counter()
        caption_clips(clips[:2], vlm, llm, params, seg, max_dense_images=cap.get("max_dense_images", 2))
        warm[label] = time.perf_counter() - t0
        models[label] = (vlm, llm)
    # Repeats alternate between the variants so that load from other processes hits both alike.
    best: dict[str, float] = {}
    last_rows: dict[str, list] = {}
    for _ in range(args.repeats):
        for label, _parallel in variants:
            vlm, llm = models[label]
            t0 = time.perf_counter()
            rows = caption_clips(clips, vlm, llm, params, seg, max_dense_images=cap.get("max_dense_images", 2))
            dt = time.perf_counter() - t0
            best[label] = min(dt, best.get(label, dt))
            last_rows[label] = rows
    results = {}
    for label, _parallel in variants:
        vlm, llm = models[label]
        rows, sec = last_rows[label], best[label]
        errors = sum(1 for r in rows if r["error"])
        calls = sum(len(r["diff_captions"]) + len(r["dense_captions"]) + 1 for r in rows)
        results[label] = {"seconds": sec, "clips_per_s": len(clips) / sec, "calls": calls,
                          "errors": errors, "warmup_s": warm[label],
                          "device": vlm.describe().get("device", "remote"),
                          "vlm": vlm.model_id, "llm": llm.model_id}
        print(f"{label:>16}: {len(clips)} clips in {sec:.2f}s = {len(clips) / sec:.2f} clips/s "
              f"({calls} model calls, {errors} errors; load+warm-up {warm[label]:.1f}s)", flush=True)
        vlm.close()
        llm.close()
    b, u = results[f"batched ({args.batch_size})"], results["unbatched (1)"]
    ratio = b["clips_per_s"] / u["clips_per_s"]
    print(f"speed-up batched/unbatched: {ratio:.2f}x")
    return {"load_avg": load_avg, "profile": profile.name, "params": params, "results": results, "ratio": ratio,
            "vlm": b["vlm"], "llm": b["llm"], "device": b["device"], "segment_s": seg}


def render_section(args, out: dict) -> str:
    import torch

    p = out["params"]
    lines = [
        SECTION,
        "",
        "`bench/captions.py` times `vidgraph.captions.caption_clips` (DiffSW steps, the summary pass and "
        "the dense segment captions) on synthetic keyframes, batched against unbatched, in the same run. "
        "Model loading and one warm-up pass are excluded; the repeats alternate between the variants and the best of each is reported.",
        "",
        f"Last run: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, "
        "`" + " ".join(["python bench/captions.py", *sys.argv[1:]]) + "`.",
        "",
        f"- Machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"device `{out['device']}`, {torch.get_num_threads()} threads; 1-min load average at the start "
        f"{out['load_avg']:.2f} (other work on the machine slows both variants; compare within one run).",
        f"- Profile `{out['profile']}`: VLM `{out['vlm']}`, LLM `{out['llm']}`; "
        f"{args.clips} clips x {args.keyframes} keyframes, {args.duration:g} s each, dense segments of "
        f"{out['segment_s']:g} s; max_new_tokens={p.max_new_tokens}, temperature={p.temperature:g}.",
        "",
        "| variant | clips/s | seconds | model calls | errors |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, r in out["results"].items():
        lines.append(f"| {label} | {r['clips_per_s']:.2f} | {r['seconds']:.2f} | {r['calls']} | {r['errors']} |")
    lines += [
        "",
        f"Batched / unbatched: **{out['ratio']:.2f}x**.",
        "",
        "The tiny models have random weights (~150K parameters), so these numbers measure the pipeline "
        "and batching overhead, not a real model. No real small model could be run here (no hub access); "
        "run the commands below where weights are available.",
        "",
        "On a GPU machine (weights in the Hugging Face cache, e.g. after "
        "`huggingface-cli download HuggingFaceTB/SmolVLM-256M-Instruct` and "
        "`huggingface-cli download Qwen/Qwen2.5-0.5B-Instruct`):",
        "",
        "```bash",
        "# small profile, local transformers on CUDA (bf16 is chosen automatically)",
        "python bench/captions.py --profile small --clips 64 --keyframes 6 --batch-size 16 --repeats 2",
        "",
        "# gpu profile: the VLM behind vLLM (OpenAI-compatible), the text LLM local on the GPU;",
        "# 'batched' = 32 concurrent requests, 'unbatched' = 1",
        "vllm serve Qwen/Qwen2.5-VL-7B-Instruct --port 8000 --max-model-len 16384 \\",
        "  --limit-mm-per-prompt '{\"image\": 4}' &",
        "python bench/captions.py --profile gpu --clips 256 --keyframes 8 --batch-size 32 --repeats 1",
        "```",
        "",
    ]
    return "\n".join(lines)


def _calibration_pairs(n_seeds: int = 20, w: int = 512, h: int = 288):
    """(label, kind, image a, image b) pairs with known truth, RGB uint8."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)

    def world(seed):
        r = np.random.default_rng(seed)
        big = cv2.resize(r.integers(0, 255, (h // 24, 2 * w // 24, 3), dtype=np.uint8), (2 * w, h),
                         interpolation=cv2.INTER_CUBIC)
        for _ in range(12):
            x, y = int(r.integers(0, 2 * w - 60)), int(r.integers(0, h - 60))
            cv2.rectangle(big, (x, y), (x + int(r.integers(20, 80)), y + int(r.integers(20, 80))),
                          tuple(int(v) for v in r.integers(0, 255, 3)), -1)
        return big

    def view(big, dx=0, subject_x=200):
        img = np.ascontiguousarray(big[:, 100 + dx: 100 + dx + w])
        cv2.circle(img, (int(subject_x), h // 2), int(h * 0.12), (250, 250, 250), -1)
        return img

    def jpeg(img):
        return cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 70])[1], cv2.IMREAD_COLOR)

    out = []
    for seed in range(n_seeds):
        wd = world(seed)
        base = view(wd)
        obj = base.copy()
        cv2.rectangle(obj, (300, 60), (300 + w // 3, 60 + h // 3), (30, 200, 30), -1)
        out += [
            ("redundant", "re-encoded (JPEG q70)", base, jpeg(base)),
            ("redundant", "sensor noise (sigma 6)", base, np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)),
            ("redundant", "flicker (+8 % gain, +6)", base, cv2.convertScaleAbs(base, alpha=1.08, beta=6)),
            ("redundant", "subject moved 3 % of the width", base, view(wd, 0, 200 + 0.03 * w)),
            ("redundant", "pan of 2 % of the width", base, view(wd, int(0.02 * w))),
            ("distinct", "new object over 1/9 of the frame", base, obj),
            ("distinct", "pan of 12 % of the width", base, view(wd, int(0.12 * w))),
            ("distinct", "pan of 25 % of the width", base, view(wd, int(0.25 * w))),
            ("distinct", "new scene", base, view(world(seed + 100))),
        ]
    return out


def calibrate(encoder) -> dict:
    from collections import defaultdict

    from PIL import Image

    by_kind: dict[tuple[str, str], list[float]] = defaultdict(list)
    for label, kind, a, b in _calibration_pairs():
        e = encoder.embed([Image.fromarray(a), Image.fromarray(b)])
        by_kind[(label, kind)].append(encoder.distance(e[0], e[1]))
    red = [d for (label, _), v in by_kind.items() if label == "redundant" for d in v]
    dis = [d for (label, _), v in by_kind.items() if label == "distinct" for d in v]
    return {"by_kind": {f"{label}: {kind}": (min(v), max(v)) for (label, kind), v in by_kind.items()},
            "max_redundant": max(red), "min_distinct": min(dis), "pairs": len(red) + len(dis)}


def sample_video(path: Path, every_s: float = 2.0, max_side: int = 512):
    """(t, RGB image) every ``every_s`` seconds (first frame at or after each mark) and the last frame,
    from one straight decode."""
    import av
    import cv2

    samples, last, next_t = [], None, 0.0
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        t0 = None
        for frame in c.decode(st):
            if frame.pts is None:
                continue
            t = float(frame.pts * st.time_base)
            t0 = t if t0 is None else t0
            t -= t0
            last = (t, frame)
            if t + 1e-6 >= next_t:
                next_t += every_s * max(1, int((t - next_t) / every_s) + 1)
                samples.append((t, _rgb(frame, max_side, cv2)))
    return samples, (last[0], _rgb(last[1], max_side, cv2)), last[0]


def _rgb(frame, max_side, cv2):
    from PIL import Image

    img = frame.to_ndarray(format="rgb24")
    h, w = img.shape[:2]
    s = min(1.0, max_side / max(h, w))
    if s < 1:
        img = cv2.resize(img, (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA)
    return Image.fromarray(img)


def keyframes_on_footage(encoder, media: Path = MEDIA) -> list[dict]:
    from vidgraph.captions.keyframes import keyframe_candidates, select_keyframes

    out = []
    for path in sorted(p for p in media.iterdir() if p.suffix.lower() in (".mp4", ".mov", ".avi", ".mpg", ".mkv")):
        t0 = time.perf_counter()
        samples, last, t_last = sample_video(path)
        cands = keyframe_candidates(samples, last)
        emb = encoder.embed([img for _, img in cands])
        sel = select_keyframes([t for t, _ in cands], emb, encoder.distance, encoder.default_threshold)
        minutes = max(t_last, 1e-6) / 60.0
        out.append({"file": path.name, "duration_s": t_last, "candidates": len(cands), "kept": len(sel.kept),
                    "before_per_min": len(cands) / minutes, "after_per_min": len(sel.kept) / minutes,
                    "seconds": time.perf_counter() - t0})
        print(f"{path.name:>24}: {t_last:6.1f} s, {len(cands)} candidates -> {len(sel.kept)} kept "
              f"({len(cands) / minutes:.1f} -> {len(sel.kept) / minutes:.1f} per min)", flush=True)
    return out


def run_keyframes(args) -> str:
    from vidgraph.models.image_encoder import ColourGridEncoder

    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    enc = ColourGridEncoder()
    cal = calibrate(enc)
    print(f"calibration: max redundant {cal['max_redundant']:.3f}, min distinct {cal['min_distinct']:.3f}, "
          f"threshold {enc.default_threshold:.3f}")
    lines = [
        KEYFRAME_SECTION,
        "",
        "`bench/captions.py --keyframe-rule` measures ShareGPT4Video's keyframe rule as frame_captions runs it on CPU: "
        f"`{enc.name}` ({enc.metric}); a 2-s sample is kept when its distance to the last kept keyframe exceeds "
        f"the threshold **{enc.default_threshold:.4f}**; the last frame is always kept.",
        "",
        f"Last run: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, `python bench/captions.py --keyframe-rule`; "
        f"{platform.machine()}, {os.cpu_count()} CPU cores, 1-min load average at the start {load_avg:.2f}.",
        "",
        f"Calibration on {cal['pairs']} labelled synthetic pairs (512x288, 20 scenes): the distance of the same "
        "view must stay under the threshold, a changed view must exceed it.",
        "",
        "| pair | distance min | distance max |",
        "|---|---:|---:|",
    ]
    for kind, (lo, hi) in cal["by_kind"].items():
        lines.append(f"| {kind} | {lo:.3f} | {hi:.3f} |")
    ok = cal["max_redundant"] < enc.default_threshold < cal["min_distinct"]
    lines += ["", f"Highest redundant distance {cal['max_redundant']:.3f}, lowest distinct {cal['min_distinct']:.3f}: "
              f"the threshold {enc.default_threshold:.4f} {'separates them' if ok else 'does NOT separate them'}.", ""]
    if MEDIA.is_dir():
        rows = keyframes_on_footage(enc)
        lines += [
            "Keyframes per minute before (a frame every 2 s plus the last frame) and after the redundancy rule, "
            "each whole file of `../shared/media` taken as one take:",
            "",
            "| file | length (s) | candidates | kept | per minute before | per minute after | seconds (decode + rule) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            lines.append(f"| {r['file']} | {r['duration_s']:.1f} | {r['candidates']} | {r['kept']} | "
                         f"{r['before_per_min']:.1f} | {r['after_per_min']:.1f} | {r['seconds']:.1f} |")
        lines.append("")
    else:
        lines += ["(`../shared/media` absent: no footage measured.)", ""]
    return "\n".join(lines)


def _text_frames(w: int = 512, h: int = 288):
    """(background, has_text, BGR frame): four backgrounds, each plain and with a burnt-in subtitle."""
    import cv2
    import numpy as np

    r = np.random.default_rng(5)
    yy, xx = np.mgrid[0:h, 0:w]
    bricks = np.full((h, w, 3), (60, 80, 160), np.uint8)
    for y in range(0, h, 12):
        cv2.line(bricks, (0, y), (w, y), (200, 200, 200), 2)
        for x in range(0 if (y // 12) % 2 else 12, w, 24):
            cv2.line(bricks, (x, y), (x, y + 12), (200, 200, 200), 2)
    g = cv2.resize(r.integers(0, 255, (h // 4, w // 4), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    backgrounds = {
        "smooth gradient": np.dstack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 90)]).astype(np.uint8),
        "bricks": bricks,
        "foliage": cv2.add(np.dstack([g // 3, g, g // 4]).astype(np.uint8), r.integers(0, 60, (h, w, 3), dtype=np.uint8)),
        "noise": r.integers(0, 255, (h, w, 3), dtype=np.uint8),
    }
    texts = ["The quick brown fox jumps over", "Meet me at the harbour at ten", "BREAKING NEWS 24/7"]
    out = []
    for name, bg in backgrounds.items():
        out.append((name, False, bg))
        for t in texts:
            img = bg.copy()
            for colour, thick in (((0, 0, 0), 5), ((255, 255, 255), 2)):
                cv2.putText(img, t, (30, h - 24), cv2.FONT_HERSHEY_SIMPLEX, 0.9, colour, thick, cv2.LINE_AA)
            out.append((name, True, img))
    return out


def run_overlaid_text(args) -> str:
    import cv2

    from vidgraph.media.analysis import _text_band_density
    from vidgraph.media.longtake import LongTakeConfig
    from vidgraph.media.ocr import OcrEngine

    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cfg = LongTakeConfig()
    eng = OcrEngine()
    frames = _text_frames()
    eng.read([frames[0][2]])  # load the models outside the timing
    t0 = time.perf_counter()
    res = eng.read([f for _, _, f in frames])
    per_frame = (time.perf_counter() - t0) / len(frames)
    lines = [
        TEXT_SECTION,
        "",
        "`bench/captions.py --overlaid-text` compares the two overlaid-text signals of `long_takes` on synthetic "
        "512x288 frames, each background plain and with three burnt-in subtitles: edge density of the bottom band "
        f"(text when >= {cfg.text_edge_density}) and OCR (`{eng.model}`; text when the boxes cover >= "
        f"{cfg.ocr_min_area_frac} of the frame).",
        "",
        f"Last run: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, `python bench/captions.py --overlaid-text`; "
        f"{platform.machine()}, {os.cpu_count()} CPU cores, 1-min load average at the start {load_avg:.2f}. "
        f"OCR of the {len(frames)} frames in one batch: {per_frame:.3f} s a frame.",
        "",
        "| background | burnt-in text | edge density (bottom) | edges say text | OCR area | OCR says text | OCR text |",
        "|---|---|---:|---|---:|---|---|",
    ]
    wrong = {"edges": 0, "ocr": 0}
    for (name, has, img), fo in zip(frames, res):
        small = cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), (256, 144), interpolation=cv2.INTER_AREA)
        edge = _text_band_density(small)[1]
        e_says, o_says = edge >= cfg.text_edge_density, fo.area_frac >= cfg.ocr_min_area_frac
        wrong["edges"] += e_says != has
        wrong["ocr"] += o_says != has
        lines.append(f"| {name} | {'yes' if has else 'no'} | {edge:.3f} | {'yes' if e_says else 'no'} | "
                     f"{fo.area_frac:.3f} | {'yes' if o_says else 'no'} | {fo.text.replace('|', '/')[:40]} |")
        print(f"{name:>16} text={has!s:5} edges={edge:.3f} ocr_area={fo.area_frac:.3f} {fo.text!r}")
    lines += ["", f"Wrong verdicts out of {len(frames)}: edge density {wrong['edges']}, OCR {wrong['ocr']}.", ""]
    media = MEDIA / "wannaworktogether.mp4"
    if media.is_file():
        samples, _last, dur = sample_video(media)
        import numpy as np

        t0 = time.perf_counter()
        fos = eng.read([np.asarray(img)[..., ::-1] for _, img in samples])
        dt = time.perf_counter() - t0
        with_text = sum(fo.area_frac >= cfg.ocr_min_area_frac for fo in fos)
        lines += [f"Real footage: the 2-s keyframes of `wannaworktogether.mp4` (text on screen, {dur:.0f} s): "
                  f"{with_text} of {len(fos)} keyframes carry text covering >= {cfg.ocr_min_area_frac} of the frame; "
                  f"OCR took {dt / max(1, len(fos)):.3f} s a keyframe. First lines read: "
                  + "; ".join(f"`{fo.text[:40]}`" for fo in fos if fo.text)[:400] + ".", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default=os.environ.get("VIDGRAPH_PROFILE", "tiny"))
    ap.add_argument("--model", help="VLM to use instead of the profile's (hub id or local folder)")
    ap.add_argument("--llm-model", help="text LLM to use instead of the profile's")
    ap.add_argument("--revision", help="revision for --model/--llm-model")
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--keyframes", type=int, default=4)
    ap.add_argument("--duration", type=float, default=8.0, help="clip length in seconds")
    ap.add_argument("--dense-segment-s", type=float, default=None)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--readme", type=Path, default=ROOT / "bench" / "README.md")
    ap.add_argument("--no-readme", action="store_true")
    ap.add_argument("--keyframe-rule", action="store_true",
                    help="only the keyframe rule: calibration and keyframes per minute on ../shared/media")
    ap.add_argument("--overlaid-text", action="store_true",
                    help="only the overlaid-text signals: edge density against OCR on synthetic frames")
    args = ap.parse_args(argv)
    if args.overlaid_text:
        section = run_overlaid_text(args)
        if not args.no_readme:
            write_section(args.readme, section)
            print(f"updated {args.readme} ({TEXT_SECTION})")
        return 0
    if args.keyframe_rule:
        section = run_keyframes(args)
        if not args.no_readme:
            write_section(args.readme, section)
            print(f"updated {args.readme} ({KEYFRAME_SECTION})")
        return 0
    out = run(args)
    if not args.no_readme:
        write_section(args.readme, render_section(args, out))
        print(f"updated {args.readme} ({SECTION})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
