"""audio_captions: timeline (speech, music, silence), transcript and captions of every passing long take."""

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from vidgraph.captions.audio_captions import timeline_tiles
from vidgraph.defs.executors import GPU_OP_TAGS
from vidgraph.defs.long_takes import long_takes
from vidgraph.defs.guards import require_ingested
from vidgraph.defs.metadata import failing_rows_result, image_file, md_table, timelines_png
from vidgraph.defs.partitions import STEP_RETRY, shards
from vidgraph.defs.resources import AudioSettings, DatasetStoreResource
from vidgraph.defs.versions import audio_captions_version
from vidgraph.models.resources import AudioTaggerResource, ChatModelResource, SpeechRecognizerResource
from vidgraph.stages.audio_captions import ASSET, AudioModels, build_audio_captions


@asset(
    partitions_def=shards,
    retry_policy=STEP_RETRY,
    group_name="captions",
    deps=[long_takes],
    code_version=audio_captions_version(),
    op_tags=GPU_OP_TAGS,
    pool="gpu",  # the tagger and a large Whisper share the GPU with the caption models
    kinds={"pytorch", "parquet"},
)
def audio_captions(
    context: AssetExecutionContext,
    store: DatasetStoreResource,
    asr: SpeechRecognizerResource,
    audio_tagger: AudioTaggerResource,
    llm: ChatModelResource,
    audio_settings: AudioSettings,
) -> MaterializeResult:
    """Speech/music/silence timeline, gated ASR transcript, music and audio captions per long take."""
    from vidgraph.models.vad import SileroVAD

    st = store.get_store()
    shard = context.partition_key
    require_ingested(st, shard, "long_takes")
    profile = audio_settings.load()
    models = AudioModels(SileroVAD(), audio_tagger.get_tagger(), asr.get_recognizer(), llm.get_model())
    result = build_audio_captions(st, shard, models, profile.generation, audio_settings.config())
    rows = result.table.to_pylist()
    for r in rows:
        if r["audio_error"] or r["error"]:
            context.log.warning(f"audio on {r['clip_id']}: {r['audio_error'] or r['error']}")
    classes: dict[str, int] = {}
    for r in rows:
        classes[r["audio_class"]] = classes.get(r["audio_class"], 0) + 1
    preview = [{"clip_id": r["clip_id"], "class": r["audio_class"], "speech": r["speech_share"],
                "music": r["music_share"], "transcript": r["transcript"][:80], "error": r["audio_error"] or r["error"]}
               for r in rows]
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "with_audio": sum(r["has_audio"] for r in rows),
            "with_transcript": sum(bool(r["transcript"]) for r in rows),
            "asr_segments_dropped": sum(len(r["asr_dropped"]) for r in rows),
            "errors": sum(bool(r["audio_error"] or r["error"]) for r in rows),
            "by_class": MetadataValue.json(classes),
            "asr": MetadataValue.json(asr.describe()),
            "audio_tagger": MetadataValue.json(audio_tagger.describe()),
            "llm": MetadataValue.json(llm.describe()),
            "preview": md_table(preview),
            # written after the shard is published (publishing replaces its folder)
            "timelines": image_file(st, ASSET, shard, "timelines.png", timelines_png(rows)),
            "location": MetadataValue.path(st.uri(ASSET, shard)),
        }
    )


def _rows(st, shard):
    return st.read_table(ASSET, shard).to_pylist()


@asset_check(asset=audio_captions, blocking=True, partitions_def=shards)
def one_row_per_long_take(context: AssetCheckExecutionContext, store: DatasetStoreResource) -> AssetCheckResult:
    """Exactly one row per passing long take, with or without sound."""
    st = store.get_store()
    shard = context.partition_key
    passing = sorted(r["clip_id"] for r in st.read_table("long_takes", shard).to_pylist() if r["passed"])
    ids = [r["clip_id"] for r in _rows(st, shard)]
    missing, extra = sorted(set(passing) - set(ids)), sorted(set(ids) - set(passing))
    dup = sorted({c for c in ids if ids.count(c) > 1})
    problems = [{"clip_id": c, "problem": p} for p, cs in
                (("a passing long take without an audio_captions row", missing),
                 ("a row for a clip that is not a passing long take", extra), ("more than one row", dup)) for c in cs]
    return failing_rows_result(problems, st, shard, ASSET, passing_long_takes=len(passing), rows=len(ids))


@asset_check(asset=audio_captions, blocking=True, partitions_def=shards)
def timeline_tiles_clip(context: AssetCheckExecutionContext, store: DatasetStoreResource) -> AssetCheckResult:
    """Timeline segments tile [0, duration_s] without gap or overlap (rows whose sound could not be read excepted)."""
    st, shard = store.get_store(), context.partition_key
    rows = _rows(st, shard)
    failures = [{"clip_id": r["clip_id"], "problem": f"the audio timeline {p}"} for r in rows
                if not (r["audio_error"] and not r["timeline"]) and (p := timeline_tiles(r["timeline"], r["duration_s"]))]
    return failing_rows_result(failures, st, shard, ASSET, rows=len(rows))


@asset_check(asset=audio_captions, partitions_def=shards)
def transcript_where_speech(
    context: AssetCheckExecutionContext, store: DatasetStoreResource, audio_settings: AudioSettings
) -> AssetCheckResult:
    """A transcript where speech is above the threshold; none where the clip is silent or music only (WARN)."""
    st, shard = store.get_store(), context.partition_key
    rows = _rows(st, shard)
    lo = audio_settings.min_speech_share_for_transcript
    failures = []
    for r in rows:
        if r["error"] or r["audio_error"]:
            continue
        if r["speech_share"] >= lo and not r["transcript"]:
            failures.append({"clip_id": r["clip_id"], "problem": f"speech {r['speech_share']:.2f} but no transcript"})
        elif r["speech_share"] == 0 and r["transcript"]:
            failures.append({"clip_id": r["clip_id"], "problem": f"possible hallucination on {r['audio_class']}",
                             "transcript": r["transcript"][:80]})
    res = failing_rows_result(failures, st, shard, ASSET, rows=len(rows), min_speech_share=lo)
    return AssetCheckResult(passed=res.passed, description=res.description, metadata=res.metadata, severity=AssetCheckSeverity.WARN)


@asset_check(asset=audio_captions, partitions_def=shards)
def languages_recorded(context: AssetCheckExecutionContext, store: DatasetStoreResource) -> AssetCheckResult:
    """Every transcript has its language recorded."""
    st, shard = store.get_store(), context.partition_key
    rows = _rows(st, shard)
    failures = [{"clip_id": r["clip_id"], "problem": "a transcript without its language", "transcript": r["transcript"][:60]}
                for r in rows if r["transcript"] and not r["language"]]
    langs = sorted({r["language"] for r in rows if r["language"]})
    return failing_rows_result(failures, st, shard, ASSET, transcripts=sum(bool(r["transcript"]) for r in rows),
                               languages=", ".join(langs) or "none")
