#!/usr/bin/env bash
# One-step install on a fresh Debian machine: system packages, a Rust
# toolchain if there is none, then `cairn` into ~/.cargo/bin.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh
if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] || curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  export PATH="$HOME/.cargo/bin:$PATH"
fi
cargo install --locked --path .
echo "installed: $(command -v cairn || echo "$HOME/.cargo/bin/cairn")"
