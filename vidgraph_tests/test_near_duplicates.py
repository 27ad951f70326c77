"""Near-duplicate groups: the multi-index hash search is exact and cheap; phash + MiniLM group the right clips."""

import numpy as np
import pytest

from vidgraph.stages.near_duplicates import (
    NearDuplicateConfig,
    UnionFind,
    find_near_duplicates,
    hamming_pairs,
    mih_radius,
    phash64,
)
from vidgraph_tests.release_world import keyframe_jpeg


def _brute(codes, owners, k):
    out = {}
    for i in range(len(codes)):
        d = np.bitwise_count(codes[i] ^ codes[i + 1:]).astype(int)
        for j in np.flatnonzero(d <= k):
            a, b = owners[i], owners[i + 1 + j]
            if a != b:
                key = (min(a, b), max(a, b))
                out[key] = min(out.get(key, 99), int(d[j]))
    return out


def test_multi_index_hashing_finds_exactly_the_pairs_within_the_threshold():
    rng = np.random.default_rng(0)
    n = 2000
    codes = rng.integers(0, 2**63, n, dtype=np.uint64) | (rng.integers(0, 2, n, dtype=np.uint64) << np.uint64(63))
    # Planted near copies at every distance from 0 to 10 bits: only those <= 6 may come back.
    planted = []
    for d in range(11):
        for _ in range(5):
            src = int(rng.integers(0, n))
            bits = rng.choice(64, d, replace=False)
            codes = np.append(codes, codes[src] ^ np.uint64(sum(1 << int(b) for b in bits)))
            planted.append((src, len(codes) - 1, d))
    owners = np.arange(len(codes))
    stats = {}
    found = hamming_pairs(codes, owners, 6, stats=stats)
    assert found == _brute(codes, owners, 6)
    for src, dup, d in planted:
        assert ((src, dup) in found) == (d <= 6), (src, dup, d)
    all_pairs = len(codes) * (len(codes) - 1) // 2
    assert stats["candidates"] < all_pairs / 100  # the index looks at a tiny fraction of the pairs
    assert mih_radius(6, 4) == 1 and mih_radius(7, 4) == 1 and mih_radius(8, 4) == 2


def test_owner_keeps_its_closest_keyframe_pair_and_ignores_its_own():
    codes = np.array([0b1111, 0b1110, 0b0000, 0b1111], dtype=np.uint64)
    owners = np.array([0, 0, 1, 1])
    # 0 and 1 share an identical keyframe (distance 0); keyframes of one owner never pair.
    assert hamming_pairs(codes, owners, 6) == {(0, 1): 0}


def test_phash_of_a_reencode_is_close_and_of_another_picture_far():
    a, a2, b = keyframe_jpeg(5), keyframe_jpeg(5, variant=1), keyframe_jpeg(6)
    ha, ha2, hb = phash64(a), phash64(a2), phash64(b)
    assert bin(ha ^ ha2).count("1") <= NearDuplicateConfig().max_hash_distance
    assert bin(ha ^ hb).count("1") > 16


def test_union_find_names_components_by_their_smallest_member():
    uf = UnionFind(["d", "b", "c", "a"])
    uf.union("d", "c")
    uf.union("c", "b")
    assert uf.find("d") == "b" and uf.find("a") == "a"
    assert sorted(map(sorted, uf.groups().values())) == [["a"], ["b", "c", "d"]]


@pytest.fixture(scope="module")
def embedder():
    from vidgraph.defs.resources import SentenceEmbedderResource

    # The same cached instance the release assets use: MiniLM loads once per test process.
    return SentenceEmbedderResource().get_embedder()


def test_groups_from_pictures_confirmed_by_captions_and_from_captions_alone(embedder):
    cfg = NearDuplicateConfig()
    car = "A red sports car drives along a coastal highway at sunset."
    clips = [
        ("a", car, [phash64(keyframe_jpeg(1)), phash64(keyframe_jpeg(2))]),
        ("b", "A red sports car is driving on a coastal highway at sunset.", [phash64(keyframe_jpeg(2, variant=1))]),  # re-encode
        ("c", "A chef slices onions on a wooden board in a kitchen.", [phash64(keyframe_jpeg(3))]),
        ("d", "A chef slices onions on a wooden board in a kitchen.", [phash64(keyframe_jpeg(4))]),  # same caption, new picture
        ("e", "Penguins waddle across ice on an Antarctic shore.", [phash64(keyframe_jpeg(1, variant=1))]),  # a's picture, unrelated text
        ("f", "", [phash64(keyframe_jpeg(7))]),
    ]
    rows = [{"clip_id": c, "video_id": f"v{c}", "shard": "s"} for c, _, _ in clips]
    vecs = embedder.encode([t for _, t, _ in clips])
    res = find_near_duplicates(rows, {c: h for c, _, h in clips}, vecs, cfg, embedder.describe())
    group = {r["clip_id"]: r["group_id"] for r in res.clips.to_pylist()}
    assert group["a"] == group["b"]  # same picture, close captions
    assert group["c"] == group["d"]  # captions alone, above caption_only_sim
    assert len({group["a"], group["c"], group["e"], group["f"]}) == 4  # a picture match with an unrelated caption is no duplicate
    reasons = {(p["clip_a"], p["clip_b"]): p["reason"] for p in res.pairs.to_pylist()}
    assert reasons == {("a", "b"): "visual+caption", ("c", "d"): "caption"}
    params = res.clips.column("params")[0].as_py()
    assert '"max_hash_distance": 6' in params and '"caption_only_sim": 0.95' in params  # thresholds recorded
    assert res.clips.column("embedder_revision")[0].as_py() == embedder.revision
