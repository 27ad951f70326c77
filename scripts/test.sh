#!/usr/bin/env bash
# Run the test suite. PostgreSQL's server binaries are installed when missing (Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq postgresql >/dev/null) || echo "warning: could not install PostgreSQL; its tests will skip"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
# pytest exits 5 when it collected no tests: that is a failure here.
if [ "$rc" = 5 ]; then echo "no tests were collected" >&2; fi
exit "$rc"
