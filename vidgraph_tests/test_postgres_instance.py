"""Dagster on PostgreSQL (deploy/dagster.postgres.yaml) against a real server started here."""

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, materialize

from vidgraph.defs.resources import build_resources
from vidgraph.defs.source_videos import every_input_accounted_for, source_videos
from vidgraph.ingest import ingest
from vidgraph.storage.store import DatasetStore
from vidgraph_tests.conftest import free_port, make_landing

REPO = Path(__file__).resolve().parents[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    # initdb refuses to run as root: run the server as the `postgres` user there.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture
def postgres_server():
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.skip("PostgreSQL server binaries are not installed")
    bindir = Path(bins[-1]).parent
    base = Path(tempfile.mkdtemp(prefix="vidgraph-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
    port = free_port()
    subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]), check=True, capture_output=True)
    subprocess.run(
        _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-o", f"-p {port} -k {base} -h 127.0.0.1", "-w", "start", "-l", str(base / "log")]),
        check=True, capture_output=True,
    )
    try:
        yield port
    finally:
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_runs_and_checks_are_stored_in_postgres(postgres_server, tmp_path, cut_video, monkeypatch):
    for k, v in {"DAGSTER_PG_USER": "postgres", "DAGSTER_PG_PASSWORD": "", "DAGSTER_PG_HOST": "127.0.0.1",
                 "DAGSTER_PG_DB": "postgres", "DAGSTER_PG_PORT": str(postgres_server)}.items():
        monkeypatch.setenv(k, v)
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
    assert yaml.safe_load((home / "dagster.yaml").read_text())["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"

    landing = make_landing(tmp_path, [cut_video])
    (shard,) = ingest(landing, DatasetStore(str(tmp_path / "root"))).new_shards
    with DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        instance.add_dynamic_partitions("shards", [shard])
        res = materialize([source_videos, every_input_accounted_for], partition_key=shard, instance=instance,
                          resources=build_resources(root=str(tmp_path / "root"), landing=str(landing)))
        assert res.success
    # A second instance on the same database sees the run, the partition and the materialization.
    with DagsterInstance.from_config(str(home)) as again:
        assert again.get_run_by_id(res.run_id).is_success
        assert shard in again.get_dynamic_partitions("shards")
        mat = again.get_latest_materialization_event(source_videos.key)
        assert mat.asset_materialization.partition == shard
