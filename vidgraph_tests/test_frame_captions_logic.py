"""Frame-caption logic: DiffSW prompt assembly, batching order, dense segments, quality, end to end."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from vidgraph.captions import (ClipKeyframes, build_dense_requests, build_diffsw_requests, caption_clips,
                               caption_problems, dense_segments, dense_timestamps_ok,
                               frame_captions_code_version, load_template, prompt_hash, prompts_version,
                               repetition_ratio, segment_keyframe_indices, tokens_for_words, word_count)
from vidgraph.models import ChatModel, GenerationParams, ImagePart, TextPart

P = GenerationParams(max_new_tokens=16)


def _frame(clip: int, k: int) -> Image.Image:
    """A solid 8x8 frame whose colour encodes (clip, keyframe)."""
    return Image.new("RGB", (8, 8), (clip * 30, k * 30, 7))


def _decode(img: Image.Image) -> tuple[int, int]:
    r, g, _ = img.getpixel((0, 0))
    return r // 30, g // 30


def _clip(i: int, n_kf: int, duration: float = 10.0, step: float = 2.0) -> ClipKeyframes:
    return ClipKeyframes(f"clip{i}", "vid", 100.0 + i, 100.0 + i + duration,
                         [(k * step, _frame(i, k)) for k in range(n_kf)])


def _images(req):
    return [p.image for m in req for p in m.content if isinstance(p, ImagePart)]


def _text(req):
    return "\n".join(p.text for m in req for p in m.content if isinstance(p, TextPart))


class FakeModel(ChatModel):
    """Records every generate call; answers with the identity of the request's last image."""

    def __init__(self, name="fake", fail=lambda req: False):
        self.model_id, self.revision = name, "rev1"
        self.calls: list[list] = []
        self.fail = fail

    def generate(self, requests, params=None):
        self.calls.append(list(requests))
        out = []
        for req in requests:
            if self.fail(req):
                out.append(self._result(error="injected failure"))
                continue
            imgs = _images(req)
            if imgs:
                c, k = _decode(imgs[-1])
                out.append(self._result(text=f"desc-c{c}-k{k} n{len(imgs)}"))
            else:
                out.append(self._result(text=f"summary of {_text(req).count('[')} notes"))
        return out

    def describe(self):
        return {"backend": "fake", "model_id": self.model_id}


# ---------------------------------------------------------------- DiffSW prompt assembly


def test_diffsw_step0_has_first_keyframe_only():
    clips = [_clip(0, 3), _clip(1, 1), ClipKeyframes("empty", "vid", 0, 5, [])]
    steps = build_diffsw_requests(clips, 0, {})
    assert [s.clip_id for s in steps] == ["clip0", "clip1"]
    for s, c in zip(steps, clips):
        assert _images(s.request) == [c.keyframes[0][1]]
        assert s.prev_caption is None and s.image_ts == (0.0,)
        assert s.request[0].role == "system" and s.request[-1].role == "user"
        assert "first keyframe (t = 0.0 s)" in _text(s.request) and "10.0-second" in _text(s.request)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_diffsw_step_k_has_keyframes_k_minus_1_and_k_and_previous_caption(k):
    clips = [_clip(0, 4), _clip(1, 2), _clip(2, 4)]
    prev = {"clip0": f"caption-0-{k - 1}", "clip1": f"caption-1-{k - 1}"}  # clip2 failed earlier
    steps = build_diffsw_requests(clips, k, prev)
    expected = ["clip0"] + (["clip1"] if k == 1 else [])
    assert [s.clip_id for s in steps] == expected
    for s in steps:
        clip = next(c for c in clips if c.clip_id == s.clip_id)
        imgs = _images(s.request)
        assert len(imgs) == 2
        assert imgs[0] is clip.keyframes[k - 1][1] and imgs[1] is clip.keyframes[k][1]
        assert s.image_ts == (clip.keyframes[k - 1][0], clip.keyframes[k][0])
        assert s.prev_caption == prev[s.clip_id]
        text = _text(s.request)
        assert prev[s.clip_id] in text
        assert all(other not in text for cid, other in prev.items() if cid != s.clip_id)
        assert f"t = {clip.keyframes[k - 1][0]:.1f} s" in text and f"t = {clip.keyframes[k][0]:.1f} s" in text


def test_caption_clips_batches_step_by_step_and_chains_captions():
    clips = [_clip(0, 3), _clip(1, 1), _clip(2, 2)]
    vlm, llm = FakeModel("vlm"), FakeModel("llm")
    rows = caption_clips(clips, vlm, llm, P, dense_segment_s=5.0)
    # DiffSW: one call per step over all clips that have that keyframe; then one dense call.
    diff_calls = vlm.calls[:3]
    assert [len(c) for c in diff_calls] == [3, 2, 1]
    assert [[_decode(_images(r)[-1]) for r in call] for call in diff_calls] == [
        [(0, 0), (1, 0), (2, 0)], [(0, 1), (2, 1)], [(0, 2)]]
    # Step k's prompt carries step k-1's output for the same clip.
    assert "desc-c0-k0 n1" in _text(diff_calls[1][0]) and "desc-c2-k0 n1" in _text(diff_calls[1][1])
    assert "desc-c0-k1 n2" in _text(diff_calls[2][0])
    # Dense: all segments of all clips in one call (2 per 10 s clip at 5 s segments).
    assert len(vlm.calls) == 4 and len(vlm.calls[3]) == 6
    # Text model: one call for all summaries, one for all refined captions, one for all rewrites.
    assert [len(c) for c in llm.calls] == [3, 3, 3]
    assert all(not _images(r) for call in llm.calls for r in call)
    assert "desc-c0-k2 n2" in _text(llm.calls[0][0])

    assert [r["clip_id"] for r in rows] == ["clip0", "clip1", "clip2"]
    r0 = rows[0]
    assert r0["error"] is None
    assert r0["caption"] == "summary of 3 notes" and r0["word_count"] == 4
    assert r0["diff_captions"] == [{"t_s": 0.0, "text": "desc-c0-k0 n1"}, {"t_s": 2.0, "text": "desc-c0-k1 n2"},
                                   {"t_s": 4.0, "text": "desc-c0-k2 n2"}]
    assert r0["keyframe_ts"] == [0.0, 2.0, 4.0]
    assert [(d["start_s"], d["end_s"]) for d in r0["dense_captions"]] == [(0.0, 5.0), (5.0, 10.0)]
    assert r0["dense_captions"][0]["keyframe_ts"] == [0.0, 4.0]  # 3 inside, at most 2, spread
    assert r0["dense_captions"][1]["keyframe_ts"] == [4.0]  # none inside: the nearest
    assert (r0["vlm_model_id"], r0["vlm_revision"], r0["llm_model_id"]) == ("vlm", "rev1", "llm")
    assert r0["prompt_hash"] == prompt_hash() and len(r0["prompt_hash"]) == 64
    assert len({r0["prompt_hash"], r0["dense_prompt_hash"], r0["refine_prompt_hash"], r0["rewrite_prompt_hash"]}) == 4
    gp = json.loads(r0["gen_params"])
    assert gp["diffsw"]["max_new_tokens"] == 16 and gp["dense_segment_s"] == 5.0
    assert rows[1]["diff_captions"] == [{"t_s": 0.0, "text": "desc-c1-k0 n1"}]


def test_an_error_on_one_clip_leaves_the_others_intact():
    clips = [_clip(0, 3), _clip(1, 3), _clip(2, 2)]
    # clip1 fails at DiffSW step 1; clip2's summary fails.
    vlm = FakeModel("vlm", fail=lambda req: [_decode(i) for i in _images(req)][-1:] == [(1, 1)])
    llm = FakeModel("llm", fail=lambda req: "desc-c2-k1" in _text(req))
    rows = {r["clip_id"]: r for r in caption_clips(clips, vlm, llm, P)}
    assert rows["clip0"]["error"] is None and rows["clip0"]["caption"]
    assert rows["clip1"]["caption"] is None and "diffsw window 0 step 1" in rows["clip1"]["error"]
    assert "injected failure" in rows["clip1"]["error"]
    assert len(rows["clip1"]["diff_captions"]) == 1  # step 0 kept, no step 2 attempted
    assert not any((1, 2) in [_decode(i) for i in _images(r)] for call in vlm.calls for r in call)
    assert rows["clip2"]["caption"] is None and rows["clip2"]["error"].startswith("summary:")
    assert len(rows["clip2"]["diff_captions"]) == 2


def test_clip_without_keyframes_records_error():
    rows = caption_clips([ClipKeyframes("e", "v", 0, 3, []), _clip(1, 1)], FakeModel(), FakeModel(), P)
    assert rows[0]["error"] == "no keyframes" and rows[0]["caption"] is None and rows[0]["word_count"] == 0
    assert rows[1]["error"] is None


def test_over_max_keyframes_windows_overlap_by_one_and_skip_nothing():
    vlm = FakeModel()
    rows = caption_clips([_clip(0, 9, duration=18)], vlm, FakeModel(), P, max_keyframes=4)
    r = rows[0]
    assert r["error"] is None and r["keyframe_ts"] == [2.0 * k for k in range(9)]
    assert [w["keyframe_ts"] for w in r["keyframe_windows"]] == [[0.0, 2.0, 4.0, 6.0], [6.0, 8.0, 10.0, 12.0],
                                                               [12.0, 14.0, 16.0]]
    # Windows are independent chains: step k runs for every window at once (3 windows, depth 4).
    assert [len(c) for c in vlm.calls[:4]] == [3, 3, 3, 2]
    # Every differential step shows two adjacent kept keyframes; every adjacent pair is one step.
    pairs = [tuple(_decode(i)[1] for i in _images(req)) for call in vlm.calls[:4] for req in call
             if len(_images(req)) == 2]
    assert sorted(pairs) == [(k, k + 1) for k in range(8)]
    # A window's opening keyframe is described in full again (one image), as a restart, not as the clip's first.
    assert [len(_images(req)) for req in vlm.calls[0]] == [1, 1, 1]
    assert "first keyframe" in _text(vlm.calls[0][0]) and "restarts here" in _text(vlm.calls[0][1])
    assert [d["t_s"] for d in r["diff_captions"]] == [0, 2, 4, 6, 6, 8, 10, 12, 12, 14, 16]


# ---------------------------------------------------------------- dense segments


@pytest.mark.parametrize("duration,seg", [(10.0, 4.0), (3.0, 4.0), (61.7, 4.0), (8.0, 2.0), (0.5, 4.0)])
def test_dense_segments_cover_the_clip_in_order(duration, seg):
    segs = dense_segments(duration, seg)
    assert segs[0][0] == 0.0 and segs[-1][1] == pytest.approx(duration, abs=1e-3)
    assert all(a[1] == b[0] for a, b in zip(segs, segs[1:]))  # contiguous
    assert all(e > s for s, e in segs)
    assert all(abs((e - s) - seg) <= seg / 2 + 1e-9 for s, e in segs) or len(segs) == 1
    assert dense_timestamps_ok([{"start_s": s, "end_s": e} for s, e in segs], duration)


def test_dense_segments_known_values():
    assert dense_segments(10.0, 4.0) == [(0.0, 5.0), (5.0, 10.0)]
    assert dense_segments(12.0, 4.0) == [(0.0, 4.0), (4.0, 8.0), (8.0, 12.0)]
    assert dense_segments(0.0) == []


def test_segment_keyframe_selection():
    times = [0.0, 1.0, 2.0, 3.0, 9.5]
    assert segment_keyframe_indices(times, 0, 4, last=False, max_images=None) == [0, 1, 2, 3]
    assert segment_keyframe_indices(times, 0, 4, last=False, max_images=2) == [0, 3]
    assert segment_keyframe_indices(times, 4, 8, last=False) == [3]  # none inside: nearest to 6.0
    assert segment_keyframe_indices(times, 8, 9.5, last=True) == [4]  # end inclusive on the last one
    steps = build_dense_requests(_clip(0, 3, duration=6.0, step=2.0), segment_s=3.0)
    assert [(s.start_s, s.end_s, s.image_ts) for s in steps] == [(0.0, 3.0, (0.0, 2.0)), (3.0, 6.0, (4.0,))]
    assert "from 3.0 s to 6.0 s" in _text(steps[1].request)


# ---------------------------------------------------------------- quality


def test_quality_known_answers():
    assert word_count("a  man\nwalks ") == 3 and word_count(None) == 0 and word_count("") == 0
    assert repetition_ratio("a b c a b c", 3) == pytest.approx(0.25)
    assert repetition_ratio("the the the the the", 1) == pytest.approx(0.8)
    assert repetition_ratio("one two", 3) == 0.0
    assert repetition_ratio("a man walks a dog in the park", 3) == 0.0
    assert repetition_ratio("go go go go go go go go go go", 3) == pytest.approx(7 / 8)


def test_dense_timestamps_ok_cases():
    ok = [{"start_s": 0, "end_s": 4}, {"start_s": 4, "end_s": 8}]
    assert dense_timestamps_ok(ok, 8.0)
    assert not dense_timestamps_ok(ok, 7.0)  # past the clip end
    assert not dense_timestamps_ok(list(reversed(ok)), 8.0)  # out of order
    assert not dense_timestamps_ok([{"start_s": 0, "end_s": 5}, {"start_s": 4, "end_s": 8}], 8.0)  # overlap
    assert not dense_timestamps_ok([{"start_s": 3, "end_s": 3}], 8.0)  # empty segment
    assert not dense_timestamps_ok([{"start_s": -1, "end_s": 3}], 8.0)
    assert not dense_timestamps_ok([], 8.0) and dense_timestamps_ok([], 0.0)


def test_caption_problems():
    good = {"caption": "a man walks a dog in the park", "dense_captions": [{"start_s": 0, "end_s": 2}],
            "duration_s": 2.0, "error": None}
    assert caption_problems(good, min_words=3, max_words=20) == []
    assert caption_problems({**good, "caption": ""}) == ["empty caption"]
    assert "word count 8" in caption_problems(good, min_words=10)[0]
    assert any("repetition" in p for p in caption_problems({**good, "caption": "go " * 20}))
    assert any("dense" in p for p in caption_problems({**good, "duration_s": 1.0}))
    assert caption_problems({"caption": None, "error": "HTTP 500"}) == []  # accounted for by the error


# ---------------------------------------------------------------- prompts and versions


def test_prompt_templates_and_hashes():
    t = load_template("diffsw_diff_v1")
    assert {"prev_t_s", "t_s", "prev_caption", "max_words"} <= t.placeholders
    with pytest.raises(KeyError):
        t.render(t_s=1.0)
    with pytest.raises(FileNotFoundError):
        load_template("no_such_prompt_v9")
    assert prompt_hash(["diffsw_first_v1"]) != prompt_hash(["diffsw_diff_v1"])
    assert prompt_hash() == prompt_hash() and len(prompts_version()) == 64
    a = frame_captions_code_version("transformers:tiny:vlm@tiny-v1", "transformers:tiny:llm@tiny-v1")
    b = frame_captions_code_version("openai:Qwen/Qwen2.5-VL-7B-Instruct@main", "transformers:tiny:llm@tiny-v1")
    assert a != b and a == frame_captions_code_version("transformers:tiny:vlm@tiny-v1",
                                                       "transformers:tiny:llm@tiny-v1")


# ---------------------------------------------------------------- end to end on tiny models


def test_caption_clips_end_to_end_on_tiny_models(tiny_vlm, tiny_llm):
    import numpy as np

    rng = np.random.default_rng(3)

    def img():  # random 6x6-pixel colour blocks: every keyframe a different layout
        return Image.fromarray(np.kron(rng.integers(0, 255, (6, 8, 3)), np.ones((6, 6, 1))).astype(np.uint8))

    clips = [ClipKeyframes(f"c{i}", "v1", 5.0 * i, 5.0 * i + 2 + 3 * i,
                           [(t, img()) for t in np.arange(0.0, 2 + 3 * i, 2.0)]) for i in range(3)]
    params = GenerationParams(max_new_tokens=12, temperature=1.0, seed=0)
    limits = {"summary_min": 1, "summary": 16, "refine": 12, "concise": 8}  # a band the tiny model can meet
    from vidgraph.models.image_encoder import ColourGridEncoder

    # The keyframes all differ (the rule keeps them all); at most 3 keyframes a window.
    kw = dict(dense_segment_s=2.0, word_limits=limits, max_keyframes=3, encoder=ColourGridEncoder())
    rows = caption_clips(clips, tiny_vlm, tiny_llm, params, **kw)
    assert [r["clip_id"] for r in rows] == ["c0", "c1", "c2"]
    assert [len(r["keyframe_windows"]) for r in rows] == [1, 1, 2]  # c2: 4 keyframes -> 0-4 s, 4-6 s
    assert [w["keyframe_ts"] for w in rows[2]["keyframe_windows"]] == [[0.0, 2.0, 4.0], [4.0, 6.0]]
    for r, c in zip(rows, clips):
        assert r["error"] is None, r["error"]
        assert isinstance(r["caption"], str) and r["word_count"] == word_count(r["caption"])
        assert len(r["diff_captions"]) == len(c.keyframes) + len(r["keyframe_windows"]) - 1
        assert all(isinstance(d["text"], str) for d in r["diff_captions"])
        assert r["keyframe_ts"] == [t for t, _ in c.keyframes]
        assert dense_timestamps_ok(r["dense_captions"], c.duration_s)
        assert all(isinstance(d["text"], str) for d in r["dense_captions"])
        assert r["vlm_model_id"] == "tiny:vlm" and r["llm_model_id"] == "tiny:llm"
        assert r["vlm_revision"].startswith("local-") and r["llm_revision"].startswith("local-")
        assert json.loads(r["gen_params"])["diffsw"] == params.as_dict()
        assert json.loads(r["gen_params"])["summary"]["max_new_tokens"] == tokens_for_words(16)
        assert isinstance(r["refined_caption"], str) and isinstance(r["concise_caption"], str)
    # Seeded: the same shard gives the same captions.
    again = caption_clips(clips, tiny_vlm, tiny_llm, params, **kw)
    assert [r["caption"] for r in again] == [r["caption"] for r in rows]
