# Shared by benches/e2e.sh and benches/scale.sh: installs the peers, builds
# cairn in release, and measures one command. Source it after setting WORK.

need=()
for p in restic borgbackup time zstd bc; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/cairn-target}"
cargo build --release --locked --bin cairn --example synthetic_index
CAIRN="$CARGO_TARGET_DIR/release/cairn"
SYNTHETIC_INDEX="$CARGO_TARGET_DIR/release/examples/synthetic_index"

rm -rf "$WORK"; mkdir -p "$WORK"
RESULTS="$WORK/results.tsv"; : > "$RESULTS"

# measure TOOL PHASE CMD...: wall seconds, CPU seconds, peak RSS KiB, with
# the page cache dropped first (when allowed) so every tool reads from disk.
measure() {
  local tool=$1 phase=$2; shift 2
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  /usr/bin/time -f "%e %U %S %M" -o "$WORK/time.out" "$@" > "$WORK/$tool-$phase.log" 2>&1 || {
    echo "$tool $phase failed:"; tail -5 "$WORK/$tool-$phase.log"; exit 1; }
  read -r wall user sys rss < "$WORK/time.out"
  printf '%s\t%s\t%s\t%s\t%s\n' "$tool" "$phase" "$wall" "$(echo "$user + $sys" | bc)" "$rss" >> "$RESULTS"
  printf '%-7s %-16s wall %7.2fs  cpu %7.2fs  rss %8d KiB\n' "$tool" "$phase" "$wall" "$(echo "$user + $sys" | bc)" "$rss"
}

# Rounds: ROUNDS=N measures every phase N times (benches/table.py tables
# the medians). Each round of a phase that changes a repository starts from
# the same state: the directories named in STATE (relative to WORK, set by
# the script) are copied aside before the phase and put back before each
# round.
ROUNDS="${ROUNDS:-1}"

# keep_state: sets the repositories and caches aside as they are now.
keep_state() {
  rm -rf "$WORK/state"; mkdir -p "$WORK/state"
  for d in "${STATE[@]}"; do [ ! -e "$WORK/$d" ] || cp -a "$WORK/$d" "$WORK/state/"; done
}

# reset_state: puts back what keep_state set aside.
reset_state() {
  for d in "${STATE[@]}"; do
    rm -rf "${WORK:?}/$d"
    [ ! -e "$WORK/state/$d" ] || cp -a "$WORK/state/$d" "$WORK/"
  done
}

# repeat CMD...: runs CMD (which measures a phase that changes no
# repository) ROUNDS times.
repeat() {
  for ((round = 1; round <= ROUNDS; round++)); do "$@"; done
}

# rounds CMD...: runs CMD (which measures a phase) ROUNDS times, each from
# the state before the first.
rounds() {
  [ "$ROUNDS" -eq 1 ] || keep_state
  for ((round = 1; round <= ROUNDS; round++)); do
    [ "$round" -eq 1 ] || reset_state
    "$@"
  done
}
