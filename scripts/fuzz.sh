#!/usr/bin/env bash
# Runs every fuzz target under fuzz/ (cargo fuzz, libFuzzer with AddressSanitizer): first over
# its committed corpus, fuzz/corpus/<target> (seed inputs, and every crash ever found, kept as
# a regression input once fixed), then for DTBRIDGE_FUZZ_SECONDS more (60; 0 replays the
# committed corpus only). New inputs go to a corpus outside the checkout, kept between runs.
#
#   bash scripts/fuzz.sh [target ...]
#
# A crash stops the script; libFuzzer names the input (fuzz/artifacts/<target>/crash-...).
# Reproduce it with `cargo fuzz run --fuzz-dir fuzz <target> <file>`, fix it, and move the
# file into fuzz/corpus/<target>/.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE/.."
cache="${DTBRIDGE_CACHE:-$HOME/.cache/dtbridge}"
seconds="${DTBRIDGE_FUZZ_SECONDS:-60}"
log() { echo "[fuzz.sh] $*" >&2; }

cargo_fuzz_version=0.13.2
tools="$cache/tools"
if [[ "$("$tools/bin/cargo-fuzz" --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]]; then
  log "installing cargo-fuzz $cargo_fuzz_version into $tools"
  cargo install --locked --root "$tools" cargo-fuzz --version "$cargo_fuzz_version" >&2
fi
export PATH="$tools/bin:$PATH"
# cargo fuzz passes unstable flags (the sanitizer, coverage instrumentation); the stable
# toolchain accepts them this way, and no nightly is needed.
export RUSTC_BOOTSTRAP=1
# Its own target directory: instrumented builds share nothing with the daemon's.
export CARGO_TARGET_DIR="$cache/fuzz-target"

targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi
if ((seconds > 0)); then
  limit=(-max_total_time="$seconds")
else
  limit=(-runs=0)
fi
for target in "${targets[@]}"; do
  committed="fuzz/corpus/$target"
  grown="$cache/fuzz-corpus/$target"
  mkdir -p "$committed" "$grown"
  log "$target: the committed corpus ($(ls "$committed" | wc -l) inputs), then ${seconds} s"
  # The first directory receives new inputs; both are read first. -rss_limit_mb and -timeout
  # turn unbounded memory or time for one input into a finding.
  cargo fuzz run --fuzz-dir fuzz "$target" "$grown" "$committed" -- \
    "${limit[@]}" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 2>&1 \
    | grep --line-buffered -v '^#[0-9]' >&2
done
log "all ${#targets[@]} targets ran without a finding"
