#!/usr/bin/env python3
"""A long-part data set built from real photographs: three solar cells of ../shared/data/
elpv/poly side by side (900 x 300 px, 3:1, like a long part photographed whole). Good
parts are three good cells; a defective part has one defective cell among two good ones.
No cell appears in two parts. Written in MVTec AD layout to target/long_parts (never into
the repository), for `make bench`'s study of square against aspect-kept inputs.

Usage: python3 scripts/long_parts.py [OUT]
"""

import random
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT.parent / "shared" / "data" / "elpv" / "poly"
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "target" / "long_parts"


def strip(paths, out):
    cells = [Image.open(p).convert("L") for p in paths]
    w, h = cells[0].size
    img = Image.new("L", (w * len(cells), h))
    for i, c in enumerate(cells):
        img.paste(c.resize((w, h)), (i * w, 0))
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)


def main():
    rng = random.Random(0)
    train = sorted((SRC / "train" / "good").glob("*.png"))
    good = sorted((SRC / "test" / "good").glob("*.png"))
    bad = sorted((SRC / "test" / "defective").glob("*.png"))
    rng.shuffle(train)
    rng.shuffle(good)
    rng.shuffle(bad)
    n_train = min(len(train) // 3, 120)
    for i in range(n_train):
        strip(train[3 * i : 3 * i + 3], OUT / "train" / "good" / f"{i:03d}.png")
    # Test: 30 good strips (90 good cells), then defective strips from the rest of the
    # good cells (two each) with one defective cell at a random place.
    for i in range(30):
        strip(good[3 * i : 3 * i + 3], OUT / "test" / "good" / f"{i:03d}.png")
    spare = good[90:] + train[3 * n_train :]
    for i in range(min(len(spare) // 2, len(bad), 90)):
        cells = [spare[2 * i], spare[2 * i + 1]]
        cells.insert(rng.randrange(3), bad[i])
        strip(cells, OUT / "test" / "defective" / f"{i:03d}.png")
    print(OUT)


if __name__ == "__main__":
    main()
