#!/usr/bin/env bash
# Install the app's and the tests' dependencies (.venv, plus Debian's chromium and nginx for the browser and
# replica tests) and run the whole test suite. `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -r requirements-dev.txt
# Debian's chromium for the browser tests, nginx for the two-replica proxy test (tests/test_replicas.py).
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  ($SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${need[@]}" >/dev/null) \
    || echo "warning: could not install ${need[*]}; the browser / replica tests will fail" >&2
fi
# Two workers (pytest-xdist), one per core, each taking whole test files (--dist loadfile keeps a file's module
# fixtures — its app server, its browser — in one process). TEST_WORKERS=0 runs everything in this process.
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-2}" --dist loadfile "$@"
