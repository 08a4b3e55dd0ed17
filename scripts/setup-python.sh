#!/usr/bin/env bash
# Create/refresh the Python venv for interop peers, cached outside the checkout.
# Last stdout line: absolute path of the venv's python. Progress goes to stderr.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REQ="$HERE/requirements-test.txt"
CACHE="${DTBRIDGE_CACHE:-$HOME/.cache/dtbridge}"
VENV="$CACHE/venv"
STAMP="$VENV/.requirements.sha256"
PYTHON_BIN="${DTBRIDGE_PYTHON:-python3.11}"

log() { echo "[setup-python] $*" >&2; }

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  log "venv up to date: $VENV"
  echo "$VENV/bin/python"
  exit 0
fi

mkdir -p "$CACHE"
if [[ ! -x "$VENV/bin/python" ]]; then
  command -v "$PYTHON_BIN" >/dev/null || { log "$PYTHON_BIN not found"; exit 1; }
  log "creating venv $VENV with $PYTHON_BIN"
  "$PYTHON_BIN" -m venv "$VENV"
fi
log "installing $REQ"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ" >&2
"$VENV/bin/python" -c 'import livekit.rtc, livekit.api' >&2
echo "$want" > "$STAMP"
log "done"
echo "$VENV/bin/python"
