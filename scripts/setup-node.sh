#!/usr/bin/env bash
# Install the Node.js Foxglove WebSocket test client (tests/peers/node: @foxglove/ws-protocol
# over ws, the ROS 2 decoders of the Foxglove app) with its npm dependencies, cached outside the
# checkout in a directory keyed by the sha256 of its package-lock.json.
# Last stdout line: absolute path of the installed foxglove_client.mjs. Progress goes to stderr.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$(cd "$HERE/../tests/peers/node" && pwd)"
CACHE="${DTBRIDGE_CACHE:-$HOME/.cache/dtbridge}"
FILES=(package.json package-lock.json foxglove_client.mjs ros2_decode.mjs decode_ros2.mjs)

log() { echo "[setup-node] $*" >&2; }

# node >= 18 (Debian 12's nodejs is 18.19; @foxglove/rosmsg2-serialization declares node >= 20,
# which npm only warns about: the client runs on 18) and npm.
node_ok() {
  command -v node >/dev/null && command -v npm >/dev/null \
    && node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)'
}
if ! node_ok; then
  if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
    log "installing nodejs and npm (apt-get)"
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm >&2
  fi
  node_ok || {
    log "need node >= 18 and npm (Debian: apt-get install nodejs npm); have node $(node --version 2>/dev/null || echo none), npm $(npm --version 2>/dev/null || echo none)"
    exit 1
  }
fi

key="$(sha256sum "$SRC/package-lock.json" | cut -c1-16)"
DEST="$CACHE/node-peer-$key"

# Copy a file into the cache atomically (a running test may be reading the old one).
refresh() {
  local name="$1" dir="$2"
  if ! cmp -s "$SRC/$name" "$dir/$name"; then
    cp "$SRC/$name" "$dir/.$name.tmp.$$"
    mv -f "$dir/.$name.tmp.$$" "$dir/$name"
  fi
}

if [[ -d "$DEST/node_modules" ]]; then
  # The dependencies only depend on the lock file; the client script itself may have changed.
  for name in "${FILES[@]}"; do refresh "$name" "$DEST"; done
  log "dependencies up to date: $DEST (node $(node --version))"
  echo "$DEST/foxglove_client.mjs"
  exit 0
fi

mkdir -p "$CACHE"
tmp="$(mktemp -d "$CACHE/.node-peer-$key.XXXXXX")"
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
for name in "${FILES[@]}"; do cp "$SRC/$name" "$tmp/$name"; done
log "npm ci in $tmp (node $(node --version), npm $(npm --version))"
# No package of this lock runs install scripts; --ignore-scripts keeps it that way.
(cd "$tmp" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2) \
  || { log "npm ci failed (is the npm registry reachable?)"; exit 1; }
(cd "$tmp" && node --check foxglove_client.mjs && node --check decode_ros2.mjs \
  && node --input-type=module -e "import '@foxglove/ws-protocol'; import 'ws';
     import '@foxglove/rosmsg'; import '@foxglove/rosmsg2-serialization';") >&2 \
  || { log "the installed client does not load"; exit 1; }

# Publish it by a rename; a concurrent run may have won the race (then keep its copy), and a
# leftover directory without node_modules is replaced.
if [[ -e "$DEST" && ! -d "$DEST/node_modules" ]]; then rm -rf "$DEST"; fi
if mv -T "$tmp" "$DEST" 2>/dev/null; then
  trap - EXIT
else
  log "another run installed $DEST first; using it"
  for name in "${FILES[@]}"; do refresh "$name" "$DEST"; done
fi
[[ -f "$DEST/foxglove_client.mjs" && -d "$DEST/node_modules" ]] || { log "no client in $DEST"; exit 1; }
log "done: $DEST"
echo "$DEST/foxglove_client.mjs"
