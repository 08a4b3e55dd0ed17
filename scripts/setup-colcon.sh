#!/usr/bin/env bash
# Create/refresh a venv holding colcon (the ROS 2 build tool) from PyPI, cached outside the
# checkout at ${DTBRIDGE_CACHE:-$HOME/.cache/dtbridge}/colcon-venv, for tests/colcon.rs:
# `colcon build` of this package against the ROS 2 prefix of scripts/setup-ros2.sh (which holds
# ament_cmake). Idempotent: a stamp file records the pins that were installed.
# Last stdout line: absolute path of the venv's `colcon`. Progress goes to stderr.
set -euo pipefail

# The plugins a ROS 2 workspace of ament_cmake packages needs, `--packages-select` and
# install/setup.bash (colcon-common-extensions without the ones for Python packages, output
# formatting and mixins).
PINS=(
  colcon-core==0.21.3
  colcon-bash==0.5.0
  colcon-cmake==0.2.30
  colcon-ros==0.5.0
  colcon-package-information==0.4.1
  colcon-package-selection==0.2.10
)

# Everything they pull in, as installed and verified (pip freeze).
CONSTRAINTS="$(cat <<'EOF_CONSTRAINTS'
catkin-pkg==1.1.1
colcon-bash==0.5.0
colcon-cmake==0.2.30
colcon-core==0.21.3
colcon-library-path==0.2.1
colcon-package-information==0.4.1
colcon-package-selection==0.2.10
colcon-pkg-config==0.1.0
colcon-python-setup-py==0.2.9
colcon-recursive-crawl==0.2.3
colcon-ros==0.5.0
colcon-test-result==0.3.8
coverage==7.17.5
distlib==0.4.4
docutils==0.23
empy==4.2.1
iniconfig==2.3.1
packaging==26.4
pluggy==1.7.0
Pygments==2.21.0
pyparsing==3.3.3
pytest==9.2.0
pytest-cov==7.1.0
pytest-repeat==0.9.4
pytest-rerunfailures==16.7
python-dateutil==4.0.0
tzdata==2026.6
EOF_CONSTRAINTS
)"

CACHE="${DTBRIDGE_CACHE:-$HOME/.cache/dtbridge}"
VENV="$CACHE/colcon-venv"
STAMP="$VENV/.colcon-pins.sha256"
PYTHON_BIN="${DTBRIDGE_BASE_PYTHON:-}"
if [[ -z "$PYTHON_BIN" ]]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null; then PYTHON_BIN="$candidate"; break; fi
  done
fi

log() { echo "[setup-colcon] $*" >&2; }

want="$(printf '%s\n' "${PINS[@]}" "$CONSTRAINTS" | sha256sum | cut -d' ' -f1)"
if [[ -x "$VENV/bin/colcon" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  log "venv up to date: $VENV"
  echo "$VENV/bin/colcon"
  exit 0
fi

mkdir -p "$CACHE"
if [[ ! -x "$VENV/bin/python" ]]; then
  [[ -n "$PYTHON_BIN" ]] && command -v "$PYTHON_BIN" >/dev/null \
    || { log "no python3.11/python3 found (set DTBRIDGE_BASE_PYTHON)"; exit 1; }
  log "creating venv $VENV with $PYTHON_BIN"
  rm -rf "$VENV"
  "$PYTHON_BIN" -m venv "$VENV" \
    || { rm -rf "$VENV"; log "venv creation failed (Debian: apt-get install python3-venv)"; exit 1; }
fi
log "installing ${PINS[*]}"
rm -f "$STAMP"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  -c <(printf '%s\n' "$CONSTRAINTS") "${PINS[@]}" >&2
# The verbs and package types the test uses are there.
"$VENV/bin/colcon" build --help >/dev/null \
  || { log "colcon build does not run in $VENV"; exit 1; }
"$VENV/bin/python" -c 'import colcon_ros.package_identification.ros, colcon_cmake' >&2 \
  || { log "colcon-ros or colcon-cmake missing in $VENV"; exit 1; }
echo "$want" > "$STAMP"
log "done"
echo "$VENV/bin/colcon"
