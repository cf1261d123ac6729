#!/usr/bin/env bash
# Image AUROC of the default detector with 16 good training images and 16 held out, drawn
# by `differnet split`'s seeded order, for seeds 0-2 on each data set. Prints one markdown
# table (per-seed AUROC, mean and sd). Used to check that a change of the split rule keeps
# the accuracy of the 16-image draws (BENCHMARKS.md, "The split").
# Usage: scripts/split_check.sh [DATA_ROOT]
set -euo pipefail
ROOT=${1:-../shared/data}
BIN=${DIFFERNET_BIN:-target/release/differnet}
SEEDS=${SEEDS:-"0 1 2"}
SETS=${SETS:-"magnetic_tile elpv/mono elpv/poly"}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "| data | $(for s in $SEEDS; do printf 'seed %s | ' "$s"; done)mean ± sd |"
echo "|---|$(for s in $SEEDS; do printf -- '---|'; done)---|"
for set in $SETS; do
  aurocs=()
  for seed in $SEEDS; do
    model="$WORK/m.safetensors"
    "$BIN" train --data "$ROOT/$set" --out "$model" --train-count 16 --val-count 16 \
      --seed "$seed" --device cpu --json > "$WORK/train.json" 2>/dev/null
    "$BIN" eval --model "$model" --data "$ROOT/$set" --no-pixel --device cpu --json \
      > "$WORK/eval.json" 2>/dev/null
    aurocs+=("$(python3 -c 'import json,sys; print(100 * json.load(open(sys.argv[1]))["image_auroc"])' "$WORK/eval.json")")
  done
  python3 - "$set" "${aurocs[@]}" <<'PY'
import statistics, sys
name, values = sys.argv[1], [float(v) for v in sys.argv[2:]]
sd = statistics.stdev(values) if len(values) > 1 else 0.0
print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in values) + f" | {statistics.mean(values):.1f} ± {sd:.1f} |")
PY
done
