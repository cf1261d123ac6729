#!/usr/bin/env bash
# The line's speed on this machine: `differnet watch` with the default detector (trained
# on 16 magnetic tiles), with and without heatmaps. Throughput: N test images dropped in
# at once, parts per second until the last is logged. Latency: images arriving one every
# INTERVAL seconds, p50 / p95 from a file's appearance to its decision (the watch's own
# summary; it includes the settle time that guards against half-written files).
# Usage: scripts/watch_bench.sh [DATA_ROOT]    (N=100 INTERVAL=1 SETTLE_MS=1000 by default)
set -euo pipefail
ROOT=${1:-../shared/data}
BIN=${DIFFERNET_BIN:-target/release/differnet}
N=${N:-100}
INTERVAL=${INTERVAL:-1}
SETTLE_MS=${SETTLE_MS:-1000}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$BIN" train --data "$ROOT/magnetic_tile" --out "$WORK/m.differnet" --train-count 16 \
  --device cpu --json > /dev/null 2>&1
mapfile -t IMAGES < <(find "$ROOT/magnetic_tile/test" -name '*.png' | sort | awk 'NR % 5 == 1' | head -n "$N")

rows() { [ -f "$1/log.csv" ] && echo $(( $(wc -l < "$1/log.csv") - 1 )) || echo 0; }

echo "| run | heatmaps | parts | result |"
echo "|---|---|---|---|"
for heat in no yes; do
  flags=(--device cpu --settle-ms "$SETTLE_MS" --poll-ms 50 --copy)
  [ "$heat" = yes ] && flags+=(--heatmaps)
  # Throughput: all at once, timed from the first decision to the last.
  rm -rf "$WORK/in" "$WORK/out"; mkdir -p "$WORK/in"
  for f in "${IMAGES[@]}"; do cp "$f" "$WORK/in/$(basename "$(dirname "$f")")_$(basename "$f")"; done
  "$BIN" watch --model "$WORK/m.differnet" --in "$WORK/in" --out "$WORK/out" "${flags[@]}" 2> "$WORK/log" &
  pid=$!
  until [ "$(rows "$WORK/out")" -ge 1 ]; do sleep 0.05; done
  t0=$(date +%s.%N)
  until [ "$(rows "$WORK/out")" -ge "$N" ]; do sleep 0.05; done
  t1=$(date +%s.%N)
  kill -INT $pid; wait $pid || true
  echo "| all at once | $heat | $N | $(python3 -c "print(f'{($N - 1) / ($t1 - $t0):.1f} parts/s')") |"
  # Latency: one part every INTERVAL seconds.
  rm -rf "$WORK/in" "$WORK/out"; mkdir -p "$WORK/in"
  "$BIN" watch --model "$WORK/m.differnet" --in "$WORK/in" --out "$WORK/out" "${flags[@]}" 2> "$WORK/log" &
  pid=$!
  sleep 5
  n=$(( N / 3 ))
  for f in "${IMAGES[@]:0:$n}"; do
    cp "$f" "$WORK/in/.tmp" && mv "$WORK/in/.tmp" "$WORK/in/$(basename "$(dirname "$f")")_$(basename "$f")"
    sleep "$INTERVAL"
  done
  until [ "$(rows "$WORK/out")" -ge "$n" ]; do sleep 0.05; done
  kill -INT $pid; wait $pid || true
  echo "| one every $INTERVAL s | $heat | $n | $(grep '^stopped' "$WORK/log" | sed 's/.*per minute; //') |"
done
