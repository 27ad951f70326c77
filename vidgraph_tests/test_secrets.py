"""An API key for a model endpoint comes from the environment only, and never shows up in the run
logs, the asset metadata, the stored tables or the console."""

import os

import pytest
from dagster import DagsterInstance
from dagster._serdes import serialize_value

from vidgraph.definitions import build_defs
from vidgraph.defs.resources import build_resources
from vidgraph.ingest import ingest
from vidgraph.media.synthetic import Scene, SyntheticSpec, write_video
from vidgraph.models.resources import ChatModelResource
from vidgraph.storage.store import DatasetStore
from vidgraph_tests.test_models_http import FakeOpenAIServer

SECRET = "sk-live-DO-NOT-LEAK-7f3a9c"
KEY_ENV = "VIDGRAPH_TEST_ENDPOINT_KEY"


@pytest.fixture
def endpoint():
    with FakeOpenAIServer() as server:
        yield server


def test_api_key_never_in_logs_metadata_or_tables(tmp_path, endpoint, monkeypatch, capfd):
    monkeypatch.setenv(KEY_ENV, SECRET)
    landing = tmp_path / "landing"
    write_video(landing / "pan.mp4", SyntheticSpec([Scene(11 * 24, "pan", seed=3, speed=0.5)], width=160, height=90, fps=24))
    root = tmp_path / "root"
    store = DatasetStore(str(root))
    shard = sorted(ingest(landing, store, shard_size=4).new_shards)[0]
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("shards", [shard])
    # Both caption models behind the OpenAI-compatible endpoint; the config names only the variable.
    endpoint_model = dict(backend="openai", base_url=endpoint.base_url, api_key_env=KEY_ENV, max_retries=1, timeout_s=10)
    resources = {
        **build_resources(root=str(root), landing=str(landing), profile="tiny"),
        "vlm": ChatModelResource(model="served-vlm", kind="vlm", **endpoint_model),
        "llm": ChatModelResource(model="served-llm", kind="text", **endpoint_model),
    }
    assert SECRET not in serialize_value(resources["vlm"].model_dump()) and SECRET not in repr(resources["vlm"])
    result = build_defs(resources).resolve_job_def("process_shard").execute_in_process(
        instance=instance, partition_key=shard, raise_on_error=False, run_config={"loggers": {"console": {"config": {"log_level": "DEBUG"}}}}
    )
    assert result.success

    # The key did reach the endpoint, as a bearer token, on every call ...
    assert endpoint.calls and all(c["auth"] == f"Bearer {SECRET}" for c in endpoint.calls)
    rows = store.read_table("frame_captions", shard).to_pylist()
    assert len(rows) == 1 and rows[0]["caption"] and rows[0]["vlm_model_id"] == "served-vlm"

    # ... and nowhere else: not in the event log (metadata included), the run's config, the files, the console.
    records = instance.all_logs(result.run_id)
    assert any(r.dagster_event and r.dagster_event.event_type_value == "ASSET_MATERIALIZATION" for r in records)
    for record in records:
        assert SECRET not in serialize_value(record)
    assert SECRET not in serialize_value(instance.get_run_by_id(result.run_id))
    for dirpath, _, files in os.walk(root):
        for name in files:
            assert SECRET.encode() not in open(os.path.join(dirpath, name), "rb").read(), name
    out, err = capfd.readouterr()
    assert SECRET not in out and SECRET not in err


def test_dataset_root_with_credentials_is_refused_without_echoing_them():
    with pytest.raises(ValueError, match="must not carry credentials") as e:
        DatasetStore("s3://AKIAEXAMPLE:wJalrSECRETKEY@bucket/prefix")
    assert "wJalrSECRETKEY" not in str(e.value)
