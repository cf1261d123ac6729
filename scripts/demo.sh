#!/usr/bin/env bash
# Trains the fast preset on the demo data set (assets/demo), evaluates it and writes
# heatmap overlays of the test images to ~/.cache/differnet/demo.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${DIFFERNET_CACHE:-$HOME/.cache/differnet}/demo"
bin="$root/target/release/differnet"
mkdir -p "$out"
echo "Demo data (a brick texture with drawn scratches and stains; not real inspection data): $root/assets/demo"
"$bin" train --data "$root/assets/demo" --out "$out/demo.differnet" --train-count 16
"$bin" eval --model "$out/demo.differnet" --data "$root/assets/demo"
"$bin" score --model "$out/demo.differnet" --csv "$out/scores.csv" --heatmaps "$out/heatmaps" "$root/assets/demo/test"
echo "scores: $out/scores.csv, heatmaps: $out/heatmaps"
