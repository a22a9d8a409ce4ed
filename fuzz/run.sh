#!/usr/bin/env bash
# Runs every fuzz target for a while (default 60 s each) with cargo-fuzz,
# starting from the committed corpus. New crash inputs land in
# fuzz/artifacts/<target>/; commit them: `cargo test` replays them forever.
# Usage: fuzz/run.sh [seconds-per-target] [target...]
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"; shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config key_file pack_header blob index_file tree snapshot)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "== $t: ${secs}s"
  cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -max_len=65536 2>&1 | tail -n 3 \
    || cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -max_len=65536 2>&1 | tail -n 3
done
