#!/usr/bin/env python3
"""The line's drift warning on real parts (`make drift-bench`).

Trains the default detector on 16 good magnetic tiles (16 more held out), then streams
through `differnet watch`, for each of 3 seeds of the order:

  1. 100 good tiles and 30 defective ones (6 of each type), shuffled: ordinary parts;
  2. then 100 more good tiles, changed: brightened by 30 %, with their contrast lowered by
     30 %, or not changed at all (the control: any warning there is a false one).

The good tiles are drawn from train/good outside the model's split (the test set's 191
good tiles are fewer than 200, and one pool keeps both halves alike); the defective ones
from test/<type>.

It reads the watch's `log.csv` (its `drift` column: what is drifting at each part) and
prints, per change and seed, how many warnings came during the ordinary parts (false
ones) and how many parts after the change the first warning came, and what it named.

With --series instead: lighting series. Magnetic tiles come in six lighting series (file
names exp1_ to exp6_, median grey levels 0.26 to 0.60). For each of 3 model seeds (16
training images, the rest held out up to 64, as the window does), two streams of the good
test tiles: series 1, 2 and 3 in name order (one series after another: ordinary parts, any
warning is a false one), and the same followed by the tiles of series 1 and 2 at 40 % of
their light (darker than any tile the model was trained or calibrated on: a lamp that
failed; the first warning after it). A 30 % change of the light keeps magnetic tiles inside
the range of their six series (mean grey level 0.19 to 0.87), where the line does not warn
by design.

Usage: scripts/drift_bench.py [--series] [DATA_ROOT]   (DIFFERNET_BIN, default target/release/differnet)
Run it with the setup's Python (numpy, Pillow): ~/.cache/differnet/venv/bin/python.
"""

import csv
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("DIFFERNET_BIN", ROOT / "target" / "release" / "differnet"))
SERIES = "--series" in sys.argv[1:]
ARGS = [a for a in sys.argv[1:] if a != "--series"]
DATA = Path(ARGS[0] if ARGS else ROOT.parent / "shared" / "data") / "magnetic_tile"
SEEDS = [0, 1, 2]
N_GOOD, N_DEFECT, N_AFTER = 100, 30, 100
CHANGES = {
    "none (control)": None,
    "brightness +30 %": lambda a: a * 1.3,
    "contrast -30 %": lambda a: a.mean() + 0.7 * (a - a.mean()),
}


def log(*a):
    print("[drift]", *a, file=sys.stderr, flush=True)


def changed(src, dst, change):
    img = np.asarray(Image.open(src).convert("RGB"), dtype=np.float64)
    Image.fromarray(np.clip(change(img), 0, 255).round().astype(np.uint8)).save(dst)


def stream(model, files, work):
    """Runs the watch over `files` (source path, change or None), in order; returns the
    log rows and the watch's messages."""
    inp, out = work / "in", work / "out"
    for d in (inp, out):
        subprocess.run(["rm", "-rf", str(d)], check=True)
    inp.mkdir(parents=True)
    # Numbered names: the watch takes files that appear together in name order.
    for i, (src, change) in enumerate(files, 1):
        dst = inp / f"{i:04d}_{src.parent.name}_{src.name}"
        if change is None:
            dst.write_bytes(src.read_bytes())
        else:
            changed(src, dst, change)
    errlog = open(work / "watch.log", "w")
    p = subprocess.Popen(
        [BIN, "watch", "--model", model, "--in", inp, "--out", out, "--settle-ms", "200", "--poll-ms", "50",
         "--device", "cpu"],
        stderr=errlog,
    )
    logcsv = out / "log.csv"
    started = time.time()
    while True:
        rows = list(csv.DictReader(open(logcsv))) if logcsv.exists() else []
        if len(rows) >= len(files):
            break
        if p.poll() is not None:
            raise SystemExit(f"the watch ended early: {(work / 'watch.log').read_text()}")
        if time.time() - started > 1800:
            raise SystemExit("the watch took over 30 minutes")
        time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    p.wait()
    return rows, (work / "watch.log").read_text(), time.time() - started


def starts(rows):
    """(row number from 1, code) where a drift code appears that the row before lacked."""
    out, before = [], set()
    for i, r in enumerate(rows, 1):
        now = {c for c in r["drift"].split(";") if c}
        out += [(i, c) for c in sorted(now - before)]
        before = now
    return out


def main():
    work = Path(tempfile.mkdtemp(prefix="drift-bench-"))
    model = work / "model.differnet"
    subprocess.run(
        [BIN, "train", "--data", DATA, "--out", model, "--train-count", "16", "--val-count", "16", "--seed", "0",
         "--device", "cpu", "--json"],
        check=True, stdout=subprocess.DEVNULL,
    )
    split = json.loads(subprocess.run(
        [BIN, "split", "--data", DATA, "--train-count", "16", "--val-count", "16", "--seed", "0"],
        check=True, capture_output=True, text=True).stdout)
    used = {str(Path(p)) for key in ("train", "val") for p in split.get(key, [])}
    types = sorted(d.name for d in (DATA / "test").iterdir() if d.is_dir() and d.name != "good")
    spare_good = sorted(p for p in (DATA / "train" / "good").glob("*.png") if str(p) not in used)
    print("| change | seed | false warnings in the 130 ordinary parts | first warning after the change (parts) | what it named first | parts/s |")
    print("|---|---|---|---|---|---|")
    summary = {}
    for name, change in CHANGES.items():
        for seed in SEEDS:
            rng = random.Random(seed)
            good = rng.sample(spare_good, N_GOOD + N_AFTER)
            before = [(p, None) for p in good[:N_GOOD]]
            for t in types:
                before += [(p, None) for p in rng.sample(sorted((DATA / "test" / t).glob("*.png")), N_DEFECT // len(types))]
            rng.shuffle(before)
            after = [(p, change) for p in good[N_GOOD:]]
            rows, messages, secs = stream(model, before + after, work)
            s = starts(rows)
            false = [(i, c) for i, c in s if i <= len(before)]
            found = [(i - len(before), c) for i, c in s if i > len(before)]
            first = found[0][0] if found else None
            named = ", ".join(c for i, c in found if i == first) if found else "-"
            print(f"| {name} | {seed} | {len(false)}{' (' + ', '.join(f'{c} at {i}' for i, c in false) + ')' if false else ''} "
                  f"| {first if first is not None else 'none in ' + str(N_AFTER)} | {named} | {len(rows) / secs:.1f} |",
                  flush=True)
            summary[f"{name}|{seed}"] = dict(false=false, found=found, messages=[m for m in messages.splitlines() if m.startswith("drift")])
    (ROOT / "target" / "bench").mkdir(parents=True, exist_ok=True)
    (ROOT / "target" / "bench" / "drift.json").write_text(json.dumps(summary, indent=1))
    log("raw results in target/bench/drift.json")


def series_main():
    work = Path(tempfile.mkdtemp(prefix="drift-series-"))
    model = work / "model.differnet"
    good = sorted((DATA / "test" / "good").glob("*.png"))
    ordinary = [p for p in good if p.name.split("_")[0] in ("exp1", "exp2", "exp3")]
    dark = [p for p in good if p.name.split("_")[0] in ("exp1", "exp2")]
    print("| model seed | stream | parts | warnings in the ordinary parts | first warning after the change (parts) | what it named |")
    print("|---|---|---|---|---|---|")
    for seed in SEEDS:
        subprocess.run(
            [BIN, "train", "--data", DATA, "--out", model, "--train-count", "16", "--seed", str(seed),
             "--device", "cpu", "--json"],
            check=True, stdout=subprocess.DEVNULL,
        )
        for name, files in (
            ("series 1-3", [(p, None) for p in ordinary]),
            ("series 1-3, then series 1-2 at 40 % light", [(p, None) for p in ordinary] + [(p, lambda a: a * 0.4) for p in dark]),
        ):
            rows, messages, secs = stream(model, files, work)
            s = starts(rows)
            false = [(i, c) for i, c in s if i <= len(ordinary)]
            found = [(i - len(ordinary), c) for i, c in s if i > len(ordinary)]
            first = found[0][0] if found else None
            named = ", ".join(c for i, c in found if i == first) if found else "-"
            after = "-" if len(files) == len(ordinary) else (first if first is not None else f"none in {len(dark)}")
            print(f"| {seed} | {name} | {len(files)} | {len(false)}{' (' + ', '.join(f'{c} at {i}' for i, c in false) + ')' if false else ''} "
                  f"| {after} | {named} |", flush=True)


if __name__ == "__main__":
    series_main() if SERIES else main()
