"""Convert a torchvision or timm ResNet checkpoint to Keras weights for ``imagenet_resnet``, offline.

    python -m tools.convert_weights --checkpoint=model.safetensors --depth=50 --out=resnet50.weights.h5

Reads ``.safetensors`` (the ``safetensors`` package; no PyTorch) or ``.pth`` (needs PyTorch), maps every
tensor by name, checks every shape, and writes a ``.weights.h5`` for
``keras_resnet.imagenet_resnet(depth, stride_on="3x3", weights=OUT)``. A missing, misshapen or unexpected
tensor stops it with one line naming the tensor, and nothing is written. Where to get checkpoints: the
README ("ImageNet-pretrained weights").
"""

from __future__ import annotations

from absl import flags

from keras_resnet import cli

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "torchvision/timm ResNet state dict (.safetensors or .pth).",
                                  required=True)
_DEPTH = flags.DEFINE_integer("depth", None, "18, 34, 50, 101 or 152.", required=True)
_OUT = flags.DEFINE_string("out", None, "Output .weights.h5.", required=True)


def main(argv):
    del argv
    from keras_resnet.models import IMAGENET_SPECS
    from keras_resnet.pretrained import convert_checkpoint

    if _DEPTH.value not in IMAGENET_SPECS:
        raise ValueError(f"depth must be one of {', '.join(map(str, IMAGENET_SPECS))}, got {_DEPTH.value}")
    print(f"Wrote {convert_checkpoint(_CHECKPOINT.value, _DEPTH.value, _OUT.value)}")


if __name__ == "__main__":
    cli.run(main)
