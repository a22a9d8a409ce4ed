#!/usr/bin/env bash
# The scale scenario of the benchmark (issue: throughput and memory):
#
#  1. 200,000 small files: initial snapshot, unchanged snapshot and restore,
#     cairn against restic and borg in the same run.
#  2. A repository whose index holds 10 million blobs (synthetic entries,
#     benches/synthetic_index.rs): a snapshot adding one file, first with
#     the local cache rebuilt from the index files, then warm; and prune.
#     Peak RSS is what counts here (target: < 200 MiB).
#  3. A repository of REAL_BLOBS real blobs (synthetic_index --real: tiny
#     blobs in 1 MiB packs, so that it takes a minute to make): storing
#     them, then `verify`, which reads every pack header and looks up every
#     indexed blob. Peak RSS again, against the index's size.
#
#   benches/scale.sh [FILES] [BLOBS] [REAL_BLOBS]  # 200000 10000000 10000000
#   ROUNDS=3 benches/scale.sh             # every phase 3 times, medians
set -euo pipefail
cd "$(dirname "$0")/.."
FILES="${1:-200000}"
BLOBS="${2:-10000000}"
REAL_BLOBS="${3:-10000000}"
WORK="${BENCH_DIR:-/var/tmp/cairn-scale}"
# shellcheck source=benches/common.sh
source benches/common.sh

export CAIRN_PASSWORD=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench
export RESTIC_REPOSITORY="$WORK/restic-repo" RESTIC_CACHE_DIR="$WORK/restic-cache"
export BORG_REPO="$WORK/borg-repo" BORG_BASE_DIR="$WORK/borg-base"

echo "== $FILES small files"
SMALL="$WORK/small"
python3 benches/corpus.py small-files "$SMALL" "$FILES"
echo "corpus: $(du -sb "$SMALL" | cut -f1) bytes, $(find "$SMALL" -type f | wc -l) files"
export CAIRN_REPOSITORY="$WORK/cairn-small" CAIRN_CACHE_DIR="$WORK/cairn-small-cache"
"$CAIRN" init --quiet
restic init -q
borg init -e repokey-blake2 >/dev/null
STATE=(cairn-small cairn-small-cache restic-repo restic-cache borg-repo borg-base)

small_snapshot() {
  local phase=$1
  measure cairn "$phase" "$CAIRN" snapshot --quiet "$SMALL"
  measure restic "$phase" restic backup -q "$SMALL"
  measure borg "$phase" borg create --compression zstd,3 "::$phase" "$SMALL"
}

small_restore() {
  rm -rf "$WORK"/restore-*
  for t in cairn restic borg; do mkdir -p "$WORK/restore-$t"; done
  measure cairn small-restore "$CAIRN" restore --quiet "latest:$SMALL" --target "$WORK/restore-cairn"
  measure restic small-restore restic restore latest --target "$WORK/restore-restic"
  measure borg small-restore bash -c "cd '$WORK/restore-borg' && borg extract ::small-unchanged"
  measure cp small-restore cp -a "$SMALL" "$WORK/restore-cp"
}

rounds small_snapshot small-initial
rounds small_snapshot small-unchanged
repeat small_restore
rm -rf "$WORK"/restore-* "$WORK/restic-repo" "$WORK/borg-repo" "$WORK/state"

echo "== an index of $BLOBS blobs"
export CAIRN_REPOSITORY="$WORK/cairn-big" CAIRN_CACHE_DIR="$WORK/cairn-big-cache"
"$CAIRN" init --quiet
/usr/bin/time -f "synthetic index: %e s" "$SYNTHETIC_INDEX" "$CAIRN_REPOSITORY" "$BLOBS"
echo "index files: $(du -sb "$CAIRN_REPOSITORY/index" | cut -f1) bytes"
ONE="$WORK/one"; mkdir -p "$ONE"
head -c 3000000 /dev/urandom > "$ONE/first"
STATE=(cairn-big cairn-big-cache)
rounds measure cairn big-snapshot-cold "$CAIRN" snapshot --quiet "$ONE"
head -c 3000000 /dev/urandom > "$ONE/second"
rounds measure cairn big-snapshot-warm "$CAIRN" snapshot --quiet "$ONE"
repeat measure cairn big-prune-dry "$CAIRN" prune --dry-run
rounds measure cairn big-prune "$CAIRN" prune --instant
rm -rf "$WORK/state" "$WORK/cairn-big" "$WORK/cairn-big-cache"

echo "== a repository of $REAL_BLOBS real blobs"
export CAIRN_REPOSITORY="$WORK/cairn-real" CAIRN_CACHE_DIR="$WORK/cairn-real-cache"
"$CAIRN" init --quiet --pack-size 1048576
measure cairn real-store "$SYNTHETIC_INDEX" "$CAIRN_REPOSITORY" "$REAL_BLOBS" --real
echo "packs: $(du -sb "$CAIRN_REPOSITORY/data" | cut -f1) bytes, index files: $(du -sb "$CAIRN_REPOSITORY/index" | cut -f1) bytes"
# The first command merges the index files into the local cache.
"$CAIRN" snapshots --quiet > /dev/null
repeat measure cairn real-verify "$CAIRN" verify
rm -rf "$WORK/cairn-real" "$WORK/cairn-real-cache"

python3 benches/table.py "$RESULTS"
