#!/usr/bin/env bash
# The codec benchmark of BENCHMARKS.md: release build, then `dtbridge bench codec` (in-process,
# no network). Extra arguments go to it (e.g. --runs 300).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${DTBRIDGE_CACHE:-$HOME/.cache/dtbridge}/target}"
(cd "$ROOT" && cargo build --release --bin dtbridge)
"$CARGO_TARGET_DIR/release/dtbridge" bench codec "$@"
