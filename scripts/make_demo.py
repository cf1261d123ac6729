"""Regenerates the demo data set in assets/demo from the CC0 texture photograph
assets/textures/brick.png (see assets/README.md). Needs numpy and pillow.

Layout (MVTec AD): train/good, test/good, test/scratch, test/stain, and
ground_truth/<type>/<stem>_mask.png. Crops of 192 x 192 px at seeded offsets; the
defects are drawn onto crops that no training image covers.
"""

import os
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ROOT = os.path.join(os.path.dirname(__file__), "..", "assets")
SIZE = 192


def crop(src: Image.Image, rng: np.random.Generator, region: tuple[int, int, int, int]) -> Image.Image:
    x0, y0, x1, y1 = region
    x = int(rng.integers(x0, x1 - SIZE))
    y = int(rng.integers(y0, y1 - SIZE))
    return src.crop((x, y, x + SIZE, y + SIZE))


def scratch(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, Image.Image]:
    mask = Image.new("L", img.size, 0)
    d = ImageDraw.Draw(mask)
    pts = [(int(rng.integers(20, 60)), int(rng.integers(20, 170)))]
    for _ in range(3):
        x, y = pts[-1]
        pts.append((x + int(rng.integers(25, 45)), y + int(rng.integers(-30, 30))))
    d.line(pts, fill=255, width=int(rng.integers(2, 4)))
    out = img.copy()
    bright = Image.new("L", img.size, int(rng.choice([20, 235])))
    out.paste(bright, (0, 0), mask)
    return out, mask


def stain(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, Image.Image]:
    mask = Image.new("L", img.size, 0)
    d = ImageDraw.Draw(mask)
    cx, cy = (int(v) for v in rng.integers(50, 140, size=2))
    r = int(rng.integers(12, 22))
    d.ellipse((cx - r, cy - int(r * 0.7), cx + r, cy + int(r * 0.7)), fill=255)
    soft = mask.filter(ImageFilter.GaussianBlur(3))
    arr = np.asarray(img, dtype=np.float32)
    a = np.asarray(soft, dtype=np.float32) / 255.0
    out = arr * (1 - 0.6 * a)
    return Image.fromarray(out.clip(0, 255).astype(np.uint8)), mask


def save(img: Image.Image, *parts: str) -> None:
    path = os.path.join(ROOT, "demo", *parts)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img.save(path, optimize=True)


def main() -> None:
    rng = np.random.default_rng(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    src = Image.open(os.path.join(ROOT, "textures", "brick.png")).convert("L")
    # Crops anywhere in the photograph (the perspective changes from top to bottom, so
    # training and test crops must come from the same area).
    top = bottom = (0, 0, 512, 512)
    for i in range(20):
        save(crop(src, rng, top), "train", "good", f"{i:03d}.png")
    for i in range(6):
        save(crop(src, rng, bottom), "test", "good", f"{i:03d}.png")
    for kind, draw in (("scratch", scratch), ("stain", stain)):
        for i in range(5):
            img, mask = draw(crop(src, rng, bottom), rng)
            save(img, "test", kind, f"{i:03d}.png")
            save(mask, "ground_truth", kind, f"{i:03d}_mask.png")


if __name__ == "__main__":
    main()
