#!/usr/bin/env bash
# Side-by-side end-to-end benchmark: cairn against restic and borg (from
# Debian's packages), with encryption and compression on, through the same
# phases on the same deterministic corpus. Prints one table with cairn's
# ratio to each peer per phase. Reproducible on a fresh Debian machine:
#
#   benches/e2e.sh [SCALE]      # SCALE 1.0 = ~1.5 GiB corpus (default)
#   ROUNDS=3 benches/e2e.sh     # every phase 3 times, the table of medians
#
# With ROUNDS above 1, each round of a phase starts from the same
# repositories and caches (copied aside before the phase and put back
# before each round), so the rounds measure the same work.
#
# Needs: restic, borgbackup, time, zstd (installed if missing), and a
# release build of cairn (built if missing; set CARGO_TARGET_DIR to reuse one).
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE="${1:-1.0}"
WORK="${BENCH_DIR:-/var/tmp/cairn-bench}"
# shellcheck source=benches/common.sh
source benches/common.sh

CORPUS="$WORK/corpus"
echo "generating corpus (scale $SCALE) in $CORPUS"
python3 benches/corpus.py generate "$CORPUS" "$SCALE"
cp -a "$CORPUS" "$WORK/pristine"
echo "corpus: $(du -sb "$CORPUS" | cut -f1) bytes, $(find "$CORPUS" -type f | wc -l) files"

export CAIRN_PASSWORD=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench
export CAIRN_REPOSITORY="$WORK/cairn-repo" RESTIC_REPOSITORY="$WORK/restic-repo"
export CAIRN_CACHE_DIR="$WORK/cairn-cache" RESTIC_CACHE_DIR="$WORK/restic-cache"
export BORG_REPO="$WORK/borg-repo" BORG_BASE_DIR="$WORK/borg-base"
"$CAIRN" init --quiet
restic init -q
borg init -e repokey-blake2 >/dev/null

# What a round of a stateful phase starts from (see `rounds` in common.sh).
STATE=(cairn-repo cairn-cache restic-repo restic-cache borg-repo borg-base)

snapshot_phase() {
  local phase=$1
  measure cairn "$phase" "$CAIRN" snapshot --quiet "$CORPUS"
  measure restic "$phase" restic backup -q "$CORPUS"
  measure borg "$phase" borg create --compression zstd,3 "::$phase" "$CORPUS"
}

physical_phase() {
  measure tar physical bash -c "tar -cf - -C '$WORK' corpus | zstd -3 -T2 > /dev/null"
}

restore_phase() {
  for t in cairn restic borg cp; do rm -rf "$WORK/restore-$t"; done
  for t in cairn restic borg; do mkdir -p "$WORK/restore-$t"; done
  measure cairn restore "$CAIRN" restore --quiet "latest:$CORPUS" --target "$WORK/restore-cairn"
  measure restic restore restic restore latest --target "$WORK/restore-restic"
  measure borg restore bash -c "cd '$WORK/restore-borg' && borg extract ::mutated"
  measure cp restore cp -a "$CORPUS" "$WORK/restore-cp"
}

verify_phase() {
  measure cairn verify "$CAIRN" verify --read-data
  measure restic verify restic check --read-data
  measure borg verify borg check --verify-data
}

# Retention: keep the last snapshot, reclaim the rest (cairn without the
# grace period, as restic and borg delete at once).
prune_phase() {
  measure cairn prune "$CAIRN" forget --keep-last 1 --prune --instant
  measure restic prune restic forget --keep-last 1 --prune
  measure borg prune bash -c "borg prune --keep-last 1 && borg compact"
}

repeat physical_phase
rounds snapshot_phase initial
rounds snapshot_phase unchanged
python3 benches/corpus.py mutate "$CORPUS"
rounds snapshot_phase mutated
repeat restore_phase
repeat verify_phase

for t in cairn restic borg; do
  printf '%s\t%s\t%s\t%s\t%s\n' "$t" reposize "$(du -sb "$WORK/$t-repo" | cut -f1)" 0 0 >> "$RESULTS"
done

rounds prune_phase
rm -rf "$WORK/state"

python3 benches/table.py "$RESULTS"
