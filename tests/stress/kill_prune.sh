#!/bin/bash
# Stress check of prune's kill safety (not run by CI): per round, a fresh
# repository like tests/prune.rs setup(), then 12 prunes killed after a random
# 0-0.25 s, with a verify after each kill. A failing round's repository is
# kept beside KP_DIR. Usage: tests/stress/kill_prune.sh CAIRN_BINARY ROUNDS
BIN=$1; R=$2
export CAIRN_PASSWORD=pw CAIRN_INDEX_FILE_BLOBS=64 TZ=UTC
W=${KP_DIR:-/var/tmp/killprune}; 
for r in $(seq $R); do
  rm -rf $W; mkdir -p $W/src; export CAIRN_REPOSITORY=$W/repo CAIRN_CACHE_DIR=$W/cache
  $BIN init --kdf-memory-kib 64 --kdf-iterations 1 --kdf-parallelism 1 --chunk-min 4096 --chunk-avg 16384 --chunk-max 65536 >/dev/null 2>&1
  head -c 1048576 /dev/urandom > $W/src/shared
  ids=()
  for i in 0 1 2; do head -c 2097152 /dev/urandom > $W/src/changing; ids+=($($BIN snapshot --json $W/src | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshot_id"])')); done
  $BIN forget ${ids[0]:0:8} ${ids[1]:0:8} >/dev/null
  for k in $(seq 12); do
    d=$(python3 -c "import random; print(random.uniform(0.0, 0.25))")
    $BIN prune --max-unused 0 --grace-hours 0 >/dev/null 2>&1 & p=$!
    sleep $d; kill -9 $p 2>/dev/null; wait $p 2>/dev/null
    if ! $BIN verify --read-data > $W/verify.out 2>&1; then echo "round $r kill $k delay $d FAILED"; cat $W/verify.out | head -8; cp -a $W $W-fail-$r; fi
  done
done
echo done
