"""Pytest plugin: tiny, randomly initialised models built offline once per test session.

Register with ``pytest_plugins = ["vidgraph_tests.conftest_models"]`` in conftest.py (or run pytest
with ``-p vidgraph_tests.conftest_models``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never reach the Hugging Face hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture(scope="session")
def tiny_model_cache(tmp_path_factory) -> Path:
    """A fresh model cache root; ``VIDGRAPH_MODEL_CACHE`` points at it for the session, so
    ``load_profile("tiny")`` and ``tiny:<role>`` resources use the models built here."""
    root = tmp_path_factory.mktemp("vidgraph-model-cache")
    old = os.environ.get("VIDGRAPH_MODEL_CACHE")
    os.environ["VIDGRAPH_MODEL_CACHE"] = str(root)
    yield root
    if old is None:
        os.environ.pop("VIDGRAPH_MODEL_CACHE", None)
    else:
        os.environ["VIDGRAPH_MODEL_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_models(tiny_model_cache) -> dict[str, Path]:
    """``{"vlm": path, "llm": path, "asr": path}``: tiny models saved with save_pretrained."""
    from vidgraph.models.tiny import ensure_tiny_models

    return ensure_tiny_models(tiny_model_cache)


@pytest.fixture(scope="session")
def tiny_vlm(tiny_models):
    from vidgraph.models import TransformersChatModel

    return TransformersChatModel(tiny_models["vlm"], kind="vlm", batch_size=8, name="tiny:vlm")


@pytest.fixture(scope="session")
def tiny_llm(tiny_models):
    from vidgraph.models import TransformersChatModel

    return TransformersChatModel(tiny_models["llm"], kind="text", batch_size=8, name="tiny:llm")
