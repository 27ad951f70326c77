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


def _ingest(args, instance=None):
    from vidgraph.ingest import ingest, ledger_shards
    from vidgraph.storage.store import DatasetStore

    store = DatasetStore(_root(args))
    result = ingest(args.landing, store, shard_size=args.shard_size)
    if instance is not None:
        # The ledger is the source of truth: add any of its shards the instance lacks.
        known = set(instance.get_dynamic_partitions("shards"))
        missing = [s for s in ledger_shards(store) if s not in known]
        if missing:
            instance.add_dynamic_partitions("shards", missing)
    return store, result


def cmd_ingest(args) -> int:
    instance = _instance() if os.environ.get("DAGSTER_HOME") else None
    _, result = _ingest(args, instance)
    print(json.dumps(result.summary(), indent=2))
    return 0


def cmd_run(args) -> int:
    from vidgraph.definitions import build_defs
    from vidgraph.defs.resources import build_resources
    from vidgraph.ingest import ledger_shards

    if args.profile:
        from vidgraph.models.profiles import PROFILE_ENV, UnknownProfileError, load_profile

        try:
            load_profile(args.profile, resolve=False)
        except UnknownProfileError as e:
            print(f"vidgraph: {e}", file=sys.stderr)
            return 2
        # Before the definitions load: the caption assets' code_version follows the profile.
        os.environ[PROFILE_ENV] = args.profile
    instance = _instance()
    store, result = _ingest(args, instance)
    if args.all_shards:
        todo = ledger_shards(store)
    elif args.shard:
        todo = args.shard
    else:
        todo = sorted(result.new_shards)
    defs = build_defs(
        build_resources(
            root=_root(args), landing=str(Path(args.landing).resolve()), shard_size=args.shard_size, profile=args.profile
        )
    )
    job = defs.resolve_job_def("process_shard")
    summary = {"ingest": result.summary(), "shards": {}}
    ok = True
    from vidgraph.progress import configure_cli_logging, iterate

    configure_cli_logging()
    for shard in iterate(todo, "shards"):
        run = job.execute_in_process(
            instance=instance,
            partition_key=shard,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": args.log_level}}}},
        )
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
        # A check whose asset was skipped (an upstream blocking check failed) did not run: it is
        # reported as such, not as failed; the check that blocked is the one marked FAILED. A
        # check of an asset that was materialized but has no result raised an error.
        for c in sorted(_planned_checks(instance, run.run_id) - set(checks)):
            checks[c] = "error" if c.split(":")[0] in assets else "not run"
        # A WARN-severity check flags something to look at; it does not fail the shard.
        shard_ok = run.success and all(v != "FAILED" for v in checks.values())
        ok &= shard_ok
        summary["shards"][shard] = {"success": shard_ok, "assets": assets, "checks": checks}
    summary["totals"] = _totals(store)
    print(json.dumps(summary, indent=2))
    return 0 if ok else 1


def _planned_checks(instance, run_id: str) -> set[str]:
    from dagster import DagsterEventType

    logs = instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED)
    return {f"{e.dagster_event.event_specific_data.asset_key.to_user_string()}:{e.dagster_event.event_specific_data.check_name}" for e in logs}


def _totals(store) -> dict:
    from vidgraph.storage.catalog import Catalog

    cat = Catalog(store)
    out = {}
    for view in sorted(cat.views):
        out[view] = cat.query(f'select count(*) as n from "{view}"')[0]["n"]
    cat.close()
    return out


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
        "--detector", default=None, choices=("vidgraph", "content", "adaptive"),
        help="vidgraph (hard cuts, dissolves, fades; motion-robust) | content | adaptive "
        "(PySceneDetect's ContentDetector / AdaptiveDetector); default: vidgraph",
    )
    s.add_argument("--threshold", type=float, default=None)
    s.add_argument("--min-scene-len", type=int, default=15)
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
        s.add_argument("--shard-size", type=int, default=int(os.environ.get("VIDGRAPH_SHARD_SIZE", "8")))
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

    s = with_root(sub.add_parser("query", help="SQL over the catalog (one view per asset)"))
    s.add_argument("sql")
    s.add_argument("--json", action="store_true", help="print rows as a JSON list of objects")
    s.set_defaults(func=cmd_query)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from vidgraph.quiet import quiet_cli

    quiet_cli(uses_dagster=args.command == "run" or (args.command == "ingest" and bool(os.environ.get("DAGSTER_HOME"))))
    if getattr(args, "detector", "x") is None:
        from vidgraph.media.shots import ShotDetectorConfig

        args.detector = ShotDetectorConfig().detector
    try:
        return args.func(args)
    except FileNotFoundError as e:
        print(f"vidgraph: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
