"""Near-duplicate search at scale with synthetic perceptual hashes: multi-index hashing vs all pairs.

Every clip gets ``--keyframes`` random 64-bit hashes; ``--dup-frac`` of the clips are near copies
of another clip (each hash with 0..``--max-flip`` random bits flipped). The index must return
exactly the pairs within the threshold (checked against planted truth, and against brute force on
a subsample); all pairs is timed on a subsample and extrapolated (it grows with n^2).

    python bench/near_duplicates.py --clips 100000
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from vidgraph.stages.near_duplicates import hamming_pairs, mih_radius


def synthetic(n: int, k: int, dup_frac: float, max_flip: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**63, (n, k), dtype=np.uint64) | (rng.integers(0, 2, (n, k), dtype=np.uint64) << np.uint64(63))
    order = rng.permutation(n)
    dups, originals = order[: int(n * dup_frac)], order[int(n * dup_frac):]
    planted = {}
    for d in dups:
        src = int(rng.choice(originals))  # copies are made of originals only, so every planted pair stays intact
        flips = []
        for j in range(k):
            nb = int(rng.integers(0, max_flip + 1))
            mask = sum(1 << int(b) for b in rng.choice(64, nb, replace=False))
            codes[d, j] = codes[src, j] ^ np.uint64(mask)
            flips.append(nb)
        planted[(min(src, int(d)), max(src, int(d)))] = min(flips)
    owners = np.repeat(np.arange(n), k)
    return codes.reshape(-1), owners, planted


def brute(codes, owners, k_bits):
    out = {}
    for i in range(len(codes)):
        d = np.bitwise_count(codes[i] ^ codes[i + 1:]).astype(int)
        for j in np.flatnonzero(d <= k_bits):
            a, b = int(owners[i]), int(owners[i + 1 + j])
            if a != b:
                key = (min(a, b), max(a, b))
                out[key] = min(out.get(key, 99), int(d[j]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=100_000)
    ap.add_argument("--keyframes", type=int, default=3)
    ap.add_argument("--threshold", type=int, default=6)
    ap.add_argument("--bands", type=int, default=4)
    ap.add_argument("--dup-frac", type=float, default=0.05)
    ap.add_argument("--max-flip", type=int, default=8)
    ap.add_argument("--brute-sample", type=int, default=3000)
    args = ap.parse_args()

    load = os.getloadavg()
    codes, owners, planted = synthetic(args.clips, args.keyframes, args.dup_frac, args.max_flip)
    stats: dict = {}
    t, c = time.perf_counter(), time.process_time()
    found = hamming_pairs(codes, owners, args.threshold, bands=args.bands, stats=stats)
    t_index, c_index = time.perf_counter() - t, time.process_time() - c
    want = {p for p, d in planted.items() if d <= args.threshold}
    missed = want - set(found)
    # Brute force on a subsample: the same answer, and its time per pair to extrapolate.
    m = args.brute_sample
    sub = owners < m
    t = time.process_time()
    b = brute(codes[sub], owners[sub], args.threshold)
    t_brute = time.process_time() - t
    sub_found = {p: d for p, d in found.items() if p[1] < m}
    n_codes = len(codes)
    pairs_full = n_codes * (n_codes - 1) / 2
    pairs_sub = sub.sum() * (sub.sum() - 1) / 2
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"clips {args.clips}, keyframes/clip {args.keyframes}, hashes {n_codes}, threshold {args.threshold} bits, "
          f"bands {args.bands}, radius {mih_radius(args.threshold, args.bands)}, probes/band {stats['probes_per_band']}")
    print(f"index: {t_index:.2f} s wall, {c_index:.2f} s CPU, candidate pairs checked {stats['candidates']:,} "
          f"({stats['candidates'] / pairs_full:.2e} of all {pairs_full:,.0f} hash pairs), pairs found {len(found):,}")
    print(f"planted within threshold {len(want):,}, missed {len(missed)}")
    print(f"brute force on the first {m} clips: {t_brute:.2f} s CPU, same pairs as the index: {b == sub_found}; "
          f"all pairs at {args.clips} clips extrapolated: {t_brute * pairs_full / pairs_sub / 60:.0f} min CPU")


if __name__ == "__main__":
    main()
