"""Summarises the JSON reports of scripts/bench_mtd.sh into Markdown tables.

Usage: python3 scripts/bench_table.py OUT_DIR
"""

import collections
import glob
import json
import os
import statistics
import sys


def fmt(values, scale=100.0, digits=1):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    m = statistics.mean(values) * scale
    if len(values) == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f}"


def main() -> None:
    out = sys.argv[1]
    runs = collections.defaultdict(list)
    for path in sorted(glob.glob(os.path.join(out, "*.eval.json"))):
        base = path[: -len(".eval.json")]
        name = os.path.basename(base).rsplit("-seed", 1)[0]
        ev = json.load(open(path))
        tr = json.load(open(base + ".train.json"))
        mem_train, _ = open(base + ".train.time").read().split()[-2:]
        mem_eval, _ = open(base + ".eval.time").read().split()[-2:]
        runs[name].append((tr, ev, int(mem_train), int(mem_eval)))
    types = sorted({t for rs in runs.values() for _, ev, _, _ in rs for t, _ in ev["per_type_auroc"]})
    print("| configuration | seeds | image AUROC | " + " | ".join(types) + " | pixel AUROC |")
    print("|---|---|---|" + "---|" * len(types) + "---|")
    for name, rs in runs.items():
        per_type = []
        for t in types:
            per_type.append(fmt([dict(ev["per_type_auroc"]).get(t) for _, ev, _, _ in rs]))
        print(
            f"| {name} | {len(rs)} | {fmt([ev['image_auroc'] for _, ev, _, _ in rs])} | "
            + " | ".join(per_type)
            + f" | {fmt([ev['pixel_auroc'] for _, ev, _, _ in rs])} |"
        )
    print()
    print("| configuration | train images | training time (s) | scoring (s / image) | images / s | peak RSS train / eval (MB) |")
    print("|---|---|---|---|---|---|")
    for name, rs in runs.items():
        train_secs = [tr["train_secs"] for tr, _, _, _ in rs]
        spi = [ev["secs_per_image"] for _, ev, _, _ in rs]
        print(
            f"| {name} | {rs[0][0]['train_count']} | {fmt(train_secs, 1.0)} | {fmt(spi, 1.0, 3)} | "
            f"{1.0 / statistics.mean(spi):.2f} | {max(r[2] for r in rs) // 1024} / {max(r[3] for r in rs) // 1024} |"
        )


if __name__ == "__main__":
    main()
