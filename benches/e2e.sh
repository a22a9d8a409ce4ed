#!/usr/bin/env bash
# Side-by-side end-to-end benchmark: cairn against restic and borg (from
# Debian's packages), with encryption and compression on, through the same
# phases on the same deterministic corpus. Prints one table with cairn's
# ratio to each peer per phase. Reproducible on a fresh Debian machine:
#
#   benches/e2e.sh [SCALE]      # SCALE 1.0 = ~1.5 GiB corpus (default)
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

run_phase() {
  local phase=$1
  measure cairn "$phase" "$CAIRN" snapshot --quiet "$CORPUS"
  measure restic "$phase" restic backup -q "$CORPUS"
  measure borg "$phase" borg create --compression zstd,3 "::$phase" "$CORPUS"
}

measure tar physical bash -c "tar -cf - -C '$WORK' corpus | zstd -3 -T2 > /dev/null"
run_phase initial
run_phase unchanged
python3 benches/corpus.py mutate "$CORPUS"
run_phase mutated

for t in cairn restic borg; do rm -rf "$WORK/restore-$t"; mkdir -p "$WORK/restore-$t"; done
measure cairn restore "$CAIRN" restore --quiet "latest:$CORPUS" --target "$WORK/restore-cairn"
measure restic restore restic restore latest --target "$WORK/restore-restic"
measure borg restore bash -c "cd '$WORK/restore-borg' && borg extract ::mutated"
measure cp restore cp -a "$CORPUS" "$WORK/restore-cp"

measure cairn verify "$CAIRN" verify --read-data
measure restic verify restic check --read-data
measure borg verify borg check --verify-data

for t in cairn restic borg; do
  printf '%s\t%s\t%s\t%s\t%s\n' "$t" reposize "$(du -sb "$WORK/$t-repo" | cut -f1)" 0 0 >> "$RESULTS"
done

# Retention: keep the last snapshot, reclaim the rest (cairn without the
# grace period, as restic and borg delete at once).
measure cairn prune "$CAIRN" forget --keep-last 1 --prune --instant
measure restic prune restic forget --keep-last 1 --prune
measure borg prune bash -c "borg prune --keep-last 1 && borg compact"

python3 - "$RESULTS" <<'PY'
import sys, collections
rows = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    tool, phase, wall, cpu, rss = line.split("\t")
    rows[phase][tool] = (float(wall), float(cpu), int(rss))
print()
print(f"{'phase':<10} {'cairn wall':>11} {'restic x':>9} {'borg x':>8} {'cairn RSS MiB':>14} {'RSS vs restic':>14}")
for phase in ["initial", "unchanged", "mutated", "restore", "verify", "prune", "reposize"]:
    r = rows.get(phase, {})
    if "cairn" not in r:
        continue
    c = r["cairn"]
    def ratio(tool, i=0):
        return f"{r[tool][i] / c[i]:.2f}" if tool in r and c[i] else "-"
    if phase == "reposize":
        print(f"{phase:<10} {c[0]/2**20:>9.1f}Mi {c[0]/r['restic'][0]:>9.2f} {c[0]/r['borg'][0]:>8.2f}   (size ratio cairn/peer)")
        continue
    rss = f"{c[2]/1024:.0f}"
    rss_ratio = f"{c[2]/r['restic'][2]:.2f}" if "restic" in r else "-"
    print(f"{phase:<10} {c[0]:>10.2f}s {ratio('restic'):>9} {ratio('borg'):>8} {rss:>14} {rss_ratio:>14}")
if "physical" in rows and "tar" in rows["physical"]:
    print(f"tar|zstd -3 -T2 of the corpus: {rows['physical']['tar'][0]:.2f}s; cp -a restore: {rows.get('restore', {}).get('cp', (0,))[0]:.2f}s")
print("ratios are peer time / cairn time: above 1 means cairn is faster")
PY
