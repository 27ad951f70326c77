"""The landing scan at scale: a sensor-tick scan of N small landed files, before and after the scan index.

    python bench/landing_scan.py --files 80000 [--landing /tmp/landing80k] [--repeat 3]

Writes N files of 64 random bytes (8 per folder-shard, 800 per folder, mtimes an hour old) unless
the landing folder already holds them, then measures, median of ``--repeat``:

- ``full hash``: ``scan_landing`` without an index (every file read and hashed: the behaviour
  before the index, and what ``scan_index=False`` does);
- ``cold index``: the first scan with an empty index (hashes all, writes the index);
- ``warm index``: a tick with nothing new (stat only, no read, no write), in a process that
  parsed the index before (the daemon's code server), and ``index file parsed``: the same in a
  fresh process (the index file is read and parsed);
- ``warm + 1 new``: one new file landed (one file hashed, the index rewritten).

Wall and process CPU time are both printed: on a shared machine the CPU time is the steadier one.

The dataset root is a fresh folder outside the landing; the ledger is not read (its cost belongs to
the ledger index, measured by bench/scale.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vidgraph.ingest import scan_landing  # noqa: E402
import vidgraph.landing as landing_mod  # noqa: E402
from vidgraph.landing import LandingIndex  # noqa: E402
from vidgraph.storage.store import DatasetStore  # noqa: E402


def make_landing(root: Path, n: int) -> None:
    t = time.time() - 3600
    for s in range(n // 8):
        d = root / f"batch{s // 100:04d}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(8):
            p = d / f"v{s:05d}_{i}.mp4"
            p.write_bytes(os.urandom(64))
            os.utime(p, (t, t))


CPU: dict[str, float] = {}


def timed(fn, repeat: int, name: str = "") -> tuple[float, object]:
    """Median wall time (and, in CPU[name], median process CPU time: less sensitive to a shared machine)."""
    times, cpu, out = [], [], None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    CPU[name] = statistics.median(cpu)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=80_000)
    ap.add_argument("--landing", default=None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print("load at start:", os.getloadavg())
    landing = Path(args.landing or tempfile.mkdtemp(prefix="vidgraph-landing-"))
    if not any(landing.iterdir()) if landing.exists() else True:
        make_landing(landing, args.files)
    n = sum(1 for _ in landing.rglob("*.mp4"))
    rootdir = Path(tempfile.mkdtemp(prefix="vidgraph-root-"))
    store = DatasetStore(str(rootdir))
    kw = dict(min_age_s=30, exclude=(store.base,), max_bytes=None)

    full, scan = timed(lambda: scan_landing(landing, **kw), args.repeat, "full hash (no index)")
    assert len(scan.candidates) == n

    def cold():
        shutil.rmtree(rootdir / "_state", ignore_errors=True)
        return scan_landing(landing, index=LandingIndex.load(store), store=store, **kw)

    cold_s, _ = timed(cold, args.repeat, "cold index")
    warm_s, warm = timed(lambda: scan_landing(landing, index=LandingIndex.load(store), store=store, **kw), args.repeat,
                         "warm index, nothing new")
    assert warm.signature() == scan.signature()

    def fresh_load():  # as a new process would: the parsed index is not kept
        landing_mod._LOADED.clear()
        return scan_landing(landing, index=LandingIndex.load(store), store=store, **kw)

    fresh_s, _ = timed(fresh_load, args.repeat, "warm index, index file parsed")
    extra = landing / "batch0000" / "zz-new.mp4"
    # Time only the scan that sees the new file. Its ctime is "now": count it as settled (as a file
    # landed 30 s ago would be), so that it is remembered and the index rewritten, as in a real tick.
    landing_mod.RACY_S = 0.0
    times, cpu = [], []
    for _ in range(args.repeat):
        extra.write_bytes(os.urandom(64))
        t = time.time() - 3600
        os.utime(extra, (t, t))
        idx = LandingIndex.load(store)
        t0, c0 = time.perf_counter(), time.process_time()
        out = scan_landing(landing, index=idx, store=store, **kw)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        assert idx.hashed == 1 and len(out.candidates) == n + 1 and len(idx.entries) == n + 1  # written
        extra.unlink()
        scan_landing(landing, index=LandingIndex.load(store), store=store, **kw)
    new_s = statistics.median(times)
    CPU["warm index, 1 new file"] = statistics.median(cpu)
    print(f"files: {n}, cores: {os.cpu_count()}")
    for name, s in (("full hash (no index)", full), ("cold index", cold_s), ("warm index, nothing new", warm_s),
                    ("warm index, index file parsed", fresh_s), ("warm index, 1 new file", new_s)):
        print(f"{name:28s} wall {s:7.3f} s  cpu {CPU[name]:7.3f} s   {full / s:5.1f}x vs full hash (wall)")
    print("load at end:", os.getloadavg())
    shutil.rmtree(rootdir, ignore_errors=True)


if __name__ == "__main__":
    main()
