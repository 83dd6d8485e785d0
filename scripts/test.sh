#!/usr/bin/env bash
# Run the whole test suite. Installs what the tests need (PostgreSQL, Dovecot, mbsync, Chromium from
# Debian; the Python packages into .venv); the test fixtures start those servers on loopback
# in a temp dir and stop them afterwards. Two pytest-xdist workers, each test file on one worker
# (its module fixtures, such as the review page's browser, start once): most tests wait on
# servers and subprocesses, so two workers halve the wall time on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test
exec .venv/bin/python -m pytest -n 2 --dist loadfile "$@"
