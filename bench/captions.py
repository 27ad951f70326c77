"""Benchmark: frame captioning throughput (clips/s), batched against unbatched, in one run.

Runs ``vidgraph.captions.caption_clips`` (DiffSW steps + summary + dense segments) on synthetic
keyframes. The local transformers backend is compared at ``--batch-size`` against batch size 1;
an OpenAI-compatible backend at ``--batch-size`` concurrent requests against 1. Model loading is
timed separately and excluded from the throughput (one warm-up pass runs first).

    python bench/captions.py                       # tiny random models, CPU
    python bench/captions.py --profile small       # real small models (weights must be cached)
    python bench/captions.py --model HuggingFaceTB/SmolVLM-256M-Instruct   # another VLM

Writes (or replaces) the ``## Captioning`` section of bench/README.md unless ``--no-readme``.
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
    args = ap.parse_args(argv)
    out = run(args)
    if not args.no_readme:
        write_section(args.readme, render_section(args, out))
        print(f"updated {args.readme} ({SECTION})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
