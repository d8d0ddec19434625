"""Print the nets of Table 1 and Table 6 with our exact parameter and FLOP counts beside the paper's.

    python -m tools.model_table [--cifar_depths=20,32,44,56,110] [--imagenet_depths=18,34,50,101,152]
"""

from __future__ import annotations

import numpy as np
from absl import flags

from keras_resnet import cli
from keras_resnet import cifar_resnet, count_flops, imagenet_resnet, paper

_CIFAR = flags.DEFINE_list("cifar_depths", ["20", "32", "44", "56", "110"], "CIFAR depths (6n+2); 1202 takes ~30 s.")
_IMAGENET = flags.DEFINE_list("imagenet_depths", ["18", "34", "50", "101", "152"], "ImageNet depths.")


def trainable_params(model) -> int:
    """Trainable weights, as the paper counts them (no BN moving statistics)."""
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def model_table(cifar_depths, imagenet_depths) -> str:
    """The Markdown table as a string."""
    rows = ["| net | params (ours) | params (paper) | FLOPs (ours) | FLOPs (paper) |",
            "| --- | ---: | ---: | ---: | ---: |"]
    for depth in cifar_depths:
        model = cifar_resnet(depth)
        ref = paper.CIFAR_TABLE6.get(depth, {}).get("params")
        rows.append(f"| CIFAR ResNet-{depth} (A) | {trainable_params(model):,} | "
                    f"{f'{ref / 1e6:.2f}M' if ref else '-'} | {count_flops(model) / 1e6:.1f}M | - |")
    for depth in imagenet_depths:
        for stride_on in ("1x1", "3x3") if depth >= 50 else ("1x1",):
            model = imagenet_resnet(depth, stride_on=stride_on)
            label = f"ResNet-{depth} (B{', v1.5' if stride_on == '3x3' else ''})"
            ref = paper.IMAGENET_FLOPS[depth] if stride_on == "1x1" else None
            rows.append(f"| {label} | {trainable_params(model):,} | - | "
                        f"{count_flops(model) / 1e9:.2f}e9 | {f'{ref / 1e9:.1f}e9' if ref else '-'} |")
    return "\n".join(rows)


def main(argv):
    del argv
    cifar = [int(d) for d in _CIFAR.value]
    imagenet = [int(d) for d in _IMAGENET.value]
    table = model_table(cifar, imagenet)
    print(table)


if __name__ == "__main__":
    cli.run(main)
