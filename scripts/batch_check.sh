#!/usr/bin/env bash
# How much a score moves with the number of parts scored at once (issue "green on every
# x86-64 CPU"): the default detector trained on 16 good images (seed 0, 16 held out) of each
# data set, then 12 good and up to 12 defective test images scored 1 and 8 at once (both
# --score-batch and --backbone-batch),
# with and without maps. Prints one markdown row per data set, bfloat16 setting and maps:
# the largest relative difference of the reported score, and of its log (for the fusion:
# the standard score, in held-out standard deviations, where the line is compared), between
# batch 1 and batch 8, and between the CPU default (one part per lane, a libtorch thread
# each) and batch 1 (both threads on one part). CPU only.
# Usage: scripts/batch_check.sh [DATA_ROOT]   (SETS may name folders: SETS=assets/demo VAL=4)
set -euo pipefail
ROOT=${1:-../shared/data}
BIN=${DIFFERNET_BIN:-target/release/differnet}
SETS=${SETS:-"magnetic_tile bottle"}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "| data | bfloat16 backbone | maps | batch 1 against 8: score (relative) | its log (standard score) | one per lane (the CPU default) against batch 1: score (relative) | its log |"
echo "|---|---|---|---|---|---|---|"
VAL=${VAL:-16}
for set in $SETS; do
  dir="$ROOT/$set"
  [ -d "$set" ] && dir="$set"
  mapfile -t good < <(ls "$dir/test/good"/*.png | head -12)
  mapfile -t bad < <(find "$dir/test" -name '*.png' -not -path '*/good/*' | sort | awk 'NR % 20 == 1' | head -12)
  parts=("${good[@]}" "${bad[@]}")
  for bf16 in 1 0; do
    model="$WORK/m.differnet"
    DIFFERNET_BF16=$bf16 "$BIN" train --data "$dir" --out "$model" --train-count 16 \
      --val-count "$VAL" --seed 0 --device cpu > /dev/null 2>&1
    for maps in yes no; do
      for batch in 1 8 lanes; do
        extra=()
        [ "$maps" = yes ] && extra=(--heatmaps "$WORK/maps$batch")
        [ "$batch" = lanes ] || extra+=(--score-batch "$batch" --backbone-batch "$batch")
        DIFFERNET_BF16=$bf16 "$BIN" score --model "$model" --device cpu \
          "${extra[@]}" --csv "$WORK/b$batch.csv" "${parts[@]}" > /dev/null 2>&1
      done
      python3 - "$set" "$bf16" "$maps" "$WORK/b1.csv" "$WORK/b8.csv" "$WORK/blanes.csv" <<'PY'
import csv, math, sys
name, bf16, maps, a, b, c = sys.argv[1:7]
read = lambda p: {r["path"]: float(r["score"]) for r in csv.DictReader(open(p))}
one, eight, lanes = read(a), read(b), read(c)
assert one.keys() == eight.keys() == lanes.keys() and len(one) > 0
def diff(x, y):
    rel = max(abs(x[k] - y[k]) / max(abs(x[k]), abs(y[k])) for k in x)
    log = max(abs(math.log(x[k]) - math.log(y[k])) for k in x)
    return f"{rel:.1e} | {log:.1e}"
print(f"| {name} ({len(one)} parts) | {'on' if bf16 == '1' else 'off'} | {maps} | {diff(one, eight)} | {diff(lanes, one)} |")
PY
    done
  done
done
