#!/usr/bin/env python3
"""The body of scripts/gpu_check.sh (standard library only: the GPU machine has python3).

For each detector setting: train on 16 of the packed good tiles (16 more validate), score
the packed test set with maps (image and pixel AUROC), measure images/s on that set
repeated REPEAT times (symbolic links; with maps, and without), and score a sample on the
CPU too for the agreement of the scores. Prints one Markdown table, writes it and the raw
reports to the report folder.
"""

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPEAT = 8
SAMPLE_PER_TYPE = 6

# name, what it is, train flags, weights file, eval flags, whether accuracy means anything
RUNS = [
    ("patchcore", "PatchCore (default): Lite1, stages 5+6, 256 px",
     ["--detector", "patchcore"], "efficientnet_lite1.safetensors", [], True),
    ("cs-flow", "CS-Flow (default): Lite1 stage 6, 256 / 128 / 64 px, 30 epochs",
     ["--detector", "cs-flow"], "efficientnet_lite1.safetensors", [], True),
    ("differnet-fast", "DifferNet fast preset on Lite1 (160 px, 8 rotations)",
     ["--detector", "differnet", "--preset", "fast", "--backbone", "efficientnet-lite1"],
     "efficientnet_lite1.safetensors", [], True),
    ("differnet-paper", "DifferNet paper preset, 16 test rotations (AlexNet with random weights: speed only, 1 epoch)",
     ["--detector", "differnet", "--preset", "paper", "--epochs", "1", "--backbone", "alexnet"],
     "alexnet_random.pth", ["--rotations", "16"], False),
]


def log(*a):
    print("[gpu_check]", *a, file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--pack", default=str(ROOT / ".gpu"))
    ap.add_argument("--only", default="", help="comma-separated run names")
    ap.add_argument("--repeat", type=int, default=REPEAT, help="copies of the test set for images/s")
    args = ap.parse_args()
    pack = Path(args.pack).resolve()
    binary = pack / "differnet"
    data = pack / "mtd"
    if not binary.is_file():
        sys.exit(f"{binary} is missing: run scripts/gpu_pack.sh first")
    out = Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="gpu_check_"))
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_work_"))
    big, sample = work / "big", work / "sample"
    make_views(data, big, sample, args.repeat)
    started = time.monotonic()

    def cli(name, cmd):
        t0 = time.monotonic()
        p = subprocess.run([str(binary), *cmd, "--json"], capture_output=True, text=True)
        wall = time.monotonic() - t0
        with open(out / "gpu_check.log", "a") as f:
            f.write(f"== {name} ({wall:.1f} s, exit {p.returncode})\n{p.stderr[-4000:]}\n")
        if p.returncode != 0:
            raise RuntimeError(f"{name} failed ({p.returncode}): {p.stderr.strip()[-2000:]}")
        log(f"{name}: {wall:.1f} s")
        return json.loads(p.stdout), wall

    rows, raw = [], {}
    only = {n for n in args.only.split(",") if n}
    for name, what, train_flags, weights, eval_flags, accurate in RUNS:
        if only and name not in only:
            continue
        model = work / f"{name}.differnet"
        w = ["--backbone-weights", str(pack / "weights" / weights)]
        dev = ["--device", args.device]
        try:
            info, train_wall = cli(f"{name}-train", ["train", "--data", str(data), "--out", str(model),
                                                     "--train-count", "16", "--val-count", "16", "--seed", "0",
                                                     *train_flags, *dev, *w])
            ev, _ = cli(f"{name}-eval", ["eval", "--model", str(model), "--data", str(data),
                                         *eval_flags, *dev, *w])
            maps, _ = cli(f"{name}-maps", ["eval", "--model", str(model), "--data", str(big),
                                           *eval_flags, *dev, *w])
            plain, _ = cli(f"{name}-scores", ["eval", "--model", str(model), "--data", str(big), "--no-pixel",
                                              *eval_flags, *dev, *w])
            cli(f"{name}-sample-dev", ["eval", "--model", str(model), "--data", str(sample), "--no-pixel",
                                       "--csv", str(work / f"{name}.dev.csv"), *eval_flags, *dev, *w])
            cli(f"{name}-sample-cpu", ["eval", "--model", str(model), "--data", str(sample), "--no-pixel",
                                       "--csv", str(work / f"{name}.cpu.csv"), *eval_flags, "--device", "cpu", *w])
        except (RuntimeError, json.JSONDecodeError) as e:
            log(str(e))
            rows.append([what] + ["failed"] * 8)
            continue
        agree, same = agreement(work / f"{name}.dev.csv", work / f"{name}.cpu.csv")
        raw[name] = {"train": info, "eval": ev, "maps": maps, "scores": plain, "agreement": agree}
        pct = lambda v: f"{100 * v:.1f}" if (accurate and v is not None) else "n/a"
        steady, fixed = steady_rate(ev, maps)
        rows.append([
            what,
            f"{info['train_secs']:.1f} ({train_wall:.1f})",
            f"{1 / maps['secs_per_image']:.0f}",
            f"{steady:.0f} ({fixed:.1f})",
            f"{1 / plain['secs_per_image']:.0f}",
            pct(ev.get("image_auroc")),
            pct(ev.get("pixel_auroc")),
            f"{agree:.1e}",
            "yes" if same else "no",
        ])
    device = gpu_name() if args.device == "cuda" else cpu_name()
    head = ["setting", "training, s (command wall, s)", "images/s with maps",
            "images/s with maps, steady (fixed cost, s)", "images/s, scores only",
            "image AUROC", "pixel AUROC", "CPU vs this device, max relative score difference",
            "same decisions"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    n_test = sum(1 for p in (data / "test").rglob("*") if p.is_file())
    lines.append("")
    lines.append(
        f"Device: {args.device} ({device}); host: {os.cpu_count()} cores. 16 good training tiles and 16 for "
        f"validation (seed 0 of 32 packed), {n_test} test images (every second of each type) for AUROC; "
        f"images/s over those images repeated {args.repeat} times ({n_test * args.repeat}), the whole eval "
        f"command's scoring (decoding, the network, maps at each image's size, pixel metrics); steady: "
        f"from the two sizes, time = fixed cost + images / rate; agreement "
        f"on {SAMPLE_PER_TYPE} images per type scored on both. {time.strftime('%Y-%m-%d')}, "
        f"{time.monotonic() - started:.0f} s in all."
    )
    table = "\n".join(lines)
    print(table)
    (out / "gpu_check.md").write_text(table + "\n")
    (out / "gpu_check.json").write_text(json.dumps(raw, indent=1))


def make_views(data, big, sample, repeat):
    """`big`: the test set `repeat` times over (masks alike); `sample`: the first
    SAMPLE_PER_TYPE images of each type. Folders of links to the packed files."""
    def link(src_dir, dst_dir, files):
        dst_dir.mkdir(parents=True, exist_ok=True)
        for f in files:
            (dst_dir / f.name).symlink_to(f)
    for view in (big, sample):
        link(data / "train" / "good", view / "train" / "good", sorted((data / "train" / "good").iterdir()))
    for kind_dir in sorted((data / "test").iterdir()):
        kind = kind_dir.name
        images = sorted(kind_dir.iterdir())
        masks = data / "ground_truth" / kind
        for r in range(repeat):
            link(kind_dir, big / "test" / kind / f"r{r}", images)
            if masks.is_dir():
                link(masks, big / "ground_truth" / kind / f"r{r}", sorted(masks.iterdir()))
        link(kind_dir, sample / "test" / kind, images[:SAMPLE_PER_TYPE])


def steady_rate(small, big):
    """Images/s once the device is warm, and the fixed cost in seconds, from two
    evaluations with maps of different sizes (the packed test set and its repeats):
    time = fixed + images / rate."""
    n1, n2 = small["count"], big["count"]
    t1, t2 = n1 * small["secs_per_image"], n2 * big["secs_per_image"]
    if n2 <= n1 or t2 <= t1:
        return float("nan"), float("nan")
    rate = (n2 - n1) / (t2 - t1)
    return rate, t1 - n1 / rate


def agreement(a, b):
    """Largest relative difference of the scores in two eval CSVs, and whether every
    decision is the same."""
    def read(p):
        with open(p, newline="") as f:
            return {r["path"]: r for r in csv.DictReader(f)}
    ra, rb = read(a), read(b)
    worst, same = 0.0, set(ra) == set(rb)
    for path, x in ra.items():
        if path not in rb:
            continue
        s, t = float(x["score"]), float(rb[path]["score"])
        worst = max(worst, abs(s - t) / max(abs(s), abs(t), 1e-12))
        same &= x["decision"] == rb[path]["decision"]
    return worst, same


def gpu_name():
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30).stdout.strip() or "unknown GPU"
    except (OSError, subprocess.SubprocessError):
        return "unknown GPU"


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"


if __name__ == "__main__":
    main()
