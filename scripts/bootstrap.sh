#!/usr/bin/env bash
# Set up a fresh Debian machine for Jeeves: system packages, a virtualenv in .venv, the package.
#   scripts/bootstrap.sh          what running Jeeves needs
#   scripts/bootstrap.sh --test   plus what the test suite needs (PostgreSQL, Dovecot, mbsync, Chromium + chromedriver)
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

missing=()
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if (( want_test )); then
  for pkg in postgresql dovecot-imapd isync openssl chromium chromium-driver; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
fi
if (( ${#missing[@]} )); then
  echo "bootstrap: installing Debian packages: ${missing[*]}" >&2
  sudo_cmd=(); (( EUID != 0 )) && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 -c 'import sys; assert sys.version_info >= (3, 11), "Jeeves needs Python 3.11+"'
[[ -x .venv/bin/python ]] || python3 -m venv .venv
extra=""
(( want_test )) && extra="[test]"
stamp=".venv/.jeeves-installed${extra}"
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".${extra}"
  touch "$stamp"
fi
