#!/usr/bin/env bash
# Create/refresh the Python venv for interop peers, cached outside the checkout.
# Last stdout line: absolute path of the venv's python. Progress goes to stderr.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REQ="$HERE/requirements-test.txt"
CACHE="${DTBRIDGE_CACHE:-$HOME/.cache/dtbridge}"
VENV="$CACHE/venv"
STAMP="$VENV/.requirements.sha256"
# The interpreter to build the venv from (not DTBRIDGE_PYTHON: that names the venv's python,
# which the tests use). Any CPython >= 3.9 with venv/ensurepip; Debian 12's python3 is 3.11.
PYTHON_BIN="${DTBRIDGE_BASE_PYTHON:-}"
if [[ -z "$PYTHON_BIN" ]]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null; then PYTHON_BIN="$candidate"; break; fi
  done
fi

log() { echo "[setup-python] $*" >&2; }

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  log "venv up to date: $VENV"
  echo "$VENV/bin/python"
  exit 0
fi

mkdir -p "$CACHE"
if [[ ! -x "$VENV/bin/python" ]]; then
  [[ -n "$PYTHON_BIN" ]] && command -v "$PYTHON_BIN" >/dev/null \
    || { log "no python3.11/python3 found (set DTBRIDGE_BASE_PYTHON)"; exit 1; }
  "$PYTHON_BIN" -c 'import sys; sys.exit(sys.version_info < (3, 9))' \
    || { log "$PYTHON_BIN is older than 3.9 (the livekit package needs >= 3.9)"; exit 1; }
  log "creating venv $VENV with $PYTHON_BIN"
  rm -rf "$VENV"
  "$PYTHON_BIN" -m venv "$VENV" \
    || { rm -rf "$VENV"; log "venv creation failed (Debian: apt-get install python3-venv)"; exit 1; }
fi
log "installing $REQ"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ" >&2
"$VENV/bin/python" -c 'import livekit.rtc, livekit.api' >&2
echo "$want" > "$STAMP"
log "done"
echo "$VENV/bin/python"
