#!/usr/bin/env bash
# Run CMD... inside a fresh, private network namespace (unshare -n; root, or unprivileged user
# namespaces for anyone else).
# Inside: lo up, plus a veth pair v0 (10.200.0.1/24) <-> v1 (10.200.0.2/24). No default route,
# so nothing can leave the namespace. libwebrtc (Python SDK, Chromium) ignores loopback
# interfaces when gathering ICE candidates, hence the veth addresses. Both veth ends live in
# this same namespace (the kernel actually delivers 10.200.0.x traffic via its local table).
# Exports DTBRIDGE_TEST_IP=10.200.0.1 (and DTBRIDGE_TEST_IP2=10.200.0.2).
# The namespace (and the veth pair) vanish when CMD exits. Exit status is CMD's.
set -euo pipefail

if [[ "${1:-}" != "--dtbridge-netns-inner" ]]; then
  [[ $# -ge 1 ]] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
  command -v unshare >/dev/null && command -v ip >/dev/null \
    || { echo "netns-run: need unshare (util-linux) and ip (iproute2)" >&2; exit 1; }
  # Root (CI) gets a plain network namespace; anyone else needs user namespaces.
  userns=()
  [[ $EUID -eq 0 ]] || userns=(--user --map-root-user)
  exec unshare "${userns[@]}" --net -- bash "${BASH_SOURCE[0]}" --dtbridge-netns-inner "$@"
fi
shift

ip link set lo up
ip link add v0 type veth peer name v1
ip addr add 10.200.0.1/24 dev v0
ip addr add 10.200.0.2/24 dev v1
ip link set v0 up
ip link set v1 up
# wait (briefly) until both veth ends report carrier
for _ in $(seq 50); do
  if ip -o link show v0 | grep -q 'state UP' && ip -o link show v1 | grep -q 'state UP'; then break; fi
  sleep 0.02
done

export DTBRIDGE_TEST_IP=10.200.0.1
export DTBRIDGE_TEST_IP2=10.200.0.2
exec "$@"
