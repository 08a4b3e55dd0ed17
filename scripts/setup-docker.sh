#!/usr/bin/env bash
# Make Docker usable for tests/docker.rs on a Debian 12 machine without an image registry.
# Idempotent; everything slow is cached under ${DTBRIDGE_CACHE:-$HOME/.cache/dtbridge}.
#
#   eval "$(bash scripts/setup-docker.sh)"     # stdout: shell `export` lines, progress on stderr
#
# 1. Debian's docker.io (the engine) and debootstrap, when missing.
# 2. dockerd, started when `docker info` fails. It then prints DTBRIDGE_DOCKERD_PID: the caller
#    stops it (`kill "$DTBRIDGE_DOCKERD_PID"`) when done; a running engine is left alone.
# 3. The compose plugin (Docker Compose v2, built from the Go module proxy like livekit-server,
#    scripts/setup-livekit-server.sh), installed as ~/.docker/cli-plugins/docker-compose.
# 4. A base image, when `docker pull` cannot reach a registry: a debootstrap'd Debian 12 tarball
#    (cached) imported as dtbridge-local/debian-minbase:bookworm, on which
#    scripts/docker-images.sh makes its stand-ins for the official bases
#    (docker/local-bases/). Exports DTBRIDGE_DOCKER_BASE with that image (empty: a
#    registry answers, pull the official bases).
set -euo pipefail

COMPOSE_VERSION="${COMPOSE_VERSION:-v2.40.3}"
COMPOSE_MODULE="github.com/docker/compose/v2"
CACHE="${DTBRIDGE_CACHE:-$HOME/.cache/dtbridge}"
LOCAL_BASE="dtbridge-local/debian-minbase:bookworm"
COMPOSE_PLUGIN="$HOME/.docker/cli-plugins/docker-compose"

log() { echo "[setup-docker] $*" >&2; }
die() { log "$*"; exit 1; }
as_root=(); [[ $EUID -eq 0 ]] || as_root=(sudo)
mkdir -p "$CACHE"

# ---- 1. packages
missing=()
command -v dockerd >/dev/null || [[ -x /usr/sbin/dockerd ]] || missing+=(docker.io)
command -v debootstrap >/dev/null || [[ -x /usr/sbin/debootstrap ]] || missing+=(debootstrap)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  "${as_root[@]}" apt-get update -q >&2
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}" >&2
fi
PATH="$PATH:/usr/sbin:/sbin"

# ---- 2. engine
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (log: $CACHE/dockerd.log)"
  "${as_root[@]}" dockerd >"$CACHE/dockerd.log" 2>&1 &
  echo "export DTBRIDGE_DOCKERD_PID=$!"
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || die "dockerd did not answer within 60 s; see $CACHE/dockerd.log"
fi
log "engine $(docker version --format '{{.Server.Version}}')"

# ---- 3. compose plugin
if ! docker compose version >/dev/null 2>&1; then
  bin="$CACHE/docker-compose-$COMPOSE_VERSION"
  if [[ ! -x "$bin" ]]; then
    command -v go >/dev/null || PATH="/usr/local/go/bin:$PATH"
    command -v go >/dev/null || die "go not found: it builds the compose plugin"
    log "building $COMPOSE_MODULE@$COMPOSE_VERSION from $(go env GOPROXY) (first build: minutes)"
    dir="$(cd / && GOFLAGS=-mod=mod go mod download -json "$COMPOSE_MODULE@$COMPOSE_VERSION" \
      | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(d["Error"]) if d.get("Error") else print(d["Dir"])')"
    (cd "$dir" && GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath \
      -ldflags "-w -X $COMPOSE_MODULE/internal.Version=$COMPOSE_VERSION" -o "$bin.tmp" ./cmd) >&2
    mv -f "$bin.tmp" "$bin"
  fi
  mkdir -p "$(dirname "$COMPOSE_PLUGIN")"
  ln -sf "$bin" "$COMPOSE_PLUGIN"
fi
log "$(docker compose version)"
# No buildx plugin here: compose and docker build use the engine's classic builder, which the
# Dockerfiles are written for (no RUN --mount).
echo "export DOCKER_BUILDKIT=0"

# ---- 4. base images
if docker image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
  echo "export DTBRIDGE_DOCKER_BASE=$LOCAL_BASE"
elif timeout 60 docker pull -q debian:bookworm-slim >/dev/null 2>&1; then
  log "a registry answers: the Dockerfiles' default bases are pulled"
  echo "export DTBRIDGE_DOCKER_BASE="
else
  tarball="$CACHE/debian-bookworm-minbase.tar"
  if [[ ! -f "$tarball" ]]; then
    # The mirror apt on this machine already uses (deb822 or one-line sources).
    # Either file may be missing (Debian 12 images have only the deb822 one): `|| true`
    # keeps pipefail from ending the script here without a word.
    mirror="$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
      | grep -v '^[[:space:]]*#' | grep -oE 'https?://[^ ]+/debian/?' | head -n1 || true)"
    [[ -n "$mirror" ]] || die "no Debian mirror in /etc/apt/sources.list*: debootstrap needs one"
    root="$(mktemp -d "${TMPDIR:-/tmp}/debootstrap.XXXXXX")"
    log "no registry: debootstrap --variant=minbase bookworm from $mirror (about a minute)"
    "${as_root[@]}" debootstrap --variant=minbase bookworm "$root" "$mirror" >&2 \
      || die "debootstrap failed (log: $root/debootstrap/debootstrap.log)"
    "${as_root[@]}" tar -C "$root" -cf "$tarball.tmp" .
    "${as_root[@]}" rm -rf "$root"
    mv -f "$tarball.tmp" "$tarball"
  fi
  docker import "$tarball" "$LOCAL_BASE" >/dev/null
  log "imported $LOCAL_BASE from $tarball"
  echo "export DTBRIDGE_DOCKER_BASE=$LOCAL_BASE"
fi
