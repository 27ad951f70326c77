"""benchmark_split: a leak-free, stable train/validation/test split of a release, and its gold set.

* Leak-free by construction: the unit of assignment is a connected component of clips joined by
  source video and by near-duplicate edge (union-find), so a video or a duplicate group never
  spans two splits.
* Stable: a clip that was in the previous release keeps its split. A new component goes, in the
  order of a salted hash of its key, to the split furthest below its target share within its
  stratum (duration bucket x audio class), so strata stay balanced without moving anything.
  A component that joins clips already on different sides (a new clip bridging two old groups)
  keeps the old clips where they were and leaves the new bridging clips out (``excluded``).
* The gold set is drawn from the test split, spread across strata, and grows but never loses a
  clip; verified gold clips are frozen (their split and their exported content never change).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from vidgraph.stages.near_duplicates import UnionFind
from vidgraph.storage.schemas import BENCHMARK_SPLIT_SCHEMA, GOLD_SET_SCHEMA

ASSET = "benchmark_split"
GOLD_TABLE = "gold_set"
SPLITS = ("train", "validation", "test")
EXCLUDED = "excluded"


@dataclass(frozen=True)
class SplitConfig:
    salt: str = "vidgraph-v1"
    shares: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train, validation, test
    duration_edges_s: tuple[float, ...] = (15.0, 30.0, 60.0)  # bucket boundaries
    share_tolerance: float = 0.1
    gold_size: int = 1000  # MMTrail used 1,000 test clips; VideoMind 3,000
    gold_batch_size: int = 50

    def describe(self) -> dict:
        return asdict(self)


def duration_bucket(duration_s: float, edges: Sequence[float]) -> str:
    lo = 0.0
    for e in edges:
        if duration_s < e:
            return f"{lo:g}-{e:g}s"
        lo = e
    return f">={lo:g}s"


def stratum_of(row: dict, config: SplitConfig) -> str:
    return f"{duration_bucket(float(row.get('duration_s') or 0.0), config.duration_edges_s)}/{row.get('audio_class') or 'none'}"


def salted_hash(salt: str, key: str) -> str:
    return hashlib.sha256(f"{salt}\0{key}".encode()).hexdigest()


SPLIT_SCHEMA = BENCHMARK_SPLIT_SCHEMA
GOLD_SCHEMA = GOLD_SET_SCHEMA


@dataclass
class SplitResult:
    rows: list[dict]
    report: list[dict] = field(default_factory=list)  # per stratum x split counts
    conflicts: list[dict] = field(default_factory=list)


def assign_splits(
    release: str, clips: Sequence[dict], dup_pairs: Sequence[tuple[str, str]], group_of: dict[str, str],
    previous: dict[str, dict], config: SplitConfig, frozen: set[str] = frozenset(),
) -> SplitResult:
    """``clips``: clip_id, video_id, shard, duration_s, audio_class. ``previous``: clip_id -> the
    previous release's row (split, first_release). Returns one row per clip."""
    by_id = {c["clip_id"]: c for c in clips}
    uf = UnionFind(by_id)
    first_of_video: dict[str, str] = {}
    for cid in sorted(by_id):
        v = by_id[cid]["video_id"]
        if v in first_of_video:
            uf.union(first_of_video[v], cid)
        else:
            first_of_video[v] = cid
    for a, b in dup_pairs:
        if a in by_id and b in by_id:
            uf.union(a, b)
    components = uf.groups()
    strata = {cid: stratum_of(c, config) for cid, c in by_id.items()}
    # Running counts per stratum, seeded with the clips that keep their place.
    counts: dict[str, Counter] = defaultdict(Counter)
    split_of: dict[str, tuple[str, str]] = {}
    new_components = []
    conflicts = []
    for root, members in components.items():
        # A clip left out of an earlier release stays out: no clip ever changes side.
        for m in [m for m in members if previous.get(m, {}).get("split") == EXCLUDED]:
            split_of[m] = (EXCLUDED, "kept")
        members = [m for m in members if m not in split_of]
        if not members:
            continue
        old_sides = {previous[m]["split"] for m in members if m in previous and previous[m]["split"] in SPLITS}
        if not old_sides:
            new_components.append((root, members))
            continue
        if len(old_sides) == 1:
            side = old_sides.pop()
            for m in members:
                split_of[m] = (side, "kept" if m in previous else "joined")
        else:
            for m in members:
                if m in previous and previous[m]["split"] in SPLITS:
                    split_of[m] = (previous[m]["split"], "kept")
                else:
                    split_of[m] = (EXCLUDED, "bridge")
                    conflicts.append({"clip_id": m, "component": root, "sides": ",".join(sorted(old_sides))})
        for m in members:
            if split_of[m][0] in SPLITS:
                counts[strata[m]][split_of[m][0]] += 1
    # New components: in salted-hash order, each to the split most below its target.
    def key_of(members):
        return min(by_id[m]["video_id"] for m in members)

    new_components.sort(key=lambda rm: salted_hash(config.salt, key_of(rm[1])))
    overall = Counter()
    for c in counts.values():
        overall.update(c)
    for root, members in new_components:
        stratum = Counter(strata[m] for m in members).most_common(1)[0][0]
        c = counts[stratum]
        n_s, n = sum(c.values()) + len(members), sum(overall.values()) + len(members)
        # How far each split is below its target, relative to the target, within the stratum and
        # overall: small strata still fill every split in turn, large ones reach the shares inside.
        h = int(salted_hash(config.salt, key_of(members))[:8], 16)

        def deficit(share, count, total):
            return (share * total - count) / (share * total) if share > 0 else float("-inf")

        scores = [(deficit(config.shares[i], c[s], n_s) + deficit(config.shares[i], overall[s], n), -((h + i) % len(SPLITS)), s)
                  for i, s in enumerate(SPLITS)]
        side = max(scores)[2]
        for m in members:
            split_of[m] = (side, "hashed")
            counts[strata[m]][side] += 1
            overall[side] += 1
    params = json.dumps({k: v for k, v in config.describe().items() if k not in ("gold_size", "gold_batch_size")}, sort_keys=True)
    rows = []
    for cid in sorted(by_id):
        c = by_id[cid]
        side, how = split_of[cid]
        if cid in frozen and previous.get(cid, {}).get("split") in SPLITS:
            side, how = previous[cid]["split"], "kept"
        rows.append({
            "release": release, "clip_id": cid, "video_id": c["video_id"], "shard": c.get("shard", ""),
            "split": side, "component": "cmp-" + uf.find(cid), "group_id": group_of.get(cid, ""),
            "duration_s": float(c.get("duration_s") or 0.0),
            "duration_bucket": duration_bucket(float(c.get("duration_s") or 0.0), config.duration_edges_s),
            "audio_class": c.get("audio_class") or "none", "stratum": strata[cid], "assignment": how,
            "first_release": previous.get(cid, {}).get("first_release") or release,
            "frozen": cid in frozen, "params": params,
        })
    return SplitResult(rows, split_report(rows), conflicts)


def split_report(rows: Sequence[dict]) -> list[dict]:
    """Clips per stratum and split, with each split's share of the stratum."""
    table: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        table[r["stratum"]][r["split"]] += 1
        table["(all)"][r["split"]] += 1
    out = []
    for stratum in sorted(table, key=lambda s: (s != "(all)", s)):
        c = table[stratum]
        n = sum(c[s] for s in SPLITS)
        out.append({"stratum": stratum, "clips": n, **{s: c[s] for s in SPLITS}, EXCLUDED: c[EXCLUDED],
                    **{f"{s}_share": round(c[s] / n, 3) if n else 0.0 for s in SPLITS}})
    return out


def leakage(rows: Sequence[dict], dup_pairs: Sequence[tuple[str, str]]) -> list[dict]:
    """Videos, and components of duplicate edges among the kept clips, that span two splits."""
    kept = {r["clip_id"]: r for r in rows if r["split"] in SPLITS}
    out = []
    by_video: dict[str, set] = defaultdict(set)
    for r in kept.values():
        by_video[r["video_id"]].add(r["split"])
    out += [{"kind": "video", "key": v, "splits": ",".join(sorted(s))} for v, s in sorted(by_video.items()) if len(s) > 1]
    uf = UnionFind(kept)
    for a, b in dup_pairs:
        if a in kept and b in kept:
            uf.union(a, b)
    for root, members in sorted(uf.groups().items()):
        sides = {kept[m]["split"] for m in members}
        if len(sides) > 1:
            out.append({"kind": "duplicate_group", "key": root, "splits": ",".join(sorted(sides))})
    return out


def moved_clips(rows: Sequence[dict], previous: dict[str, dict]) -> list[dict]:
    """Clips of the previous release whose split changed (excluded clips count as a split too)."""
    return [
        {"clip_id": r["clip_id"], "was": previous[r["clip_id"]]["split"], "now": r["split"]}
        for r in rows
        if r["clip_id"] in previous and previous[r["clip_id"]]["split"] != r["split"]
    ]


def select_gold(
    release: str, rows: Sequence[dict], previous_gold: Sequence[dict], verdicts: dict[str, dict], config: SplitConfig,
) -> list[dict]:
    """The gold set: every earlier gold clip (verified ones frozen), topped up from the test split
    round-robin across strata (salted-hash order inside a stratum) to ``gold_size``."""
    test = {r["clip_id"]: r for r in rows if r["split"] == "test"}
    gold: dict[str, dict] = {}
    for g in previous_gold:
        v = verdicts.get(g["clip_id"])
        verified = bool(v and v["verdict"] in ("accept", "fix"))
        if g["clip_id"] in test or verified or g.get("verified"):
            gold[g["clip_id"]] = {**g, "release": release,
                                  "verified": verified or bool(g.get("verified")),
                                  "verdict": (v or {}).get("verdict", g.get("verdict") or ""),
                                  "reference_caption": (v or {}).get("reference_caption") or g.get("reference_caption") or ""}
    by_stratum: dict[str, list[dict]] = defaultdict(list)
    for r in test.values():
        if r["clip_id"] not in gold:
            by_stratum[r["stratum"]].append(r)
    for s in by_stratum:
        by_stratum[s].sort(key=lambda r: salted_hash(config.salt + ":gold", r["clip_id"]))
    new = []
    order = sorted(by_stratum)
    while len(gold) + len(new) < config.gold_size and any(by_stratum[s] for s in order):
        for s in order:
            if by_stratum[s] and len(gold) + len(new) < config.gold_size:
                new.append(by_stratum[s].pop(0))
    # New items go into fresh batches of this release, so earlier review packages stay as they were.
    for i, r in enumerate(new):
        v = verdicts.get(r["clip_id"])
        gold[r["clip_id"]] = {
            "release": release, "clip_id": r["clip_id"], "video_id": r["video_id"], "shard": r["shard"],
            "stratum": r["stratum"], "batch": f"{release}-b{i // max(1, config.gold_batch_size):03d}",
            "added_in_release": release, "verified": bool(v and v["verdict"] in ("accept", "fix")),
            "verdict": (v or {}).get("verdict", ""), "reference_caption": (v or {}).get("reference_caption", ""),
            "frozen_record": "",
        }
    return sorted(gold.values(), key=lambda g: g["clip_id"])
