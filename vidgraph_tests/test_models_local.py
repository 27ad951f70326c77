"""Local transformers backend, tiny models, profiles and the Dagster resource."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from vidgraph.models import (AudioPart, ChatMessage, GenerationParams, ModelNotAvailableError,
                             TransformersChatModel, UnknownProfileError, load_profile, profile_names,
                             system, user)
from vidgraph.models.resources import ChatModelResource
from vidgraph.models.tiny import TINY_VERSION, ensure_tiny_models

GREEDY = GenerationParams(max_new_tokens=12, temperature=0.0)


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (40 + 4 * i, 56, 3), dtype=np.uint8)) for i in range(n)]


def test_tiny_models_are_small_and_saved(tiny_models):
    assert set(tiny_models) == {"vlm", "llm", "asr", "scorer", "audio_tagger"}
    for role, path in tiny_models.items():
        assert (path / "config.json").is_file(), role
        assert (path / "model.safetensors").stat().st_size < 5_000_000, role
    assert tiny_models["vlm"].parent.name == f"tiny-v{TINY_VERSION}"
    cfg = json.loads((tiny_models["vlm"] / "config.json").read_text())
    assert cfg["model_type"] == "llava"


def test_ensure_tiny_models_is_cached(tiny_models, tiny_model_cache):
    marker = tiny_models["vlm"].parent / "VIDGRAPH_TINY_READY.json"
    before = marker.stat().st_mtime_ns
    again = ensure_tiny_models(tiny_model_cache)
    assert again == tiny_models
    assert marker.stat().st_mtime_ns == before  # not rebuilt
    # No temporary build folders are left behind.
    assert not [p for p in tiny_model_cache.iterdir() if p.name.startswith(".tiny")]


def test_vlm_batched_generation_strings_in_order(tiny_models):
    imgs = _images(5)
    reqs = [[system("Be brief."), user(imgs[i], "Describe image " + "x " * i)] for i in range(5)]
    batched = TransformersChatModel(tiny_models["vlm"], kind="vlm", batch_size=4)
    single = TransformersChatModel(tiny_models["vlm"], kind="vlm", batch_size=1)
    a = batched.generate(reqs, GREEDY)
    b = single.generate(reqs, GREEDY)
    assert len(a) == len(reqs) == len(b)
    assert all(r.ok and isinstance(r.text, str) for r in a), [r.error for r in a]
    # Left padding: a request's greedy output is the same whether batched or not, so the
    # batched results are in request order.
    assert [r.text for r in a] == [r.text for r in b]
    # Two images in one request (the DiffSW shape) work too.
    two = batched.generate([[user(imgs[0], imgs[1], "What changed?")]], GREEDY)
    assert two[0].ok and isinstance(two[0].text, str)


def test_text_model_error_is_per_request_and_in_place(tiny_llm):
    reqs = [[user("summarize the park scene")], [user("a dog runs")],
            [user(_images(1)[0], "text models cannot see images")], [user("the camera pans left")]]
    res = tiny_llm.generate(reqs, GREEDY)
    assert len(res) == 4
    assert res[2].error is not None and "image" in res[2].error and res[2].text is None
    assert all(res[i].ok and isinstance(res[i].text, str) for i in (0, 1, 3))
    assert tiny_llm.generate([], GREEDY) == []


def test_sampling_is_seeded(tiny_llm):
    reqs = [[user("describe the video")]] * 2
    p = GenerationParams(max_new_tokens=16, temperature=1.0, seed=7)
    a = [r.text for r in tiny_llm.generate(reqs, p)]
    b = [r.text for r in tiny_llm.generate(reqs, p)]
    assert a == b


def test_provenance(tiny_vlm, tiny_models, tmp_path):
    import shutil

    res = tiny_vlm.generate([[user(_images(1)[0], "hi")]], GREEDY)[0]
    assert res.model_id == "tiny:vlm"
    assert res.revision.startswith("local-") and res.revision == tiny_vlm.revision
    assert res.latency_s > 0
    d = tiny_vlm.describe()
    assert d["backend"] == "transformers" and d["kind"] == "vlm"
    assert d["model_id"] == "tiny:vlm" and d["revision"] == res.revision
    assert d["path"] == str(tiny_models["vlm"])
    assert d["device"] == "cpu" and d["dtype"] == "torch.float32"
    # The fingerprint identifies the content, not the folder: a copy has the same revision.
    copy = shutil.copytree(tiny_models["vlm"], tmp_path / "vlm-copy")
    other = TransformersChatModel(copy, kind="vlm")
    other.load()
    assert other.revision == res.revision and other.model_id == str(copy)
    # ... and a different model has a different one.
    assert TransformersChatModel(tiny_models["llm"], kind="text").generate([[user("x")]], GREEDY)[0].revision \
        not in ("", res.revision)


def test_asr_tiny_whisper(tiny_models):
    m = TransformersChatModel(tiny_models["asr"], kind="asr", language="en")
    rng = np.random.default_rng(0)
    audio = [AudioPart((rng.standard_normal(16000 * s) * 0.1).astype("float32"), 16000) for s in (2, 3)]
    res = m.generate([[ChatMessage("user", (a,))] for a in audio], GenerationParams(max_new_tokens=8))
    assert len(res) == 2
    for r, dur in zip(res, (2, 3)):
        assert r.ok and isinstance(r.text, str), r.error
        assert all(0 <= s["start_s"] <= s["end_s"] <= dur for s in r.extra["segments"])
    bad = m.generate([[user("no audio here")]])[0]
    assert bad.error and "audio" in bad.error


def test_offline_missing_hub_model_names_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    m = TransformersChatModel("vidgraph-test/no-such-model", revision="v1", kind="text")
    with pytest.raises(ModelNotAvailableError) as ei:
        m.generate([[user("hi")]])
    msg = str(ei.value)
    assert "vidgraph-test/no-such-model" in msg
    assert "huggingface-cli download vidgraph-test/no-such-model --revision v1" in msg
    assert "HF_HUB_OFFLINE" in msg and "--profile tiny" in msg


def test_missing_local_path(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        TransformersChatModel(tmp_path / "nope" / "model", kind="vlm").load()


def test_profiles(tiny_models, monkeypatch):
    assert {"tiny", "small", "gpu"} <= set(profile_names())
    with pytest.raises(UnknownProfileError) as ei:
        load_profile("huge")
    assert "huge" in str(ei.value) and "tiny" in str(ei.value) and "gpu" in str(ei.value)

    gpu = load_profile("gpu", resolve=False)
    assert gpu.vlm.backend == "openai" and gpu.vlm.base_url.startswith("http://127.0.0.1:8000")
    assert gpu.llm.model == "Qwen/Qwen2.5-7B-Instruct" and gpu.llm.kind == "text"
    small = load_profile("small", resolve=False)
    assert small.asr.model == "openai/whisper-tiny" and small.generation.temperature == 0.0

    monkeypatch.setenv("VIDGRAPH_PROFILE", "small")
    assert load_profile(resolve=False).name == "small"
    monkeypatch.delenv("VIDGRAPH_PROFILE")
    tiny = load_profile()  # default: tiny, resolved to the session's cache (VIDGRAPH_MODEL_CACHE)
    assert tiny.name == "tiny"
    assert tiny.vlm.model == str(tiny_models["vlm"]) and tiny.vlm.source == "tiny:vlm"
    assert tiny.vlm.ref == load_profile("tiny", resolve=False).vlm.ref == f"transformers:tiny:vlm@tiny-v{TINY_VERSION}"
    built = tiny.llm.build()
    assert isinstance(built, TransformersChatModel) and built.model_id == "tiny:llm" and built.kind == "text"


def test_resource_loads_once_per_step(tiny_models):
    import dagster as dg

    seen = {}

    @dg.asset
    def uses_llm(llm: ChatModelResource):
        m1, m2 = llm.get_model(), llm.get_model()
        res = m1.generate([[user("a")], [user("b")]], GREEDY)
        seen.update(same=m1 is m2, n=len(res), ok=all(r.ok for r in res), model_id=m1.model_id,
                    loaded=m1.loaded)

    res = ChatModelResource(model="tiny:llm", kind="text")
    result = dg.materialize([uses_llm], resources={"llm": res})
    assert result.success
    assert seen == {"same": True, "n": 2, "ok": True, "model_id": "tiny:llm", "loaded": True}


def test_resource_openai_key_comes_from_env_only(monkeypatch):
    from vidgraph.models import OpenAIChatModel

    monkeypatch.setenv("VIDGRAPH_TEST_KEY", "sk-very-secret")
    r = ChatModelResource(backend="openai", model="m", base_url="http://user:pw@127.0.0.1:9/v1",
                          api_key_env="VIDGRAPH_TEST_KEY")
    m = r.get_model()
    assert isinstance(m, OpenAIChatModel)
    blob = json.dumps(r.describe()) + json.dumps(m.describe()) + repr(m)
    assert "sk-very-secret" not in blob and "pw" not in blob
    assert m._client.headers["authorization"] == "Bearer sk-very-secret"
    with pytest.raises(ValueError, match="unknown backend"):
        ChatModelResource(backend="grpc", model="m").get_model()
    m.close()



def test_tiny_build_is_deterministic(tmp_path, tiny_models):
    from vidgraph.models.tiny import build_tiny_llm

    a = build_tiny_llm(tmp_path / "a")
    assert (a / "model.safetensors").read_bytes() == (tiny_models["llm"] / "model.safetensors").read_bytes()
    assert (a / "tokenizer.json").read_text() == (tiny_models["llm"] / "tokenizer.json").read_text()


def test_hub_id_loads_offline_from_the_cache_and_records_the_commit(tiny_models, tmp_path):
    """A hub id already in the HF cache loads with HF_HUB_OFFLINE=1; the row revision is the commit."""
    import shutil
    import subprocess
    import sys

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--vidgraph-test--tiny-llm"
    shutil.copytree(tiny_models["llm"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    code = (
        "import json\n"
        "from vidgraph.models import TransformersChatModel, GenerationParams, user\n"
        "m = TransformersChatModel('vidgraph-test/tiny-llm', kind='text')\n"
        "r = m.generate([[user('hello')]], GenerationParams(max_new_tokens=4))[0]\n"
        "print(json.dumps({'ok': r.ok, 'revision': r.revision, 'model_id': r.model_id, 'error': r.error}))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"),
           "HF_HOME": str(tmp_path / "hf-home")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res == {"ok": True, "revision": commit, "model_id": "vidgraph-test/tiny-llm", "error": None}
