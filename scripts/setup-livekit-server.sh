#!/usr/bin/env bash
# Build livekit-server from the Go module proxy, pinned, cached outside the checkout.
# Last stdout line: absolute path of the binary. Progress goes to stderr.
# go.mod of livekit-server has `replace` directives, so `go install mod@ver` refuses it:
# we `go mod download` the module, copy it to a writable temp dir and `go build ./cmd/server` there.
set -euo pipefail

LIVEKIT_SERVER_VERSION="${LIVEKIT_SERVER_VERSION:-v1.13.5}"
MODULE="github.com/livekit/livekit-server"
CACHE="${DTBRIDGE_CACHE:-$HOME/.cache/dtbridge}"
BIN="$CACHE/livekit-server-$LIVEKIT_SERVER_VERSION"

log() { echo "[setup-livekit-server] $*" >&2; }

if [[ -x "$BIN" ]]; then
  log "cached: $BIN"
  echo "$BIN"
  exit 0
fi

if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then PATH="/usr/local/go/bin:$PATH"; fi
command -v go >/dev/null || { log "go not found in PATH (need Go >= 1.26)"; exit 1; }
# The module's go.mod says `go 1.26`; an older Go (Debian 12's golang is 1.19) cannot build it.
GO_VERSION="$(go env GOVERSION)"
if ! printf '%s\n' go1.26 "$GO_VERSION" | sort -V -C; then
  log "$GO_VERSION is too old: livekit-server $LIVEKIT_SERVER_VERSION needs Go >= 1.26"
  exit 1
fi
mkdir -p "$CACHE"

log "downloading $MODULE@$LIVEKIT_SERVER_VERSION via $(go env GOPROXY)"
# `go mod download -json` works outside any module; Dir is the read-only module cache copy.
DIR="$(cd / && GOFLAGS=-mod=mod go mod download -json "$MODULE@$LIVEKIT_SERVER_VERSION" \
  | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Dir","")) if not d.get("Error") else sys.exit(d["Error"])')"
[[ -d "$DIR" ]] || { log "module dir not found: $DIR"; exit 1; }

BUILD="$(mktemp -d "${TMPDIR:-/tmp}/lk-server-build.XXXXXX")"
trap 'chmod -R u+w "$BUILD" 2>/dev/null || true; rm -rf "$BUILD"' EXIT
cp -r "$DIR/." "$BUILD/"
chmod -R u+w "$BUILD"

log "building in $BUILD (first build takes several minutes)"
start=$(date +%s)
(
  cd "$BUILD"
  GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -o "$BIN.tmp" ./cmd/server
) >&2
mv -f "$BIN.tmp" "$BIN"
log "built $BIN in $(( $(date +%s) - start ))s"
echo "$BIN"
