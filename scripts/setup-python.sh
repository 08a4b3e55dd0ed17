#!/usr/bin/env bash
# Create/refresh the Python venv for interop peers, cached outside the checkout.
# Last stdout line: absolute path of the venv's python. Progress goes to stderr.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REQ="$HERE/requirements-test.txt"
# shellcheck source-path=SCRIPTDIR source=lib/pinned-venv.sh
source "$HERE/lib/pinned-venv.sh"
CACHE="${DTBRIDGE_CACHE:-$HOME/.cache/dtbridge}"
VENV="$CACHE/venv"
STAMP="$VENV/.requirements.sha256"

log() { echo "[setup-python] $*" >&2; }

want="$(pinned_venv_digest < "$REQ")"
if pinned_venv_up_to_date "$VENV" "$STAMP" "$want" python; then
  echo "$VENV/bin/python"
  exit 0
fi

pinned_venv_create "$VENV" 3.9 "the livekit package needs >= 3.9"
log "installing $REQ"
pinned_venv_pip "$VENV" "$STAMP" -r "$REQ"
"$VENV/bin/python" -c 'import livekit.rtc, livekit.api' >&2
pinned_venv_stamp "$STAMP" "$want"
echo "$VENV/bin/python"
