#!/usr/bin/env python3
"""Training and scoring-with-maps time of two builds of `differnet`, alternated in one sitting.

    python3 scripts/ab_speed.py BEFORE_BIN AFTER_BIN [ROUNDS]

Each round trains the default detector on 16 good magnetic tiles (seed 0) with each build,
then scores 120 test tiles with heatmap files and a CSV with each build (both the model the
round's first build trained, so that only the code differs), before and after in turn, and
the next round starts with the other build. Then each build evaluates the model it trained
last on every test tile (image and pixel AUROC: the same numbers, or a change). It prints the
median wall time of each step per build and their ratio (after / before): a ratio measured
in one sitting, so the machine's load moves both. BENCHMARKS.md, "One place for each job".
"""

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "magnetic_tile"
TEST_IMAGES = 120


def test_images():
    """Every defect type and the good ones, in turn, sorted: the same images for both."""
    by_type = {
        d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in (".png", ".jpg"))
        for d in sorted((DATA / "test").iterdir())
        if d.is_dir()
    }
    out, i = [], 0
    while len(out) < TEST_IMAGES:
        for paths in by_type.values():
            if i < len(paths) and len(out) < TEST_IMAGES:
                out.append(paths[i])
        i += 1
    return out


def timed(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main():
    before, after = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    images = [str(p) for p in test_images()]
    work = Path(tempfile.mkdtemp(prefix="ab_speed_"))
    times = {(b, step): [] for b in ("before", "after") for step in ("train", "score")}
    try:
        for r in range(rounds):
            order = [("before", before), ("after", after)]
            if r % 2:
                order.reverse()
            for name, binary in order:
                model = work / f"{name}.differnet"
                times[(name, "train")].append(
                    timed([binary, "train", "--data", str(DATA), "--out", str(model),
                           "--train-count", "16", "--seed", "0", "--device", "cpu"])
                )
            model = work / f"{order[0][0]}.differnet"
            for name, binary in order:
                maps = work / f"{name}_maps"
                shutil.rmtree(maps, ignore_errors=True)
                times[(name, "score")].append(
                    timed([binary, "score", "--model", str(model), "--device", "cpu",
                           "--heatmaps", str(maps), "--csv", str(work / f"{name}.csv")] + images)
                )
                written = len(list(maps.glob("*.png")))
                assert written == len(images), f"{name}: {written} heatmaps of {len(images)}"
            print(f"round {r + 1}: " + json.dumps({f"{k[0]} {k[1]}": round(v[-1], 2)
                                                   for k, v in times.items()}), flush=True)
        aurocs = {}
        for name, binary in (("before", before), ("after", after)):
            out = subprocess.run(
                [binary, "eval", "--model", str(work / f"{name}.differnet"), "--data", str(DATA),
                 "--device", "cpu", "--json"],
                check=True, capture_output=True, text=True,
            ).stdout
            report = json.loads(out)
            aurocs[name] = (report["image_auroc"], report.get("pixel_auroc"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"| step | before (s) | after (s) | after / before |")
    print(f"|---|---|---|---|")
    for step, label in (("train", "train (16 good tiles, default detector)"),
                        (("score"), f"score {TEST_IMAGES} tiles with heatmap files and a CSV")):
        b = statistics.median(times[("before", step)])
        a = statistics.median(times[("after", step)])
        print(f"| {label} | {b:.1f} | {a:.1f} | {a / b:.2f} |")
    print(f"\nmedians of {rounds} rounds, before and after alternated")
    for name, (image, pixel) in aurocs.items():
        print(f"{name}: image AUROC {image * 100:.2f}, pixel AUROC "
              + ("n/a" if pixel is None else f"{pixel * 100:.2f}"))


if __name__ == "__main__":
    main()
