#!/usr/bin/env bash
# How much a score moves with the number of parts scored at once (issue "green on every
# x86-64 CPU"): the default detector trained on 16 good images (seed 0, 16 held out) of each
# data set, then 12 good and up to 12 defective test images scored 1 and 8 at once (both
# --score-batch and --backbone-batch: on the CPU the backbone batch is what changes sums),
# with and without maps. Prints one markdown row per data set, bfloat16 setting and maps:
# the largest relative
# difference of the reported score, and of its log (for the fusion: the standard score, in
# held-out standard deviations, where the line is compared). CPU only.
# Usage: scripts/batch_check.sh [DATA_ROOT]   (SETS may name folders: SETS=assets/demo VAL=4)
set -euo pipefail
ROOT=${1:-../shared/data}
BIN=${DIFFERNET_BIN:-target/release/differnet}
SETS=${SETS:-"magnetic_tile bottle"}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "| data | bfloat16 backbone | maps | largest relative difference of the score | largest difference of its log (standard score) |"
echo "|---|---|---|---|---|"
VAL=${VAL:-16}
for set in $SETS; do
  dir="$ROOT/$set"
  [ -d "$set" ] && dir="$set"
  parts=()
  mapfile -t good < <(ls "$dir/test/good"/*.png | head -12)
  mapfile -t bad < <(find "$dir/test" -name '*.png' -not -path '*/good/*' | sort | awk 'NR % 20 == 1' | head -12)
  parts=("${good[@]}" "${bad[@]}")
  for bf16 in 1 0; do
    model="$WORK/m.differnet"
    DIFFERNET_BF16=$bf16 "$BIN" train --data "$dir" --out "$model" --train-count 16 \
      --val-count "$VAL" --seed 0 --device cpu > /dev/null 2>&1
    for maps in yes no; do
      for batch in 1 8; do
        extra=()
        [ "$maps" = yes ] && extra=(--heatmaps "$WORK/maps$batch")
        DIFFERNET_BF16=$bf16 "$BIN" score --model "$model" --device cpu --score-batch "$batch" --backbone-batch "$batch" \
          "${extra[@]}" --csv "$WORK/b$batch.csv" "${parts[@]}" > /dev/null 2>&1
      done
      python3 - "$set" "$bf16" "$maps" "$WORK/b1.csv" "$WORK/b8.csv" <<'PY'
import csv, math, sys
name, bf16, maps, a, b = sys.argv[1:6]
read = lambda p: {r["path"]: float(r["score"]) for r in csv.DictReader(open(p))}
one, eight = read(a), read(b)
assert one.keys() == eight.keys() and len(one) > 0
rel = max(abs(one[k] - eight[k]) / max(abs(one[k]), abs(eight[k])) for k in one)
log = max(abs(math.log(one[k]) - math.log(eight[k])) for k in one)
print(f"| {name} ({len(one)} parts) | {'on' if bf16 == '1' else 'off'} | {maps} | {rel:.1e} | {log:.1e} |")
PY
    done
  done
done
