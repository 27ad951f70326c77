"""Where a run's steps execute, chosen by environment (``VIDGRAPH_EXECUTOR``).

- ``multiprocess`` (default): one process per step on the machine that runs the run.
- ``in_process``: every step in the run's process (debugging).
- ``k8s``: one Kubernetes Job per step (dagster-k8s, ``pip install 'vidgraph[deploy]'``); the
  caption steps carry ``dagster-k8s/config`` tags that ask for a GPU.
- ``ecs``: one ECS task per step (dagster-aws; needs the ``EcsRunLauncher``); the caption steps
  carry ``ecs/container_overrides`` that ask for a GPU.
"""

from __future__ import annotations

import json
import os

from dagster import ExecutorDefinition, in_process_executor, multiprocess_executor

EXECUTOR_ENV = "VIDGRAPH_EXECUTOR"
EXECUTORS = ("multiprocess", "in_process", "k8s", "ecs")

# Op tags of steps that want a GPU, read by each scale-out executor in its own format.
GPU_OP_TAGS = {
    "vidgraph/accelerator": "gpu",
    "dagster-k8s/config": {"container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}}},
    "ecs/container_overrides": json.dumps({"resourceRequirements": [{"type": "GPU", "value": "1"}]}),
}


def executor_for_environment(name: str | None = None) -> ExecutorDefinition:
    name = (name or os.environ.get(EXECUTOR_ENV) or "multiprocess").strip()
    if name == "multiprocess":
        return multiprocess_executor
    if name == "in_process":
        return in_process_executor
    if name == "k8s":
        try:
            from dagster_k8s import k8s_job_executor
        except ImportError as e:  # pragma: no cover - the test extras install it
            raise RuntimeError(f"{EXECUTOR_ENV}=k8s needs dagster-k8s: pip install 'vidgraph[deploy]'") from e
        return k8s_job_executor
    if name == "ecs":
        from dagster_aws.ecs import ecs_executor

        return ecs_executor
    raise ValueError(f"{EXECUTOR_ENV}={name!r}: choose one of {', '.join(EXECUTORS)}")
