"""Scale-out configuration: executors chosen by environment, GPU requests that each executor
reads from the caption step's tags, and the instance/Helm configuration in deploy/."""

import json
from pathlib import Path

import pytest
import yaml

from vidgraph.definitions import build_defs
from vidgraph.defs.resources import build_resources

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


@pytest.mark.parametrize("name", ["multiprocess", "in_process", "k8s", "ecs"])
def test_executor_follows_the_environment(name, monkeypatch):
    monkeypatch.setenv("VIDGRAPH_EXECUTOR", name)
    job = build_defs(build_resources()).resolve_job_def("process_shard")
    assert job.executor_def.name == name


def test_unknown_executor_is_a_clear_error():
    with pytest.raises(ValueError, match="choose one of multiprocess, in_process, k8s, ecs"):
        build_defs(build_resources(), executor="slurm")


def _caption_tags() -> dict:
    defs = build_defs(build_resources())
    return dict(defs.resolve_assets_def("frame_captions").node_def.tags)


def test_caption_step_asks_kubernetes_for_a_gpu():
    from dagster_k8s.job import get_user_defined_k8s_config

    config = get_user_defined_k8s_config(_caption_tags())
    assert config.container_config["resources"]["limits"]["nvidia.com/gpu"] == "1"
    # The CPU stages carry no GPU request.
    defs = build_defs(build_resources())
    assert "dagster-k8s/config" not in defs.resolve_assets_def("long_takes").node_def.tags


def test_caption_step_asks_ecs_for_a_gpu():
    overrides = json.loads(_caption_tags()["ecs/container_overrides"])
    assert {"type": "GPU", "value": "1"} in overrides["resourceRequirements"]


def test_ecs_instance_config_is_valid_for_dagster_aws(monkeypatch):
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config_schema
    from dagster_aws.ecs import EcsRunLauncher
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager

    for var in ("DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_DB", "VIDGRAPH_LOG_BUCKET"):
        monkeypatch.setenv(var, "x")
    monkeypatch.setenv("DAGSTER_PG_PORT", "5432")
    raw = yaml.safe_load((DEPLOY / "ecs" / "dagster.yaml").read_text())
    assert process_config(dagster_instance_config_schema(), raw).success
    launcher = process_config(EcsRunLauncher.config_type(), raw["run_launcher"]["config"])
    assert launcher.success, launcher.errors
    logs = process_config(S3ComputeLogManager.config_type(), raw["compute_logs"]["config"])
    assert logs.success, logs.errors


def test_no_secret_values_in_deploy_files():
    for path in DEPLOY.rglob("*.yaml"):
        doc = yaml.safe_load(path.read_text())

        def walk(node, key=""):
            if isinstance(node, dict):
                for k, v in node.items():
                    walk(v, str(k).lower())
            elif isinstance(node, list):
                for v in node:
                    walk(v, key)
            elif key in ("password", "secret", "api_key", "aws_secret_access_key"):
                # A secret is only ever a reference to the environment, never a literal.
                pytest.fail(f"{path.name}: {key} has a literal value")

        walk(doc)


def test_helm_values_run_the_code_location_with_the_k8s_executor():
    values = yaml.safe_load((DEPLOY / "k8s" / "values.yaml").read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "vidgraph.definitions"]
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["VIDGRAPH_EXECUTOR"] == "k8s" and env["VIDGRAPH_ROOT"].startswith("s3://")
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
