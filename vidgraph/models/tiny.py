"""Tiny, randomly initialised models built offline, for tests, CI and the demo.

Nothing here touches the network. The models are meaningless (random weights): they exist so
that the whole pipeline, including real ``from_pretrained`` loading, batching and generation,
runs in seconds on a CPU.

``ensure_tiny_models()`` builds them once and caches them under
``$VIDGRAPH_MODEL_CACHE/tiny-<version>`` (default ``~/.cache/vidgraph/models/tiny-<version>``).
The build goes to a temporary folder that is renamed into place, so two processes building at
the same time never leave a half-written cache.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path

TINY_VERSION = "3"  # 3: adds audio_tagger
_READY = "VIDGRAPH_TINY_READY.json"
SEED = 1234

# Caption-like corpus the tokenizer is trained on, so random generations decode to English-ish words.
_SUBJECTS = ["a man", "a woman", "a child", "a dog", "a cat", "two people", "a red car", "a bird",
             "the crowd", "a cyclist", "a chef", "the player"]
_VERBS = ["walks", "runs", "stands", "sits", "turns", "opens", "holds", "moves", "jumps", "talks",
          "looks", "drives", "cooks", "plays"]
_PLACES = ["in the park", "on the street", "in a kitchen", "near the door", "by the river",
           "inside a room", "on a beach", "at night", "under the trees", "in the snow"]
_CAMERA = ["the camera pans left", "the camera pans right", "the camera zooms in",
           "the camera zooms out", "the shot is static", "the camera tilts up", "the camera follows"]
_CHANGE = ["then", "now", "next", "meanwhile", "after that", "suddenly", "slowly", "quickly"]

_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: "
    "{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def default_cache_root() -> Path:
    env = os.environ.get("VIDGRAPH_MODEL_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "vidgraph" / "models"


def _corpus(n: int = 400) -> list[str]:
    rng = random.Random(SEED)
    out = []
    for _ in range(n):
        s = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_PLACES)}"
        if rng.random() < 0.5:
            s += f", {rng.choice(_CHANGE)} {rng.choice(_CAMERA)}"
        out.append(s + ".")
    return out


def _seed_all(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _train_bpe(vocab_size: int, special: list[str]):
    from transformers import GPT2Tokenizer

    base = GPT2Tokenizer()
    tok = base.train_new_from_iterator([_corpus()], vocab_size=vocab_size, new_special_tokens=special)
    return tok


def _unprintable_ids(tok, keep: set[int]) -> list[int]:
    """Token ids whose text is not printable ASCII; suppressed at generation so output stays readable."""
    bad = []
    for i in range(len(tok)):
        if i in keep:
            continue
        s = tok.decode([i])
        if not s or not all(32 <= ord(ch) < 127 for ch in s):
            bad.append(i)
    return bad


def build_tiny_vlm(out_dir: Path, seed: int = SEED) -> Path:
    """LLaVA-style image-text-to-text model: CLIP vision tower + Llama text model (~150K params)."""
    from transformers import (CLIPVisionConfig, GenerationConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    _seed_all(seed)
    out_dir = Path(out_dir)
    tok = _train_bpe(400, ["<image>", "<pad>"])
    tok.pad_token = "<pad>"
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tok, patch_size=8,
        vision_feature_select_strategy="default", chat_template=_CHAT_TEMPLATE,
        image_token="<image>", num_additional_image_tokens=1,
    )
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, image_size=32, patch_size=8, projection_dim=32)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                       pad_token_id=tok.pad_token_id)
    image_token_id = tok.convert_tokens_to_ids("<image>")
    cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_id=image_token_id,
                      vision_feature_select_strategy="default", vision_feature_layer=-1)
    model = LlavaForConditionalGeneration(cfg).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        min_new_tokens=4,
        suppress_tokens=_unprintable_ids(tok, keep={tok.eos_token_id}) + [image_token_id],
    )
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def build_tiny_llm(out_dir: Path, seed: int = SEED) -> Path:
    """Tiny Llama causal LM with a chat template (~100K params)."""
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    _seed_all(seed + 1)
    out_dir = Path(out_dir)
    tok = _train_bpe(400, ["<pad>"])
    tok.pad_token = "<pad>"
    tok.chat_template = _CHAT_TEMPLATE
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(cfg).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        min_new_tokens=4, suppress_tokens=_unprintable_ids(tok, keep={tok.eos_token_id}),
    )
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


WHISPER_SPECIAL = ["<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>",
                   "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]
WHISPER_TIMESTAMPS = [f"<|{i * 0.02:.2f}|>" for i in range(1501)]


def build_tiny_whisper(out_dir: Path, seed: int = SEED) -> Path:
    """Tiny Whisper (speech seq2seq) with timestamp tokens in its vocabulary (~250K params)."""
    from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration, WhisperProcessor, WhisperTokenizer)

    _seed_all(seed + 2)
    out_dir = Path(out_dir)
    bpe = _train_bpe(350, [])
    state = json.loads(bpe.backend_tokenizer.to_str())
    vocab = dict(state["model"]["vocab"])
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["model"]["merges"]]
    tok = WhisperTokenizer(vocab=vocab, merges=merges)
    tok.add_special_tokens({"additional_special_tokens": WHISPER_SPECIAL})
    tok.add_tokens(WHISPER_TIMESTAMPS)
    tok.pad_token = tok.eos_token
    ids = {t: tok.convert_tokens_to_ids(t) for t in WHISPER_SPECIAL}
    assert ids["<|notimestamps|>"] + 1 == tok.convert_tokens_to_ids("<|0.00|>")
    fe = WhisperFeatureExtractor(feature_size=80)
    processor = WhisperProcessor(feature_extractor=fe, tokenizer=tok)
    eot = tok.convert_tokens_to_ids("<|endoftext|>")
    sot = ids["<|startoftranscript|>"]
    cfg = WhisperConfig(
        vocab_size=len(tok), num_mel_bins=80, d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        max_source_positions=1500, max_target_positions=448,
        pad_token_id=eot, bos_token_id=eot, eos_token_id=eot, decoder_start_token_id=sot,
        begin_suppress_tokens=None, suppress_tokens=None,
    )
    model = WhisperForConditionalGeneration(cfg).eval()
    gc = GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
        no_timestamps_token_id=ids["<|notimestamps|>"], is_multilingual=True,
        lang_to_id={"<|en|>": ids["<|en|>"]},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        forced_decoder_ids=None, max_initial_timestamp_index=50, max_length=448,
        prev_sot_token_id=ids["<|startofprev|>"],
        suppress_tokens=_unprintable_ids(tok, keep={eot, *ids.values()} | set(
            tok.convert_tokens_to_ids(WHISPER_TIMESTAMPS))),
        begin_suppress_tokens=[eot],
    )
    model.generation_config = gc
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def build_tiny_image_scorer(out_dir: Path, seed: int = SEED) -> Path:
    """ViT image classifier with one output (a quality logit), for the long_takes ClipScorer."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    _seed_all(seed)
    out_dir = Path(out_dir)
    cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=2, num_labels=1, id2label={0: "quality"}, label2id={"quality": 0})
    ViTForImageClassification(cfg).eval().save_pretrained(out_dir)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(out_dir)
    return out_dir


# AudioSet display names, so the tiny tagger goes through the same label handling as a real AST.
TINY_AUDIO_LABELS = ["Speech", "Music", "Silence", "Noise", "Pop music", "Rock music", "Electronic music",
                     "Classical music", "Drum", "Guitar", "Piano", "Synthesizer", "Happy music", "Sad music",
                     "Tender music", "Exciting music"]


def build_tiny_audio_tagger(out_dir: Path, seed: int = SEED) -> Path:
    """Tiny AST audio classifier (AutoModelForAudioClassification) with AudioSet-style labels."""
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    _seed_all(seed + 3)
    out_dir = Path(out_dir)
    labels = TINY_AUDIO_LABELS
    cfg = ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                    num_mel_bins=64, max_length=128, patch_size=16, frequency_stride=16, time_stride=16,
                    num_labels=len(labels), id2label=dict(enumerate(labels)),
                    label2id={l: i for i, l in enumerate(labels)}, problem_type="multi_label_classification")
    ASTForAudioClassification(cfg).eval().save_pretrained(out_dir)
    ASTFeatureExtractor(num_mel_bins=64, max_length=128, sampling_rate=16000).save_pretrained(out_dir)
    return out_dir


_BUILDERS = {"vlm": build_tiny_vlm, "llm": build_tiny_llm, "asr": build_tiny_whisper,
             "scorer": build_tiny_image_scorer, "audio_tagger": build_tiny_audio_tagger}


def build_tiny_models(out_dir: Path) -> dict[str, Path]:
    """Build all tiny models into ``out_dir/<role>`` (no caching, no atomic rename)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {role: builder(out_dir / role) for role, builder in _BUILDERS.items()}
    (out_dir / _READY).write_text(json.dumps({"version": TINY_VERSION, "roles": sorted(paths)}))
    return paths


def _paths(root: Path) -> dict[str, Path]:
    return {role: root / role for role in _BUILDERS}


def ensure_tiny_models(cache_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Return ``{"vlm": path, "llm": path, "asr": path}``, building the tiny models on first use.

    ``cache_dir`` is the cache root (default ``$VIDGRAPH_MODEL_CACHE`` or
    ``~/.cache/vidgraph/models``); the models live in ``<root>/tiny-<version>``.
    """
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_root()
    final = root / f"tiny-v{TINY_VERSION}"
    if (final / _READY).exists():
        return _paths(final)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tiny-v{TINY_VERSION}-", dir=root))
    try:
        build_tiny_models(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache may be shared
        if final.exists() and not (final / _READY).exists():
            # A leftover from a crashed build that was somehow renamed: replace it.
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:
            # Another process won the race; its build is complete (rename is atomic).
            if not (final / _READY).exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return _paths(final)
