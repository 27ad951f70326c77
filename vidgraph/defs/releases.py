"""benchmark_split, gold_set and release_exports: one release (a `releases` partition) of every shard so far."""

import io
import tarfile
from collections import Counter

from dagster import (
    AssetSelection,
    define_asset_job,
    AllPartitionMapping,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from vidgraph.defs.metadata import failing_rows_result, md_table
from vidgraph.defs.near_duplicates import near_duplicates
from vidgraph.defs.partitions import STEP_RETRY, releases
from vidgraph.defs.resources import DatasetStoreResource, ReleaseSettings
from vidgraph.stages import releases as rel
from vidgraph.stages.benchmark_split import ASSET, GOLD_TABLE, SPLITS, leakage, moved_clips
from vidgraph.stages.release_exports import RELEASES_DIR

# A release reads every shard of its shard-partitioned upstreams.
_ALL = AllPartitionMapping()
SPLIT_DEPS = [
    AssetDep(near_duplicates),
    AssetDep(AssetKey("merged_captions"), partition_mapping=_ALL),
    AssetDep(AssetKey("audio_captions"), partition_mapping=_ALL),
]


def _ordered(context) -> list[str]:
    return list(context.instance.get_dynamic_partitions(releases.name))


@asset(partitions_def=releases, retry_policy=STEP_RETRY, group_name="release", deps=SPLIT_DEPS, code_version="1", kinds={"parquet"})
def benchmark_split(context: AssetExecutionContext, store: DatasetStoreResource, release_settings: ReleaseSettings) -> MaterializeResult:
    """Leak-free, stable train/validation/test split of a release, by source video and duplicate group, stratified."""
    st = store.get_store()
    release = context.partition_key
    build = rel.build_benchmark_split(st, release, release_settings.config(), _ordered(context))
    rows = build.result.rows
    if build.missing_near_duplicates:
        context.log.warning(f"{len(build.missing_near_duplicates)} clips are not in near_duplicates yet (materialize it first)")
    by_split = Counter(r["split"] for r in rows)
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            **{s: by_split[s] for s in (*SPLITS, "excluded")},
            "shards": MetadataValue.json(build.shards),
            "previous_release": build.previous or "",
            "moved_from_previous": len(moved_clips(rows, {r["clip_id"]: r for r in rel.read_split(st, build.previous)})),
            "assignment": MetadataValue.json(dict(Counter(r["assignment"] for r in rows))),
            "strata": md_table(build.result.report, limit=60),
            "bridging_clips_left_out": md_table(build.result.conflicts, limit=30),
            "clips_without_duplicate_row": len(build.missing_near_duplicates),
            "params": MetadataValue.json(release_settings.config().describe()),
            "location": MetadataValue.path(st.uri(ASSET, release)),
        }
    )


@asset_check(asset=benchmark_split, blocking=True, partitions_def=releases)
def no_leakage(context: AssetCheckExecutionContext, store: DatasetStoreResource) -> AssetCheckResult:
    """No source video and no near-duplicate group has clips in two splits."""
    st = store.get_store()
    rows = rel.read_split(st, context.partition_key)
    return failing_rows_result(leakage(rows, rel.duplicate_pairs(st)), clips=len(rows))


@asset_check(asset=benchmark_split, blocking=True, partitions_def=releases)
def no_clip_moved(context: AssetCheckExecutionContext, store: DatasetStoreResource) -> AssetCheckResult:
    """No clip of the previous release changed split in this one."""
    st = store.get_store()
    release = context.partition_key
    prev = rel.previous_release(st, release, list(context.instance.get_dynamic_partitions(releases.name)))
    previous = {r["clip_id"]: r for r in rel.read_split(st, prev)}
    rows = rel.read_split(st, release)
    return failing_rows_result(moved_clips(rows, previous), previous_release=prev or "", previous_clips=len(previous))


@asset_check(asset=benchmark_split, partitions_def=releases)
def split_shares_within_tolerance(
    context: AssetCheckExecutionContext, store: DatasetStoreResource, release_settings: ReleaseSettings
) -> AssetCheckResult:
    """Each split's share of the release is within the tolerance of its target (judged from min_clips_for_shares clips)."""
    rows = [r for r in rel.read_split(store.get_store(), context.partition_key) if r["split"] in SPLITS]
    c = Counter(r["split"] for r in rows)
    cfg = release_settings.config()
    shares = {s: round(c[s] / len(rows), 3) if rows else 0.0 for s in SPLITS}
    off = {s: shares[s] for i, s in enumerate(SPLITS) if abs(shares[s] - cfg.shares[i]) > cfg.share_tolerance}
    judged = len(rows) >= release_settings.min_clips_for_shares
    return AssetCheckResult(
        passed=not judged or not off,
        severity=AssetCheckSeverity.WARN,
        metadata={"clips": len(rows), "shares": MetadataValue.json(shares), "targets": MetadataValue.json(dict(zip(SPLITS, cfg.shares))),
                  "tolerance": cfg.share_tolerance, "out_of_tolerance": MetadataValue.json(off), "judged": judged},
    )


@asset(partitions_def=releases, retry_policy=STEP_RETRY, group_name="release",
       deps=[benchmark_split, AssetKey("gold_verdicts")], code_version="1", kinds={"parquet", "html"})
def gold_set(context: AssetExecutionContext, store: DatasetStoreResource, release_settings: ReleaseSettings) -> MaterializeResult:
    """Gold test clips across strata (verified ones frozen) and their review package: JSONL + HTML per batch."""
    st = store.get_store()
    release = context.partition_key
    gold, sizes = rel.build_gold_set(st, release, release_settings.config(), _ordered(context))
    pages = {b: MetadataValue.path(st.uri(RELEASES_DIR, release, "gold", f"{b}.html")) for b in sorted(sizes)[:10]}
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(gold),
            "configured_size": release_settings.gold_size,
            "verified": sum(g["verified"] for g in gold),
            "frozen": sum(bool(g["frozen_record"]) for g in gold),
            "new_in_release": sum(g["added_in_release"] == release for g in gold),
            "strata": MetadataValue.json(dict(Counter(g["stratum"] for g in gold))),
            "batches": MetadataValue.json(sizes),
            **{f"review_{b}": p for b, p in pages.items()},
            "location": MetadataValue.path(st.uri(GOLD_TABLE, release)),
        }
    )


@asset_check(asset=gold_set, partitions_def=releases)
def gold_set_at_configured_size(
    context: AssetCheckExecutionContext, store: DatasetStoreResource, release_settings: ReleaseSettings
) -> AssetCheckResult:
    """The gold set has its configured number of clips, all of them in the test split."""
    st = store.get_store()
    release = context.partition_key
    gold = rel.read_gold(st, release)
    test = {r["clip_id"] for r in rel.read_split(st, release) if r["split"] == "test"}
    outside = [{"clip_id": g["clip_id"], "problem": "not in test"} for g in gold if g["clip_id"] not in test]
    return AssetCheckResult(
        passed=len(gold) == release_settings.gold_size and not outside,
        severity=AssetCheckSeverity.WARN,
        metadata={"gold": len(gold), "configured_size": release_settings.gold_size, "test_clips": len(test),
                  "outside_test": md_table(outside)},
    )


@asset(partitions_def=releases, retry_policy=STEP_RETRY, group_name="release", deps=[benchmark_split, gold_set],
       code_version="1", kinds={"parquet", "webdataset"})
def release_exports(context: AssetExecutionContext, store: DatasetStoreResource, release_settings: ReleaseSettings) -> MaterializeResult:
    """The release as Parquet + JSONL, WebDataset tars, LVD-2M/MMTrail/VideoMind views and a dataset card with plots."""
    st = store.get_store()
    release = context.partition_key
    result = rel.build_release_exports(st, release, release_settings.wds_shard_size)
    for e in result.media_errors:
        context.log.warning(f"no media for {e['clip_id']}: {e['error']}")
    plots = {name: st.uri(path) for name, path in result.plots.items()}
    by_split = Counter(r["split"] for r in result.records)
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(result.records),
            **{f"{s}_clips": by_split[s] for s in SPLITS},
            "hours": round(sum(float(r.get("duration_s") or 0) for r in result.records) / 3600, 4),
            "wds_samples": MetadataValue.json(result.samples),
            "media_errors": md_table(result.media_errors),
            "files": MetadataValue.json({k: len(v) for k, v in result.files.items()}),
            "card": MetadataValue.path(st.uri(RELEASES_DIR, release, "DATASET_CARD.md")),
            # The plots are PNG files of the release, linked (and shown where the UI can read them).
            "plots": MetadataValue.md("\n\n".join(f"**{n}**\n\n![{n}]({u})" for n, u in plots.items())),
            **{f"plot_{n}": MetadataValue.path(u) for n, u in plots.items()},
            "location": MetadataValue.path(st.uri(RELEASES_DIR, release)),
        }
    )


@asset_check(asset=release_exports, partitions_def=releases)
def exported_media_exist_and_decode(
    context: AssetCheckExecutionContext, store: DatasetStoreResource, release_settings: ReleaseSettings
) -> AssetCheckResult:
    """Every exported record has its mp4 + json sample in a tar, and a sample of the mp4s decodes."""
    import av

    st = store.get_store()
    release = context.partition_key
    records = rel.release_records(st, release)
    # Member names of every tar (streamed from disk); only the sampled mp4s are read.
    samples: dict[str, dict[str, tuple[str, str]]] = {}
    for path in st.list_files(st.path(RELEASES_DIR, release, "wds")):
        with st.local_copy(path, suffix=".tar") as local, tarfile.open(local) as tar:
            for m in tar.getmembers():
                key, ext = m.name.split(".", 1)
                samples.setdefault(key, {})[ext] = (path, m.name)
    failures = [{"clip_id": r["clip_id"], "problem": "no sample in the tars"} for r in records if r["clip_id"] not in samples]
    failures += [{"clip_id": k, "problem": f"sample lacks {sorted({'mp4', 'json'} - set(v))}"}
                 for k, v in samples.items() if not {"mp4", "json"} <= set(v)]
    decoded = []
    for key in sorted(k for k, v in samples.items() if "mp4" in v)[: release_settings.decode_sample]:
        path, member = samples[key]["mp4"]
        try:
            with st.local_copy(path, suffix=".tar") as local, tarfile.open(local) as tar:
                data = tar.extractfile(member).read()
            with av.open(io.BytesIO(data)) as c:
                n = sum(1 for _ in c.decode(video=0))
            decoded.append({"clip_id": key, "frames": n})
            if n == 0:
                failures.append({"clip_id": key, "problem": "no video frame decoded"})
        except Exception as e:  # noqa: BLE001 - a broken file is what this check reports
            failures.append({"clip_id": key, "problem": f"decode failed: {type(e).__name__}: {e}"})
    return AssetCheckResult(
        passed=not failures,
        metadata={"records": len(records), "samples": len(samples), "failing_rows": len(failures),
                  "failures": md_table(failures, limit=50), "decoded": md_table(decoded)},
    )


# What a release reads across shards: the duplicate groups and the reviewers' verdicts.
release_inputs_job = define_asset_job(
    "release_inputs_job", selection=AssetSelection.assets(near_duplicates, AssetKey("gold_verdicts"))
)

# Everything of one release; the evaluations join it in vidgraph.defs.evaluations.
release_job = define_asset_job(
    "release_job",
    selection=AssetSelection.assets(benchmark_split, gold_set, release_exports)
    | AssetSelection.assets(AssetKey("retrieval_eval"), AssetKey("narration_eval")),
)
