"""Makes an AlexNet `features` checkpoint in torchvision's layout with the environment's
torch (random weights, seeded), in the format torchvision's official file uses, plus a
reference forward pass, for the Rust loader's test.

Usage: python alexnet_fixture.py OUT_DIR

Writes OUT_DIR/alexnet_zip.pth (torch.save default), OUT_DIR/alexnet_legacy.pth
(pre-1.6 format) and OUT_DIR/expected.safetensors (input and features output).
"""

import os
import sys

import torch
import torch.nn as nn
from safetensors.torch import save_file


def features() -> nn.Sequential:
    # torchvision.models.alexnet().features, layer for layer.
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


def main() -> None:
    out = sys.argv[1]
    torch.manual_seed(0)
    net = features().eval()
    state = {f"features.{k}": v for k, v in net.state_dict().items()}
    # The classifier of torchvision's file, small enough here: it must be ignored.
    state["classifier.1.weight"] = torch.randn(8, 16)
    state["classifier.1.bias"] = torch.randn(8)
    torch.save(state, os.path.join(out, "alexnet_zip.pth"))
    torch.save(state, os.path.join(out, "alexnet_legacy.pth"), _use_new_zipfile_serialization=False)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        y = net(x)
    save_file({"input": x, "output": y.contiguous()}, os.path.join(out, "expected.safetensors"))


if __name__ == "__main__":
    main()
