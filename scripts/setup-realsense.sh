#!/usr/bin/env bash
# Make librealsense2 available without the Debian package (Debian has none): the library is
# taken from the pinned PyPI wheel pyrealsense2, whose Python module links librealsense
# statically and exports the whole rs2_* C API. Cached outside the checkout in
# ${DTBRIDGE_CACHE:-$HOME/.cache/dtbridge}/realsense-<version>:
#   lib/librealsense2.so(.2.59(.1))   the module, given a SONAME and made linkable
#   lib/pkgconfig/realsense2.pc       what realsense-sys's build script probes
#   venv/                             python with pyrealsense2, which writes test recordings
# Build with PKG_CONFIG_PATH=<prefix>/lib/pkgconfig and run with LD_LIBRARY_PATH=<prefix>/lib
# (scripts/test.sh exports both). Idempotent: a stamp file records what was installed.
# Last stdout line: the prefix. Progress goes to stderr.
set -euo pipefail

VERSION=2.59.1
PIN="pyrealsense2==2.59.1.11053"
CACHE="${DTBRIDGE_CACHE:-$HOME/.cache/dtbridge}"
PREFIX="$CACHE/realsense-$VERSION"
STAMP="$PREFIX/.pin"
PYTHON_BIN="${DTBRIDGE_BASE_PYTHON:-}"
if [[ -z "$PYTHON_BIN" ]]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null; then PYTHON_BIN="$candidate"; break; fi
  done
fi

log() { echo "[setup-realsense] $*" >&2; }
as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else log "need root for: $*"; exit 1
  fi
}

# The wheel's module needs libusb and libudev at run time; its Py* symbols stay undefined
# (the C API never calls them) unless libpython is a dependency, which the linker insists on.
missing=()
for package in libusb-1.0-0 libudev1 libpython3.11 patchelf pkg-config; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
    || missing+=("$package")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  as_root apt-get update -q >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}" >&2
fi

check() {
  PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig" pkg-config --exists 'realsense2 >= 2' \
    && LD_LIBRARY_PATH="$PREFIX/lib" "$PREFIX/venv/bin/python" -c '
import ctypes, pyrealsense2 as rs
lib = ctypes.CDLL("librealsense2.so")
assert lib.rs2_get_api_version(None) // 10000 == 2
rs.software_device()
' >&2
}

want="$PIN $(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] && check; then
  log "up to date: $PREFIX"
  echo "$PREFIX"
  exit 0
fi

[[ -n "$PYTHON_BIN" ]] && command -v "$PYTHON_BIN" >/dev/null \
  || { log "no python3.11/python3 found (set DTBRIDGE_BASE_PYTHON)"; exit 1; }
"$PYTHON_BIN" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || { log "$PYTHON_BIN is not Python 3.11 (the module links libpython3.11)"; exit 1; }
rm -rf "$PREFIX"
mkdir -p "$PREFIX/lib/pkgconfig"
log "creating venv $PREFIX/venv with $PIN"
"$PYTHON_BIN" -m venv "$PREFIX/venv" \
  || { log "venv creation failed (Debian: apt-get install python3-venv)"; exit 1; }
"$PREFIX/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$PIN" >&2
module="$("$PREFIX/venv/bin/python" -c '
import glob, os, importlib.util
spec = importlib.util.find_spec("pyrealsense2")
print(glob.glob(os.path.join(spec.submodule_search_locations[0], "pyrealsense2.cpython-*.so"))[0])')"
log "making $module linkable"
lib="$PREFIX/lib/librealsense2.so.$VERSION"
cp "$module" "$lib"
# Two calls: patchelf 0.14 corrupts the SONAME when both changes are made in one.
patchelf --set-soname "librealsense2.so.${VERSION%.*}" "$lib"
patchelf --add-needed libpython3.11.so.1.0 "$lib"
ln -s "librealsense2.so.$VERSION" "$PREFIX/lib/librealsense2.so.${VERSION%.*}"
ln -s "librealsense2.so.${VERSION%.*}" "$PREFIX/lib/librealsense2.so"
cat > "$PREFIX/lib/pkgconfig/realsense2.pc" <<EOF_PC
prefix=$PREFIX
libdir=\${prefix}/lib

Name: realsense2
Description: Intel RealSense SDK 2.0 (from the $PIN wheel)
Version: $VERSION
Libs: -L\${libdir} -lrealsense2
Cflags:
EOF_PC
check || { log "librealsense2 in $PREFIX does not load"; exit 1; }
echo "$want" > "$STAMP"
log "done"
echo "$PREFIX"
