#!/usr/bin/env bash
# THE one command that sets up and runs the whole test suite, on a fresh Debian 12 machine or
# an old one (everything is cached under ${DTBRIDGE_CACHE:-$HOME/.cache/dtbridge}):
#
#   bash scripts/test.sh [extra cargo test args, e.g. --test interop -- --nocapture]
#
# 1. Debian packages, only those missing (iproute2, util-linux, procps, python3-venv, python3-dev
#    (Python.h, for message packages built by colcon), ethtool
#    for the link emulator; clang, libclang-dev and libpython3.11 for r2r; cmake and make for
#    colcon).
# 2. livekit-server (scripts/setup-livekit-server.sh, built from the Go module proxy), the
#    Python SDK venv (scripts/setup-python.sh), the Node.js Foxglove WebSocket client
#    (scripts/setup-node.sh, tests/peers/node with its npm packages), the ROS 2 wheels
#    (scripts/setup-ros2.sh); exports DTBRIDGE_LIVEKIT_SERVER, DTBRIDGE_PYTHON,
#    DTBRIDGE_FOXGLOVE_CLIENT and DTBRIDGE_ROS2_PYTHON (preset values are kept and their setup
#    skipped); sources scripts/ros2-env.sh for r2r; librealsense from
#    the pyrealsense2 wheel (scripts/setup-realsense.sh): PKG_CONFIG_PATH, LD_LIBRARY_PATH,
#    DTBRIDGE_REALSENSE_PYTHON. colcon (scripts/setup-colcon.sh): DTBRIDGE_COLCON. Docker for
#    tests/docker.rs (scripts/setup-docker.sh): docker.io, dockerd (stopped at exit when
#    started here), the compose plugin, local base images.
# 3. cargo fmt --check, cargo clippy --all-targets -D warnings without the optional features,
#    with each and with both (`feature_sets` below), cargo build --all-targets with both and
#    cargo fetch (with network, for crates.io), CARGO_TARGET_DIR outside the checkout.
# 4. the patched crates' own tests (vendor/rtc-sctp, vendor/livekit-datatrack, in memory), then
#    cargo test --all-targets --features ros2,realsense --offline inside
#    scripts/netns-run.sh: a private network namespace with a veth pair
#    (DTBRIDGE_TEST_IP=10.200.0.1), no route out; the server and the Python SDK peers run
#    there (libwebrtc ignores loopback).
# 5. the fuzz targets (scripts/fuzz.sh): each over its committed corpus, then for
#    DTBRIDGE_FUZZ_SECONDS (60) more; skipped when the arguments select tests.
# Any failure fails the script. With CI=true, tests that cannot run fail instead of skipping.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
cd "$ROOT"
export DTBRIDGE_CACHE="${DTBRIDGE_CACHE:-$HOME/.cache/dtbridge}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$DTBRIDGE_CACHE/target}"
mkdir -p "$DTBRIDGE_CACHE"
# CI builds each change once: incremental compilation only piles up caches there (21 GB of
# them filled this machine's disk after a day of runs), so CI turns it off and drops them.
if [[ "${CI:-}" == true ]]; then
  export CARGO_INCREMENTAL=0
  rm -rf "$CARGO_TARGET_DIR/debug/incremental"
fi

T0=$SECONDS
log() { echo "[test.sh +$((SECONDS - T0))s] $*" >&2; }
die() { log "FAILED: $*"; exit 1; }
step() { log "== $*"; }

# Toolchains installed outside the default PATH (rustup, the Go tarball).
for dir in "$HOME/.cargo/bin" /usr/local/go/bin; do
  if [[ -d "$dir" && ":$PATH:" != *":$dir:"* ]]; then PATH="$dir:$PATH"; fi
done
export PATH

as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root for: $*"
  fi
}

# ---------------------------------------------------------------- 1. system packages
step "system packages"
missing=()
command -v ip >/dev/null || missing+=(iproute2)
command -v unshare >/dev/null || missing+=(util-linux)
command -v sysctl >/dev/null || missing+=(procps)
# dtbridge-linkemu turns veth offloads off with it (tests/link_emulator.rs).
command -v ethtool >/dev/null || [[ -x /usr/sbin/ethtool ]] || missing+=(ethtool)
command -v clang >/dev/null || missing+=(clang)
compgen -G "/usr/lib/llvm-*/lib/libclang.so*" >/dev/null || missing+=(libclang-dev)
compgen -G "/usr/lib/*/libpython3.11.so.1.0" >/dev/null || missing+=(libpython3.11)
command -v cmake >/dev/null || missing+=(cmake)
command -v make >/dev/null || missing+=(make)
base_python="${DTBRIDGE_BASE_PYTHON:-}"
if [[ -z "$base_python" ]]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null; then base_python="$candidate"; break; fi
  done
fi
if [[ -z "$base_python" ]]; then
  missing+=(python3 python3-venv)
else
  "$base_python" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
  # The ROS 2 venv builds message packages' Python bindings (tests/ros2_types.rs).
  "$base_python" -c 'import os, sys, sysconfig
sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || missing+=(python3-dev)
fi
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  as_root apt-get update -q >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}" >&2
else
  log "all present"
fi
for tool in cargo go; do
  command -v "$tool" >/dev/null || die "$tool is not installed (the machine image provides Rust and Go)"
done
cargo fmt --version >/dev/null 2>&1 || die "rustfmt is missing (rustup component add rustfmt)"
cargo clippy --version >/dev/null 2>&1 || die "clippy is missing (rustup component add clippy)"

# The client asks for 4 MiB UDP socket buffers; the kernel caps them at these limits.
for key in net.core.rmem_max net.core.wmem_max; do
  current="$(sysctl -n "$key" 2>/dev/null || echo 0)"
  if ((current < 4194304)); then
    as_root sysctl -q -w "$key=4194304" >/dev/null 2>&1 \
      && log "raised $key to 4194304" || log "could not raise $key ($current); continuing"
  fi
done

# ---------------------------------------------------------------- 2. server and Python peers
step "livekit-server"
if [[ -z "${DTBRIDGE_LIVEKIT_SERVER:-}" ]]; then
  DTBRIDGE_LIVEKIT_SERVER="$(bash "$HERE/setup-livekit-server.sh" | tail -n1)"
fi
[[ -x "$DTBRIDGE_LIVEKIT_SERVER" ]] || die "no livekit-server at $DTBRIDGE_LIVEKIT_SERVER"
export DTBRIDGE_LIVEKIT_SERVER
log "$DTBRIDGE_LIVEKIT_SERVER"

step "Python SDK venv"
if [[ -z "${DTBRIDGE_PYTHON:-}" ]]; then
  DTBRIDGE_PYTHON="$(DTBRIDGE_BASE_PYTHON="$base_python" bash "$HERE/setup-python.sh" | tail -n1)"
fi
[[ -x "$DTBRIDGE_PYTHON" ]] || die "no venv python at $DTBRIDGE_PYTHON"
export DTBRIDGE_PYTHON
log "$DTBRIDGE_PYTHON"

step "Node Foxglove client (scripts/setup-node.sh)"
if [[ -z "${DTBRIDGE_FOXGLOVE_CLIENT:-}" ]]; then
  DTBRIDGE_FOXGLOVE_CLIENT="$(bash "$HERE/setup-node.sh" | tail -n1)"
fi
[[ -f "$DTBRIDGE_FOXGLOVE_CLIENT" ]] || die "no Foxglove client at $DTBRIDGE_FOXGLOVE_CLIENT"
export DTBRIDGE_FOXGLOVE_CLIENT
log "$DTBRIDGE_FOXGLOVE_CLIENT"

step "ROS 2 (the PyPI wheels: rclpy peers, and the prefix r2r builds against)"
export DTBRIDGE_BASE_PYTHON="$base_python"
# shellcheck source=ros2-env.sh
source "$HERE/ros2-env.sh" || die "scripts/ros2-env.sh"
[[ -x "$DTBRIDGE_ROS2_PYTHON" ]] || die "no ROS 2 venv python at $DTBRIDGE_ROS2_PYTHON"
log "$DTBRIDGE_ROS2_PYTHON (AMENT_PREFIX_PATH=$AMENT_PREFIX_PATH)"

step "colcon (tests/colcon.rs: colcon build of the package against the ROS 2 prefix)"
if [[ -z "${DTBRIDGE_COLCON:-}" ]]; then
  DTBRIDGE_COLCON="$(DTBRIDGE_BASE_PYTHON="$base_python" bash "$HERE/setup-colcon.sh" | tail -n1)"
fi
[[ -x "$DTBRIDGE_COLCON" ]] || die "no colcon at $DTBRIDGE_COLCON"
export DTBRIDGE_COLCON
log "$DTBRIDGE_COLCON"

step "librealsense (from the pyrealsense2 wheel)"
realsense_prefix="$(DTBRIDGE_BASE_PYTHON="$base_python" bash "$HERE/setup-realsense.sh" | tail -n1)"
[[ -f "$realsense_prefix/lib/pkgconfig/realsense2.pc" ]] || die "no librealsense2 in $realsense_prefix"
export PKG_CONFIG_PATH="$realsense_prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$realsense_prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export DTBRIDGE_REALSENSE_PYTHON="${DTBRIDGE_REALSENSE_PYTHON:-$realsense_prefix/venv/bin/python}"
log "$realsense_prefix"

step "Docker (scripts/setup-docker.sh: engine, compose plugin, local base images; tests/docker.rs)"
# Exports DOCKER_BUILDKIT and DTBRIDGE_DOCKER_BASE, and DTBRIDGE_DOCKERD_PID when it started
# dockerd, which the EXIT trap below stops.
docker_env="$(bash "$HERE/setup-docker.sh")" || die "scripts/setup-docker.sh"
eval "$docker_env"

# Optional cargo features (their libraries are set up above): each linted on its own and
# together; built and tested together, as robots with ROS 2 and a RealSense run them. The
# bridge never links librealsense (the wheel's copy of Fast DDS would clash with ROS 2's): its
# camera driver is a separate binary, dtbridge-realsense (src/source/realsense/mod.rs).
feature_sets=(ros2 realsense ros2,realsense)
features=ros2,realsense

# ---------------------------------------------------------------- 3. Rust: lint and build
step "cargo fmt --check"
cargo fmt --check || die "cargo fmt --check (run cargo fmt)"
cargo fmt --check --manifest-path fuzz/Cargo.toml \
  || die "cargo fmt --check of fuzz/ (run cargo fmt --manifest-path fuzz/Cargo.toml)"
step "cargo clippy --all-targets -- -D warnings (no features: a machine without ROS 2 or librealsense)"
cargo clippy --all-targets -- -D warnings || die "cargo clippy"
for set in "${feature_sets[@]}"; do
  step "cargo clippy --all-targets --features $set -- -D warnings"
  cargo clippy --all-targets --features "$set" -- -D warnings || die "cargo clippy ($set)"
done
step "cargo build --all-targets --features $features (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
cargo build --all-targets --features "$features" || die "cargo build ($features)"
# The tests below run offline; the vendored crates' dev-dependencies are in no build above.
cargo fetch || die "cargo fetch"

# ---------------------------------------------------------------- 4. tests, network namespace
# Extra arguments go to cargo test; --all-targets unless they select targets themselves.
targets=(--all-targets)
for arg in "$@"; do
  [[ "$arg" == -- ]] && break
  case "$arg" in
    --lib | --bins | --bin | --bin=* | --tests | --test | --test=* | --examples | --example | \
      --example=* | --benches | --bench | --bench=* | --doc | --all-targets) targets=() ;;
  esac
done
# --no-fail-fast: every test binary runs, so one report shows every failure.
results="$(mktemp "${TMPDIR:-/tmp}/dtbridge-test.XXXXXX")"
trap 'rm -f "$results"; [[ -z "${DTBRIDGE_DOCKERD_PID:-}" ]] || kill "$DTBRIDGE_DOCKERD_PID"' EXIT
rc=0
if ((${#targets[@]})); then
  step "cargo test -p rtc-sctp -p livekit-datatrack --lib --offline (the vendored crates, vendor/*/PATCHES.md)"
  cargo test -p rtc-sctp -p livekit-datatrack --lib --offline 2>&1 | tee -a "$results" || rc=$?
fi
step "cargo test ${targets[*]} --features $features --offline --no-fail-fast $* (inside scripts/netns-run.sh)"
CARGO_NET_OFFLINE=true bash "$HERE/netns-run.sh" \
  cargo test "${targets[@]}" --features "$features" --offline --no-fail-fast "$@" 2>&1 \
  | tee -a "$results" || rc=$?
# One closing line for the whole run (cargo's last "test result" is that of one binary only,
# often one with no tests). Tests that could not run fail in CI instead of skipping; the only
# ignored ones are the child-process entry points of tests/recorder.rs, which its crash and
# full-disk tests run themselves, and rtc-sctp's manual CPU comparison. Outside CI a test whose prerequisite is missing passes after
# printing "*** SKIPPED <test>: <why> ***"; those are counted too.
awk '/^test result:/ { for (i = 1; i < NF; i++) {
       if ($(i + 1) ~ /^passed/) p += $i; if ($(i + 1) ~ /^failed/) f += $i;
       if ($(i + 1) ~ /^ignored/) s += $i } }
     /^\*\*\* SKIPPED / { k++ }
     END { printf "ignored: %d child-process entry points (run by the tests that need them) and the manual CPU comparison of rtc-sctp\n", s;
           printf "skipped: %d (each says why above, in a *** SKIPPED line)\n", k;
           printf "total: %d passed, %d failed\n", p, f }' "$results"
((rc == 0)) || die "cargo test exited with $rc"

# ---------------------------------------------------------------- 5. fuzzing
if [[ $# -eq 0 ]]; then
  step "fuzz targets (scripts/fuzz.sh, ${DTBRIDGE_FUZZ_SECONDS:-60} s each)"
  bash "$HERE/fuzz.sh" || die "fuzzing found a problem (scripts/fuzz.sh says how to reproduce it)"
fi
log "all passed in $((SECONDS - T0))s"
