#!/usr/bin/env bash
# Runs every fuzz target for a while (default 120 s each), one at a time on
# one core, with cargo-fuzz (`cargo install cargo-fuzz --locked`), starting
# from the committed corpus. Prints libFuzzer's final stats per target.
#
# Usage: fuzz/run.sh [seconds-per-target] [target...]
#
# - The fuzz crate builds cairn with `default-features = false` (no `engine`):
#   only the decoders, so no RocksDB C++ build and no network stack.
# - cargo-fuzz needs a nightly compiler (-Z sanitizer flags). A `nightly`
#   rustup toolchain is used if installed; otherwise the default (stable)
#   toolchain with RUSTC_BOOTSTRAP=1, which unlocks the same flags.
# - FUZZ_SANITIZER=address (default) or none: AddressSanitizer finds more
#   but runs a few times slower; the decoders are safe Rust.
# - New inputs land in fuzz/target/fuzz-corpus/<target>/ (not committed).
#   `FUZZ_PICK=N fuzz/run.sh 0 [target...]` then copies, per target, at most
#   N of them that add the most coverage into the committed corpus (which
#   `cargo test --test fuzz_corpus` replays and mutates, so keep N small).
# - Crash inputs land in fuzz/artifacts/<target>/. Fix the decoder, then
#   commit the input: `cargo test --test fuzz_corpus` replays it forever.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-120}"; shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config key_file pack_header blob index_file tree snapshot marker)
sanitizer="${FUZZ_SANITIZER:-address}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
if rustup run nightly rustc -V >/dev/null 2>&1; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi
# pick TARGET WORKDIR N: copies into corpus/TARGET at most N inputs of WORKDIR
# (up to 4 KiB each), chosen greedily: each adds the most coverage edges that
# the committed corpus and the inputs picked before it miss.
pick() {
  local t="$1" work="$2" max="$3" scratch="target/fuzz-pick/$1"
  rm -rf "$scratch" && mkdir -p "$scratch/seeds" "$scratch/new"
  cp "corpus/$t"/* "$scratch/seeds/"
  find "$work" -type f -size -4097c -exec cp {} "$scratch/new/" \;
  "${fuzz[@]}" run --sanitizer "$sanitizer" "$t" "$scratch/seeds" "$scratch/new" -- \
    -merge=1 -use_counters=0 -merge_control_file="$scratch/control" \
    >"target/fuzz-logs/$t.pick.log" 2>&1
  # Control file: file count, count in the first (seed) directory, the
  # paths, then per input "STARTED i size" and "COV i edge...".
  local picked=0
  while read -r f; do
    cp "$f" "corpus/$t/" && picked=$((picked + 1))
  done < <(awk -v max="$max" '
    NR == 1 { n = $1; next }
    NR == 2 { first = $1; next }
    NR <= n + 2 { path[NR - 3] = $0; next }
    $1 == "STARTED" { size[$2] = $3 }
    $1 == "COV" && $2 < first { for (k = 3; k <= NF; k++) seen[$k] = 1 }
    $1 == "COV" && $2 >= first { i = $2; $1 = $2 = ""; cov[i] = $0 }
    END {
      for (round = 0; round < max; round++) {
        best = -1; gain = 0
        for (i in cov) {
          m = split(cov[i], e, " "); g = 0
          for (k = 1; k <= m; k++) if (!(e[k] in seen)) g++
          if (g > gain || (g == gain && g > 0 && size[i] < size[best])) { best = i; gain = g }
        }
        if (best < 0) break
        print path[best]
        m = split(cov[best], e, " "); for (k = 1; k <= m; k++) seen[e[k]] = 1
        delete cov[best]
      }
    }' "$scratch/control")
  echo "== $t: picked $picked new inputs into corpus/$t"
}

mkdir -p target/fuzz-logs
for t in "${targets[@]}"; do
  work="target/fuzz-corpus/$t"
  log="target/fuzz-logs/$t.log"
  mkdir -p "$work" "corpus/$t"
  if [ "${FUZZ_PICK:-0}" -gt 0 ]; then
    pick "$t" "$work" "$FUZZ_PICK"
    continue
  fi
  echo "== $t: ${secs}s (log: fuzz/$log)"
  # The work directory comes first: libFuzzer writes new inputs only there.
  if ! "${fuzz[@]}" run --sanitizer "$sanitizer" "$t" "$work" "corpus/$t" -- \
    -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "!! $t failed; crash input in fuzz/artifacts/$t/" >&2
    exit 1
  fi
  grep -E "^(Done [0-9]+ runs|stat::number_of_executed_units|stat::new_units_added|stat::peak_rss_mb)" "$log"
done
