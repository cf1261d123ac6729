#!/usr/bin/env bash
# The false-reject rate the window states at the default line against what happens
# (issue "decisions that tell the truth"): for each data set and seed, train the default
# detector on 16 good images (the rest held out, up to 64), then `eval` on every test image
# and read the model's line: the predicted rate and its 90 % range, what it rests on (the
# fit, or the held-out count where that contradicts the fit), the held-out count at or
# above the line, the rate on test/good, and whether it falls in the range. Prints one
# markdown table and a summary line. For seed 0 of each data set it also scores the test
# images with maps (`score --heatmaps`) and counts the parts whose map has a hot area at
# the default scale (pixels at or above the reject line's level): every rejected part
# should, and as few accepted good parts as can be.
# Usage: scripts/rate_check.sh [DATA_ROOT]
set -euo pipefail
ROOT=${1:-../shared/data}
BIN=${DIFFERNET_BIN:-target/release/differnet}
SEEDS=${SEEDS:-"0 1 2 3 4"}
SETS=${SETS:-"magnetic_tile elpv/mono elpv/poly bottle"}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "| data | seed | line | predicted (90 % range) | by | held out at or above | good rejected on test/good | in range | consistent | defects caught |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for set in $SETS; do
  for seed in $SEEDS; do
    model="$WORK/m.differnet"
    "$BIN" train --data "$ROOT/$set" --out "$model" --train-count 16 --seed "$seed" \
      --device cpu --json > "$WORK/train.json" 2>/dev/null
    "$BIN" eval --model "$model" --data "$ROOT/$set" --no-pixel --device cpu --json \
      > "$WORK/eval.json" 2>/dev/null
    python3 - "$set" "$seed" "$WORK/eval.json" <<'PY' | tee -a "$WORK/rows"
import json, sys
from math import lgamma, exp, log
name, seed, ev = sys.argv[1:]
l = json.load(open(ev))["line"]
pct = lambda v: f"{100 * v:.1f} %"
rate = l["false_rejects"] / l["good"]
inside = l["predicted_low"] <= rate <= l["predicted_high"]
# Whether the test count itself allows the range: its exact 90 % range (Clopper-Pearson,
# by bisection on the binomial tail) meets the predicted one.
def at_least(k, n, p):
    if k <= 0: return 1.0
    if p <= 0: return 0.0
    if p >= 1: return 1.0
    return sum(exp(lgamma(n + 1) - lgamma(i + 1) - lgamma(n - i + 1) + i * log(p) + (n - i) * log(1 - p)) for i in range(k, n + 1))
def bound(f):
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) else (lo, mid)
    return (lo + hi) / 2
k, n = l["false_rejects"], l["good"]
c_low = 0.0 if k == 0 else bound(lambda p: at_least(k, n, p) < 0.05)
c_high = 1.0 if k == n else bound(lambda p: 1 - at_least(k + 1, n, p) > 0.05)
consistent = c_low <= l["predicted_high"] and c_high >= l["predicted_low"]
print(f"| {name} | {seed} | {l['threshold']:.4g} | {pct(l['predicted_rate'])} "
      f"({100 * l['predicted_low']:.1f}-{pct(l['predicted_high'])}) | {l.get('predicted_basis')} | "
      f"{l['held_out_rejected']} of {l['held_out']} | {l['false_rejects']} of {l['good']} ({pct(rate)}) | "
      f"{'yes' if inside else 'no'} | {'yes' if consistent else 'no'} | {l['caught']} of {l['defects']} ({pct(l['caught'] / l['defects'])}) |")
PY
  done
done
echo
echo "| data | rejected parts with a hot area | accepted good parts with a hot area |"
echo "|---|---|---|"
for set in $SETS; do
  model="$WORK/m.differnet"
  "$BIN" train --data "$ROOT/$set" --out "$model" --train-count 16 --seed 0 \
    --device cpu --json > /dev/null 2>&1
  rm -rf "$WORK/maps"
  "$BIN" score --model "$model" --device cpu --heatmaps "$WORK/maps" --csv "$WORK/maps.csv" \
    "$ROOT/$set/test" > /dev/null 2>&1
  python3 - "$set" "$WORK/maps.csv" <<'PY'
import csv, sys
name, path = sys.argv[1:]
rows = list(csv.DictReader(open(path)))
hot = lambda r: r["hot_area_px"] not in ("", "0")
rej = [r for r in rows if r["decision"] == "reject"]
good = [r for r in rows if r["decision"] == "accept" and "/good/" in r["path"]]
print(f"| {name} | {sum(map(hot, rej))} of {len(rej)} | {sum(map(hot, good))} of {len(good)} |")
PY
done
total=$(grep -c '^|' "$WORK/rows")
inside=$(grep -c '| yes | [a-z]* | [0-9]* of' "$WORK/rows" || true)
consistent=$(grep -c '| yes | [0-9]* of' "$WORK/rows" || true)
echo
echo "test rate inside the stated range: $inside of $total runs; test count consistent with it: $consistent of $total"
