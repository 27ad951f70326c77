"""retrieval_eval and narration_eval: the papers' evaluations of a release."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from vidgraph.defs.metadata import md_table
from vidgraph.defs.partitions import STEP_RETRY, releases
from vidgraph.defs.releases import gold_set, release_exports
from vidgraph.defs.resources import CaptionSettings, DatasetStoreResource, EvaluationSettings, SentenceEmbedderResource
from vidgraph.models.resources import ChatModelResource
from vidgraph.stages import releases as rel
from vidgraph.stages.evaluations import layer_retrieval, narration_input, narration_means, narration_prompt_hash, score_narrations
from vidgraph.storage.schemas import NARRATION_EVAL_SCHEMA, RETRIEVAL_EVAL_SCHEMA

RETRIEVAL = "retrieval_eval"
NARRATION = "narration_eval"
LOGIC_VERSION = "1"


def _narration_code_version() -> str:
    """Changes with the prompts, the judge model of the default profile and the scoring logic."""
    import hashlib

    from vidgraph.models.profiles import default_profile_name, load_profile

    ref = load_profile(default_profile_name(), resolve=False).llm.ref
    return hashlib.sha256(f"{LOGIC_VERSION}|{narration_prompt_hash()}|{ref}".encode()).hexdigest()[:12]


def _write(st, asset_name: str, release: str, table: pa.Table) -> None:
    with st.staging_dir() as staging:
        pq.write_table(table, staging / f"{asset_name}.parquet")
        st.publish_shard(asset_name, release, staging)


@asset(partitions_def=releases, retry_policy=STEP_RETRY, group_name="evaluation", deps=[release_exports],
       code_version="1", kinds={"pytorch", "parquet"})
def retrieval_eval(
    context: AssetExecutionContext, store: DatasetStoreResource, sentence_embedder: SentenceEmbedderResource,
    evaluation_settings: EvaluationSettings,
) -> MaterializeResult:
    """VideoMind layer retrieval: text-to-video R@1/5/10 and mean rank per layer against merged-caption embeddings."""
    st = store.get_store()
    release = context.partition_key
    split = evaluation_settings.retrieval_split
    records = rel.release_records(st, release, None if split == "all" else split)
    embedder = sentence_embedder.get_embedder()
    rows = [{"release": release, **r, "split": split, "embedder_model_id": embedder.model_id,
             "embedder_revision": embedder.revision} for r in layer_retrieval(records, embedder)]
    _write(st, RETRIEVAL, release, pa.Table.from_pylist(rows, schema=RETRIEVAL_EVAL_SCHEMA))
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "split": split,
            "gallery": len(records),
            "by_layer": md_table(rows, ["layer", "queries", "r1", "r5", "r10", "mean_rank"]),
            **{f"{r['layer']}_r1": r["r1"] for r in rows if r["r1"] is not None},
            "embedder": MetadataValue.json(embedder.describe()),
            "location": MetadataValue.path(st.uri(RETRIEVAL, release)),
        }
    )


@asset(partitions_def=releases, retry_policy=STEP_RETRY, group_name="evaluation", deps=[release_exports, gold_set],
       code_version=_narration_code_version(), kinds={"pytorch", "parquet"})
def narration_eval(
    context: AssetExecutionContext, store: DatasetStoreResource, llm: ChatModelResource, evaluation_settings: EvaluationSettings,
    caption_settings: CaptionSettings,
) -> MaterializeResult:
    """Movie101v2-style narration scores on the gold set: L1 environment/characters, L2 plot (0-5, -1 unparsed)."""
    from dataclasses import replace

    st = store.get_store()
    release = context.partition_key
    records = {r["clip_id"]: r for r in rel.release_records(st, release, "test")}
    items = []
    for g in rel.read_gold(st, release):
        r = records.get(g["clip_id"])
        if r is None or g["verdict"] == "reject":
            continue
        if g["reference_caption"]:
            ref, kind = g["reference_caption"], "human"
        else:
            ref, kind = r.get("merged_caption") or "", "merged_caption_verified" if g["verdict"] == "accept" else "merged_caption"
        if ref:
            items.append({"clip_id": g["clip_id"], "reference": ref, "reference_kind": kind, "source": narration_input(r)})
    if evaluation_settings.narration_limit:
        items = items[: evaluation_settings.narration_limit]
    model = llm.get_model()
    # The profile's decoding (greedy on the real profiles), capped: narrations and verdicts are short.
    gen = caption_settings.load().generation
    params = replace(gen, max_new_tokens=min(gen.max_new_tokens, evaluation_settings.max_new_tokens))
    scored = score_narrations(items, model, model, params, evaluation_settings.max_judge_attempts)
    desc = llm.describe()
    phash = narration_prompt_hash()
    rows = [{"release": release, **s, "llm_model_id": model.model_id, "llm_revision": model.revision,
             "judge_model_id": model.model_id, "judge_revision": model.revision, "prompt_hash": phash,
             "gen_params": json.dumps({**params.as_dict(), "max_judge_attempts": evaluation_settings.max_judge_attempts}, sort_keys=True)}
            for s in scored]
    _write(st, NARRATION, release, pa.Table.from_pylist(rows, schema=NARRATION_EVAL_SCHEMA))
    means = narration_means(scored)
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            **{k: v for k, v in means.items() if v is not None},
            "judge": MetadataValue.json(desc),
            "prompt_hash": phash,
            "preview": md_table(rows, ["clip_id", "reference_kind", "environment", "characters", "plot", "l1_attempts", "narration"]),
            "location": MetadataValue.path(st.uri(NARRATION, release)),
        }
    )
