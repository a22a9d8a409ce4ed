#!/usr/bin/env bash
# Installs the Debian packages cairn needs to build and to run its tests:
# a C/C++ toolchain and libclang for RocksDB's bindings, FUSE 3 for `mount`,
# and the small tools the tests use (attr for xattrs, util-linux's setpriv).
set -euo pipefail
packages=(build-essential pkg-config clang libclang-dev fuse3 libfuse3-dev attr util-linux ca-certificates curl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
