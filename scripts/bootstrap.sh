#!/usr/bin/env bash
# Create .venv and install vidgraph into it (idempotent). EXTRAS may name pip extras, e.g. EXTRAS=test.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! command -v uv >/dev/null 2>&1; then
  "$PY" -m pip install -q --disable-pip-version-check uv
fi
[ -x .venv/bin/python ] || uv venv -q --python "$PY" .venv
# torch first, pinned: an unpinned torch drags a multi-GB CUDA build. A local wheel folder
# (PIP_FIND_LINKS) is used when the machine has one.
links=()
[ -n "${PIP_FIND_LINKS:-}" ] && links=(--find-links "$PIP_FIND_LINKS")
uv pip install -q --python .venv/bin/python "${links[@]}" torch==2.13.0
spec="."
[ -n "${EXTRAS:-}" ] && spec=".[${EXTRAS}]"
# The override keeps OpenCV headless (scenedetect asks for the GUI build).
uv pip install -q --python .venv/bin/python "${links[@]}" --overrides scripts/overrides.txt -e "$spec"
