#!/usr/bin/env bash
# Accuracy and speed of the CLI on the Magnetic Tile Defects set (../shared/data/magnetic_tile).
#
# Usage: scripts/bench_mtd.sh OUT_DIR NAME "TRAIN_ARGS" "EVAL_ARGS" SEED...
# For each seed: trains with `differnet train --train-count ... TRAIN_ARGS`, then
# `differnet eval EVAL_ARGS`, keeping both JSON reports and the peak resident memory
# (GNU time) in OUT_DIR/NAME-seedS.{train,eval}.json / .time. Summarise with
# scripts/bench_table.py OUT_DIR.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="${MTD:-$root/../shared/data/magnetic_tile}"
bin="${DIFFERNET_BIN:-$root/target/release/differnet}"
out="$1"; name="$2"; train_args="$3"; eval_args="$4"; shift 4
mkdir -p "$out"
for seed in "$@"; do
  base="$out/$name-seed$seed"
  model="$base.differnet"
  # shellcheck disable=SC2086
  /usr/bin/time -f '%M %e' -o "$base.train.time" \
    "$bin" train --data "$data" --out "$model" --seed "$seed" --json $train_args > "$base.train.json"
  # shellcheck disable=SC2086
  /usr/bin/time -f '%M %e' -o "$base.eval.time" \
    "$bin" eval --model "$model" --data "$data" --json $eval_args > "$base.eval.json"
  rm -f "$model"
  echo "$name seed $seed: $(python3 -c "import json,sys; r=json.load(open('$base.eval.json')); print('image AUROC', r['image_auroc'], 'pixel', r['pixel_auroc'], 's/img', r['secs_per_image'])")"
done
