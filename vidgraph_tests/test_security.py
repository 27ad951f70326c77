"""Security defaults: servers bind to the loopback interface; secrets come only from the environment.

- `make dev` (the Dagster UI) and every server the tests start listen on 127.0.0.1, never on
  all interfaces; checked in the Makefile as make expands it, in the source of the tests, and on
  a running test server through /proc/net/tcp.
- S3 credentials are read from the standard AWS variables at run time, are no field of any
  resource, never show in a resource's config or a repr, and never reach a run's event log or
  asset metadata; no config file in the repository holds a secret.

(The model endpoint's API key in run logs and metadata is tested with the captioning code.)
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
ANY = ".".join("0" * 4)  # all interfaces (spelled so that this file passes its own scan)
ANY6 = ":" * 2  # the same for IPv6
# Calls whose first argument is an (host, port) address that a server listens on.
_BIND_CALLS = {"bind", "HTTPServer", "ThreadingHTTPServer", "TCPServer", "ThreadingTCPServer", "create_server"}
_HOST_FLAGS = {"-h", "-H", "--host", "--bind", "-b"}
_ANY_ADDRESS = re.compile(r"""(?<![\d.])0\.0\.0\.0(?![\d.])|["']::["']|\[::\]""")


# --- Servers listen on the loopback interface ----------------------------------------------------


def _make_dev_commands() -> list[str]:
    """The commands `make dev` runs, as make expands them (dry run: nothing is executed)."""
    if shutil.which("make"):
        run = subprocess.run(["make", "-n", "-B", "dev"], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        text = run.stdout
    else:  # no make: read the recipe itself
        text = (REPO / "Makefile").read_text()
        text = text.split("\ndev:", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in text.splitlines() if re.search(r"\bdagster(-webserver)?\s+dev\b|dagster-webserver", line)]


def _host_of(argv: list[str]) -> str | None:
    for i, a in enumerate(argv):
        if a in ("-h", "--host") and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--host="):
            return a.split("=", 1)[1]
    return None


def test_make_dev_binds_the_ui_to_loopback():
    commands = _make_dev_commands()
    assert commands, "`make dev` no longer starts `dagster dev`"
    for cmd in commands:
        assert _host_of(cmd.split()) == LOOPBACK, f"`make dev` runs {cmd!r}: the UI must listen on {LOOPBACK} only"


def test_readme_tells_the_same_address():
    readme = (REPO / "README.md").read_text()
    assert "make dev" in readme and f"http://{LOOPBACK}:3000" in readme


def _call_name(node: ast.Call) -> str:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def listening_addresses(source: str) -> list[tuple[int, str]]:
    """(line, host) of every server address in Python source: the host of ``bind((host, port))``
    and ``HTTPServer((host, port), ...)`` calls, and the value after ``-h``/``-H``/``--host`` in
    command lists (``subprocess.Popen([..., "-H", host, ...])``). A host that is not a string
    literal is reported as ``<expr>``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _call_name(node) in _BIND_CALLS and node.args:
            addr = node.args[0]
            if isinstance(addr, ast.Tuple) and addr.elts:
                host = addr.elts[0]
                found.append((node.lineno, host.value if isinstance(host, ast.Constant) else "<expr>"))
        if isinstance(node, ast.List):
            items = node.elts
            for i, item in enumerate(items[:-1]):
                if isinstance(item, ast.Constant) and item.value in _HOST_FLAGS:
                    host = items[i + 1]
                    found.append((node.lineno, host.value if isinstance(host, ast.Constant) else "<expr>"))
    return sorted(found)


def _python_files() -> list[Path]:
    return sorted(p for d in ("vidgraph", "vidgraph_tests", "bench") for p in (REPO / d).rglob("*.py"))


def test_the_address_finder_finds_a_server_on_every_interface():
    """Control: the scan below would catch a server on all interfaces."""
    bad = f'srv.bind(("{ANY}", 0))\nHTTPServer(("", 80), H)\nPopen(["moto_server", "-H", "{ANY}"])\nx.bind((host, 1))\n'
    assert listening_addresses(bad) == [(1, ANY), (2, ""), (3, ANY), (4, "<expr>")]
    assert listening_addresses('s.bind(("127.0.0.1", 0))\n') == [(1, LOOPBACK)]
    assert _ANY_ADDRESS.search(f'host = "{ANY}"') and not _ANY_ADDRESS.search("10.0.0.01 1.0.0.0.1")


def test_every_server_in_the_code_and_the_tests_binds_loopback():
    seen = 0
    for path in _python_files():
        for line, host in listening_addresses(path.read_text(encoding="utf-8")):
            seen += 1
            assert host == LOOPBACK, f"{path.relative_to(REPO)}:{line} listens on {host!r}, not {LOOPBACK}"
    # The test servers that exist today: moto_server, the flaky S3 proxy, the OpenAI-compatible
    # stub, `dagster dev` for the GraphQL test, PostgreSQL, and the sockets of the bad-input tests.
    assert seen >= 6


def test_no_all_interfaces_address_anywhere():
    files = _python_files() + [REPO / "Makefile", REPO / "workspace.yaml", REPO / "dagster.yaml"]
    files += sorted((REPO / "deploy").glob("*")) + sorted((REPO / "scripts").glob("*")) + [REPO / "vidgraph" / "profiles.yaml"]
    for path in files:
        if path.is_file():
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                assert not _ANY_ADDRESS.search(line), f"{path.relative_to(REPO)}:{i}: {line.strip()}"


def _listening_hosts(port: int) -> set[str]:
    """Local addresses with a TCP socket in LISTEN state on ``port`` (from /proc/net/tcp{,6})."""
    hosts = set()
    for name, width in (("tcp", 8), ("tcp6", 32)):
        table = Path("/proc/net") / name
        if not table.exists():
            continue
        for row in table.read_text().splitlines()[1:]:
            fields = row.split()
            local, state = fields[1], fields[3]
            addr, hexport = local.split(":")
            if state != "0A" or int(hexport, 16) != port:
                continue
            if width == 8:
                hosts.add(".".join(str(b) for b in reversed(bytes.fromhex(addr))))
            else:
                hosts.add(ANY6 if int(addr, 16) == 0 else addr.lower())
    return hosts


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp")
def test_the_running_test_s3_server_listens_on_loopback_only(moto_endpoint):
    port = int(moto_endpoint.rsplit(":", 1)[1])
    assert _listening_hosts(port) == {LOOPBACK}


# --- Secrets come only from the environment -----------------------------------------------------

SECRET = "vidgraphSENTINELsecret0123456789abcdef"
KEY_ID = "AKIAVIDGRAPHSENTINEL"
# "token" as a credential (auth_token, token), not a count of tokens (max_new_tokens).
_SECRET_FIELD = re.compile(r"(?i)(secret|password|passwd|token(?!s)|api_?key|access_?key|credential)")


def _resource_fields(resources: dict) -> dict[str, dict]:
    return {name: res.model_dump() if hasattr(res, "model_dump") else {} for name, res in resources.items()}


def test_no_resource_has_a_secret_field_with_a_literal_value(monkeypatch):
    from dagster import EnvVar

    from vidgraph.defs.resources import build_resources

    for res_name, res in build_resources(root="s3://bucket/prefix", landing="/tmp/landing").items():
        for field, value in vars(res).items() if not hasattr(res, "model_dump") else res.model_dump().items():
            if not _SECRET_FIELD.search(field):
                continue
            if field.endswith("_env"):  # the NAME of an environment variable, not its value
                assert value is None or re.fullmatch(r"[A-Z][A-Z0-9_]*", str(value)), (res_name, field, value)
            else:
                assert value is None or isinstance(value, EnvVar), f"{res_name}.{field} holds a literal secret"


def test_s3_credentials_are_read_from_the_environment_only(monkeypatch):
    from vidgraph.defs.resources import DatasetStoreResource, build_resources
    from vidgraph.storage.store import S3Settings

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SECRET + "token")
    settings = S3Settings.from_env()
    assert (settings.access_key, settings.secret_key) == (KEY_ID, SECRET)  # really read from the environment
    assert SECRET not in repr(settings) and KEY_ID not in repr(settings) and SECRET not in str(settings)
    # The resources carry only the root; the credentials are nowhere in their config.
    assert set(DatasetStoreResource.model_fields) == {"root"}
    resources = build_resources(root="s3://bucket/prefix", landing="/tmp/landing")
    dumped = json.dumps(_resource_fields(resources), default=str)
    assert SECRET not in dumped and KEY_ID not in dumped
    # And without the variables there are no credentials at all (no file is consulted).
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    empty = S3Settings.from_env()
    assert (empty.access_key, empty.secret_key, empty.session_token) == (None, None, None)


_SECRET_KEY = re.compile(r"(?i)([\w-]*(?:secret|password|passwd|token|api_?key|access_?key)[\w-]*)[\"']?\s*[:=]\s*(.*)$")


def literal_secret(line: str) -> str | None:
    """The value of a secret-like key written literally on ``line`` (``aws_secret_access_key:
    abc...``), or None: no such key, no value, or a reference to the environment (``env:``,
    ``${VAR}``, or the NAME of a variable, as in ``api_key_env: VIDGRAPH_API_KEY``)."""
    m = _SECRET_KEY.search(line)
    if not m:
        return None
    value = re.split(r"[,}\s]", m.group(2).strip().strip("\"'"), maxsplit=1)[0].strip("\"'")
    if not value or value.startswith(("$", "{", "env")) or re.fullmatch(r"[A-Z][A-Z0-9_]*", value):
        return None
    return value if len(value) >= 6 else None


def test_the_secret_finder_catches_literals_and_allows_env_references():
    assert literal_secret("aws_secret_access_key: abcd1234efgh") == "abcd1234efgh"
    assert literal_secret('    api_key = "sk-live-123456"') == "sk-live-123456"
    assert literal_secret('{"password": "hunter22"}') == "hunter22"
    assert literal_secret("vlm: {base_url: x, api_key_env: VIDGRAPH_API_KEY, max_concurrency: 32}") is None
    assert literal_secret("password:") is None
    assert literal_secret("  password: ${DAGSTER_PG_PASSWORD}") is None
    assert literal_secret("generation: {max_new_tokens: 160, temperature: 0.0}") is None


def test_no_config_file_holds_a_secret():
    files = [REPO / "dagster.yaml", REPO / "workspace.yaml", REPO / "vidgraph" / "profiles.yaml", REPO / "pyproject.toml"]
    files += sorted((REPO / "deploy").glob("*.yaml")) + sorted((REPO / "deploy").glob("*.yml"))
    assert len(files) >= 5
    for path in files:
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            assert literal_secret(line) is None, f"{path.relative_to(REPO)}:{i}: {line.strip()}"
    # The Postgres settings of the production instance come from the environment.
    pg = (REPO / "deploy" / "dagster.postgres.yaml").read_text()
    assert re.search(r"password:\s*\n\s*env:\s*DAGSTER_PG_PASSWORD", pg)


def test_s3_secrets_never_reach_run_logs_or_metadata(tmp_path, s3_env, cut_video, monkeypatch):
    """A real materialization on an S3 root (moto), with sentinel credentials in the environment:
    neither the key id nor the secret appears in any event of the run (logs, metadata, config)."""
    from dagster import DagsterInstance, materialize

    from vidgraph.defs.resources import build_resources
    from vidgraph.defs.source_videos import every_input_accounted_for, source_videos
    from vidgraph.ingest import ingest
    from vidgraph.storage.store import DatasetStore
    from vidgraph_tests.conftest import make_landing

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)  # moto accepts any credentials
    landing = make_landing(tmp_path, [cut_video])
    (landing / "bad.mp4").write_text("not a video\n")  # a quarantine row and a warning in the log
    root = f"s3://{s3_env}/vidgraph"
    (shard,) = ingest(landing, DatasetStore(root)).new_shards
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("shards", [shard])
    res = materialize(
        [source_videos, every_input_accounted_for], partition_key=shard, instance=instance,
        resources=build_resources(root=root, landing=str(landing)),
    )
    assert res.success
    records = instance.all_logs(res.run_id)
    text = "\n".join(repr(r) for r in records)
    assert "quarantined" in text and s3_env in text  # the log and metadata really are in there
    assert SECRET not in text and KEY_ID not in text
    run = instance.get_run_by_id(res.run_id)
    assert SECRET not in repr(run) and KEY_ID not in repr(run)
