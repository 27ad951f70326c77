"""The UI path: a running `dagster dev`, driven through its GraphQL API as the UI drives it."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from vidgraph.ingest import ingest
from vidgraph.storage.catalog import Catalog
from vidgraph.storage.store import DatasetStore
from vidgraph_tests.conftest import free_port

REPO = Path(__file__).resolve().parents[1]

ADD_PARTITION = """
mutation($repo: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $repo, partitionsDefName: $name, partitionKey: $key) {
    __typename
    ... on PythonError { message }
  }
}"""
LAUNCH = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
RUN = """
query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"""
CHECKS = """
query($key: AssetKeyInput!, $name: String!, $limit: Int!) {
  assetCheckExecutions(assetKey: $key, checkName: $name, limit: $limit) {
    status evaluation { severity partition }
  }
}"""


@pytest.fixture
def dagster_dev(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "VIDGRAPH_ROOT": str(tmp_path / "root"),
        "VIDGRAPH_LANDING": str(tmp_path / "landing"),
        "VIDGRAPH_AUTOMATION": "off",  # this test launches its own run; no schedule, sensor or automation runs beside it
    }
    log = open(tmp_path / "dagster-dev.log", "wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster")), "dev", "-h", "127.0.0.1", "-p", str(port), "-w", str(REPO / "workspace.yaml")],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if httpx.get(url + "/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError((tmp_path / "dagster-dev.log").read_text()[-3000:])
            time.sleep(0.5)
        else:
            raise RuntimeError("dagster dev did not come up")
        yield url, tmp_path
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _gql(url: str, query: str, variables: dict) -> dict:
    r = httpx.post(url + "/graphql", json={"query": query, "variables": variables}, timeout=60)
    r.raise_for_status()
    body = r.json()
    assert "errors" not in body, body
    return body["data"]


@pytest.mark.slow
def test_materialize_a_shard_from_the_ui(dagster_dev, cut_video):
    url, tmp = dagster_dev
    landing = tmp / "landing"
    landing.mkdir()
    shutil.copy(cut_video, landing / "cuts.mp4")
    (shard,) = ingest(landing, DatasetStore(str(tmp / "root"))).new_shards
    repo = {"repositoryLocationName": "vidgraph", "repositoryName": "__repository__"}
    added = _gql(url, ADD_PARTITION, {"repo": repo, "name": "shards", "key": shard})
    assert added["addDynamicPartition"]["__typename"] == "AddDynamicPartitionSuccess", added

    params = {
        "selector": {**repo, "jobName": "process_shard"},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": shard}]},
        "runConfigData": {},
    }
    launched = _gql(url, LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    status = None
    for _ in range(300):
        status = _gql(url, RUN, {"id": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(1)
    assert status == "SUCCESS"

    checks = _gql(url, CHECKS, {"key": {"path": ["raw_clips"]}, "name": "clips_cover_each_video", "limit": 5})
    (execution,) = checks["assetCheckExecutions"]
    assert execution["status"] == "SUCCEEDED" and execution["evaluation"]["partition"] == shard
    rows = Catalog(DatasetStore(str(tmp / "root"))).query("select count(*) n from raw_clips")
    assert rows[0]["n"] == 3
