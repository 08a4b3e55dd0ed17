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

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib/pinned-venv.sh
source "$HERE/lib/pinned-venv.sh"
CACHE="${DTBRIDGE_CACHE:-$HOME/.cache/dtbridge}"
VENV="$CACHE/colcon-venv"
STAMP="$VENV/.colcon-pins.sha256"

log() { echo "[setup-colcon] $*" >&2; }

want="$(printf '%s\n' "${PINS[@]}" "$CONSTRAINTS" | pinned_venv_digest)"
if pinned_venv_up_to_date "$VENV" "$STAMP" "$want" colcon; then
  echo "$VENV/bin/colcon"
  exit 0
fi

pinned_venv_create "$VENV"
log "installing ${PINS[*]}"
pinned_venv_pip "$VENV" "$STAMP" -c <(printf '%s\n' "$CONSTRAINTS") "${PINS[@]}"
# The verbs and package types the test uses are there.
"$VENV/bin/colcon" build --help >/dev/null \
  || { log "colcon build does not run in $VENV"; exit 1; }
"$VENV/bin/python" -c 'import colcon_ros.package_identification.ros, colcon_cmake' >&2 \
  || { log "colcon-ros or colcon-cmake missing in $VENV"; exit 1; }
pinned_venv_stamp "$STAMP" "$want"
echo "$VENV/bin/colcon"
