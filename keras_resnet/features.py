"""Stage outputs of the builders' nets: ResNets as backbones for detection and segmentation.

The paper's detectors (appendix A, Faster R-CNN on PASCAL VOC and COCO) share ResNet-101's layers up to
``conv4_x`` as the feature map of the region proposals and run ``conv5_x`` on each region; feature
pyramids (FPN, Lin et al. 2017) take the last output of every stage, ``C2``-``C5``. Both need the
output of each stage of Table 1, which the builders name ``conv<stage>_<block>_out`` (the stem:
``conv1_relu``). keras-hub's backbones call the same dictionary ``pyramid_outputs``; torchvision's
``create_feature_extractor`` and timm's ``features_only=True`` play this role in PyTorch.
"""

from __future__ import annotations

import re
from typing import Sequence

import keras

STEM = "conv1_relu"  # The stem's output: conv1 of Table 1 (before the ImageNet nets' 3x3 max-pool).
_BLOCK_OUTPUT = re.compile(r"^conv(\d+)_(\d+)_out$")


def stage_outputs(model: keras.Model) -> dict[str, keras.KerasTensor]:
    """The output of each stage of a net built by ``cifar_resnet`` or ``imagenet_resnet``.

    Returns ``{"conv1": ..., "conv2": ..., ...}`` in the order of the net: ``conv1`` the stem's ReLU,
    ``convN`` the output of the last block of stage ``convN_x`` (after its addition and ReLU). On the
    ImageNet nets ``conv2``..``conv5`` are at strides 4, 8, 16 and 32 (Table 1's output sizes 56, 28,
    14, 7 for 224 pixels); on the CIFAR nets ``conv2``..``conv4`` are at 32, 16 and 8 pixels
    (section 4.2). Plain and residual nets alike.
    """
    names = {layer.name for layer in model.layers}
    if STEM not in names:
        raise ValueError(f"model {model.name!r} is not a net of keras_resnet's builders (no layer named {STEM!r})")
    last: dict[int, tuple[int, keras.layers.Layer]] = {}
    for layer in model.layers:
        match = _BLOCK_OUTPUT.match(layer.name)
        if match:
            stage, block = int(match.group(1)), int(match.group(2))
            if block >= last.get(stage, (0, None))[0]:
                last[stage] = (block, layer)
    outputs = {"conv1": model.get_layer(STEM).output}
    outputs.update({f"conv{stage}": layer.output for stage, (_, layer) in sorted(last.items())})
    return outputs


def feature_extractor(model: keras.Model, stages: Sequence[str] | None = None,
                      name: str | None = None) -> keras.Model:
    """A model from ``model``'s input to the outputs of ``stages`` (default: all, as ``stage_outputs``
    names them), returned as a dictionary. It shares ``model``'s layers and weights: training one
    trains the other, and weights loaded into ``model`` (e.g. ``weights="cifar10"`` or converted
    ImageNet weights) serve it. ``stages=("conv4",)`` is the paper's shared detection feature map;
    ``("conv2", "conv3", "conv4", "conv5")`` a feature pyramid's ``C2``-``C5``.
    """
    available = stage_outputs(model)
    chosen = list(available) if stages is None else list(stages)
    unknown = [s for s in chosen if s not in available]
    if unknown or not chosen:
        raise ValueError(f"stages={list(stages) if stages is not None else None} names "
                         f"{unknown or 'no stage'}: {model.name!r} has {', '.join(available)}")
    return keras.Model(model.input, {s: available[s] for s in chosen}, name=name or f"{model.name}_features")
