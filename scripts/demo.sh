#!/usr/bin/env bash
# Set up Jeeves and run one pass over the sample mailbox with the shipped model on SQLite (jeeves demo),
# printing an alert for each meeting request that still needs a place, then which messages were
# the planted, hand-labelled requests and look-alikes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/jeeves --config config/demo.toml demo "$@"
