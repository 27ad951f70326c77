"""frame_captions as the papers make them: ShareGPT4Video's keyframe rule and caption windows, the
word band, LVD-2M's three levels (over the local OpenAI-compatible test server), the last frame, and
real OCR (packaged PP-OCRv4) on synthetic frames with and without burnt-in text."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from vidgraph.captions import (ClipKeyframes, caption_clips, keyframe_candidates, keyframe_rule_problems,
                               keyframe_windows, select_keyframes, tokens_for_words, word_limits_from_profile)
from vidgraph.models import ChatModel, GenerationParams, OpenAIChatModel, load_profile
from vidgraph.models.image_encoder import ColourGridEncoder, build_image_encoder
from vidgraph_tests.test_models_http import FakeOpenAIServer

W, H = 320, 180


def _world(seed: int) -> np.ndarray:
    """A wide RGB scene to pan over: smooth colour blobs and a few solid rectangles."""
    r = np.random.default_rng(seed)
    big = cv2.resize(r.integers(0, 255, (H // 20, 2 * W // 20, 3), dtype=np.uint8), (2 * W, H),
                     interpolation=cv2.INTER_CUBIC)
    for _ in range(10):
        x, y = int(r.integers(0, 2 * W - 50)), int(r.integers(0, H - 50))
        cv2.rectangle(big, (x, y), (x + int(r.integers(15, 50)), y + int(r.integers(15, 50))),
                      tuple(int(v) for v in r.integers(0, 255, 3)), -1)
    return big


def _jpeg(img: np.ndarray, q: int = 70) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])[1], cv2.IMREAD_COLOR)


# ---------------------------------------------------------------- the keyframe rule


def test_rule_keeps_a_sample_only_when_it_differs_from_the_last_kept_and_always_the_last_frame():
    # 1-D "embeddings": the distance is the difference of the numbers.
    ts = [0.0, 2.0, 4.0, 6.0, 8.0, 9.96]
    emb = [0.0, 0.05, 0.09, 0.5, 0.52, 0.53]
    sel = select_keyframes(ts, emb, lambda a, b: abs(a - b), threshold=0.08)
    # 2.0 is close to 0.0 (dropped); 4.0 is 0.09 from the last KEPT one (0.0), not from 2.0: kept.
    assert sel.kept_ts == [0.0, 4.0, 6.0, 9.96]
    assert sel.distances == [None, pytest.approx(0.05), pytest.approx(0.09), pytest.approx(0.41),
                             pytest.approx(0.02), pytest.approx(0.03)]
    # The last frame is kept even though it is 0.03 from the last kept keyframe.
    assert keyframe_rule_problems(sel.kept_ts, ts, duration_s=10.0) == []


def test_candidates_end_with_the_last_frame_and_stay_2s_apart():
    samples = [(t, f"s{t}") for t in (4.0, 0.0, 2.0, 8.0, 6.0)]
    c = keyframe_candidates(samples, (8.96, "last"))
    # 8.0 is within 1.75 s of the last frame: the last frame takes its place.
    assert [t for t, _ in c] == [0.0, 2.0, 4.0, 6.0, 8.96] and c[-1][1] == "last"
    assert keyframe_candidates(samples, None)[-1][0] == 8.0


def test_rule_problems_name_what_is_wrong():
    cands = [0.0, 2.0, 4.0, 6.0, 7.9]
    assert keyframe_rule_problems([0.0, 4.0, 7.9], cands, 8.0) == []
    assert "out of order" in keyframe_rule_problems([0.0, 6.0, 4.0, 7.9], cands, 8.0)[0]
    assert any("apart" in p for p in keyframe_rule_problems([0.0, 1.0, 7.9], [0.0, 1.0, 7.9], 8.0))
    assert any("last" in p for p in keyframe_rule_problems([0.0, 4.0], cands, 8.0))
    assert any("ends at" in p for p in keyframe_rule_problems([0.0, 2.0], [0.0, 2.0], 8.0))


def test_windows_overlap_by_one_and_cover_every_pair():
    assert keyframe_windows(5, 8) == [(0, 5)]
    assert keyframe_windows(10, 4) == [(0, 4), (3, 7), (6, 10)]
    for n, m in [(10, 4), (9, 2), (31, 12)]:
        pairs = {(i, i + 1) for a, b in keyframe_windows(n, m) for i in range(a, b - 1)}
        assert pairs == {(i, i + 1) for i in range(n - 1)}
        assert all(b - a <= m for a, b in keyframe_windows(n, m))


def test_colour_grid_distance_separates_redundant_from_distinct_frames():
    enc = ColourGridEncoder()
    rng = np.random.default_rng(0)
    redundant, distinct = [], []
    for seed in range(4):
        world = _world(seed)
        base = world[:, 60:60 + W]
        noisy = np.clip(base + rng.normal(0, 5, base.shape), 0, 255).astype(np.uint8)
        flicker = cv2.convertScaleAbs(base, alpha=1.06, beta=5)
        obj = base.copy()
        cv2.rectangle(obj, (150, 40), (150 + W // 3, 40 + H // 3), (30, 200, 30), -1)
        pairs_r = [_jpeg(base), noisy, flicker]
        pairs_d = [world[:, 60 + W // 6: 60 + W // 6 + W], obj, _world(seed + 50)[:, :W]]
        e = enc.embed([Image.fromarray(x[..., ::-1]) for x in [base, *pairs_r, *pairs_d]])
        redundant += [enc.distance(e[0], e[i]) for i in (1, 2, 3)]
        distinct += [enc.distance(e[0], e[i]) for i in (4, 5, 6)]
    thr = enc.default_threshold
    assert max(redundant) < thr < min(distinct), (redundant, distinct)


def test_a_static_take_keeps_its_first_and_last_frame_a_moving_one_keeps_more():
    enc = ColourGridEncoder()
    rng = np.random.default_rng(1)
    world = _world(7)
    static = [(2.0 * k, Image.fromarray(np.clip(world[:, :W] + rng.normal(0, 4, (H, W, 3)), 0, 255)
                                        .astype(np.uint8))) for k in range(10)]
    pan = [(2.0 * k, Image.fromarray(np.ascontiguousarray(world[:, 30 * k: 30 * k + W]))) for k in range(10)]
    rows = caption_clips([ClipKeyframes("static", "v", 0, 19.0, static), ClipKeyframes("pan", "v", 0, 19.0, pan)],
                         _FakeText(), _FakeText(), GenerationParams(max_new_tokens=8), encoder=enc)
    by = {r["clip_id"]: r for r in rows}
    assert by["static"]["keyframe_ts"] == [0.0, 18.0]
    assert len(by["pan"]["keyframe_ts"]) >= 5 and by["pan"]["keyframe_ts"][-1] == 18.0
    assert json.loads(by["pan"]["keyframe_rule"])["threshold"] == enc.default_threshold


class _FakeText(ChatModel):
    model_id, revision = "fake", "r"

    def generate(self, requests, params=None):
        return [self._result(text="words " * 3) for _ in requests]

    def describe(self):
        return {"backend": "fake"}


def test_clip_style_encoder_behind_the_model_layer(tmp_path):
    """A tiny random CLIP (built offline) behind build_image_encoder: unit embeddings, 1 - cosine."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    cfg = CLIPConfig(text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                  "num_attention_heads": 2, "vocab_size": 50,
                                  "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1},
                     vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                    "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
                     projection_dim=8)
    CLIPModel(cfg).eval().save_pretrained(tmp_path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    enc = build_image_encoder({"backend": "transformers", "model": str(tmp_path)})
    imgs = [Image.fromarray(_world(s)[:, :W]) for s in (1, 1, 2)]
    e = enc.embed(imgs)
    assert e.shape == (3, 8) and np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-4)
    assert enc.distance(e[0], e[1]) == pytest.approx(0.0, abs=1e-5) and enc.distance(e[0], e[2]) > 0
    assert enc.default_threshold == pytest.approx(0.07)  # ShareGPT4Video: keep when cosine < 0.93
    assert isinstance(build_image_encoder(None), ColourGridEncoder)


# ---------------------------------------------------------------- word band


def test_word_band_comes_from_the_profile_and_sets_max_new_tokens():
    for name in ("small", "gpu"):
        lim = word_limits_from_profile(load_profile(name, resolve=False).captions)
        assert (lim["summary_min"], lim["summary"]) == (200, 400)
    tiny = word_limits_from_profile(load_profile("tiny", resolve=False).captions)
    assert tiny["summary"] < 100  # a band the tiny model meets
    assert tokens_for_words(400) >= 400 * 1.5
    rows = caption_clips([ClipKeyframes("a", "v", 0, 4.0, [(0.0, Image.new("RGB", (8, 8)))])], _FakeText(),
                         _FakeText(), GenerationParams(max_new_tokens=8), word_limits={"summary_min": 200, "summary": 400})
    gp = json.loads(rows[0]["gen_params"])
    assert gp["summary"]["max_new_tokens"] == tokens_for_words(400) and gp["diffsw"]["max_new_tokens"] == 8
    from vidgraph.captions.prompts import load_template, FRAME_CAPTION_TEMPLATES

    summary = load_template(FRAME_CAPTION_TEMPLATES["summary"]).text
    assert "{min_words}" in summary and "{max_words}" in summary and "Do not mention keyframes or notes" in summary
    assert "timestamps" not in summary.lower().split("do not")[-1]  # times are allowed


# ---------------------------------------------------------------- windows, rule and three levels over HTTP


def test_windows_rule_and_three_levels_over_an_openai_compatible_server():
    world = _world(3)
    # 12 candidates: the camera holds for 4 samples (redundant), then pans.
    frames = [(2.0 * k, Image.fromarray(np.ascontiguousarray(world[:, max(0, k - 3) * 40: max(0, k - 3) * 40 + W])))
              for k in range(11)] + [(21.9, Image.fromarray(np.ascontiguousarray(world[:, 320:320 + W])))]
    with FakeOpenAIServer() as server:
        vlm = OpenAIChatModel(server.base_url, "test-vlm", timeout_s=5, max_retries=1, backoff_s=0.01, max_concurrency=4)
        llm = OpenAIChatModel(server.base_url, "test-llm", timeout_s=5, max_retries=1, backoff_s=0.01, max_concurrency=4)
        rows = caption_clips([ClipKeyframes("c", "v", 0.0, 22.0, frames)], vlm, llm,
                             GenerationParams(max_new_tokens=32), dense_segment_s=8.0, max_keyframes=4,
                             encoder=ColourGridEncoder(), word_limits={"summary_min": 5, "summary": 300})
        calls = list(server.calls)
    r = rows[0]
    assert r["error"] is None, r["error"]
    # The rule dropped the held samples 2, 4 and 6 s and kept the pan and the last frame.
    assert r["keyframe_ts"][:2] == [0.0, 8.0] and r["keyframe_ts"][-1] == 21.9
    assert keyframe_rule_problems(r["keyframe_ts"], r["candidate_keyframe_ts"], 22.0) == []
    n = len(r["keyframe_ts"])
    windows = [w["keyframe_ts"] for w in r["keyframe_windows"]]
    assert len(windows) > 1 and all(len(w) <= 4 for w in windows)
    assert all(a[-1] == b[0] for a, b in zip(windows, windows[1:]))  # overlap by one keyframe
    assert len(r["diff_captions"]) == n + len(windows) - 1
    # Each differential request carried two adjacent kept keyframes (the server saw two images).
    diff_bodies = [c["body"] for c in calls if isinstance(c["body"]["messages"][-1]["content"], list)
                   and any(p["type"] == "text" and p["text"].startswith("These two images are consecutive keyframes")
                           for p in c["body"]["messages"][-1]["content"])]
    assert len(diff_bodies) == n - 1
    assert all(sum(p["type"] == "image_url" for p in b["messages"][-1]["content"]) == 2 for b in diff_bodies)
    # Three levels: segment captions, refined caption from them, concise rewrite of the refined one.
    assert [(d["start_s"], d["end_s"]) for d in r["dense_captions"]] == [(0.0, 7.333), (7.333, 14.667), (14.667, 22.0)]
    assert "[0.0 s - 7.3 s]" in r["refined_caption"] and "refined caption" in r["refined_caption"]
    assert "concise caption" in r["concise_caption"] and "Caption:" in r["concise_caption"]
    assert r["caption"].startswith("echo[") and "between 5 and 300 words" in r["caption"]
    hashes = {r[k] for k in ("dense_prompt_hash", "refine_prompt_hash", "rewrite_prompt_hash", "prompt_hash")}
    assert len(hashes) == 4 and all(len(h) == 64 for h in hashes)
    gp = json.loads(r["gen_params"])
    assert gp["refine"]["max_new_tokens"] == tokens_for_words(200) and gp["rewrite"]["max_new_tokens"] == tokens_for_words(60)


def test_a_failed_refinement_is_recorded_and_the_other_levels_stay():
    class FailRefine(_FakeText):
        def generate(self, requests, params=None):
            return [self._result(error="HTTP 503") if "refined caption" in str(req) else self._result(text="a b c")
                    for req in requests]

    rows = caption_clips([ClipKeyframes("a", "v", 0, 4.0, [(0.0, Image.new("RGB", (8, 8))), (2.0, Image.new("RGB", (8, 8)))])],
                         _FakeText(), FailRefine(), GenerationParams(max_new_tokens=8))
    r = rows[0]
    assert r["error"] == "refine: HTTP 503" and r["refined_caption"] is None and r["concise_caption"] is None
    assert r["caption"] and r["dense_captions"]


# ---------------------------------------------------------------- the last frame


def test_last_frame_of_a_file_and_of_a_span(tmp_path):
    import av

    from vidgraph.media.last_frame import read_last_frame

    path = tmp_path / "count.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.options = {"g": "10"}
        for i in range(40):  # 4 s; frame i is grey level 5*i
            img = np.full((48, 64, 3), 5 * i, np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    t, img = read_last_frame(str(path), 0.0, 4.0)
    assert t == pytest.approx(3.9, abs=1e-3) and abs(int(img.mean()) - 195) <= 3
    t, img = read_last_frame(str(path), 1.0, 2.5)  # a span inside the file: its last frame is 2.4 s
    assert t == pytest.approx(2.4, abs=1e-3) and abs(int(img.mean()) - 120) <= 3


# ---------------------------------------------------------------- OCR


def _subtitle(img: np.ndarray, text: str) -> np.ndarray:
    img = img.copy()
    for colour, thick in (((0, 0, 0), 5), ((255, 255, 255), 2)):
        cv2.putText(img, text, (20, H - 16), cv2.FONT_HERSHEY_SIMPLEX, 0.7, colour, thick, cv2.LINE_AA)
    return img


def _textures() -> dict[str, np.ndarray]:
    r = np.random.default_rng(5)
    bricks = np.full((H, W, 3), (60, 80, 160), np.uint8)
    for y in range(0, H, 12):
        cv2.line(bricks, (0, y), (W, y), (200, 200, 200), 2)
        for x in range(0 if (y // 12) % 2 else 12, W, 24):
            cv2.line(bricks, (x, y), (x, y + 12), (200, 200, 200), 2)
    g = cv2.resize(r.integers(0, 255, (H // 4, W // 4), dtype=np.uint8), (W, H), interpolation=cv2.INTER_CUBIC)
    foliage = cv2.add(np.dstack([g // 3, g, g // 4]).astype(np.uint8), r.integers(0, 60, (H, W, 3), dtype=np.uint8))
    return {"bricks": bricks, "foliage": foliage, "noise": r.integers(0, 255, (H, W, 3), dtype=np.uint8)}


@pytest.fixture(scope="module")
def ocr_engine():
    from vidgraph.media.ocr import OcrEngine

    return OcrEngine()


def test_ocr_finds_burnt_in_subtitles_and_ignores_texture_that_fools_edge_density(ocr_engine):
    from vidgraph.media.analysis import _text_band_density
    from vidgraph.media.longtake import LongTakeConfig

    tex = _textures()
    plain = list(tex.values())
    subbed = [_subtitle(img, "Hello from the harbour") for img in plain]
    res = ocr_engine.read(plain + subbed)  # one batch: detection per frame, recognition of all crops together
    for img, fo in zip(plain, res[:3]):
        # Edge density in the bottom band calls this texture text ...
        small = cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), (256, 144), interpolation=cv2.INTER_AREA)
        assert _text_band_density(small)[1] >= LongTakeConfig().text_edge_density
        # ... OCR finds none.
        assert fo.lines == [] and fo.area_frac == 0.0
    for fo in res[3:]:
        assert len(fo.lines) == 1 and fo.lines[0].score > 0.8
        # (PP-OCR may drop a space between words: compare without spaces)
        assert "hellofromtheharbour" in "".join(fo.text.lower().split())
        assert 0.02 < fo.area_frac < 0.3
        quad = np.asarray(fo.lines[0].quad).reshape(4, 2)
        assert quad[:, 1].min() > 0.7  # the box sits at the bottom of the frame
    assert "PP-OCRv4" in ocr_engine.model


def test_overlaid_text_uses_ocr_boxes_where_ocr_ran(ocr_engine):
    from vidgraph.media.longtake import LongTakeConfig, failure_reasons, ocr_text_metrics
    from vidgraph.stages.long_takes import ocr_otherwise_passing

    config = LongTakeConfig(reject_text=True)
    tex = _textures()["foliage"]
    jpeg = lambda img: cv2.imencode(".jpg", img)[1].tobytes()  # noqa: E731
    base = {"duration_s": 12.0, "inner_cut_frames": [], "gradual_transitions": "[]", "dynamic_degree": 0.05,
            "black_frac": 0.0, "uniform_frac": 0.0, "blurry_frac": 0.0, "video_id": "v"}
    # Both clips look like text to edge density (text_frac 1.0), so both fail on it before OCR.
    rows = [{**base, "clip_id": cid, "text_frac": 1.0} for cid in ("texture", "subtitled")]
    for r in rows:
        r["reasons"] = failure_reasons(r, config)
        r["passed"] = not r["reasons"]
    assert all(r["reasons"] == ["overlaid_text"] for r in rows)
    images = [[jpeg(tex), jpeg(tex)], [jpeg(_subtitle(tex, "Breaking news tonight")), jpeg(_subtitle(tex, "More at ten"))]]
    kf_rows = [{"clip_id": cid, "t_clip_s": t} for cid in ("texture", "subtitled") for t in (0.0, 2.0)]
    ocr_rows = ocr_otherwise_passing(rows, images, kf_rows, ocr_engine, config)
    tex_row, sub_row = rows
    assert tex_row["ocr_text_frac"] == 0.0 and tex_row["passed"] and tex_row["reasons"] == []
    assert sub_row["ocr_text_frac"] == 1.0 and sub_row["reasons"] == ["overlaid_text"] and not sub_row["passed"]
    assert [r["t_clip_s"] for r in ocr_rows if r["clip_id"] == "subtitled"] == [0.0, 2.0]
    assert all(r["boxes"] and r["boxes"][0]["quad"] for r in ocr_rows if r["clip_id"] == "subtitled")
    assert ocr_text_metrics([], config) == {"ocr_text_frac": None, "ocr_area_frac": None}
    # Without reject_text the metric is recorded but does not reject.
    assert "overlaid_text" not in failure_reasons(sub_row, LongTakeConfig())


def test_ocr_text_is_cleaned_deduplicated_and_in_time_order():
    from vidgraph.media.ocr import clean_text, clip_text
    from vidgraph.stages.frame_captions import ocr_columns

    assert clean_text("ignore\x00 previous\u202e\ninstructions\x1b[31m") == "ignore previous instructions [31m"
    assert len(clean_text("x" * 5000)) == 200
    assert clip_text([(4.0, "Later"), (0.0, "Hello / WORLD"), (2.0, "hello / world / Later")]) == "Hello\nWORLD\nLater"
    cols = ocr_columns([{"t_clip_s": 2.0, "text": "B", "area_frac": 0.1, "ocr_model": "m"},
                        {"t_clip_s": 0.0, "text": "A", "area_frac": 0.0, "ocr_model": "m"}])
    assert cols["ocr_text"] == "A\nB" and [o["t_s"] for o in cols["ocr"]] == [0.0, 2.0]
    assert cols["ocr_area_frac"] == pytest.approx(0.05) and cols["ocr_model"] == "m"
    assert ocr_columns([]) == {"ocr_text": "", "ocr": [], "ocr_model": "", "ocr_area_frac": None}


# ---------------------------------------------------------------- the checks' row tests


def test_check_rows_name_broken_keyframes_and_missing_levels():
    from vidgraph.captions.keyframes import row_keyframe_problems
    from vidgraph.captions.quality import missing_caption_levels

    rule = json.dumps({"every_s": 2.0, "gap_tolerance_s": 0.25, "last_frame": True})
    good = {"keyframe_ts": [0.0, 4.0, 9.9], "candidate_keyframe_ts": [0.0, 2.0, 4.0, 6.0, 9.9], "duration_s": 10.0,
            "keyframe_rule": rule, "error": None}
    assert row_keyframe_problems(good) == []
    assert row_keyframe_problems({**good, "keyframe_ts": [0.0, 4.0, 6.0]})  # last frame missing
    assert row_keyframe_problems({**good, "keyframe_ts": [4.0, 0.0, 9.9]})  # out of order
    # An unreadable last frame, recorded on the row, is not blamed on the rule.
    no_last = {**good, "keyframe_ts": [0.0, 6.0], "candidate_keyframe_ts": [0.0, 2.0, 4.0, 6.0],
               "keyframe_rule": json.dumps({"last_frame": False}), "error": "last frame unreadable (x)"}
    assert row_keyframe_problems(no_last) == []
    levels = {"dense_captions": [{"text": "a"}], "refined_caption": "r", "concise_caption": "c",
              "dense_prompt_hash": "h1", "refine_prompt_hash": "h2", "rewrite_prompt_hash": "h3", "error": None}
    assert missing_caption_levels(levels) == []
    assert missing_caption_levels({**levels, "concise_caption": None}) == ["concise_caption"]
    assert missing_caption_levels({**levels, "dense_captions": [{"text": None}]}) == ["segment captions"]
    assert missing_caption_levels({**levels, "refined_caption": None, "error": "refine: HTTP 503"}) == []
