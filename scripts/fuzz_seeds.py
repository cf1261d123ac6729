"""Writes the seed inputs of the fuzz targets into fuzz/seeds/<target>/: small valid
files of every kind each parser meets, from which the fuzzer mutates. The seeds are kept in
the repository; run this again only to regenerate them (it needs Pillow and torch, as in
the setup's virtual environment).

Usage: python fuzz_seeds.py [FUZZ_DIR]    (default: fuzz/ next to this script's folder)
"""

import collections
import io
import json
import pathlib
import random
import struct
import sys

import torch
from PIL import Image

# The order of IMAGE_EXTENSIONS in src/core/image_io.rs: the image_load target reads its
# first byte as an index into it, to name the file.
EXTENSIONS = ["png", "jpg", "jpeg", "bmp", "tif", "tiff"]


def noise(mode: str, size: tuple[int, int], seed: int) -> Image.Image:
    rng = random.Random(seed)
    rgb = Image.new("RGB", size)
    rgb.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(size[0] * size[1])])
    return rgb.convert(mode)


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def image_seeds() -> dict[str, bytes]:
    grey16 = Image.new("I;16", (5, 4))
    grey16.putdata([i * 3000 for i in range(20)])
    seeds = {
        "png_rgb": ("png", encoded(noise("RGB", (8, 6), 1), "PNG")),
        "png_rgba": ("png", encoded(noise("RGBA", (4, 4), 2), "PNG")),
        "png_grey_alpha": ("png", encoded(noise("LA", (3, 3), 3), "PNG")),
        "png_grey16": ("png", encoded(grey16, "PNG")),
        "png_palette": ("png", encoded(noise("P", (4, 4), 4), "PNG")),
        "png_interlaced": ("png", encoded(noise("RGB", (9, 7), 5), "PNG", interlace=1)),
        "png_one_pixel": ("png", encoded(noise("RGB", (1, 1), 6), "PNG")),
        "jpeg_baseline": ("jpg", encoded(noise("RGB", (16, 16), 7), "JPEG", quality=80)),
        "jpeg_progressive": (
            "jpg",
            encoded(noise("RGB", (16, 8), 8), "JPEG", quality=80, progressive=True),
        ),
        "jpeg_grey": ("jpeg", encoded(noise("L", (8, 8), 9), "JPEG")),
        "jpeg_cmyk": ("jpg", encoded(noise("CMYK", (8, 8), 10), "JPEG")),
        "jpeg_restart": (
            "jpg",
            encoded(noise("RGB", (32, 16), 11), "JPEG", quality=70, restart_marker_blocks=1),
        ),
        "bmp_rgb": ("bmp", encoded(noise("RGB", (5, 3), 12), "BMP")),
        "bmp_palette": ("bmp", encoded(noise("P", (6, 2), 13), "BMP")),
        "tiff_rgb": ("tif", encoded(noise("RGB", (4, 4), 14), "TIFF")),
        "tiff_lzw": ("tiff", encoded(noise("RGB", (6, 5), 15), "TIFF", compression="tiff_lzw")),
        "tiff_grey16": ("tif", encoded(grey16, "TIFF")),
    }
    return {name: bytes([EXTENSIONS.index(ext)]) + data for name, (ext, data) in seeds.items()}


def safetensors_bytes(metadata: dict[str, str], tensors: dict[str, list[float]]) -> bytes:
    header: dict = {"__metadata__": metadata}
    data = b""
    for name, values in tensors.items():
        raw = struct.pack(f"<{len(values)}f", *values)
        header[name] = {
            "dtype": "F32",
            "shape": [len(values)],
            "data_offsets": [len(data), len(data) + len(raw)],
        }
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def model_metadata() -> dict[str, dict]:
    # The metadata of a model trained by tests/bad_input.rs, permutations shortened.
    meta = {
        "format": "differnet-model",
        "format_version": 1,
        "config": {
            "model": {
                "backbone": "efficientnet-lite0",
                "feature_stages": [7],
                "image_size": 64,
                "n_scales": 3,
                "n_blocks": 4,
                "hidden": 512,
                "subnet_layers": 2,
                "clamp_alpha": 3.0,
            },
            "train": {
                "epochs": 2,
                "batch_images": 8,
                "rotations_per_image": 4,
                "cached_rotations": 16,
                "lr": 0.001,
                "beta1": 0.8,
                "beta2": 0.8,
                "adam_eps": 0.0001,
                "weight_decay": 1e-05,
                "seed": 0,
            },
            "score": {"rotations": 2},
        },
        "permutations": [[1, 0, 3, 2], [0, 1, 2, 3], [3, 2, 1, 0], [2, 3, 0, 1]],
        "state": {
            "train_count": 5,
            "validation": {"count": 1, "mean": 6.9, "std": 0.0, "max": 6.9, "scores": [6.9]},
            "threshold": 6.9,
            "review_threshold": None,
            "heat_scale": 0.06,
            "train_secs": 1.0,
        },
        "written_by": "differnet 0.1.0",
    }
    alexnet = json.loads(json.dumps(meta))
    alexnet["config"]["model"].update(backbone="alexnet", feature_stages=[1], image_size=448)
    return {"differnet": meta, "alexnet": alexnet}


def model_meta_seeds() -> dict[str, bytes]:
    metas = model_metadata()
    text = json.dumps(metas["differnet"])
    return {
        "header_only": safetensors_bytes({"differnet": text}, {}),
        "with_tensor": safetensors_bytes({"differnet": text}, {"flow.0.w": [0.5, -1.0, 2.0]}),
        "alexnet": safetensors_bytes({"differnet": json.dumps(metas["alexnet"])}, {}),
    }


def model_json_seeds() -> dict[str, bytes]:
    return {name: json.dumps(meta).encode() for name, meta in model_metadata().items()}


def torch_pickle_seeds() -> dict[str, bytes]:
    torch.manual_seed(0)
    base = torch.randn(4, 3)
    state = collections.OrderedDict(
        [
            ("features.0.weight", torch.randn(2, 3)),
            ("features.0.bias", torch.randn(10)[2:4]),
            ("classifier.weight", base.t()),
            ("extra.half", torch.randn(3).half()),
            ("extra.count", torch.tensor(7)),
        ]
    )
    seeds = {}
    for name, options in [("zip", {}), ("legacy", {"_use_new_zipfile_serialization": False})]:
        out = io.BytesIO()
        torch.save(state, out, **options)
        seeds[name] = out.getvalue()
    out = io.BytesIO()
    torch.save({"epoch": 1, "state_dict": state}, out, _use_new_zipfile_serialization=False)
    seeds["legacy_checkpoint"] = out.getvalue()
    return seeds


def main() -> None:
    root = pathlib.Path(__file__).resolve().parent.parent
    fuzz = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else root / "fuzz"
    for target, seeds in [
        ("image_load", image_seeds()),
        ("model_meta", model_meta_seeds()),
        ("model_json", model_json_seeds()),
        ("torch_pickle", torch_pickle_seeds()),
    ]:
        folder = fuzz / "seeds" / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (folder / name).write_bytes(data)
        print(f"{folder}: {len(seeds)} seeds, {sum(map(len, seeds.values()))} bytes")


if __name__ == "__main__":
    main()
