#!/usr/bin/env bash
# Run the whole test suite. Installs what the tests need (PostgreSQL, Dovecot, mbsync, Chromium from
# Debian; the Python packages into .venv); the test fixtures start those servers on loopback
# in a temp dir and stop them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test
exec .venv/bin/python -m pytest "$@"
