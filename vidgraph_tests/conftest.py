import os
import shutil
from pathlib import Path

import pytest

from vidgraph.media.synthetic import Scene, SyntheticSpec, write_video

pytest_plugins = ["vidgraph_tests.conftest_models"]

# Tests use ephemeral instances: the Makefile's DAGSTER_HOME is for the demo and the UI.
os.environ.pop("DAGSTER_HOME", None)
# Tests write their landing files a moment before they run: no settle time (the default waits
# 30 s for files that may still be uploading). Subprocesses inherit it.
os.environ["VIDGRAPH_SETTLE_S"] = "0"

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


@pytest.fixture(scope="module")
def listener():
    """A TCP socket on 127.0.0.1 that nothing answers: where the bad-input playlists' http URL
    points, so a test can tell whether anything tried to connect."""
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.setblocking(False)
    yield srv
    srv.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto_server(log_path=None):
    """A real S3 HTTP server (moto_server) on 127.0.0.1: (process, url). Its access log (one line
    per request) goes to ``log_path`` when given."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    exe = Path(sys.executable).with_name("moto_server")
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL
    try:
        proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out)
    finally:
        if log_path:
            out.close()
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            break
        except Exception:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("moto_server did not start")
    return proc, url


@pytest.fixture(scope="session")
def moto_endpoint():
    """A real S3 HTTP server (moto_server) on 127.0.0.1 for the session."""
    proc, url = start_moto_server()
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def s3_env(moto_endpoint, monkeypatch):
    """AWS variables pointing at the moto server, and a fresh bucket."""
    import uuid

    import boto3

    for k, v in {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    bucket = f"vidgraph-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return bucket
