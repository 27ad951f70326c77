"""Scale: what a sensor tick, a query and a run cost at 100 / 1,000 / 10,000 shards (issue 15).

    python bench/scale.py synth --shards 1000 --out /tmp/vg-1000
    python bench/scale.py measure --sizes 100,1000,10000 --repeats 3 --write
    python bench/scale.py measure --sizes 100,1000 --baseline-code /tmp/vg-baseline --write

``synth`` writes a dataset root in vidgraph's own formats (bench/scale_data.py): a landing folder
whose files' real sha256 are in a real ledger, every per-shard table copied from one real shard
(made once by ``vidgraph samples`` + ``vidgraph run`` on the sample videos and ../shared/media,
cached in bench/.cache/scale-template), ids rewritten per shard, the shard's media files as hard
links, and a DAGSTER_HOME (SQLite) with every shard as a dynamic partition.

``measure`` synthesizes a fresh root per size and per code under test, and measures each
operation in a child process whose PYTHONPATH is that code (``--code``, default this checkout;
``--baseline-code`` measures an older checkout in the same run, e.g. a
``git worktree add /tmp/vg-baseline 202bc1a``). ``--ops`` picks what to measure (ticks, queries,
run, s3), ``--synthesized DIR`` measures a root written beforehand by ``synth``; results are merged
per operation, so a partial run keeps the other numbers. Wall seconds and the child's peak RSS
(``os.wait4``'s ru_maxrss), medians of ``--repeats``. Entry points are stable names
(``vidgraph.defs.ingest_sensor.landing_sensor``, the ``vidgraph`` CLI); what a checkout lacks
(``vidgraph stats``) is reported as n/a. Results go to bench/scale_results.json; ``--write``
renders the "Scale" section of bench/README.md from it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import scale_data  # noqa: E402

CACHE = HERE / ".cache"
TEMPLATE = CACHE / "scale-template"
RESULTS = HERE / "scale_results.json"
README = HERE / "README.md"
PY = sys.executable
SHARED_MEDIA = REPO.parent / "shared" / "media"
# Real footage that joins the three sample videos in the template shard (8 videos, one shard).
TEMPLATE_VIDEOS = ("city_cc0.mpg", "cockatoo.mp4", "diver.mov", "vtest.avi", "wannaworktogether.mp4")

COUNT_SQL = "select count(*) as n from long_takes"
JOIN_SQL = ("select count(*) as clips, round(avg(length(f.caption)), 1) as caption_chars, "
            "round(avg(a.speech_share), 3) as speech from long_takes l join frame_captions f using (clip_id) "
            "join audio_captions a using (clip_id) where l.passed")

OPERATIONS = [  # key, label, issue's numbers (100, 1,000, 10,000), target at 10,000
    ("tick_nothing", "sensor tick, nothing new", ("0.16 s", "1.07 s", "9.7 s"), "< 1 s"),
    ("tick_new", "sensor tick, one new file", ("0.24 s", "1.63 s", "15.5 s"), "< 2 s"),
    ("tick_new_eval", "sensor tick, one new file, via `evaluate_tick`", ("", "", "20.7 s"), "< 2 s"),
    ("tick_nothing_warm", "sensor tick, nothing new, warm process (as the daemon's code server)", ("", "", ""), "< 1 s"),
    ("tick_new_warm", "sensor tick, one new file, warm process", ("", "", ""), "< 2 s"),
    ("query_count", "`vidgraph query` count (CLI)", ("1.7 s", "3.0 s", "19 s"), "< 3 s"),
    ("query_join", "`vidgraph query` 3-asset join (CLI)", ("1.9 s", "4.3 s", "31 s, 2.5 GB"), "< 5 s"),
    ("stats", "`vidgraph stats` (CLI)", ("", "", ""), "(new command)"),
    ("run_one", "`vidgraph run`, one new one-file shard", ("7.8 s", "17 s", "76 s, 5 GB"), "as at 100 shards"),
    ("s3_query_count", "S3: `vidgraph query` count (CLI, moto_server)", ("2,207 requests, 5.5 s", "22,012 requests, 73 s", "~220k requests"), "O(assets), not O(files)"),
    ("s3_catalog_open", "S3: `Catalog(store)` open, in process", ("", "", ""), "O(assets), not O(files)"),
]


# -- children -----------------------------------------------------------------------------------


def child_env(code: str, work: Path, extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIDGRAPH_", "DAGSTER_", "AWS_"))}
    env.update({
        "PYTHONPATH": str(code), "DAGSTER_HOME": str(work / "dagster_home"), "VIDGRAPH_ROOT": str(work / "root"),
        "VIDGRAPH_LANDING": str(work / "landing"), "VIDGRAPH_SETTLE_S": "0", "VIDGRAPH_PROFILE": "tiny",
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1",
    })
    env.update(extra or {})
    return env


def run_child(cmd: list[str], env: dict, cwd: Path, timeout: float = 3600) -> dict:
    """Run ``cmd``; wall seconds, peak RSS (MiB) of the child, rc, stdout, stderr tail."""
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err)
    deadline = time.time() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.time() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    return {"wall_s": wall, "rss_mib": usage.ru_maxrss / 1024, "rc": proc.returncode,
            "stdout": out.read().decode(errors="replace"), "stderr": err.read().decode(errors="replace")[-3000:]}


def _last_json(text: str):
    """The last JSON value printed on stdout (a run summary, a child's result)."""
    for i in [m.start() for m in re.finditer(r"^[\[{]", text, re.M)][::-1]:
        try:
            return json.loads(text[i:])
        except json.JSONDecodeError:
            continue
    return None


def child_tick(args) -> int:
    """(In a child whose PYTHONPATH is the code under test.) One landing_sensor tick."""
    t_start = time.perf_counter()
    from dagster import DagsterInstance, SensorResult, SkipReason, build_sensor_context

    import vidgraph
    from vidgraph.defs import ingest_sensor

    try:
        from vidgraph.definitions import defs
    except ImportError:
        from vidgraph.definitions import build_defs

        defs = build_defs()
    state = json.loads(Path(args.state).read_text()) if Path(args.state).exists() else {"cursor": None}
    instance = DagsterInstance.get()
    t_ready = time.perf_counter()
    # The sensor's resources as the code location defines them (from VIDGRAPH_* in the environment).
    sensor = ingest_sensor.landing_sensor
    resources = {k: v for k, v in (getattr(defs, "resources", None) or {}).items() if k in sensor.required_resource_keys}
    # evaluate_tick resolves run requests against the instance's partitions through the context's
    # instance_ref, as the daemon's context has one (the shards it adds count as known).
    ref = {"instance_ref": instance.get_ref()} if args.mode == "evaluate_tick" else {}
    if args.warm:  # the daemon's code server is a long-lived process: its modules (and whatever
        # the sensor keeps in memory) are loaded by earlier ticks; one unmeasured tick does that.
        warm_ctx = build_sensor_context(instance=instance, cursor=state["cursor"], definitions=defs, resources=resources)
        warm = sensor(warm_ctx)
        if isinstance(warm, SensorResult) and warm.cursor is not None:
            state["cursor"] = warm.cursor
        if args.add_file:  # the new file lands between the two ticks
            src, dest = args.add_file
            os.replace(src, dest)
    ctx = build_sensor_context(instance=instance, cursor=state["cursor"], definitions=defs, resources=resources, **ref)
    t0 = time.perf_counter()
    if args.mode == "evaluate_tick":
        from dagster import partition_loading_context

        with partition_loading_context(dynamic_partitions_store=instance):  # as the daemon provides it
            data = sensor.evaluate_tick(ctx)
        seconds = time.perf_counter() - t0
        cursor, skip = data.cursor, data.skip_message
        runs = [r.partition_key for r in data.run_requests or []]
        adds = [k for req in data.dynamic_partitions_requests or [] for k in getattr(req, "partition_keys", [])]
    else:
        res = sensor(ctx)
        seconds = time.perf_counter() - t0
        if isinstance(res, SkipReason):
            cursor, skip, runs, adds = state["cursor"], res.skip_message, [], []
        elif isinstance(res, SensorResult):
            cursor, skip = (res.cursor if res.cursor is not None else state["cursor"]), None
            runs = [r.partition_key for r in res.run_requests or []]
            adds = [k for req in res.dynamic_partitions_requests or [] for k in getattr(req, "partition_keys", [])]
        else:  # a list or generator of RunRequests
            cursor, skip, runs, adds = ctx.cursor, None, [r.partition_key for r in list(res or [])], []
    if args.apply:  # as the daemon does: add the partitions, keep the cursor
        if adds:
            instance.add_dynamic_partitions("shards", adds)
        Path(args.state).write_text(json.dumps({"cursor": cursor}))
    print(json.dumps({"tick_s": seconds, "setup_s": t_ready - t_start, "skip": skip, "run_requests": len(runs),
                      "new_partitions": adds, "vidgraph": vidgraph.__file__}))
    return 0


def child_catalog(args) -> int:
    """(In a child.) Open the catalog in process: ``Catalog(DatasetStore(root))``, then close."""
    from vidgraph.storage.catalog import Catalog
    from vidgraph.storage.store import DatasetStore

    t0 = time.perf_counter()
    cat = Catalog(DatasetStore(args.root))
    seconds = time.perf_counter() - t0
    views = sorted(getattr(cat, "views", {}) or {})
    cat.close()
    print(json.dumps({"open_s": seconds, "views": len(views)}))
    return 0


# -- S3 (moto_server) ---------------------------------------------------------------------------


class Moto:
    """A real moto_server on 127.0.0.1 whose access log (stderr) counts requests."""

    def __init__(self, log: Path):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.log = log
        self.url = f"http://127.0.0.1:{self.port}"
        exe = Path(PY).with_name("moto_server")
        self.proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
        import urllib.request

        for _ in range(200):
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=1)
                return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto_server did not start")

    def env(self) -> dict:
        return {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": "us-east-1"}

    def requests(self) -> list[str]:
        text = re.sub(r"\x1b\[[0-9;]*m", "", self.log.read_bytes().decode(errors="replace"))  # werkzeug colours some lines
        return re.findall(r'"(GET|HEAD|PUT|POST|DELETE) (\S+) HTTP', text)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def upload_root(moto: Moto, bucket: str, root: Path, media_per_shard: int | None, threads: int = 16) -> dict:
    """Upload ROOT to s3://bucket/root: every Parquet file, and ``media_per_shard`` media files per
    shard folder as empty objects (the keys are what listing costs; None: all of them)."""
    import boto3
    from botocore.config import Config
    from concurrent.futures import ThreadPoolExecutor

    s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing", config=Config(max_pool_connections=threads))
    s3.create_bucket(Bucket=bucket)
    jobs, media_seen = [], {}
    for dirpath, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":  # the local root's own caches (compacted catalog, scan index) stay local
            dirs[:] = [d for d in dirs if not d.startswith("_")]
        parts = rel_dir.split(os.sep)
        for f in files:
            key = "root/" + (f if rel_dir == "." else f"{rel_dir.replace(os.sep, '/')}/{f}")
            if f.endswith(".parquet") and len(parts) == 2:
                jobs.append((key, os.path.join(dirpath, f)))
            else:
                shard_dir = "/".join(parts[:2])
                n = media_seen.get(shard_dir, 0)
                if media_per_shard is None or n < media_per_shard:
                    media_seen[shard_dir] = n + 1
                    jobs.append((key, None))

    def put(job):
        key, path = job
        body = open(path, "rb").read() if path else b""
        s3.put_object(Bucket=bucket, Key=key, Body=body)

    t0 = time.time()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, jobs, chunksize=64))
    return {"objects": len(jobs), "media_objects": sum(media_seen.values()), "upload_s": round(time.time() - t0, 1)}


def _kinds(reqs: list[tuple[str, str]]) -> dict:
    out = {"list": 0, "head": 0, "get": 0, "other": 0}
    for method, path in reqs:
        if method == "GET" and ("list-type" in path or "prefix=" in path or "delimiter=" in path):
            out["list"] += 1
        elif method == "HEAD":
            out["head"] += 1
        elif method == "GET":
            out["get"] += 1
        else:
            out["other"] += 1
    return out


# -- measuring ----------------------------------------------------------------------------------


def _git(code: str, *args: str) -> str | None:
    try:
        return subprocess.run(["git", "-C", code, *args], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def code_label(code: str) -> dict:
    status = _git(code, "status", "--porcelain", "--", "vidgraph")
    dirty = None if status is None else bool(status)
    # The last commit that changed vidgraph/ names the code measured (bench/ commits on top do not).
    return {"path": str(code), "commit": _git(code, "log", "-1", "--format=%h", "--", "vidgraph"),
            "head": _git(code, "rev-parse", "--short", "HEAD"), "vidgraph_modified": dirty}


def _load(up: str) -> str:
    return up.split("load average:")[-1].strip()


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def new_video_bytes(base: bytes, tag: str) -> bytes:
    """A real video made distinct: an MP4 ``free`` box appended (players skip it)."""
    payload = f"vidgraph scale bench {tag} {uuid.uuid4().hex}".encode()
    return base + struct.pack(">I", 8 + len(payload)) + b"free" + payload


def ensure_template(code: str, rebuild: bool = False) -> Path:
    root = TEMPLATE / "root"
    if (root / scale_data.LEDGER).is_dir() and not rebuild:
        return root
    videos = [SHARED_MEDIA / v for v in TEMPLATE_VIDEOS if (SHARED_MEDIA / v).exists()]
    print(f"building the template shard with {code} (samples + {len(videos)} real videos) ...", flush=True)
    return scale_data.build_template(TEMPLATE, PY, code, videos)


def tiny_video(code: str) -> bytes:
    """The smallest sample video of the template's landing folder (or written now)."""
    landing = TEMPLATE / "landing"
    mp4 = sorted((p for p in landing.glob("sample_*.mp4")), key=lambda p: p.stat().st_size) if landing.is_dir() else []
    if not mp4:
        d = CACHE / "samples"
        subprocess.run([PY, "-m", "vidgraph.cli", "samples", str(d)], env={**os.environ, "PYTHONPATH": code}, check=True,
                       stdout=subprocess.DEVNULL)
        mp4 = sorted(d.glob("*.mp4"), key=lambda p: p.stat().st_size)
    return mp4[0].read_bytes()


def summarize(samples: list[dict], key: str = "wall_s") -> dict:
    ok = [s for s in samples if s.get("rc", 0) == 0]
    if not ok:
        return {"n/a": True, "why": (samples[-1].get("why") or samples[-1].get("stderr", "")[-400:]) if samples else "not run"}
    out = {"seconds": statistics.median(s[key] for s in ok), "rss_mib": statistics.median(s["rss_mib"] for s in ok),
           "all_seconds": [round(s[key], 3) for s in ok], "repeats": len(ok)}
    for extra in ("requests", "kinds", "wall_s", "answer", "shards_run", "skip", "run_requests"):
        vals = [s[extra] for s in ok if extra in s]
        if vals:
            out[extra] = statistics.median(vals) if isinstance(vals[0], (int, float)) else vals[-1]
    return out


def measure_one(code: str, size: int, repeats: int, work: Path, args, log) -> dict:
    """Every operation at one size for one checkout; returns {operation: summary}."""
    res: dict = {"code": code_label(code), "uptime_start": uptime()}
    tpl = ensure_template(code)
    if args.synthesized:  # written beforehand by `synth` (it is changed by the measures)
        manifest = json.loads((work / "synth.json").read_text())
        if manifest["shards"] != size:
            raise SystemExit(f"{work} holds {manifest['shards']} shards, not {size}")
    else:
        log(f"[{size}] synthesizing into {work} ...")
        manifest = scale_data.synthesize(tpl, work, size, media=args.media, workers=args.workers, python=PY)
    res["synth"] = {k: manifest[k] for k in ("seconds", "seconds_files", "landing_files", "media_per_shard",
                                             "tables_per_shard", "videos_per_shard")}
    log(f"[{size}] synthesized in {manifest['seconds']} s")
    env = child_env(code, work)
    cli = [PY, "-m", "vidgraph.cli"]
    me = [PY, str(Path(__file__).resolve())]
    state = work / "sensor-state.json"
    landing = work / "landing" / "new"
    landing.mkdir(exist_ok=True)
    video = tiny_video(code)
    counter = iter(range(10**6))

    def add_new_file(staged: bool = False) -> tuple[str, str] | None:
        p = landing / f"new-{next(counter):03d}.mp4"
        while p.exists():  # a root measured before (--synthesized): never rewrite an ingested file
            p = landing / f"new-{next(counter):03d}.mp4"
        # staged: written beside the landing, moved in by the tick's child after its warm-up tick
        target = work / f".staged-{p.name}" if staged else p
        target.write_bytes(new_video_bytes(video, p.name))
        old = time.time() - 3600  # settled
        os.utime(target, (old, old))
        return (str(target), str(p)) if staged else None

    for cmd in args.prepare or []:
        r = run_child(cli + cmd.split(), env, work)
        res.setdefault("prepare", []).append({"cmd": cmd, "rc": r["rc"], "wall_s": round(r["wall_s"], 2)})

    def tick(mode: str, warm: bool = False, add_file: tuple[str, str] | None = None) -> dict:
        extra = (["--warm"] if warm else []) + (["--add-file", *add_file] if add_file else [])
        r = run_child(me + ["_tick", "--mode", mode, "--state", str(state), "--apply"] + extra, env, work)
        out = _last_json(r["stdout"]) if r["rc"] == 0 else None
        if out is None:
            return {**r, "rc": r["rc"] or 1}
        return {**r, **out}

    ops = set(args.ops.split(","))
    # A first tick (cursor unset: it scans and ingests nothing new), as the daemon's first tick.
    first = tick("direct")
    res["first_tick"] = {"seconds": first.get("tick_s"), "rss_mib": first["rss_mib"], "rc": first["rc"],
                         "run_requests": first.get("run_requests"), "skip": first.get("skip"),
                         "vidgraph": first.get("vidgraph"), "stderr": first["stderr"][-400:] if first["rc"] else ""}
    log(f"[{size}] first tick {res['first_tick']}")
    if "ticks" in ops:
        measure_ticks(res, tick, add_new_file, repeats, size, log)
    if "run" in ops:
        measure_warmup(res, run_child, cli, work, env, size, log)
    if "queries" in ops:
        measure_queries(res, cli, env, work, repeats, size, log)
    if "run" in ops:
        measure_runs(res, cli, env, work, args.run_repeats or repeats, size, log, add_new_file)
    if "s3" in ops and size <= args.s3_max:
        res.update(measure_s3(code, work, args.s3_repeats or repeats, args, log, size))
    res["uptime_end"] = uptime()
    return res


def measure_ticks(res, tick, add_new_file, repeats, size, log):
    res["tick_nothing"] = summarize([tick("direct") for _ in range(repeats)], "tick_s")
    log(f"[{size}] tick_nothing {res['tick_nothing'].get('all_seconds')}")
    for key, mode in (("tick_new", "direct"), ("tick_new_eval", "evaluate_tick")):
        samples = []
        for _ in range(repeats):
            add_new_file()
            samples.append(tick(mode))
        res[key] = summarize(samples, "tick_s")
        log(f"[{size}] {key} {res[key].get('all_seconds')}")
    res["tick_nothing_warm"] = summarize([tick("direct", warm=True) for _ in range(repeats)], "tick_s")
    log(f"[{size}] tick_nothing_warm {res['tick_nothing_warm'].get('all_seconds')}")
    res["tick_new_warm"] = summarize([tick("direct", warm=True, add_file=add_new_file(staged=True)) for _ in range(repeats)], "tick_s")
    log(f"[{size}] tick_new_warm {res['tick_new_warm'].get('all_seconds')}")


def measure_warmup(res, run_child, cli, work, env, size, log):
    # The ticks' shards were requested, not run: one unmeasured run carries them (as the daemon
    # would), so that each measured run below has exactly one new shard.
    warm = run_child(cli + ["run", str(work / "landing"), "--settle-s", "0"], env, work)
    summary = _last_json(warm["stdout"]) or {}
    res["warmup_run"] = {"wall_s": round(warm["wall_s"], 2), "rc": warm["rc"], "shards": len(summary.get("shards", {}))}
    log(f"[{size}] warm-up run {res['warmup_run']}")


def measure_queries(res, cli, env, work, repeats, size, log):
    def query(sql: str, root: str | None = None, extra_env: dict | None = None) -> dict:
        r = run_child(cli + ["query", sql, "--json"] + (["--root", root] if root else []), {**env, **(extra_env or {})}, work)
        rows = _last_json(r["stdout"]) if r["rc"] == 0 else None
        return {**r, "answer": rows[0] if rows else None}

    res["query_count"] = summarize([query(COUNT_SQL) for _ in range(repeats)])
    res["query_join"] = summarize([query(JOIN_SQL) for _ in range(repeats)])
    log(f"[{size}] queries {res['query_count'].get('all_seconds')} {res['query_join'].get('all_seconds')}")
    probe = run_child(cli + ["stats", "--help"], env, work)
    if probe["rc"] == 0:
        res["stats"] = summarize([run_child(cli + ["stats"], env, work) for _ in range(repeats)])
    else:
        res["stats"] = {"n/a": True, "why": "no `vidgraph stats` command in this checkout"}


def measure_runs(res, cli, env, work, repeats, size, log, add_new_file):
    samples = []
    for _ in range(repeats):
        add_new_file()
        r = run_child(cli + ["run", str(work / "landing"), "--settle-s", "0"], env, work)
        summary = _last_json(r["stdout"]) or {}
        shards = summary.get("shards", {})
        r["shards_run"] = len(shards)
        if r["rc"] == 0 and len(shards) != 1:
            r["rc"], r["why"] = 1, f"expected one shard to run, got {len(shards)}"
        samples.append(r)
    res["run_one"] = summarize(samples)
    log(f"[{size}] run_one {res['run_one'].get('all_seconds')}")


def measure_s3(code: str, work: Path, repeats: int, args, log, size: int) -> dict:
    moto = Moto(work / "moto.log")
    out: dict = {}
    try:
        bucket = f"scale-{uuid.uuid4().hex[:8]}"
        media = None if args.s3_media == "all" else int(args.s3_media)
        up = upload_root(moto, bucket, work / "root", media)
        out["s3_upload"] = up
        log(f"[{size}] S3 upload {up}")
        env = child_env(code, work, moto.env())
        uri = f"s3://{bucket}/root"

        def counted(cmd: list[str]) -> dict:
            before = len(moto.requests())
            r = run_child(cmd, env, work)
            reqs = moto.requests()[before:]
            r["requests"] = len(reqs)
            r["kinds"] = _kinds(reqs)
            if r["rc"] == 0 and cmd[-1] != "--json":
                o = _last_json(r["stdout"]) or {}
                r["open_s"] = o.get("open_s", r["wall_s"])
            return r

        cli = [PY, "-m", "vidgraph.cli"]
        if args.s3_compact:  # the steady state: the catalog's compacted files written once, on S3
            c = counted(cli + ["stats", "--compact", "--root", uri, "--json"])
            out["s3_compact"] = {"requests": c["requests"], "wall_s": round(c["wall_s"], 2), "rc": c["rc"]}
            log(f"[{size}] S3 compaction {out['s3_compact']}")
        out["s3_query_count"] = summarize([counted(cli + ["query", COUNT_SQL, "--root", uri, "--json"]) for _ in range(repeats)])
        out["s3_catalog_open"] = summarize(
            [counted([PY, str(Path(__file__).resolve()), "_catalog", "--root", uri]) for _ in range(repeats)], "open_s")
        log(f"[{size}] S3 {out['s3_query_count'].get('requests')} requests, {out['s3_query_count'].get('all_seconds')} s")
    finally:
        moto.stop()
    return out


def cmd_measure(args) -> int:
    sizes = [int(s) for s in args.sizes.split(",")]
    roles = []
    if args.baseline_code and args.only in ("both", "baseline"):
        roles.append(("baseline", str(Path(args.baseline_code).resolve())))
    if args.only in ("both", "current"):
        roles.append(("current", str(Path(args.code).resolve())))
    if args.synthesized and (len(roles) != 1 or len(sizes) != 1):
        raise SystemExit("--synthesized measures one size for one checkout (--only baseline or --only current)")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    work_base = Path(args.work)
    work_base.mkdir(parents=True, exist_ok=True)

    def log(msg):
        print(time.strftime("%H:%M:%S"), msg, flush=True)

    log(f"uptime at start: {uptime()}")
    for size in sizes:
        for role, code in roles:
            work = Path(args.synthesized).resolve() if args.synthesized else work_base / f"{role}-{size}"
            if work.exists() and not args.synthesized:
                shutil.rmtree(work)
            t0 = time.time()
            try:
                r = measure_one(code, size, args.repeats, work, args, log)
            finally:
                if not args.keep and not args.synthesized:
                    shutil.rmtree(work, ignore_errors=True)
            r["total_s"] = round(time.time() - t0, 1)
            r["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            r["repeats"] = args.repeats
            # Merged per operation: a later run of some operations keeps the others' numbers.
            entry = results.setdefault(role, {}).setdefault(str(size), {})
            runs = entry.get("runs", [])
            runs.append({"date": r["date"], "ops": args.ops, "total_s": r["total_s"], "code": r["code"],
                         "load_start": _load(r["uptime_start"]), "load_end": _load(r["uptime_end"])})
            entry.update(r)
            entry["runs"] = runs
            RESULTS.write_text(json.dumps(results, indent=1, default=str) + "\n")
            log(f"[{size}] {role} done in {r['total_s']} s")
    log(f"uptime at end: {uptime()}")
    if args.write:
        write_readme(results)
    return 0


# -- the README section -------------------------------------------------------------------------


def _cell(r: dict | None, key: str) -> str:
    if not r or key not in r:
        return ""
    m = r[key]
    if m.get("n/a"):
        return "n/a"
    s = m["seconds"]
    text = f"{s:.2f} s" if s < 10 else f"{s:.1f} s"
    if "requests" in m:
        text = f"{int(m['requests']):,} req, {text}"
    return f"{text}, {m['rss_mib']:.0f} MiB"


def render(results: dict) -> str:
    base, cur = results.get("baseline", {}), results.get("current", {})
    sizes = sorted({int(s) for part in (base, cur) for s in part})
    any_r = next((r for part in (base, cur) for r in part.values()), {})
    lines = ["## Scale", "",
             "`bench/scale.py` (issue 15) synthesizes dataset roots of 100 / 1,000 / 10,000 shards in vidgraph's own "
             "formats and times the operations whose cost should not grow with the dataset, each in a fresh child "
             "process whose `PYTHONPATH` is the checkout under test: wall seconds and the child's peak RSS "
             "(`wait4`'s `ru_maxrss`), medians of the repeats.", "",
             "- The synthetic root (`bench/scale_data.py`): one real shard is made once by the real pipeline "
             "(`vidgraph samples` + `vidgraph run`, tiny profile) on the 3 sample videos and 5 files of `../shared/media` "
             "(8 videos, 20 clips: 15 Parquet tables and 403 media files); each synthetic shard copies every table of it "
             "with the shard name, sha256, video_id (hence clip_id and media paths) and landing paths rewritten, "
             "hard-links its 403 media files at their rewritten paths, and has 8 landing files (1 KiB each, distinct "
             "bytes, never decoded) whose real sha256 are in its ledger. Every shard is a dynamic partition of a SQLite "
             "DAGSTER_HOME.",
             "- Sensor ticks: `landing_sensor` called with `build_sensor_context(instance, cursor, definitions)` (and "
             "through `evaluate_tick`); the time is the call alone (imports and definitions excluded), the RSS the child's. "
             "A first tick (cursor unset) runs before; after each tick its partitions are added to the instance and its "
             "cursor kept, as the daemon does. A new file is a real sample video (175 KB) made distinct by an MP4 `free` box. "
             "Each tick runs in a fresh process, so it pays the first use of everything the sensor imports lazily "
             "(pyarrow.dataset pulls in pandas, about 1 s here) and the parse of the scan index; the *warm* rows run "
             "one unmeasured tick first in the same process (and, for a new file, move it into the landing between the "
             "two), as the daemon's code server, a long-lived process, evaluates every tick after its first.",
             "- CLI rows time the whole `python -m vidgraph.cli ...` process. Count: `" + COUNT_SQL + "`; join: `"
             + JOIN_SQL + "`.",
             "- `vidgraph run`: one new file in the landing folder, the whole command (ingest, the shard's run, the "
             "summary). One unmeasured run first carries the shards the sensor ticks requested.",
             "- S3: the root uploaded to a real `moto_server` (every Parquet file; media as empty objects, how many per "
             "shard folder is given below); requests counted in its access log.", ""]
    for role, part in (("previous code", base), ("current code", cur)):
        for size in sorted(part, key=int):
            r = part[size]
            s3 = r.get("s3_upload")
            runs = r.get("runs") or [{"date": r.get("date"), "ops": "all", "total_s": r.get("total_s"), "code": r.get("code", {}),
                                      "load_start": _load(r.get("uptime_start", "")), "load_end": _load(r.get("uptime_end", ""))}]
            parts = []
            for run in runs:
                c = run.get("code") or {}
                parts.append(f"{run['date']}, {run['ops']}: vidgraph/ of `{c.get('commit')}`"
                             f"{' (modified)' if c.get('vidgraph_modified') else ''}, {run['total_s']} s, "
                             f"1-min load {run['load_start'].split(',')[0]} at the start, {run['load_end'].split(',')[0]} at the end")
            lines.append(f"- {role}, {int(size):,} shards ({r.get('repeats')} repeats; synthesis {r.get('synth', {}).get('seconds')} s"
                         + (f"; S3: {s3['objects']:,} objects of which {s3['media_objects']:,} media, uploaded in {s3['upload_s']} s" if s3 else "; S3: not measured at this size")
                         + "): " + "; ".join(parts) + ".")
    for note in results.get("notes", []):
        lines.append(f"- {note}")
    lines += ["", "Machine: x86_64, 2 CPU cores shared with other engineers' work (1-min load averages above), "
              "Python 3.11, local disk. Cells: median seconds, peak RSS of the child (S3: requests to moto_server too).", ""]
    head = ["operation"]
    for size in sizes:
        head += [f"{size:,}: previous", f"{size:,}: current"]
    head += ["issue (previous, at 100 / 1,000 / 10,000)", "target at 10,000"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for key, label, issue, target in OPERATIONS:
        row = [label]
        for size in sizes:
            row += [_cell(base.get(str(size)), key), _cell(cur.get(str(size)), key)]
        row += [" / ".join(x or "-" for x in issue), target]
        lines.append("| " + " | ".join(row) + " |")
    firsts = []
    for role, part in (("previous", base), ("current", cur)):
        for size in sorted(part, key=int):
            f, w = part[size].get("first_tick") or {}, part[size].get("warmup_run") or {}
            if f.get("seconds") is not None:
                firsts.append(f"{role} at {int(size):,}: first tick {f['seconds']:.2f} s, warm-up run of "
                              f"{w.get('shards')} shards {w.get('wall_s')} s"
                              + (f", S3 compaction (`vidgraph stats --compact` on the uploaded root) {part[size]['s3_compact']['requests']:,} "
                                 f"requests, {part[size]['s3_compact']['wall_s']} s" if part[size].get("s3_compact") else ""))
    if firsts:
        lines += ["", "Not in the table (done once, before the measured repeats): " + "; ".join(firsts) + "."]
    lines += ["", "To measure a checkout against the previous code in the same run (the table's two columns), or only "
              "the current code (the previous column then keeps the numbers recorded in `bench/scale_results.json`):", "",
              "```bash", "git worktree add /tmp/vg-baseline 202bc1a   # the previous code path",
              "python bench/scale.py measure --sizes 100,1000 --repeats 3 --baseline-code /tmp/vg-baseline --write",
              "python bench/scale.py measure --sizes 10000 --repeats 3 --only current --write",
              "# a root written beforehand (`synth`), and a subset of the operations:",
              "python bench/scale.py synth --shards 10000 --out /tmp/vg-10000",
              "python bench/scale.py measure --sizes 10000 --only current --synthesized /tmp/vg-10000 --ops ticks,queries --write",
              "```", ""]
    return "\n".join(lines)


def write_readme(results: dict) -> None:
    text = README.read_text()
    section = render(results)
    m = re.search(r"^## Scale\n.*?(?=^## |\Z)", text, re.M | re.S)
    text = text[:m.start()] + section + "\n" + text[m.end():] if m else text.rstrip("\n") + "\n\n" + section
    README.write_text(text.rstrip("\n") + "\n")


# -- main ---------------------------------------------------------------------------------------


def cmd_synth(args) -> int:
    tpl = ensure_template(args.code, args.rebuild_template)
    m = scale_data.synthesize(tpl, args.out, args.shards, media=args.media, workers=args.workers,
                              dagster_home=not args.no_dagster_home, python=PY)
    print(json.dumps(m, indent=2))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp):
        sp.add_argument("--code", default=str(REPO), help="checkout under test (its vidgraph/ goes on PYTHONPATH)")
        sp.add_argument("--media", default="all", help="media files per synthetic shard: all (default), none, or a number")
        sp.add_argument("--workers", type=int, default=2, help="processes writing shards (default 2)")

    s = sub.add_parser("synth", help="write a synthetic dataset root")
    common(s)
    s.add_argument("--shards", type=int, required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--rebuild-template", action="store_true")
    s.add_argument("--no-dagster-home", action="store_true")
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser("measure", help="measure every operation at each size")
    common(s)
    s.add_argument("--sizes", default="100,1000,10000")
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--baseline-code", default=None, help="an older checkout measured in the same run")
    s.add_argument("--only", choices=("both", "baseline", "current"), default="both")
    s.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "vidgraph-scale"))
    s.add_argument("--keep", action="store_true", help="keep the synthetic roots")
    s.add_argument("--synthesized", default=None,
                   help="measure this root written by `synth` instead of synthesizing (one size, one checkout)")
    s.add_argument("--s3-max", type=int, default=1000, help="largest size measured on S3 (default 1000)")
    s.add_argument("--s3-media", default="10", help="media objects uploaded per shard folder: a number or all (default 10)")
    s.add_argument("--prepare", action="append", help="a vidgraph CLI command run once, unmeasured, before the measures (e.g. 'stats')")
    s.add_argument("--run-repeats", type=int, default=None, help="repeats of `vidgraph run` (default --repeats)")
    s.add_argument("--s3-repeats", type=int, default=None, help="repeats of the S3 measures (default --repeats)")
    s.add_argument("--s3-compact", action="store_true",
                   help="run `vidgraph stats --compact` on the S3 root once before its measures (code with compaction)")
    s.add_argument("--ops", default="ticks,queries,run,s3", help="what to measure (default ticks,queries,run,s3)")
    s.add_argument("--write", action="store_true", help="render the Scale section of bench/README.md")
    s.set_defaults(func=cmd_measure)

    s = sub.add_parser("readme", help="render the Scale section from bench/scale_results.json")
    s.set_defaults(func=lambda a: write_readme(json.loads(RESULTS.read_text())) or 0)

    s = sub.add_parser("_tick")
    s.add_argument("--mode", choices=("direct", "evaluate_tick"), default="direct")
    s.add_argument("--state", required=True)
    s.add_argument("--apply", action="store_true")
    s.add_argument("--warm", action="store_true", help="one unmeasured tick in the same process first")
    s.add_argument("--add-file", nargs=2, metavar=("SRC", "DEST"), help="a file moved into the landing after the warm-up tick")
    s.set_defaults(func=child_tick)
    s = sub.add_parser("_catalog")
    s.add_argument("--root", required=True)
    s.set_defaults(func=child_catalog)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
