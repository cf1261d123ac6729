#!/usr/bin/env bash
# The default reject line against what it predicts: for each data set and seed, train the
# default detector on 16 good images with 16 and with the default number held out, then
# count the good test parts the model's line rejects beside the rate the held-out images
# predicted, and what the old rule (mean + 3 sd of the held-out scores, at least their
# largest) did on the same scores. Prints one markdown table.
# Usage: scripts/threshold_check.sh [DATA_ROOT]
set -euo pipefail
ROOT=${1:-../shared/data}
BIN=${DIFFERNET_BIN:-target/release/differnet}
SEEDS=${SEEDS:-"0 1 2"}
SETS=${SETS:-"magnetic_tile elpv/mono elpv/poly"}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "| data | held out | seed | line | good rejected | predicted (90 % interval) | defects caught | old rule: good rejected, defects caught |"
echo "|---|---|---|---|---|---|---|---|"
for set in $SETS; do
  for held in 16 default; do
    for seed in $SEEDS; do
      model="$WORK/m.safetensors"
      args=(--data "$ROOT/$set" --out "$model" --train-count 16 --seed "$seed" --device cpu --json)
      [ "$held" = default ] || args+=(--val-count "$held")
      "$BIN" train "${args[@]}" > "$WORK/train.json" 2>/dev/null
      "$BIN" eval --model "$model" --data "$ROOT/$set" --no-pixel --device cpu --json \
        --csv "$WORK/scores.csv" \
        > "$WORK/eval.json" 2>/dev/null
      python3 - "$set" "$WORK/train.json" "$WORK/eval.json" "$seed" "$WORK/scores.csv" <<'PY'
import csv, json, statistics, sys
name, train, ev, seed, scores = sys.argv[1:]
t, e = json.load(open(train)), json.load(open(ev))
v = t["validation"]["scores"]
old = max(statistics.mean(v) + 3 * statistics.pstdev(v), max(v))
rows = list(csv.DictReader(open(scores)))
good = [float(r["score"]) for r in rows if r["label"] == "good"]
bad = [float(r["score"]) for r in rows if r["label"] != "good"]
old_fr = sum(s >= old for s in good)
old_caught = sum(s >= old for s in bad)
l = e["line"]
pct = lambda v: f"{100 * v:.1f} %"
print(f"| {name} | {t['validation']['count']} | {seed} | {l['threshold']:.4g} | "
      f"{l['false_rejects']} of {l['good']} ({pct(l['false_rejects'] / l['good'])}) | "
      f"{pct(l['predicted_rate'])} ({100 * l['predicted_low']:.1f}-{pct(l['predicted_high'])}) | "
      f"{l['caught']} of {l['defects']} ({pct(l['caught'] / l['defects'])}) | "
      f"{pct(old_fr / len(good))}, {pct(old_caught / len(bad))} |")
PY
    done
  done
done
