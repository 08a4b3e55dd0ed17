# shellcheck shell=bash
# The venv handling that scripts/setup-python.sh, setup-ros2.sh and setup-colcon.sh share: a
# venv cached outside the checkout, holding pinned packages, reinstalled only when the pins
# change. A stamp file in the venv holds the digest of the pins that were last installed and
# verified. Sourced, not run: the caller has `set -euo pipefail` and defines log() (its own
# prefix, to stderr); what it installs, how it checks it and what it prints stay in the caller:
#
#   want="$(printf '%s\n' "${PINS[@]}" | pinned_venv_digest)"
#   if pinned_venv_up_to_date "$VENV" "$STAMP" "$want" python; then echo "$VENV/bin/python"; exit 0; fi
#   pinned_venv_create "$VENV"
#   log "installing ${PINS[*]}"
#   pinned_venv_pip "$VENV" "$STAMP" "${PINS[@]}"
#   ...checks...
#   pinned_venv_stamp "$STAMP" "$want"
#   echo "$VENV/bin/python"

# The stamp's contents: sha256 of stdin, hex. Callers feed it exactly what they always hashed,
# so stamps written before this helper existed still match and their venvs are kept.
pinned_venv_digest() {
  sha256sum | cut -d' ' -f1
}

# True (and logged) when VENV/bin/EXE exists and STAMP records WANT: nothing to do.
pinned_venv_up_to_date() {
  local venv="$1" stamp="$2" want="$3" exe="$4"
  [[ -x "$venv/bin/$exe" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] || return 1
  log "venv up to date: $venv"
}

# Create VENV unless it already has a python (a pin change only reinstalls into it). The base
# interpreter is DTBRIDGE_BASE_PYTHON, else python3.11 (Debian 12's python3), else python3; not
# DTBRIDGE_PYTHON, which names a venv's python for the tests. MIN_VERSION ("3.9") and WHY, if
# given, reject an older base interpreter with a message saying what needs it.
pinned_venv_create() {
  local venv="$1" min="${2:-}" why="${3:-}" base="${DTBRIDGE_BASE_PYTHON:-}" candidate
  [[ -x "$venv/bin/python" ]] && return 0
  if [[ -z "$base" ]]; then
    for candidate in python3.11 python3; do
      if command -v "$candidate" >/dev/null; then base="$candidate"; break; fi
    done
  fi
  if [[ -z "$base" ]] || ! command -v "$base" >/dev/null; then
    log "no python3.11/python3 found (set DTBRIDGE_BASE_PYTHON)"
    exit 1
  fi
  if [[ -n "$min" ]] && ! "$base" -c "import sys; sys.exit(sys.version_info < (${min/./, }))"; then
    log "$base is older than $min ($why)"
    exit 1
  fi
  log "creating venv $venv with $base"
  mkdir -p "${venv%/*}"
  rm -rf "$venv"
  # Debian splits ensurepip out of python3: without python3-venv this fails half-way, and the
  # half-made venv would otherwise pass the bin/python test above next time.
  "$base" -m venv "$venv" \
    || { rm -rf "$venv"; log "venv creation failed (Debian: apt-get install python3-venv)"; exit 1; }
}

# pip install ARGS into VENV, its output on stderr (stdout is the caller's result line). The
# stamp goes first: an install that fails half-way must not leave one that a run with the old
# pins would accept.
pinned_venv_pip() {
  local venv="$1" stamp="$2"
  shift 2
  rm -f "$stamp"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >&2
}

# Record WANT once the caller's checks passed.
pinned_venv_stamp() {
  local stamp="$1" want="$2"
  echo "$want" > "$stamp"
  log "done"
}
