"""The evaluation and review logic with known answers: strict judge parsing and retries, retrieval
metrics, verdict files, the review page. No model is loaded (a scripted model stands in)."""

import json

import numpy as np
import pytest

from vidgraph.models.backends import ChatModel, GenerationParams
from vidgraph.stages.evaluations import (
    L1_KEYS,
    judge,
    layer_text,
    narration_means,
    parse_scores,
    retrieval_metrics,
    score_narrations,
)
from vidgraph.stages.gold import VerdictFileError, latest_verdicts, parse_verdict_file, review_html


class Scripted(ChatModel):
    """Answers from a list, in order; records the prompts it was given."""

    model_id, revision = "scripted", "0"

    def __init__(self, answers):
        self.answers = list(answers)
        self.prompts = []

    def generate(self, requests, params=None):
        out = []
        for r in requests:
            self.prompts.append(r[-1].text)
            out.append(self._result(text=self.answers.pop(0)))
        return out

    def describe(self):
        return {"model": self.model_id}


@pytest.mark.parametrize("text, want", [
    ('{"environment": 4, "characters": 2}', {"environment": 4, "characters": 2}),
    ('```json\n{"characters": 0, "environment": 5}\n```', {"environment": 5, "characters": 0}),
    ('Sure! {"environment": 4, "characters": 2}', None),  # prose around it
    ('{"environment": 4}', None),  # a key missing
    ('{"environment": 4, "characters": 2, "plot": 3}', None),  # an extra key
    ('{"environment": 4.5, "characters": 2}', None),  # not an integer
    ('{"environment": 6, "characters": 2}', None),  # out of range
    ('{"environment": true, "characters": 2}', None),
    ("", None),
    (None, None),
])
def test_judge_answers_parse_strictly(text, want):
    assert parse_scores(text, L1_KEYS) == want


def test_judge_retries_a_bad_format_and_scores_minus_one_when_it_never_parses():
    params = GenerationParams(max_new_tokens=8)
    m = Scripted(["environment: 4", '{"environment": 3, "characters": 1}'])
    out = judge(m, "rate it", L1_KEYS, params, max_attempts=3)
    assert out.scores == {"environment": 3, "characters": 1} and out.attempts == 2
    assert "could not be parsed" in m.prompts[1]
    m = Scripted(["no", "still no", "nope"])
    out = judge(m, "rate it", L1_KEYS, params, max_attempts=3)
    assert out.scores == {"environment": -1, "characters": -1} and out.attempts == 3 and out.raw == "nope"


def test_narration_scores_and_means_per_release():
    items = [{"clip_id": "a", "reference": "A man rides a horse.", "reference_kind": "human", "source": "Visual: a horse"},
             {"clip_id": "b", "reference": "A cat sleeps.", "reference_kind": "merged_caption", "source": "Visual: a cat"}]
    narrator = Scripted(["A rider on a horse.", "A sleeping cat."])
    judge_model = Scripted(['{"environment": 4, "characters": 5}', '{"plot": 4}',
                            "bad", "bad", '{"plot": 2}'])
    rows = score_narrations(items, narrator, judge_model, GenerationParams(), max_attempts=2)
    assert [(r["environment"], r["characters"], r["plot"]) for r in rows] == [(4, 5, 4), (-1, -1, 2)]
    assert "A man rides a horse." in judge_model.prompts[0] and "A rider on a horse." in judge_model.prompts[0]
    assert "Visual: a horse" in narrator.prompts[0]
    means = narration_means(rows)
    assert means["environment_mean"] == 4.0 and means["environment_parsed"] == 1
    assert means["environment_mean_with_unparsed"] == 1.5 and means["plot_mean"] == 3.0


def test_retrieval_metrics_on_known_ranks():
    g = np.eye(4, dtype=np.float32)
    # Query 0 and 1 find their own clip first; query 2 ranks its clip 2nd; query 3 ranks it last.
    q = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0.6, 0, 0.5, 0], [0.3, 0.3, 0.3, 0.1]], dtype=np.float32)
    m = retrieval_metrics(q, g)
    assert m["r1"] == 0.5 and m["r5"] == 1.0 and m["mean_rank"] == (1 + 1 + 2 + 4) / 4


def test_layer_texts_follow_the_videomind_layers():
    r = {"factual_visual": "a dog", "factual_asr": "hello", "abstract_summary": "a pet", "abstract_tags": {"place": "park"},
         "intent_uploader": "[u] through [x] aims to [y]", "intent_subject": ""}
    assert layer_text(r, "factual") == "a dog hello"
    assert layer_text(r, "abstract") == "a pet park"
    assert layer_text(r, "intent") == "[u] through [x] aims to [y]"


def test_verdict_files_are_validated_and_the_latest_verdict_wins():
    doc = {"release": "v1", "batch": "b0", "reviewer": "ann", "reviewed_at": "2026-12-01T10:00:00Z",
           "verdicts": [{"clip_id": "c1", "verdict": "accept"}, {"clip_id": "c2", "verdict": "fix", "reference_caption": "Right."}]}
    rows = parse_verdict_file(json.dumps(doc).encode(), "a.json")
    assert [(r["clip_id"], r["verdict"], r["reference_caption"]) for r in rows] == [("c1", "accept", ""), ("c2", "fix", "Right.")]
    later = parse_verdict_file(json.dumps({**doc, "reviewed_at": "2026-12-02T00:00:00Z",
                                           "verdicts": [{"clip_id": "c1", "verdict": "reject"}]}).encode(), "b.json")
    assert latest_verdicts(rows + later)["c1"]["verdict"] == "reject"
    for bad in (b"{", b"[]", json.dumps({"verdicts": [{"clip_id": "c", "verdict": "maybe"}]}).encode(),
                json.dumps({"verdicts": [{"clip_id": "c", "verdict": "fix"}]}).encode()):
        with pytest.raises(VerdictFileError):
            parse_verdict_file(bad, "bad.json")


def test_review_page_escapes_captions_and_lists_its_clips():
    item = {"clip_id": "c1", "duration_s": 12.0, "stratum": "0-15s|speech", "keyframes": ["keyframes/c1/000.jpg"],
            "merged_caption": "</script><b>x</b>", "frame_caption": "", "audio_caption": "", "transcript": "hi"}
    page = review_html("v1", "v1-b000", [item])
    assert "</script><b>" not in page and "&lt;/script&gt;" in page
    assert 'src="keyframes/c1/000.jpg"' in page and 'name="v-c1"' in page and 'const RELEASE = "v1"' in page
