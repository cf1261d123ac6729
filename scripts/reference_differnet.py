"""A plain, eager-PyTorch DifferNet: the baseline our Rust engine is compared against.

Rudolph, Wandt, Rosenhahn, "Same Same But DifferNet", WACV 2021, written the way the
authors' code does it (see ../shared/REFERENCE.md): an nn.Module with a frozen backbone and
a FrEIA-style flow of (fixed random permutation, GLOW coupling) blocks, Adam on the flow,
fresh random rotations of every image in every epoch (the backbone runs every epoch, under
torch.no_grad), anomaly score = mean of z^2 over fixed test rotations and dimensions.

What differs from the authors' code, on purpose (REFERENCE.md lists these as weaknesses):
- the backbone is EfficientNet-Lite0 (scripts/efficientnet_reference.py's model class with
  our safetensors weights, TF "same" padding computed per input size like our port), kept
  in eval mode (its BatchNorm must use the ImageNet statistics) and run under no_grad;
- log|det J| is accumulated in the forward pass instead of re-running the subnets;
- test rotations are the fixed angles i * 360 / N, the model is scored once after the last
  epoch (no best-epoch picking on the test set), and it runs on the CPU;
- the backbone is called on chunks of --backbone-batch images (default 4 on the CPU, as our
  CLI does): the result is the same, and 448 px batches of 96 overflow the CPU caches
  (TOOLCHAIN.md). --backbone-batch 0 feeds the whole batch at once, as the authors do;
- training images are decoded and resized once; rotation, ToTensor and normalisation run
  every epoch, as the authors' torchvision transforms do.

Hyper-parameters mirror the presets of src/core/config.rs. The "fast" preset's feature
cache (cached_rotations) is one of our optimisations and is NOT reproduced here: this
script always draws fresh rotations every epoch.

Usage:
  python scripts/reference_differnet.py --split SPLIT.json --preset paper --out OUT.json
  (SPLIT.json as printed by `differnet split`: {"train": [...], "val": [...],
   "test": [{"path", "label", "mask"}, ...]})
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from efficientnet_reference import STAGE_ENDS, EfficientNet  # noqa: E402

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Channels at the end of each EfficientNet-Lite0 MBConv stage (1-based stage index).
STAGE_CHANNELS = (16, 24, 40, 80, 112, 192, 320)

# Mirrors Preset::config in src/core/config.rs (EfficientNet-Lite0, last stage).
PRESETS = {
    "paper": dict(
        image_size=448, n_scales=3, stages=[7], n_blocks=8, hidden=2048, subnet_layers=4,
        clamp_alpha=3.0, epochs=192, batch_images=24, rotations_per_image=4, lr=2e-4,
        beta1=0.8, beta2=0.8, adam_eps=1e-4, weight_decay=1e-5, test_rotations=64,
    ),
    "fast": dict(
        image_size=448, n_scales=3, stages=[7], n_blocks=4, hidden=512, subnet_layers=2,
        clamp_alpha=3.0, epochs=60, batch_images=8, rotations_per_image=4, lr=1e-3,
        beta1=0.8, beta2=0.8, adam_eps=1e-4, weight_decay=1e-5, test_rotations=8,
    ),
}


def default_weights() -> str:
    """The weights cache of src/engine/weights.rs."""
    if os.environ.get("DIFFERNET_WEIGHTS_DIR"):
        return os.path.join(os.environ["DIFFERNET_WEIGHTS_DIR"], "efficientnet_lite0.safetensors")
    cache = os.environ.get("DIFFERNET_CACHE") or os.path.expanduser("~/.cache/differnet")
    return os.path.join(cache, "weights", "efficientnet_lite0.safetensors")


# ----------------------------------------------------------------------------- images


def load_image(path: str, size: int) -> Image.Image:
    """RGB, resized to size x size (aspect ratio not kept) with PIL's antialiased bilinear
    filter, as torchvision's Resize does on PIL images in the authors' code."""
    with Image.open(path) as img:
        return img.convert("RGB").resize((size, size), Image.BILINEAR)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """ToTensor + Normalize: [3, S, S] float, ImageNet statistics."""
    x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def rotated(img: Image.Image, degrees: float) -> torch.Tensor:
    """torchvision's rotate on a PIL image: counter-clockwise, nearest, corners filled with
    0 before normalisation; then ToTensor + Normalize."""
    if degrees % 360.0 == 0.0:
        return to_tensor(img)
    return to_tensor(img.rotate(degrees, resample=Image.NEAREST, expand=False))


# ----------------------------------------------------------------------------- model


class Backbone(nn.Module):
    """Frozen EfficientNet-Lite0 up to the deepest requested MBConv stage; returns the maps
    at the end of each requested stage."""

    def __init__(self, weights: str, stages: list[int]):
        super().__init__()
        # image_size=None: TF "same" padding computed from each input's size (the package's
        # default, static padding for 224 px, pads 112 px inputs differently from TF).
        net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
        net.load_state_dict(load_file(weights), strict=True)
        self.stages = list(stages)
        last_block = STAGE_ENDS[max(stages) - 1]
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = nn.ModuleList(net._blocks[:last_block])
        self.stage_of_block = {STAGE_ENDS[s - 1] - 1: s for s in stages}
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        # Frozen: BatchNorm must keep the ImageNet statistics even in model.train().
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        y = self.stem(x)
        out = {}
        for i, block in enumerate(self.blocks):
            y = block(y)
            if i in self.stage_of_block:
                out[self.stage_of_block[i]] = y
        return [out[s] for s in self.stages]


def subnet_fc(c_in: int, c_out: int, hidden: int, n_layers: int) -> nn.Sequential:
    """FrEIA's F_fully_connected: Linear, ReLU, ..., Linear (dropout 0)."""
    layers = []
    for i in range(n_layers):
        fan_in = c_in if i == 0 else hidden
        fan_out = c_out if i == n_layers - 1 else hidden
        layers.append(nn.Linear(fan_in, fan_out))
        if i < n_layers - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class PermuteRandom(nn.Module):
    """FrEIA's permute_layer: a fixed random permutation (seeded per block)."""

    def __init__(self, dim: int, seed: int):
        super().__init__()
        perm = np.random.RandomState(seed).permutation(dim)
        self.register_buffer("perm", torch.from_numpy(perm).long())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.perm]


class GlowCoupling(nn.Module):
    """FrEIA's glow_coupling_layer with the soft clamp c(s) = alpha * 2/pi * atan(s/alpha);
    returns the output and its log|det J| computed in the same pass."""

    def __init__(self, dim: int, hidden: int, n_layers: int, clamp: float):
        super().__init__()
        self.len1 = dim // 2
        self.len2 = dim - dim // 2
        self.clamp = clamp
        self.s1 = subnet_fc(self.len1, 2 * self.len2, hidden, n_layers)
        self.s2 = subnet_fc(self.len2, 2 * self.len1, hidden, n_layers)

    def log_e(self, s: torch.Tensor) -> torch.Tensor:
        return self.clamp * (2.0 / math.pi) * torch.atan(s / self.clamp)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x1, x2 = x.narrow(1, 0, self.len1), x.narrow(1, self.len1, self.len2)
        r2 = self.s2(x2)
        s2, t2 = self.log_e(r2[:, : self.len1]), r2[:, self.len1 :]
        y1 = torch.exp(s2) * x1 + t2
        r1 = self.s1(y1)
        s1, t1 = self.log_e(r1[:, : self.len2]), r1[:, self.len2 :]
        y2 = torch.exp(s1) * x2 + t1
        return torch.cat((y1, y2), 1), s1.sum(1) + s2.sum(1)


class Flow(nn.Module):
    """nf_head: n_blocks x (permute, GLOW coupling)."""

    def __init__(self, dim: int, n_blocks: int, hidden: int, n_layers: int, clamp: float, seed: int):
        super().__init__()
        # The authors seed block k's permutation with k; --seed shifts that.
        self.perms = nn.ModuleList(PermuteRandom(dim, 1000 * seed + k) for k in range(n_blocks))
        self.couplings = nn.ModuleList(
            GlowCoupling(dim, hidden, n_layers, clamp) for _ in range(n_blocks)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_jac = torch.zeros(x.shape[0], device=x.device)
        for perm, coupling in zip(self.perms, self.couplings):
            x, lj = coupling(perm(x))
            log_jac = log_jac + lj
        return x, log_jac


class DifferNet(nn.Module):
    def __init__(self, cfg: dict, weights: str, backbone_batch: int):
        super().__init__()
        self.image_size = cfg["image_size"]
        self.n_scales = cfg["n_scales"]
        self.backbone_batch = backbone_batch
        self.feature_extractor = Backbone(weights, cfg["stages"])
        self.n_feat = sum(STAGE_CHANNELS[s - 1] for s in cfg["stages"]) * self.n_scales
        self.nf = Flow(self.n_feat, cfg["n_blocks"], cfg["hidden"], cfg["subnet_layers"],
                       cfg["clamp_alpha"], cfg["seed"])

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        y_cat = []
        for s in range(self.n_scales):
            x_scaled = F.interpolate(x, size=self.image_size // (2**s)) if s > 0 else x
            for feat in self.feature_extractor(x_scaled):
                y_cat.append(torch.mean(feat, dim=(2, 3)))
        return torch.cat(y_cat, dim=1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Multi-scale pooled features [N, n_feat] of normalised images [N, 3, S, S]."""
        if self.backbone_batch <= 0 or x.shape[0] <= self.backbone_batch:
            return self._features(x)
        return torch.cat([self._features(c) for c in x.split(self.backbone_batch)], 0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            y = self.features(x)
        return self.nf(y)


def get_loss(z: torch.Tensor, jac: torch.Tensor) -> torch.Tensor:
    """The authors' loss: mean over the batch of (0.5 ||z||^2 - log|det J|) / D."""
    return torch.mean(0.5 * torch.sum(z**2, dim=(1,)) - jac) / z.shape[1]


# ----------------------------------------------------------------------------- metrics


def auroc(scores, labels):
    """Exact ROC AUC (Mann-Whitney U with average ranks for ties); None if one class is
    missing. labels: 1 = anomalous (positive)."""
    n_pos = sum(1 for l in labels if l)
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0 + 1.0
        i = j + 1
    rank_sum = sum(r for r, l in zip(ranks, labels) if l)
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


# ----------------------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--split", required=True, help="split JSON from `differnet split`")
    p.add_argument("--preset", choices=sorted(PRESETS), default="paper")
    p.add_argument("--out", help="write the JSON report here")
    p.add_argument("--weights", default=default_weights(), help="EfficientNet-Lite0 safetensors")
    p.add_argument("--image-size", type=int)
    p.add_argument("--n-scales", type=int)
    p.add_argument("--stages", help="comma-separated EfficientNet stages 1..7 (default: 7)")
    p.add_argument("--n-blocks", type=int)
    p.add_argument("--hidden", type=int)
    p.add_argument("--subnet-layers", type=int)
    p.add_argument("--clamp-alpha", type=float)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-images", type=int)
    p.add_argument("--rotations-per-image", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--test-rotations", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--backbone-batch", type=int,
                   help="images per backbone call; 0 = whole batch (default 4 on CPU, 64 on GPU)")
    p.add_argument("--max-train", type=int, help="use only the first N training images")
    p.add_argument("--max-test", type=int, help="score only the first N test images")
    p.add_argument("--max-val", type=int, default=0,
                   help="score the first N validation images and report their mean (default 0)")
    args = p.parse_args(argv)
    cfg = dict(PRESETS[args.preset])
    for key in ("image_size", "n_scales", "n_blocks", "hidden", "subnet_layers", "clamp_alpha",
                "epochs", "batch_images", "rotations_per_image", "lr", "test_rotations"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    if args.stages:
        cfg["stages"] = [int(s) for s in args.stages.split(",")]
    if not cfg["stages"] or any(not 1 <= s <= 7 for s in cfg["stages"]):
        p.error(f"--stages must be in 1..7, got {cfg['stages']}")
    if cfg["image_size"] >> (cfg["n_scales"] - 1) < 16:
        p.error("the smallest scale would be below 16 px")
    if min(cfg["epochs"], cfg["batch_images"], cfg["rotations_per_image"],
           cfg["test_rotations"], cfg["n_blocks"], cfg["hidden"]) < 1 or cfg["subnet_layers"] < 2:
        p.error("epochs, batch, rotations, blocks and hidden must be positive, layers >= 2")
    cfg["seed"] = args.seed
    cfg["preset"] = args.preset
    cfg["rotation_regime"] = "fresh random angles every epoch (no feature cache)"
    if args.backbone_batch is None:
        args.backbone_batch = 4 if args.device == "cpu" else 64
    cfg["backbone_batch"] = args.backbone_batch
    cfg["backbone"] = "efficientnet-lite0"
    return args, cfg


def resolve(path: str, base: Path) -> str:
    return path if os.path.isabs(path) else str(base / path)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None) -> None:
    args, cfg = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    split_path = Path(args.split)
    split = json.loads(split_path.read_text())
    base = split_path.resolve().parent
    train_paths = [resolve(p, base) for p in split["train"]][: args.max_train]
    val_paths = [resolve(p, base) for p in split.get("val", [])][: args.max_val]
    test_items = split["test"][: args.max_test]
    size = cfg["image_size"]

    torch.manual_seed(cfg["seed"])
    gen = torch.Generator().manual_seed(cfg["seed"])
    started = time.perf_counter()
    model = DifferNet(cfg, args.weights, args.backbone_batch).to(device)
    train_imgs = [load_image(p, size) for p in train_paths]
    load_secs = time.perf_counter() - started
    n_params = sum(p.numel() for p in model.nf.parameters())
    print(f"{len(train_imgs)} training images, D = {model.n_feat}, flow parameters {n_params:,}, "
          f"torch {torch.__version__}, {args.threads} threads", flush=True)

    optimizer = torch.optim.Adam(model.nf.parameters(), lr=cfg["lr"],
                                 betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["adam_eps"],
                                 weight_decay=cfg["weight_decay"])
    epoch_secs, epoch_losses = [], []
    n_rot = cfg["rotations_per_image"]
    for epoch in range(cfg["epochs"]):
        t0 = time.perf_counter()
        model.train()
        losses = []
        order = torch.randperm(len(train_imgs), generator=gen).tolist()
        for b in range(0, len(order), cfg["batch_images"]):
            batch = order[b : b + cfg["batch_images"]]
            # RandomRotation(180) on every copy: [B * R, 3, S, S], image-major.
            angles = torch.empty(len(batch) * n_rot).uniform_(-180.0, 180.0, generator=gen).tolist()
            inputs = torch.stack([rotated(train_imgs[i], angles[j * n_rot + r])
                                  for j, i in enumerate(batch) for r in range(n_rot)]).to(device)
            optimizer.zero_grad()
            z, jac = model(inputs)
            loss = get_loss(z, jac)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        sync(device)
        epoch_secs.append(time.perf_counter() - t0)
        epoch_losses.append(float(np.mean(losses)))
        print(f"epoch {epoch + 1}/{cfg['epochs']}: loss {epoch_losses[-1]:.4f} "
              f"({epoch_secs[-1]:.1f} s)", flush=True)
    train_secs = load_secs + sum(epoch_secs)

    model.eval()
    test_angles = [i * 360.0 / cfg["test_rotations"] for i in range(cfg["test_rotations"])]

    def score(path: str) -> float:
        img = load_image(path, size)
        with torch.no_grad():
            x = torch.stack([rotated(img, a) for a in test_angles]).to(device)
            z, _ = model(x)
            return torch.mean(z**2).item()

    val_scores = [score(p) for p in val_paths]
    t0 = time.perf_counter()
    results = []
    for item in test_items:
        results.append({"path": item["path"], "label": item["label"],
                        "score": score(resolve(item["path"], base))})
    sync(device)
    score_secs = time.perf_counter() - t0

    scores = [r["score"] for r in results]
    labels = [0 if r["label"] == "good" else 1 for r in results]
    per_type = {}
    for t in sorted({r["label"] for r in results} - {"good"}):
        sel = [r for r in results if r["label"] in ("good", t)]
        per_type[t] = auroc([r["score"] for r in sel], [int(r["label"] == t) for r in sel])
    report = {
        "train_secs": train_secs,
        "load_secs": load_secs,
        "epoch_secs": epoch_secs,
        "epoch_losses": epoch_losses,
        "score_secs_per_image": score_secs / max(len(results), 1),
        "image_auroc": auroc(scores, labels),
        "auroc_range": "0..1",
        "per_type": per_type,
        "n_test": len(results),
        "n_train": len(train_imgs),
        "val_mean_score": float(np.mean(val_scores)) if val_scores else None,
        "n_val": len(val_scores),
        "flow_parameters": n_params,
        "feature_dim": model.n_feat,
        "config": cfg,
        "torch_version": torch.__version__,
        "threads": args.threads,
        "device": str(device),
        "scores": results,
    }
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    print(f"trained {len(train_imgs)} images x {cfg['epochs']} epochs in {train_secs:.1f} s "
          f"(mean epoch {np.mean(epoch_secs):.2f} s); scored {len(results)} images at "
          f"{report['score_secs_per_image']:.3f} s/image; image AUROC {fmt(report['image_auroc'])}")
    print("per type: " + ", ".join(f"{t} {fmt(v)}" for t, v in per_type.items()))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
