import os
import shutil
from pathlib import Path

import pytest

from vidgraph.media.synthetic import Scene, SyntheticSpec, write_video

pytest_plugins = ["vidgraph_tests.conftest_models"]

# Real footage lives beside the checkout (../shared/media); a user's clone has none.
SHARED_MEDIA = Path(os.environ.get("VIDGRAPH_SHARED_MEDIA", Path(__file__).resolve().parents[2] / "shared" / "media"))


@pytest.fixture(scope="session")
def shared_media() -> Path:
    if not SHARED_MEDIA.is_dir():
        pytest.skip(f"real test media not found at {SHARED_MEDIA}")
    return SHARED_MEDIA


# Three scenes with hard cuts at frames 48 and 84, 24 fps, 160x90, with audio.
CUT_SPEC = SyntheticSpec(
    [Scene(48, "pan", seed=11, speed=1.0), Scene(36, "object", seed=12, speed=3), Scene(40, "tilt", seed=13, speed=1.0)],
    width=160,
    height=90,
    fps=24,
)


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthetic")


@pytest.fixture(scope="session")
def cut_video(synthetic_dir) -> Path:
    return write_video(synthetic_dir / "cuts.mp4", CUT_SPEC)


def make_landing(tmp_path: Path, sources: list[Path]) -> Path:
    landing = tmp_path / "landing"
    landing.mkdir(exist_ok=True)
    for s in sources:
        shutil.copy(s, landing / s.name)
    return landing
