#!/usr/bin/env python3
"""`make bench`: the detectors compared on every data set of ../shared/data, accuracy and
speed on the Magnetic Tile Defects set, side by side with the PyTorch reference
(scripts/reference_differnet.py), and the GUI's frame time.

Every run writes its raw reports (JSON, peak memory, logs) to target/bench/<section>/ and
the tables between the `<!-- bench:NAME -->` ... `<!-- /bench:NAME -->` markers of
BENCHMARKS.md; the prose around them is left alone. Benchmarks print numbers; they never
pass or fail on time.

Usage: python3 scripts/bench.py [--quick] [--only detectors,accuracy,reference,paper,gui,paper-accuracy]
  --quick   one seed, no all-tiles run, one paper epoch: a smoke run of the whole harness
  paper-accuracy (the paper preset's whole schedule, about an hour) runs only when named;
  otherwise its earlier reports are tabled again.
Environment: MTD (data set folder), DATA_ROOT (the folder of all data sets; default
../shared/data), DIFFERNET_CACHE (venv and weights; default ~/.cache/differnet),
DETECTORS (comma-separated names of DETECTOR_RUNS to run; default all), BENCH_RESUME=1
(keep the detector runs already in target/bench/detectors/summary.json instead of
measuring them again), STUDY (comma-separated names of STUDY_RUNS to run; default all;
runs already in target/bench/study/summary.json are kept), STUDY_SEEDS (e.g. "1,2": only
those seeds of the study; default 0-2, or 0 with --quick), STUDY_DATA (e.g. "magnetic_tile":
only those data sets of the study).
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_ROOT = Path(os.environ.get("DATA_ROOT", ROOT.parent / "shared" / "data")).resolve()
DATA = Path(os.environ.get("MTD", DATA_ROOT / "magnetic_tile")).resolve()
DATASETS = {"magnetic_tile": DATA, "elpv/mono": DATA_ROOT / "elpv" / "mono", "elpv/poly": DATA_ROOT / "elpv" / "poly"}
CACHE = Path(os.environ.get("DIFFERNET_CACHE", Path.home() / ".cache" / "differnet"))
PY = CACHE / "venv" / "bin" / "python"
BIN = Path(os.environ.get("DIFFERNET_BIN", ROOT / "target" / "release" / "differnet"))
GUI = Path(os.environ.get("DIFFERNET_WORKSTATION", ROOT / "target" / "release" / "differnet-workstation"))
OUT = ROOT / "target" / "bench"
MD = ROOT / "BENCHMARKS.md"


def log(*a):
    print("[bench]", *a, file=sys.stderr, flush=True)


def run(name, cmd, out_dir, env=None, stdout_json=True):
    """Runs `cmd` under GNU time; returns (parsed stdout, wall seconds, peak RSS in MB).

    Both implementations run with passive OpenMP waits (our binaries set them for
    themselves; see src/engine/environment.rs), so a busy core slows both alike."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tfile = out_dir / f"{name}.time"
    full_env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", **(env or {}))
    log(name, ":", " ".join(str(c) for c in cmd))
    t0 = time.monotonic()
    p = subprocess.run(
        ["/usr/bin/time", "-f", "%M %e", "-o", str(tfile)] + [str(c) for c in cmd],
        capture_output=True,
        text=True,
        env=full_env,
    )
    wall = time.monotonic() - t0
    (out_dir / f"{name}.stdout").write_text(p.stdout)
    (out_dir / f"{name}.stderr").write_text(p.stderr)
    if p.returncode != 0:
        raise SystemExit(f"{name} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    rss_kb = int(tfile.read_text().split()[-2])
    result = json.loads(p.stdout) if stdout_json else p.stdout
    return result, wall, rss_kb / 1024.0


def mean_sd(values, scale=1.0, digits=1):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    m = statistics.mean(values) * scale
    if len(values) == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def write_section(name, text):
    md = MD.read_text()
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{begin}\n{text.strip()}\n{end}"
    if begin in md:
        md = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: block, md, flags=re.S)
    else:
        md = md.rstrip() + f"\n\n{block}\n"
    tmp = MD.with_suffix(".md.tmp")
    tmp.write_text(md)
    tmp.replace(MD)
    log(f"BENCHMARKS.md: section {name} written")


def split(out_dir, data, train_count, seed, name, val_count=None):
    args = [BIN, "split", "--data", data, "--seed", seed]
    if train_count:
        args += ["--train-count", train_count]
    if val_count is not None:
        args += ["--val-count", val_count]
    s, _, _ = run(f"split-{name}", args, out_dir)
    path = out_dir / f"split-{name}.json"
    path.write_text(json.dumps(s))
    return path, s


# --- the detectors on every data set ------------------------------------------------------

# name -> (what the row says, train arguments). The first is the product's default.
DETECTOR_RUNS = {
    "fusion": (
        "Fusion (default): PatchCore on each part at its own shape + PatchCore on a standardised 256 px square",
        ["--detector", "fusion"],
    ),
    "patchcore": (
        "PatchCore: Lite1, stages 5+6, short side 256 px (aspect kept), dihedral copies, coreset 1/8 per image, top-1 % score",
        ["--detector", "patchcore"],
    ),
    "patchcore-lite0": ("PatchCore, Lite0, otherwise default", ["--detector", "patchcore", "--backbone", "efficientnet-lite0"]),
    "patchcore-lite2": ("PatchCore, Lite2, otherwise default", ["--detector", "patchcore", "--backbone", "efficientnet-lite2"]),
    "patchcore-plain": ("PatchCore, no dihedral copies, no coreset", ["--detector", "patchcore", "--dihedral", "false", "--coreset", "1"]),
    "cs-flow": (
        "CS-Flow: Lite1 stage 6 at 256 / 128 / 64 px, 4 blocks, hidden 128, 30 epochs on dihedral copies, mean z²/2",
        ["--detector", "cs-flow"],
    ),
    "differnet-fast": ("DifferNet, fast preset (Lite0, 160 px, 8 rotations)", ["--detector", "differnet", "--preset", "fast"]),
}


def detectors(quick):
    """16-shot image AUROC (3 seeds), pixel AUROC where there are masks, speed, model size
    and peak memory, for each detector setting on each data set; the default detector
    also on all good magnetic tiles."""
    out = OUT / "detectors"
    seeds = [0] if quick else [0, 1, 2]
    # DETECTORS="" only tables the reports already there.
    wanted = [n for n in os.environ.get("DETECTORS", ",".join(DETECTOR_RUNS)).split(",") if n]
    resume = os.environ.get("BENCH_RESUME") == "1"
    summary_path = out / "summary.json"
    runs = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    for name in wanted:
        _, args = DETECTOR_RUNS[name]
        for ds, path in DATASETS.items():
            if not path.exists():
                log(f"skipping {ds}: {path} is missing")
                continue
            has_masks = (path / "ground_truth").exists()
            for seed in seeds:
                key = f"{name}|{ds}|16|{seed}"
                if resume and key in runs:
                    continue
                tag = f"{name}-{ds.replace('/', '-')}-16-s{seed}"
                r = ours(
                    out,
                    tag,
                    args + ["--train-count", "16", "--seed", str(seed)],
                    [] if has_masks else ["--no-pixel"],
                    data=path,
                    keep_size=True,
                )
                runs[key] = r
                summary_path.parent.mkdir(parents=True, exist_ok=True)
                summary_path.write_text(json.dumps(runs, indent=1))
        if name == "fusion" and not quick and not (resume and f"{name}|magnetic_tile|all|0" in runs):
            r = ours(out, f"{name}-magnetic_tile-all", args, ["--no-pixel"], data=DATA, keep_size=True)
            runs[f"{name}|magnetic_tile|all|0"] = r
            summary_path.write_text(json.dumps(runs, indent=1))

    rows = []
    for name, (label, _) in DETECTOR_RUNS.items():
        per_ds = []
        means = []
        for ds in DATASETS:
            rs = [runs[k] for k in runs if k.startswith(f"{name}|{ds}|16|")]
            aucs = [r["eval"]["image_auroc"] for r in rs]
            per_ds.append(mean_sd(aucs, 100))
            if aucs:
                means.append(statistics.mean(aucs))
        if not means:
            continue
        mtd = [runs[k] for k in runs if k.startswith(f"{name}|magnetic_tile|16|")]
        pixel = mean_sd([r["eval"]["pixel_auroc"] for r in mtd], 100)
        all_tiles = runs.get(f"{name}|magnetic_tile|all|0")
        rs = [runs[k] for k in runs if k.startswith(f"{name}|") and "|16|" in k]
        train_s = statistics.mean(r["train"]["train_secs"] for r in rs)
        # Scoring speed where every image gets a map (the data set with masks).
        ips = statistics.mean(1.0 / r["eval"]["secs_per_image"] for r in mtd) if mtd else float("nan")
        size_mb = statistics.mean(r.get("model_mb", 0.0) for r in rs)
        rss = max(max(r["train_rss"], r["eval_rss"]) for r in rs)
        rows.append(
            [
                label,
                *per_ds,
                f"{100 * statistics.mean(means):.1f}" if len(means) == len(DATASETS) else "n/a",
                pixel,
                f"{100 * all_tiles['eval']['image_auroc']:.1f}" if all_tiles else "n/a",
                f"{train_s:.1f}",
                f"{ips:.1f}",
                f"{size_mb:.1f}",
                f"{rss:.0f}",
            ]
        )
    text = table(
        ["detector", *[f"{ds} 16-shot" for ds in DATASETS], "mean of 3", "MTD pixel AUROC",
         "MTD all tiles", "training (s)", "MTD scoring with a map (images / s)", "model file (MB)", "peak RSS (MB)"],
        rows,
    )
    text += (
        f"\n\n16-shot columns: image AUROC, mean ± sd over seeds {seeds} (16 training images and "
        f"16 validation images drawn with the seed; the whole test set). Pixel AUROC on the "
        f"magnetic tiles' masks, maps at each image's size. Training time: mean over the 16-shot "
        f"runs (with validation on 16 held-out images); scoring: the magnetic-tile evaluations, a "
        f"map for every image; model file of a 16-shot model; peak RSS of any 16-shot command. Measured "
        f"{time.strftime('%Y-%m-%d')} on {machine()}."
    )
    write_section("detectors", text)


# --- accuracy and speed of our presets ---------------------------------------------------


def ours(out, name, train_args, eval_args, data=DATA, keep_size=False, env=None):
    model = out / f"{name}.differnet"
    tr, tr_wall, tr_rss = run(
        f"{name}.train", [BIN, "train", "--data", data, "--out", model, "--json"] + train_args, out, env
    )
    ev, ev_wall, ev_rss = run(
        f"{name}.eval", [BIN, "eval", "--model", model, "--data", data, "--json"] + eval_args, out, env
    )
    model_mb = model.stat().st_size / 1e6
    model.unlink(missing_ok=True)
    r = dict(train=tr, eval=ev, train_wall=tr_wall, train_rss=tr_rss, eval_wall=ev_wall, eval_rss=ev_rss)
    if keep_size:
        r["model_mb"] = model_mb
    return r


def accuracy(quick):
    out = OUT / "accuracy"
    seeds = [0] if quick else [0, 1, 2]
    runs = {}
    for seed in seeds:
        runs[f"fast-16shot-seed{seed}"] = ours(
            out,
            f"fast-16shot-seed{seed}",
            ["--detector", "differnet", "--preset", "fast", "--train-count", "16", "--seed", str(seed)],
            [] if seed == 0 else ["--no-pixel"],
        )
    if not quick:
        runs["fast-all-seed0"] = ours(
            out, "fast-all-seed0", ["--detector", "differnet", "--preset", "fast"], ["--no-pixel"]
        )
    (out / "summary.json").write_text(json.dumps(runs, indent=1))

    types = sorted({t for r in runs.values() for t, _ in r["eval"]["per_type_auroc"]})
    groups = {"fast, 16 tiles": [r for k, r in runs.items() if "16shot" in k]}
    if "fast-all-seed0" in runs:
        groups["fast, all tiles"] = [runs["fast-all-seed0"]]
    acc_rows, speed_rows = [], []
    for label, rs in groups.items():
        per_type = [mean_sd([dict(r["eval"]["per_type_auroc"]).get(t) for r in rs], 100) for t in types]
        acc_rows.append(
            [label, len(rs), rs[0]["train"]["train_count"], mean_sd([r["eval"]["image_auroc"] for r in rs], 100)]
            + per_type
            + [mean_sd([r["eval"]["pixel_auroc"] for r in rs], 100)]
        )
    for key, r in runs.items():
        pixel = r["eval"]["pixel_auroc"] is not None
        spi = r["eval"]["secs_per_image"]
        speed_rows.append(
            [
                key,
                r["train"]["train_count"],
                f"{r['train']['train_secs']:.1f}",
                f"{r['train_wall']:.1f}",
                "n/a" if pixel else f"{1.0 / spi:.2f}",
                f"{spi:.3f}" if pixel else "n/a",
                f"{r['train_rss']:.0f} / {r['eval_rss']:.0f}",
            ]
        )
    text = (
        table(["preset", "seeds", "train images", "image AUROC"] + types + ["pixel AUROC"], acc_rows)
        + "\n\n"
        + table(
            [
                "run",
                "train images",
                "training (s)",
                "train command wall (s)",
                "scoring, images / s (8 rotations)",
                "scoring + heatmap (s / image)",
                "peak RSS train / eval (MB)",
            ],
            speed_rows,
        )
        + f"\n\nMeasured {time.strftime('%Y-%m-%d')} on {machine()}."
    )
    write_section("accuracy", text)
    return runs


# --- side by side with the PyTorch reference ---------------------------------------------


def reference_fast(quick):
    """Fast-preset hyper-parameters, 16 tiles, seed 0, the whole test set, both codes."""
    out = OUT / "reference"
    # No validation split on either side: the same 16 training tiles, and training time
    # without our validation pass.
    split_path, _ = split(out, DATA, 16, 0, "16shot-seed0", val_count=0)
    rust = ours(
        out,
        "ours-fast",
        ["--detector", "differnet", "--preset", "fast", "--train-count", "16", "--seed", "0", "--val-count", "0"],
        ["--no-pixel"],
    )
    ref_out = out / "ref-fast.json"
    _, ref_wall, ref_rss = run(
        "ref-fast",
        [PY, ROOT / "scripts" / "reference_differnet.py", "--split", split_path, "--preset", "fast", "--out", ref_out],
        out,
        stdout_json=False,
    )
    ref = json.loads(ref_out.read_text())
    return rust, ref, ref_rss


def earlier_reference_fast():
    """The fast-preset comparison of an earlier run, when its reports are there."""
    out = OUT / "reference"
    try:
        rust = dict(
            train=json.loads((out / "ours-fast.train.stdout").read_text()),
            eval=json.loads((out / "ours-fast.eval.stdout").read_text()),
            train_rss=int((out / "ours-fast.train.time").read_text().split()[-2]) / 1024.0,
            eval_rss=int((out / "ours-fast.eval.time").read_text().split()[-2]) / 1024.0,
        )
        ref = json.loads((out / "ref-fast.json").read_text())
        ref_rss = int((out / "ref-fast.time").read_text().split()[-2]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None
    return rust, ref, ref_rss


def subset_dir(out, n_train=16, n_good=5, n_defect=5, seed=0):
    """A small MVTec-layout folder of symlinks: 16 training tiles (drawn with the seed as
    `split` does) and the first test images of good and of each defect type in turn."""
    _, s = split(out, DATA, n_train, seed, "paper-source", val_count=0)
    d = out / "subset"
    if d.exists():
        shutil.rmtree(d)
    (d / "train" / "good").mkdir(parents=True)
    for p in s["train"]:
        (d / "train" / "good" / Path(p).name).symlink_to(Path(p).resolve())
    by_type = {}
    for t in s["test"]:
        by_type.setdefault(t["label"], []).append(t)
    picks = by_type.get("good", [])[:n_good]
    defects = [t for t in sorted(by_type) if t != "good"]
    i = 0
    while len(picks) < n_good + n_defect and defects:
        kind = defects[i % len(defects)]
        taken = [p for p in picks if p["label"] == kind]
        if len(taken) < len(by_type[kind]):
            picks.append(by_type[kind][len(taken)])
        i += 1
    for t in picks:
        folder = d / "test" / t["label"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / Path(t["path"]).name).symlink_to(Path(t["path"]).resolve())
        if t["mask"]:
            mfolder = d / "ground_truth" / t["label"]
            mfolder.mkdir(parents=True, exist_ok=True)
            (mfolder / Path(t["mask"]).name).symlink_to(Path(t["mask"]).resolve())
    return d


def reference_paper(quick):
    """Paper preset: time per epoch and per scored image (64 rotations), both codes, on
    16 training tiles and 10 test tiles (the full schedule takes hours on this CPU)."""
    out = OUT / "paper"
    epochs = 1 if quick else 2
    data = subset_dir(out)
    split_path, _ = split(out, data, None, 0, "subset", val_count=0)
    rust = ours(
        out,
        "ours-paper",
        ["--detector", "differnet", "--preset", "paper", "--epochs", str(epochs), "--val-count", "0"],
        ["--no-pixel"],
        data=data,
    )
    ref_out = out / "ref-paper.json"
    _, _, ref_rss = run(
        "ref-paper",
        [PY, ROOT / "scripts" / "reference_differnet.py", "--split", split_path, "--preset", "paper",
         "--epochs", str(epochs), "--out", ref_out],
        out,
        stdout_json=False,
    )
    ref = json.loads(ref_out.read_text())
    return rust, ref, ref_rss, epochs


def reference_tables(fast, paper):
    rows = []
    if fast:
        rust, ref, ref_rss = fast
        r_train, p_train = rust["train"]["train_secs"], ref["train_secs"]
        r_spi, p_spi = rust["eval"]["secs_per_image"], ref["score_secs_per_image"]
        rows.append(["fast hyper-parameters, 16 tiles, 583 test images, 8 rotations", "training (s)",
                     f"{r_train:.1f}", f"{p_train:.1f}", f"{r_train / p_train:.2f}"])
        rows.append(["", "scoring (s / image)", f"{r_spi:.3f}", f"{p_spi:.3f}", f"{r_spi / p_spi:.2f}"])
        rows.append(["", "image AUROC", f"{100 * rust['eval']['image_auroc']:.1f}",
                     f"{100 * ref['image_auroc']:.1f}", ""])
        rows.append(["", "peak RSS train / eval vs reference (MB)",
                     f"{rust['train_rss']:.0f} / {rust['eval_rss']:.0f}", f"{ref_rss:.0f}", ""])
    if paper:
        rust, ref, ref_rss, epochs = paper
        tr = rust["train"]
        # Like for like: loading and the epochs. Our job then also scores held-out images and
        # calibrates the heatmap scale (4 images x 64 rotations with a backward pass each),
        # which the reference does not do; that is listed on its own.
        r_fit = tr["train_secs"] - tr.get("validation_secs", 0.0)
        p_fit = ref["train_secs"]
        r_spi, p_spi = rust["eval"]["secs_per_image"], ref["score_secs_per_image"]
        rows.append([f"paper preset, 16 tiles, {epochs} epoch(s), 10 test images, 64 rotations",
                     "training: loading + epochs (s)", f"{r_fit:.1f}", f"{p_fit:.1f}", f"{r_fit / p_fit:.2f}"])
        rows.append(["", "training: heatmap calibration, ours only (s)",
                     f"{tr.get('validation_secs', 0.0):.1f}", "not done", ""])
        rows.append(["", "scoring (s / image)", f"{r_spi:.2f}", f"{p_spi:.2f}", f"{r_spi / p_spi:.2f}"])
        rows.append(["", "peak RSS train / eval vs reference (MB)",
                     f"{rust['train_rss']:.0f} / {rust['eval_rss']:.0f}", f"{ref_rss:.0f}", ""])
    text = table(["setting", "measure", "ours (Rust, libtorch)", "reference (PyTorch eager)", "ours / reference"], rows)
    text += f"\n\nMeasured {time.strftime('%Y-%m-%d')} on {machine()}, both with the torch 2.11 of the venv."
    write_section("reference", text)


# --- the paper preset's accuracy -------------------------------------------------------


def paper_accuracy(run_it):
    """The paper preset (448 px, 192 epochs, 64 test rotations) on the 16-tile seed-0
    split of the accuracy section, next to the fast preset on the same split. About an
    hour on 2 cores, so it runs only when named (--only paper-accuracy); otherwise the
    earlier reports are tabled again."""
    out = OUT / "paper-accuracy"
    name = "paper-16shot-seed0"
    if run_it:
        ours(out, name, ["--detector", "differnet", "--preset", "paper", "--train-count", "16", "--seed", "0"], ["--no-pixel"])
    try:
        paper = dict(
            train=json.loads((out / f"{name}.train.stdout").read_text()),
            eval=json.loads((out / f"{name}.eval.stdout").read_text()),
        )
        fast = dict(
            train=json.loads((OUT / "accuracy" / "fast-16shot-seed0.train.stdout").read_text()),
            eval=json.loads((OUT / "accuracy" / "fast-16shot-seed0.eval.stdout").read_text()),
        )
    except (OSError, ValueError):
        log("paper-accuracy: no reports yet; run with --only paper-accuracy")
        return
    types = sorted(t for t, _ in paper["eval"]["per_type_auroc"])
    rows = []
    for label, r in (("paper", paper), ("fast", fast)):
        per_type = dict(r["eval"]["per_type_auroc"])
        rows.append(
            [label, r["train"]["train_count"], f"{100 * r['eval']['image_auroc']:.1f}"]
            + [f"{100 * per_type[t]:.1f}" for t in types]
            + [f"{r['train']['train_secs']:.0f}"]
        )
    # Scoring speed is in the other tables (the fast seed-0 run also made heatmaps).
    text = table(["preset", "train images", "image AUROC"] + types + ["training (s)"], rows)
    when = time.strftime("%Y-%m-%d", time.localtime((out / f"{name}.eval.stdout").stat().st_mtime))
    text += (
        f"\n\nBoth on the 16-tile seed-0 split of the accuracy section, scored on the rest of the "
        f"test set; paper run of {when} on {machine()}."
    )
    write_section("paper-accuracy", text)


# --- GUI frame time ---------------------------------------------------------------------


def gui_frames(quick):
    """Opens the real window on the demo data under Xvfb, presses Train, and reads the
    frame log (DIFFERNET_FRAME_LOG) until training and inspection end."""
    out = OUT / "gui"
    out.mkdir(parents=True, exist_ok=True)
    frame_log = out / "frames.txt"
    home = out / "home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir()
    script = out / "drive.sh"
    script.write_text(
        f"""#!/usr/bin/env bash
set -u
DIFFERNET_FRAME_LOG={frame_log} XDG_DATA_HOME={home} "{GUI}" "{ROOT / 'assets' / 'demo'}" &
pid=$!
for _ in $(seq 240); do xdotool search --onlyvisible --name "DifferNet workstation" >/dev/null 2>&1 && break; sleep 0.5; done
sleep 3
# The Train button of the demo layout (1600x1000 screen, window at the top left, the
# default detector selected).
xdotool mousemove 53 491 click 1
sleep 2
for _ in $(seq 1200); do
  last=$(tail -n 1 {frame_log} 2>/dev/null | cut -d' ' -f3)
  busy=$(grep -c ' 1 ' {frame_log} 2>/dev/null || true)
  if [ "${{busy:-0}}" -gt 0 ] && [ "$last" = "0" ]; then break; fi
  sleep 0.5
done
sleep 2
kill $pid; wait $pid 2>/dev/null || true
"""
    )
    script.chmod(0o755)
    subprocess.run(
        ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", str(script)],
        check=True,
        env=dict(os.environ, DIFFERNET_WEIGHTS_DIR=str(CACHE / "weights")),
    )
    frames = []
    for line in frame_log.read_text().splitlines():
        parts = line.split(" ")
        if len(parts) >= 3 and parts[1] != "nan":
            frames.append((float(parts[0]), float(parts[1]), parts[2] == "1"))
    busy = [f for f in frames if f[2]]
    if not busy:
        raise SystemExit("the GUI benchmark saw no frame while training (did the Train click land?)")
    ms = sorted(f[1] for f in busy)

    def pct(q):
        return ms[min(len(ms) - 1, int(q * (len(ms) - 1) + 0.5))]

    span = busy[-1][0] - busy[0][0]
    text = table(
        ["while", "frames", "frames / s", "frame time p50 (ms)", "p95 (ms)", "max (ms)"],
        [["training and inspecting the demo set (default detector)", len(ms), f"{len(ms) / max(span, 1e-9):.1f}",
          f"{pct(0.5):.1f}", f"{pct(0.95):.1f}", f"{ms[-1]:.1f}"]],
    )
    text += (
        f"\n\nFrame time is eframe's CPU time per frame (UI code, tessellation and painting, "
        f"without the buffer swap), OpenGL on Mesa's software rasteriser under Xvfb, "
        f"measured {time.strftime('%Y-%m-%d')} on {machine()}."
    )
    write_section("gui", text)


# --- accuracy, round 2: input shape, resolution, photometric standardisation, fusion --------

# name -> (what the row says, train arguments). PatchCore, Lite1, stages 5+6 in every row.
STUDY_RUNS = {
    "square-256": ("square 256 px (the previous default)", ["--keep-aspect", "false", "--standardise", "false"]),
    "square-256-std": ("square 256 px, standardised grey levels", ["--keep-aspect", "false", "--standardise", "true"]),
    "aspect-256": ("aspect kept, short side 256 px", ["--keep-aspect", "true", "--standardise", "false"]),
    "aspect-area-256": ("aspect kept, as many pixels as 256 x 256", ["--keep-aspect", "true", "--same-area", "true", "--standardise", "false"]),
    "aspect-256-std": ("aspect kept, short side 256 px, standardised", ["--keep-aspect", "true", "--standardise", "true"]),
    "aspect-320-std": ("aspect kept, short side 320 px, standardised", ["--keep-aspect", "true", "--standardise", "true", "--image-size", "320"]),
    "aspect-384": ("aspect kept, short side 384 px", ["--keep-aspect", "true", "--standardise", "false", "--image-size", "384"]),
    "aspect-192": ("aspect kept, short side 192 px", ["--keep-aspect", "true", "--standardise", "false", "--image-size", "192"]),
    "square-192-std": ("square 192 px, standardised", ["--keep-aspect", "false", "--standardise", "true", "--image-size", "192"]),
    "aspect-256-bf16": ("aspect kept, short side 256 px, backbone in bfloat16", ["--keep-aspect", "true", "--standardise", "false"]),
    "square-256-std-bf16": ("square 256 px, standardised, backbone in bfloat16", ["--keep-aspect", "false", "--standardise", "true"]),
    # Finer features for thin defects: stages 3+5 (strides 8 and 16) instead of 5+6 (16 and 32).
    "aspect-256-s35-bf16": ("aspect kept, short side 256 px, stages 3+5, bfloat16", ["--keep-aspect", "true", "--standardise", "false", "--stages", "3,5"]),
    "square-256-std-s35-bf16": ("square 256 px, standardised, stages 3+5, bfloat16", ["--keep-aspect", "false", "--standardise", "true", "--stages", "3,5"]),
    # Lower-level features at the default's stride: stages 4+6 (strides 16 and 32).
    "aspect-256-s46-bf16": ("aspect kept, short side 256 px, stages 4+6, bfloat16", ["--keep-aspect", "true", "--standardise", "false", "--stages", "4,6"]),
    "square-256-std-s46-bf16": ("square 256 px, standardised, stages 4+6, bfloat16", ["--keep-aspect", "false", "--standardise", "true", "--stages", "4,6"]),
    # Photometric robustness: brightness and contrast copies of every good image in the bank.
    "aspect-256-photo-bf16": ("aspect kept, short side 256 px, brightness and contrast copies in the bank, bfloat16", ["--keep-aspect", "true", "--standardise", "false", "--photometric-bank", "true"]),
    "square-256-photo-bf16": ("square 256 px, brightness and contrast copies in the bank, bfloat16", ["--keep-aspect", "false", "--standardise", "false", "--photometric-bank", "true"]),
    # Tiles: a finer input shown to the backbone in overlapping 256 px tiles.
    "aspect-384-tile256-bf16": ("aspect kept, short side 384 px in 256 px tiles, bfloat16", ["--keep-aspect", "true", "--standardise", "false", "--image-size", "384", "--tile", "256"]),
    "aspect-512-tile256-bf16": ("aspect kept, short side 512 px in 256 px tiles, bfloat16", ["--keep-aspect", "true", "--standardise", "false", "--image-size", "512", "--tile", "256"]),
    # One scale for every image: the training images' median short side to 256 px.
    "aspect-256-scaled-bf16": ("aspect kept, one scale for every image (the training images' median short side to 256 px), bfloat16", ["--keep-aspect", "true", "--standardise", "false", "--scale-to-training", "true"]),
    "aspect-256-photo-scaled-bf16": ("aspect kept, one scale for every image, brightness and contrast copies, bfloat16", ["--keep-aspect", "true", "--standardise", "false", "--scale-to-training", "true", "--photometric-bank", "true"]),
    # Another backbone beside Lite1, and other neighbourhoods.
    "aspect-256-lite2-bf16": ("aspect kept, short side 256 px, EfficientNet-Lite2, bfloat16", ["--keep-aspect", "true", "--standardise", "false", "--backbone", "efficientnet-lite2"]),
    "aspect-256-lite0-bf16": ("aspect kept, short side 256 px, EfficientNet-Lite0, bfloat16", ["--keep-aspect", "true", "--standardise", "false", "--backbone", "efficientnet-lite0"]),
    "aspect-256-n1-bf16": ("aspect kept, short side 256 px, no neighbourhood averaging, bfloat16", ["--keep-aspect", "true", "--standardise", "false", "--neighbourhood", "1"]),
    "aspect-256-n5-bf16": ("aspect kept, short side 256 px, 5 x 5 neighbourhoods, bfloat16", ["--keep-aspect", "true", "--standardise", "false", "--neighbourhood", "5"]),
    # The boost of 5 labelled defects per type (magnetic tiles; its weight, per member).
    "aspect-256-photo-d5w3-bf16": ("aspect kept, short side 256 px, brightness and contrast copies, 5 labelled defects per type, boost weight 3, bfloat16", ["--keep-aspect", "true", "--standardise", "false", "--photometric-bank", "true", "--defects", "5", "--defect-weight", "3"]),
    "square-256-std-d5w3-bf16": ("square 256 px, standardised, 5 labelled defects per type, boost weight 3, bfloat16", ["--keep-aspect", "false", "--standardise", "true", "--defects", "5", "--defect-weight", "3"]),
    "aspect-256-photo-d5w8-bf16": ("aspect kept, short side 256 px, brightness and contrast copies, 5 labelled defects per type, boost weight 8, bfloat16", ["--keep-aspect", "true", "--standardise", "false", "--photometric-bank", "true", "--defects", "5", "--defect-weight", "8"]),
    "square-256-std-d5w8-bf16": ("square 256 px, standardised, 5 labelled defects per type, boost weight 8, bfloat16", ["--keep-aspect", "false", "--standardise", "true", "--defects", "5", "--defect-weight", "8"]),
    # Defects drawn on copies of the good training images (scratches, spots, moved patches), learnt as confirmed ones
    # (only their patches farther from the good bank than the image's untouched ones).
    "aspect-256-photo-syn3f-bf16": ("aspect kept, short side 256 px, brightness and contrast copies, 3 drawn defects per good image, bfloat16", ["--keep-aspect", "true", "--standardise", "false", "--photometric-bank", "true", "--synthetic-defects", "3"]),
    "square-256-std-syn3f-bf16": ("square 256 px, standardised, 3 drawn defects per good image, bfloat16", ["--keep-aspect", "false", "--standardise", "true", "--synthetic-defects", "3"]),
    "square-384-std-tile256-bf16": ("square 384 px, standardised, in 256 px tiles, bfloat16", ["--keep-aspect", "false", "--standardise", "true", "--image-size", "384", "--tile", "256"]),
}

# The backbone's precision per run: bfloat16 only where the name says so (the rows above
# them were measured in float32, before the engine used bfloat16 on CPUs that have it).
def study_env(name):
    return {"DIFFERNET_BF16": "1" if name.endswith("-bf16") else "0"}

# Fusions measured offline from the members' per-image scores: each member's score
# standardised by its own held-out good scores (mean and sd), then averaged.
STUDY_FUSIONS = {
    "fuse-default": ("fusion (the default): aspect 256 plain + square 256 standardised", ["aspect-256", "square-256-std"]),
    "fuse-area": ("fusion: aspect kept at 256 x 256 pixels, plain + square 256 standardised", ["aspect-area-256", "square-256-std"]),
    "fuse-aspect": ("fusion: aspect 256 standardised + aspect 256 plain", ["aspect-256-std", "aspect-256"]),
    "fuse-square": ("fusion: square 256 standardised + square 256 plain", ["square-256-std", "square-256"]),
    "fuse-256std+384": ("fusion: aspect 256 standardised + aspect 384 plain", ["aspect-256-std", "aspect-384"]),
    "fuse-a192+s256std": ("fusion: aspect 192 plain + square 256 standardised", ["aspect-192", "square-256-std"]),
    "fuse-a256+s192std": ("fusion: aspect 256 plain + square 192 standardised", ["aspect-256", "square-192-std"]),
    "fuse-a192+s192std": ("fusion: aspect 192 plain + square 192 standardised", ["aspect-192", "square-192-std"]),
    "fuse-default-bf16": ("fusion (the default) with the backbone in bfloat16, as the engine runs it on this CPU", ["aspect-256-bf16", "square-256-std-bf16"]),
    "fuse-default+a-s35-bf16": ("fusion: the default (bfloat16) + aspect 256 plain at stages 3+5", ["aspect-256-bf16", "square-256-std-bf16", "aspect-256-s35-bf16"]),
    "fuse-default+s-s35-bf16": ("fusion: the default (bfloat16) + square 256 standardised at stages 3+5", ["aspect-256-bf16", "square-256-std-bf16", "square-256-std-s35-bf16"]),
    "fuse-a-s35+s256std-bf16": ("fusion: aspect 256 plain at stages 3+5 + square 256 standardised (bfloat16)", ["aspect-256-s35-bf16", "square-256-std-bf16"]),
    "fuse-a256+s-s35-bf16": ("fusion: aspect 256 plain + square 256 standardised at stages 3+5 (bfloat16)", ["aspect-256-bf16", "square-256-std-s35-bf16"]),
    "fuse-default+a-s46-bf16": ("fusion: the default (bfloat16) + aspect 256 plain at stages 4+6", ["aspect-256-bf16", "square-256-std-bf16", "aspect-256-s46-bf16"]),
    "fuse-default+s-s46-bf16": ("fusion: the default (bfloat16) + square 256 standardised at stages 4+6", ["aspect-256-bf16", "square-256-std-bf16", "square-256-std-s46-bf16"]),
    "fuse-a-s46+s256std-bf16": ("fusion: aspect 256 plain at stages 4+6 + square 256 standardised (bfloat16)", ["aspect-256-s46-bf16", "square-256-std-bf16"]),
    "fuse-a256+s-s46-bf16": ("fusion: aspect 256 plain + square 256 standardised at stages 4+6 (bfloat16)", ["aspect-256-bf16", "square-256-std-s46-bf16"]),
    "fuse-s46-bf16": ("fusion: both default members at stages 4+6 (bfloat16)", ["aspect-256-s46-bf16", "square-256-std-s46-bf16"]),
    "fuse-photo-bf16": ("fusion: aspect 256 plain with brightness and contrast copies + square 256 standardised (bfloat16)", ["aspect-256-photo-bf16", "square-256-std-bf16"]),
    "fuse-default+photo-bf16": ("fusion: the default (bfloat16) + aspect 256 with brightness and contrast copies", ["aspect-256-bf16", "square-256-std-bf16", "aspect-256-photo-bf16"]),
    "fuse-default+sq-photo-bf16": ("fusion: the default (bfloat16) + square 256 with brightness and contrast copies", ["aspect-256-bf16", "square-256-std-bf16", "square-256-photo-bf16"]),
    "fuse-scaled-bf16": ("fusion: aspect 256 at one scale + square 256 standardised (bfloat16)", ["aspect-256-scaled-bf16", "square-256-std-bf16"]),
    "fuse-photo-scaled-bf16": ("fusion: aspect 256 at one scale with brightness and contrast copies + square 256 standardised (bfloat16)", ["aspect-256-photo-scaled-bf16", "square-256-std-bf16"]),
    "fuse-default+lite2-bf16": ("fusion: the default (bfloat16) + aspect 256 on EfficientNet-Lite2", ["aspect-256-bf16", "square-256-std-bf16", "aspect-256-lite2-bf16"]),
    "fuse-default+lite0-bf16": ("fusion: the default (bfloat16) + aspect 256 on EfficientNet-Lite0", ["aspect-256-bf16", "square-256-std-bf16", "aspect-256-lite0-bf16"]),
    "fuse-lite2+s256std-bf16": ("fusion: aspect 256 on EfficientNet-Lite2 + square 256 standardised (bfloat16)", ["aspect-256-lite2-bf16", "square-256-std-bf16"]),
    "fuse-n1-bf16": ("fusion: aspect 256 without neighbourhood averaging + square 256 standardised (bfloat16)", ["aspect-256-n1-bf16", "square-256-std-bf16"]),
    "fuse-n5-bf16": ("fusion: aspect 256 with 5 x 5 neighbourhoods + square 256 standardised (bfloat16)", ["aspect-256-n5-bf16", "square-256-std-bf16"]),
    "fuse-tile384-bf16": ("fusion: aspect 384 in 256 px tiles + square 256 standardised (bfloat16)", ["aspect-384-tile256-bf16", "square-256-std-bf16"]),
    "fuse-default+tile384-bf16": ("fusion: the default (bfloat16) + aspect 384 in 256 px tiles", ["aspect-256-bf16", "square-256-std-bf16", "aspect-384-tile256-bf16"]),
    "fuse-tile512-bf16": ("fusion: aspect 512 in 256 px tiles + square 256 standardised (bfloat16)", ["aspect-512-tile256-bf16", "square-256-std-bf16"]),
    "fuse-default+tile512-bf16": ("fusion: the default (bfloat16) + aspect 512 in 256 px tiles", ["aspect-256-bf16", "square-256-std-bf16", "aspect-512-tile256-bf16"]),
    "fuse-syn3f-bf16": ("fusion: the default with 3 drawn defects per good image in both members (bfloat16)", ["aspect-256-photo-syn3f-bf16", "square-256-std-syn3f-bf16"]),
    "fuse-a256+s384std-tile-bf16": ("fusion: aspect 256 plain + square 384 standardised in 256 px tiles (bfloat16)", ["aspect-256-bf16", "square-384-std-tile256-bf16"]),
}

MTD_TYPES = ["blowhole", "break", "crack", "fray", "uneven"]

# Long parts made of real photographs (scripts/long_parts.py): three elpv/poly cells in a
# row, 900 x 300 px. Reported beside the three data sets, not in their mean.
LONG_PARTS = OUT / "long_parts"
STUDY_SETS = dict(DATASETS, long_parts=LONG_PARTS)


def read_scores(csv_path):
    import csv

    with open(csv_path) as f:
        return [(r["path"], r["label"], float(r["score"])) for r in csv.DictReader(f)]


def auroc(scores, positive):
    pairs = sorted(zip(scores, positive))
    # Mann-Whitney U with ties counted half.
    n_pos = sum(positive)
    n_neg = len(positive) - n_pos
    if not n_pos or not n_neg:
        return None
    rank_sum, i = 0.0, 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        mid = (i + j + 1) / 2.0
        rank_sum += mid * sum(1 for k in range(i, j) if pairs[k][1])
        i = j
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def per_type(rows):
    """Image AUROC of every defect type against the good images."""
    out = {}
    for t in sorted({label for _, label, _ in rows if label != "good"}):
        sub = [(s, label != "good") for _, label, s in rows if label in ("good", t)]
        out[t] = auroc([s for s, _ in sub], [p for _, p in sub])
    return out


def study(quick):
    """Every STUDY_RUNS setting on every data set at 16 good images (3 seeds): image AUROC,
    AUROC per magnetic-tile defect type, pixel AUROC, speed; and the fusions of pairs of
    them, from the same scores."""
    out = OUT / "study"
    seeds = [0] if quick else [0, 1, 2]
    # STUDY_SEEDS="1,2" runs only those seeds (e.g. to confirm a setting screened on seed 0).
    if os.environ.get("STUDY_SEEDS"):
        seeds = [int(x) for x in os.environ["STUDY_SEEDS"].split(",") if x]
    wanted = [n for n in os.environ.get("STUDY", ",".join(STUDY_RUNS)).split(",") if n]
    # STUDY_DATA="magnetic_tile": only those data sets (e.g. a setting that changes nothing
    # where every image has one size).
    data_sets = [d for d in os.environ.get("STUDY_DATA", "").split(",") if d]
    summary_path = out / "summary.json"
    runs = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    if not LONG_PARTS.exists():
        subprocess.run([PY, ROOT / "scripts" / "long_parts.py", LONG_PARTS], check=True)
    for seed in seeds:
        for name in wanted:
            for ds, path in STUDY_SETS.items():
                key = f"{name}|{ds}|{seed}"
                if key in runs or not path.exists() or (data_sets and ds not in data_sets):
                    continue
                has_masks = (path / "ground_truth").exists()
                tag = f"{name}-{ds.replace('/', '-')}-s{seed}"
                csv_path = out / f"{tag}.csv"
                r = ours(
                    out,
                    tag,
                    ["--detector", "patchcore", "--train-count", "16", "--val-count", "16", "--seed", str(seed)]
                    + STUDY_RUNS[name][1],
                    ["--csv", csv_path] + ([] if has_masks else ["--no-pixel"]),
                    data=path,
                    keep_size=True,
                    env=study_env(name),
                )
                r["scores"] = read_scores(csv_path)
                runs[key] = r
                out.mkdir(parents=True, exist_ok=True)
                summary_path.write_text(json.dumps(runs))
    study_tables(runs)


def study_tables(runs):
    def results(name):
        """data set -> list of (image AUROC, per-type AUROC, run) over the seeds."""
        res = {}
        if name in STUDY_FUSIONS:
            members = STUDY_FUSIONS[name][1]
            for ds in STUDY_SETS:
                for seed in range(3):
                    parts = [runs.get(f"{m}|{ds}|{seed}") for m in members]
                    if not all(parts):
                        continue
                    fused = {}
                    for r in parts:
                        v = r["train"]["validation"]
                        for p, label, score in r["scores"]:
                            z = (score - v["mean"]) / max(v["std"], 1e-12)
                            fused.setdefault(p, [label, 0.0])[1] += z / len(parts)
                    rows = [(p, label, z) for p, (label, z) in fused.items()]
                    img = auroc([z for *_, z in rows], [label != "good" for _, label, _ in rows])
                    res.setdefault(ds, []).append((img, per_type(rows), None))
            return res
        for ds in STUDY_SETS:
            for seed in range(3):
                r = runs.get(f"{name}|{ds}|{seed}")
                if r:
                    res.setdefault(ds, []).append((r["eval"]["image_auroc"], per_type(r["scores"]), r))
        return res

    rows = []
    for name, label in [(n, l) for n, (l, _) in STUDY_RUNS.items()] + [(n, l) for n, (l, _) in STUDY_FUSIONS.items()]:
        if name in STUDY_RUNS and "--defects" in STUDY_RUNS[name][1]:
            continue  # scored on fewer images: reported with the labelled defects
        res = results(name)
        if not res:
            continue
        cells, means = [], []
        for ds in DATASETS:
            aucs = [a for a, _, _ in res.get(ds, [])]
            cells.append(mean_sd(aucs, 100))
            if aucs:
                means.append(statistics.mean(aucs))
        long_cell = mean_sd([a for a, _, _ in res.get("long_parts", [])], 100)
        mtd = res.get("magnetic_tile", [])
        types = [mean_sd([t.get(k) for _, t, _ in mtd], 100) for k in MTD_TYPES]
        mtd_runs = [r for _, _, r in mtd if r]
        pixel = mean_sd([r["eval"].get("pixel_auroc") for r in mtd_runs], 100) if mtd_runs else "n/a"
        all_runs = [r for ds in res for _, _, r in res[ds] if r]
        train_s = f"{statistics.mean(r['train']['train_secs'] for r in all_runs):.1f}" if all_runs else "sum of members"
        ips = f"{statistics.mean(1.0 / r['eval']['secs_per_image'] for r in mtd_runs):.1f}" if mtd_runs else "n/a"
        size = f"{statistics.mean(r['model_mb'] for r in all_runs):.1f}" if all_runs else "n/a"
        mean = f"{100 * statistics.mean(means):.1f}" if len(means) == len(DATASETS) else "n/a"
        all_runs = [r for ds in DATASETS for _, _, r in res.get(ds, []) if r]
        train_s = f"{statistics.mean(r['train']['train_secs'] for r in all_runs):.1f}" if all_runs else "sum of members"
        size = f"{statistics.mean(r['model_mb'] for r in all_runs):.1f}" if all_runs else "n/a"
        rows.append([label, *cells, mean, long_cell, *types, pixel, train_s, ips, size])
    text = table(
        ["PatchCore, Lite1, stages 5+6 unless the row says", *[f"{ds}" for ds in DATASETS], "mean of 3", "long parts",
         *[f"MTD {t}" for t in MTD_TYPES], "MTD pixel AUROC", "training (s)", "MTD images/s with a map", "model (MB)"],
        rows,
    )
    text += (
        "\n\nImage AUROC at 16 good training images (16 more held out), mean ± sd over the seeds run "
        "(0-2; a value without ± is seed 0 alone); the MTD columns are each defect type's AUROC against the 191 good test tiles. "
        "Long parts: three elpv/poly cells in a row (900 x 300 px; scripts/long_parts.py), 16 good "
        "strips to train on, 30 good and 90 defective strips to test; not in the mean. Fusion "
        "rows average the members' scores, each standardised by its own 16 held-out good scores "
        "(from the same runs). Timings on a machine shared with other work: compare within a "
        f"column. Measured {time.strftime('%Y-%m-%d')} on {machine()}."
    )
    write_section("study", text)


def defects_study(quick):
    """The default detector with 5 labelled defects per type (drawn with the seed from
    test/<type>) against the good-only model, both evaluated on exactly the images the
    first did not learn from."""
    out = OUT / "defects"
    seeds = [0] if quick else [0, 1, 2]
    summary_path = out / "summary.json"
    runs = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    for seed in seeds:
        for ds, path in DATASETS.items():
            for n in (0, 5):
                key = f"{ds}|{n}|{seed}"
                if key in runs:
                    continue
                tag = f"{ds.replace('/', '-')}-d{n}-s{seed}"
                csv_path = out / f"{tag}.csv"
                r = ours(
                    out,
                    tag,
                    ["--train-count", "16", "--val-count", "16", "--seed", str(seed), "--defects", str(n)],
                    ["--no-pixel", "--csv", csv_path],
                    data=path,
                )
                r["scores"] = read_scores(csv_path)
                runs[key] = r
                out.mkdir(parents=True, exist_ok=True)
                summary_path.write_text(json.dumps(runs))
    defects_tables(runs, seeds)


def defects_tables(runs, seeds):
    rows = []
    for ds in DATASETS:
        good_only, learnt, left, types = [], [], [], {}
        for seed in seeds:
            a, b = runs.get(f"{ds}|0|{seed}"), runs.get(f"{ds}|5|{seed}")
            if not (a and b):
                continue
            kept = {os.path.abspath(p) for p, _, _ in b["scores"]}
            a_rows = [r for r in a["scores"] if os.path.abspath(r[0]) in kept]
            for name, rs, acc in (("good-only", a_rows, good_only), ("5 per type", b["scores"], learnt)):
                acc.append(auroc([x for *_, x in rs], [l != "good" for _, l, _ in rs]))
                for t, v in per_type(rs).items():
                    types.setdefault((name, t), []).append(v)
            left.append(b["eval"].get("left_out_trained_defects", 0))
        if not learnt:
            continue
        for name, acc in (("good images only", good_only), ("and 5 labelled defects per type", learnt)):
            key = "good-only" if acc is good_only else "5 per type"
            per = ", ".join(f"{t} {mean_sd(v, 100)}" for (n, t), v in sorted(types.items()) if n == key) if ds == "magnetic_tile" else ""
            rows.append([ds, name, mean_sd(acc, 100), f"{statistics.mean(left):.0f}", per])
    text = table(["data", "default detector trained on", "image AUROC", "defect images left out", "per type (magnetic tiles)"], rows)
    text += (
        f"\n\nThe default detector, 16 good training images and 16 held out, seeds {seeds}; both rows of "
        "a data set are scored on the same images: the test set less the labelled defects the second "
        f"learnt from. Measured {time.strftime('%Y-%m-%d')} on {machine()}."
    )
    write_section("defects", text)


def learning_curve(quick):
    """The default detector with 16, 32, 64, 128 and all good images on magnetic tiles and
    poly (seed 0; 16 held out)."""
    out = OUT / "curve"
    counts = [16, 32] if quick else [16, 32, 64, 128, "all"]
    summary_path = out / "summary.json"
    runs = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    sets = {k: DATASETS[k] for k in ("magnetic_tile", "elpv/poly")}
    for n in counts:
        for ds, path in sets.items():
            key = f"{ds}|{n}"
            if key in runs:
                continue
            count = [] if n == "all" else ["--train-count", str(n)]
            r = ours(out, f"{ds.replace('/', '-')}-{n}", count + ["--val-count", "16", "--seed", "0"], ["--no-pixel"], data=path)
            runs[key] = r
            out.mkdir(parents=True, exist_ok=True)
            summary_path.write_text(json.dumps(runs))
    rows = []
    for n in counts:
        cells = []
        for ds in sets:
            r = runs.get(f"{ds}|{n}")
            cells.append(f"{100 * r['eval']['image_auroc']:.1f} ({r['train']['train_secs']:.0f} s)" if r else "n/a")
        label = str(n)
        if n == "all":
            trained = [runs[f"{ds}|all"]["train"].get("train_count") for ds in sets if f"{ds}|all" in runs]
            label = "all (" + ", ".join(str(t) for t in trained) + ")"
        rows.append([label, *cells])
    text = table(["good images", *[f"{ds}: image AUROC (training)" for ds in sets]], rows)
    text += f"\n\nThe default detector, seed 0, 16 good images held out. Measured {time.strftime('%Y-%m-%d')} on {machine()}."
    write_section("curve", text)


# --- round 3: grey and colour parts, which 16 images -----------------------------------

# The four shared data sets, colour among them.
ROUND3_SETS = dict(DATASETS, bottle=DATA_ROOT / "bottle")

# name -> (what the row says, train arguments). Every row is the product's default detector.
ROUND3_RUNS = {
    "seeded": ("default detector, 16 good images drawn with the seed (today)", ["--detector", "fusion"]),
    "diverse": (
        "default detector, 16 good images chosen for coverage (greedy k-centre on 16 x 16 grey thumbnails and the aspect ratio; the same held-out images)",
        ["--detector", "fusion", "--pick", "diverse"],
    ),
    "representative": (
        "default detector, 16 good images chosen as representatives (greedy k-medoids on the same descriptions; the same held-out images)",
        ["--detector", "fusion", "--pick", "representative"],
    ),
    "features-kcentre": (
        "default detector, 16 good images chosen for coverage by their backbone features (greedy k-centre on EfficientNet-Lite1's pooled head features, in Python: scripts/pick_features.py; the same held-out images)",
        ["--detector", "fusion"],
    ),
    "features-kmedoids": (
        "default detector, 16 good images chosen as representatives by their backbone features (greedy k-medoids on the same; the same held-out images)",
        ["--detector", "fusion"],
    ),
    "chosen": (
        "default detector, 16 good images chosen by the product (`--pick features`, the window's default: greedy k-medoids on EfficientNet-Lite1's pooled head features in Rust; the same held-out images)",
        ["--detector", "fusion", "--pick", "features"],
    ),
    "turned8": (
        "default detector, seeded draw, copies turned every 45 degrees in the banks (square inputs)",
        ["--detector", "fusion", "--bank-rotations", "8"],
    ),
    "turned16": (
        "default detector, seeded draw, copies turned every 22.5 degrees in the banks (square inputs)",
        ["--detector", "fusion", "--bank-rotations", "16"],
    ),
}

# Rotation copies are measured where parts turn (bottles seen from above) and on tiles.
ROUND3_ONLY = {"turned8": {"bottle", "magnetic_tile"}, "turned16": {"bottle", "magnetic_tile"}}


def round3(quick):
    """The default detector on the four data sets at 16 good images (16 held out), 5 seeds:
    the seeded draw against the diverse choice of training images, with the same held-out
    images. Mean, spread between seeds, training time and images per second with a map."""
    out = OUT / "round3"
    seeds = [0] if quick else [0, 1, 2, 3, 4]
    if os.environ.get("ROUND3_SEEDS"):
        seeds = [int(x) for x in os.environ["ROUND3_SEEDS"].split(",") if x]
    wanted = [n for n in os.environ.get("ROUND3", ",".join(ROUND3_RUNS)).split(",") if n]
    summary_path = out / "summary.json"
    runs = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    for seed in seeds:
        for ds, path in ROUND3_SETS.items():
            for name in wanted:
                key = f"{name}|{ds}|{seed}"
                if key in runs or not path.exists() or ds not in ROUND3_ONLY.get(name, {ds}):
                    continue
                has_masks = (path / "ground_truth").exists()
                tag = f"{name}-{ds.replace('/', '-')}-s{seed}"
                csv_path = out / f"{tag}.csv"
                lists = []
                if name.startswith("features-"):
                    # The lists of scripts/pick_features.py (the seeded draw's held-out images).
                    picks = out / "picks" / f"{ds.replace('/', '-')}-s{seed}"
                    if not (picks / "val.txt").exists():
                        subprocess.run([PY, ROOT / "scripts" / "pick_features.py", BIN, path, str(seed), picks], check=True)
                    method = name.split("-", 1)[1]
                    lists = ["--train-list", picks / f"{method}-train.txt", "--val-list", picks / "val.txt"]
                r = ours(
                    out,
                    tag,
                    ["--train-count", "16", "--val-count", "16", "--seed", str(seed)] + lists + ROUND3_RUNS[name][1],
                    ["--csv", csv_path] + ([] if has_masks else ["--no-pixel"]),
                    data=path,
                    keep_size=True,
                )
                r["scores"] = read_scores(csv_path)
                runs[key] = r
                out.mkdir(parents=True, exist_ok=True)
                summary_path.write_text(json.dumps(runs))
    round3_tables(runs)


def round3_tables(runs):
    rows = []
    for name, (label, _) in ROUND3_RUNS.items():
        cells, per_seed = [], {}
        for ds in ROUND3_SETS:
            aucs = []
            for seed in range(5):
                r = runs.get(f"{name}|{ds}|{seed}")
                if r:
                    aucs.append(r["eval"]["image_auroc"])
                    per_seed.setdefault(seed, []).append(r["eval"]["image_auroc"])
            spread = f"{100 * (max(aucs) - min(aucs)):.1f}" if len(aucs) > 1 else "n/a"
            cells += [mean_sd(aucs, 100), spread]
        full = [statistics.mean(v) for v in per_seed.values() if len(v) == len(ROUND3_SETS)]
        mean = mean_sd(full, 100) if full else "n/a"
        spread = f"{100 * (max(full) - min(full)):.1f}" if len(full) > 1 else "n/a"
        all_runs = [runs[k] for k in runs if k.startswith(name + "|")]
        mtd = [runs[k] for k in runs if k.startswith(name + "|magnetic_tile|")]
        train_s = f"{statistics.mean(r['train']['train_secs'] for r in all_runs):.1f}" if all_runs else "n/a"
        wall = f"{statistics.mean(r['train_wall'] for r in all_runs):.1f}" if all_runs else "n/a"
        ips = f"{statistics.mean(1.0 / r['eval']['secs_per_image'] for r in mtd):.1f}" if mtd else "n/a"
        rows.append([label, *cells, mean, spread, train_s, wall, ips])
    header = ["rows"]
    for ds in ROUND3_SETS:
        header += [ds, f"{ds} spread"]
    header += ["mean of 4", "spread of the mean", "training (s)", "train command, wall (s)", "MTD images/s with a map"]
    text = table(header, rows)
    text += (
        "\n\nImage AUROC at 16 good training images (16 more held out, the same in every row), mean ± sd over "
        "seeds 0-4; spread: best seed minus worst. Training (s) is the engine's training time; the train "
        "command's wall time includes reading the data set and, for the rows that choose, reading and "
        "summing up every candidate good image (the Python rows choose outside it). Timings on a machine "
        "shared with other work (the rows ran at different times, some beside the test suite): scoring "
        "is the same code in every row, so its images/s differ by the load alone. "
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}."
    )
    write_section("round3", text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="detectors,study,defects,curve,round3,accuracy,reference,paper,gui")
    a = ap.parse_args()
    only = set(a.only.split(","))
    for path in (BIN, PY, DATA):
        if not Path(path).exists():
            raise SystemExit(f"missing {path}: run `make setup` and `make build` first")
    if "detectors" in only:
        detectors(a.quick)
    if "study" in only:
        study(a.quick)
    if "defects" in only:
        defects_study(a.quick)
    if "curve" in only:
        learning_curve(a.quick)
    if "round3" in only:
        round3(a.quick)
    if "accuracy" in only:
        accuracy(a.quick)
    fast = reference_fast(a.quick) if "reference" in only else earlier_reference_fast()
    paper = reference_paper(a.quick) if "paper" in only else None
    if fast or paper:
        reference_tables(fast, paper)
    if "gui" in only:
        gui_frames(a.quick)
    paper_accuracy("paper-accuracy" in only)


if __name__ == "__main__":
    main()
