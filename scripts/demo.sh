#!/usr/bin/env bash
# Set up Jeeves and run one pass over the sample mailbox with the shipped model on SQLite,
# printing an alert for each meeting request that still needs a place.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/jeeves --config config/demo.toml run --once "$@"
