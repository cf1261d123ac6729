#!/usr/bin/env bash
# Packs, here, what scripts/gpu_check.sh needs on the GPU machine, which builds nothing,
# into .gpu/ (git-ignored; name it in the device tool's `carry`):
#   .gpu/differnet     the release CLI, stripped
#   .gpu/weights/      EfficientNet-Lite1 (the default backbone of PatchCore and CS-Flow)
#                      and an AlexNet with random weights (the paper preset's speed only)
#   .gpu/mtd/          magnetic tiles: the 32 good tiles of seed 0's 16 + 16 split, every
#                      second test image of each type with its mask
# The tree that travels must stay under 64 MiB; this pack is about 45 MB.
# Usage: scripts/gpu_pack.sh  (after `make setup`; MTD=... for another copy of the data)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${DIFFERNET_CACHE:-$HOME/.cache/differnet}
MTD=${MTD:-../shared/data/magnetic_tile}
PACK=.gpu

cargo build --release --bin differnet
rm -rf "$PACK"
mkdir -p "$PACK/weights"
strip -o "$PACK/differnet" target/release/differnet
cp "$CACHE/weights/efficientnet_lite1.safetensors" "$PACK/weights/"
alexnet=$(mktemp -d)
"$CACHE/venv/bin/python" scripts/alexnet_fixture.py "$alexnet" >/dev/null
cp "$alexnet/alexnet_zip.pth" "$PACK/weights/alexnet_random.pth"
rm -rf "$alexnet"

"$PACK/differnet" split --data "$MTD" --train-count 16 --val-count 16 --seed 0 \
  | python3 -c '
import json, os, shutil, sys
split = json.load(sys.stdin)
pack = sys.argv[1]
os.makedirs(f"{pack}/mtd/train/good")
for p in split["train"] + split["val"]:
    shutil.copy(p, f"{pack}/mtd/train/good/")
seen = {}
for s in split["test"]:
    kind = os.path.basename(os.path.dirname(s["path"]))
    seen[kind] = seen.get(kind, 0) + 1
    if seen[kind] % 2 == 0:
        continue
    os.makedirs(f"{pack}/mtd/test/{kind}", exist_ok=True)
    shutil.copy(s["path"], f"{pack}/mtd/test/{kind}/")
    if s["mask"]:
        os.makedirs(f"{pack}/mtd/ground_truth/{kind}", exist_ok=True)
        shutil.copy(s["mask"], f"{pack}/mtd/ground_truth/{kind}/")
' "$PACK"
du -sh "$PACK" "$PACK"/*
echo "packed: $(find "$PACK/mtd/test" -type f | wc -l) test images"
