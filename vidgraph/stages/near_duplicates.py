"""near_duplicates: groups of clips that are re-uploads, crops or re-encodes of each other, across shards.

Two signals, each found through an index so the work grows with the candidates, never with all pairs:

* a 64-bit perceptual hash (``imagehash.phash``) of each stored keyframe, indexed by multi-index
  hashing: the hash is cut into ``bands`` substrings and each substring is looked up with every
  key within ``r`` bits of it. By the pigeonhole principle two hashes within ``bands * (r + 1) - 1``
  bits share at least one substring within ``r`` bits, so no pair under the threshold is missed;
* a SimHash (random hyperplanes) of each merged caption's MiniLM embedding, indexed the same way;
  candidates are then confirmed with the exact cosine similarity (approximate recall: a pair
  above the cosine threshold is found unless its SimHash distance exceeds the index radius).

An edge is a visual match confirmed by some caption similarity, or a very close caption alone.
Groups are the connected components (union-find). The thresholds travel with every row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations

import numpy as np
import pyarrow as pa

from vidgraph.storage.schemas import NEAR_DUPLICATE_PAIRS_SCHEMA, NEAR_DUPLICATES_SCHEMA

ASSET = "near_duplicates"
PAIRS_TABLE = "near_duplicate_pairs"
PARTITION = "all"  # one table for the whole dataset, in the store's ROOT/<asset>/<part>/ layout


@dataclass(frozen=True)
class NearDuplicateConfig:
    hash_size: int = 8  # phash side: 8 -> 64-bit hashes
    max_keyframes: int = 3  # first, middle and last keyframe of a clip
    max_hash_distance: int = 6  # Hamming bits (of 64) for a visual match
    visual_min_caption_sim: float = 0.5  # a visual match also needs captions this close (flat frames look alike)
    caption_only_sim: float = 0.95  # captions this close are duplicates without a visual match
    simhash_bits: int = 64
    simhash_max_distance: int = 11  # index radius for caption candidates (~cos 0.83 expected)
    bands: int = 4
    seed: int = 0  # SimHash hyperplanes

    def describe(self) -> dict:
        return asdict(self)


# -- perceptual hashes -------------------------------------------------------------------------


def phash64(image_bytes: bytes, hash_size: int = 8) -> int:
    """The perceptual hash of a JPEG/PNG as an unsigned int (``hash_size**2`` bits)."""
    import io

    import imagehash
    from PIL import Image

    with Image.open(io.BytesIO(image_bytes)) as im:
        h = imagehash.phash(im.convert("L"), hash_size=hash_size)
    return int(str(h), 16)


def pick_keyframes(n: int, k: int) -> list[int]:
    if n <= 0:
        return []
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)}) if k > 1 else [0]


# -- multi-index hashing -----------------------------------------------------------------------


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x.astype(np.uint64)).astype(np.int64)


def _flip_masks(width: int, r: int) -> list[int]:
    masks = [0]
    for k in range(1, r + 1):
        masks += [sum(1 << b for b in bits) for bits in combinations(range(width), k)]
    return masks


def mih_radius(max_distance: int, bands: int) -> int:
    """Per-band search radius that guarantees every pair within ``max_distance`` is a candidate."""
    return max(0, -(-(max_distance + 1) // bands) - 1)


def hamming_pairs(codes: np.ndarray, owners: np.ndarray, max_distance: int, bits: int = 64, bands: int = 4,
                  stats: dict | None = None) -> dict[tuple[int, int], int]:
    """(owner_a, owner_b) -> smallest Hamming distance <= ``max_distance`` between any of their codes.

    ``codes`` are unsigned ints of ``bits`` bits; ``owners`` says which item each code belongs to
    (a clip has several keyframes); pairs of one owner are ignored. Multi-index hashing: exact.
    """
    codes = np.asarray(codes, dtype=np.uint64)
    owners = np.asarray(owners, dtype=np.int64)
    n = len(codes)
    out: dict[tuple[int, int], int] = {}
    if n < 2:
        return out
    width = -(-bits // bands)
    r = mih_radius(max_distance, bands)
    masks = np.array(_flip_masks(width, r), dtype=np.uint64)
    candidates = 0
    for b in range(bands):
        shift = np.uint64(b * width)
        w = min(width, bits - b * width)
        sub = (codes >> shift) & np.uint64((1 << w) - 1)
        order = np.argsort(sub, kind="stable")
        keys = sub[order]
        for m in masks:
            if int(m) >> w:
                continue
            probe = sub ^ m
            lo = np.searchsorted(keys, probe, side="left")
            hi = np.searchsorted(keys, probe, side="right")
            cnt = hi - lo
            if not cnt.any():
                continue
            # Expand (query i, every code j in its bucket) without a Python loop.
            qi = np.repeat(np.arange(n), cnt)
            starts = np.repeat(lo, cnt)
            offs = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            cj = order[starts + offs]
            keep = qi < cj  # each unordered pair once per probe; self pairs dropped
            qi, cj = qi[keep], cj[keep]
            keep = owners[qi] != owners[cj]
            qi, cj = qi[keep], cj[keep]
            candidates += len(qi)
            if not len(qi):
                continue
            d = _popcount(codes[qi] ^ codes[cj])
            ok = d <= max_distance
            for a, c, dist in zip(owners[qi[ok]].tolist(), owners[cj[ok]].tolist(), d[ok].tolist()):
                key = (a, c) if a < c else (c, a)
                if dist < out.get(key, 1 << 30):
                    out[key] = dist
    if stats is not None:
        stats.update(candidates=candidates, radius=r, probes_per_band=len(masks), bands=bands)
    return out


def simhash(vectors: np.ndarray, bits: int = 64, seed: int = 0) -> np.ndarray:
    """Random-hyperplane signatures of unit vectors as uint64 (angle ~ Hamming distance)."""
    rng = np.random.default_rng(seed)
    planes = rng.standard_normal((vectors.shape[1], bits)).astype(np.float32)
    signs = (vectors @ planes) > 0
    weights = (np.uint64(1) << np.arange(bits, dtype=np.uint64))
    return (signs.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)


# -- grouping ----------------------------------------------------------------------------------


class UnionFind:
    def __init__(self, items: Iterable = ()):
        self.parent: dict = {}
        for x in items:
            self.parent.setdefault(x, x)

    def find(self, x):
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # The smaller key is the root: component names do not depend on the order of unions.
            if rb < ra:
                ra, rb = rb, ra
            self.parent[rb] = ra

    def groups(self) -> dict:
        out: dict = {}
        for x in self.parent:
            out.setdefault(self.find(x), []).append(x)
        return out


@dataclass
class DuplicateResult:
    clips: pa.Table  # one row per clip: clip_id, video_id, shard, group_id, group_size, hashes
    pairs: pa.Table  # one row per edge
    stats: dict


CLIPS_SCHEMA = NEAR_DUPLICATES_SCHEMA
PAIRS_SCHEMA = NEAR_DUPLICATE_PAIRS_SCHEMA


def find_near_duplicates(
    clips: Sequence[dict], keyframe_hashes: dict[str, list[int]], caption_vectors: np.ndarray,
    config: NearDuplicateConfig, embedder: dict | None = None,
) -> DuplicateResult:
    """``clips``: dicts with clip_id, video_id, shard (one per clip, aligned with ``caption_vectors``)."""
    n = len(clips)
    ids = [c["clip_id"] for c in clips]
    codes, owners = [], []
    for i, c in enumerate(clips):
        for h in keyframe_hashes.get(c["clip_id"], []):
            codes.append(h)
            owners.append(i)
    vstats: dict = {}
    visual = hamming_pairs(np.array(codes, dtype=np.uint64), np.array(owners), config.max_hash_distance,
                           bits=config.hash_size ** 2, bands=config.bands, stats=vstats)
    vecs = np.asarray(caption_vectors, dtype=np.float32).reshape(n, -1) if n else np.zeros((0, 1), np.float32)
    has_text = np.linalg.norm(vecs, axis=1) > 0 if n else np.zeros(0, bool)
    text_idx = np.flatnonzero(has_text)
    tstats: dict = {}
    text_cand = {}
    if len(text_idx) > 1:
        sig = simhash(vecs[text_idx], config.simhash_bits, config.seed)
        text_cand = hamming_pairs(sig, text_idx, config.simhash_max_distance, bits=config.simhash_bits,
                                  bands=config.bands, stats=tstats)

    def cos(a: int, b: int) -> float:
        return float(vecs[a] @ vecs[b]) if has_text[a] and has_text[b] else float("nan")

    edges = []
    for (a, b) in sorted(set(visual) | set(text_cand)):
        sim = cos(a, b)
        dist = visual.get((a, b))
        reason = ""
        if dist is not None and (np.isnan(sim) or sim >= config.visual_min_caption_sim):
            reason = "visual+caption" if not np.isnan(sim) else "visual"
        elif not np.isnan(sim) and sim >= config.caption_only_sim:
            reason = "caption"
        if reason:
            edges.append((a, b, dist, sim, reason))
    uf = UnionFind(ids)
    for a, b, *_ in edges:
        uf.union(ids[a], ids[b])
    groups = uf.groups()
    size = {m: len(ms) for ms in groups.values() for m in ms}
    params = json.dumps(config.describe(), sort_keys=True)
    emb = embedder or {}
    rows = [
        {
            "clip_id": c["clip_id"], "video_id": c["video_id"], "shard": c.get("shard", ""),
            "group_id": "dup-" + uf.find(c["clip_id"]), "group_size": size[c["clip_id"]],
            "phashes": [f"{h:016x}" for h in keyframe_hashes.get(c["clip_id"], [])],
            "embedder_model_id": emb.get("model", ""), "embedder_revision": emb.get("revision", ""), "params": params,
        }
        for c in clips
    ]
    pairs = [
        {"clip_a": ids[a], "clip_b": ids[b], "video_a": clips[a]["video_id"], "video_b": clips[b]["video_id"],
         "hash_distance": dist, "caption_sim": None if np.isnan(sim) else round(sim, 6), "reason": reason}
        for a, b, dist, sim, reason in edges
    ]
    stats = {
        "clips": n, "keyframe_hashes": len(codes), "visual_candidates": vstats.get("candidates", 0),
        "caption_candidates": tstats.get("candidates", 0), "edges": len(edges),
        "groups_with_duplicates": sum(1 for ms in groups.values() if len(ms) > 1),
        "all_pairs": n * (n - 1) // 2,
    }
    return DuplicateResult(pa.Table.from_pylist(rows, schema=CLIPS_SCHEMA), pa.Table.from_pylist(pairs, schema=PAIRS_SCHEMA), stats)


def build_near_duplicates(store, embedder, config: NearDuplicateConfig) -> DuplicateResult:
    """Every shard's merged captions and stored keyframes -> the duplicate tables, written atomically."""
    import pyarrow.parquet as pq

    from vidgraph.storage.catalog import read_all

    merged = read_all(store, "merged_captions")
    clips = merged.select([c for c in ("clip_id", "video_id", "shard", "merged_caption") if c in merged.column_names]).to_pylist() if merged is not None else []
    clips.sort(key=lambda c: c["clip_id"])
    wanted = {c["clip_id"] for c in clips}
    by_clip: dict[str, list[dict]] = {}
    for shard in sorted({c["shard"] for c in clips}):
        if not store.exists(store.table_path("long_takes", shard, "clip_keyframes")):
            continue
        for k in store.read_table("long_takes", shard, "clip_keyframes").to_pylist():
            if k["clip_id"] in wanted:
                by_clip.setdefault(k["clip_id"], []).append(k)
    hashes: dict[str, list[int]] = {}
    for cid, ks in by_clip.items():
        ks.sort(key=lambda k: k["keyframe_index"])
        hashes[cid] = [phash64(store.read_bytes(store.path(ks[i]["path"])), config.hash_size)
                       for i in pick_keyframes(len(ks), config.max_keyframes)]
    vectors = embedder.encode([c.get("merged_caption") or "" for c in clips]) if clips else np.zeros((0, 384), np.float32)
    result = find_near_duplicates(clips, hashes, vectors, config, embedder.describe())
    with store.staging_dir() as staging:
        pq.write_table(result.pairs, staging / f"{PAIRS_TABLE}.parquet")
        pq.write_table(result.clips, staging / f"{ASSET}.parquet")
        store.publish_shard(ASSET, PARTITION, staging)
    return result
