"""Multiply-add counts, the "FLOPs" of the paper's Table 1."""

from __future__ import annotations

import math
from typing import Sequence

import keras


def count_flops(model: keras.Model, input_shape: Sequence[int] | None = None) -> int:
    """Multiply-adds of one forward pass of one image through conv and dense layers.

    This is what Table 1 of the paper counts (ResNet-50: 3.8e9); BN, ReLU,
    additions and pooling are left out, as there.

    Args:
        model: A functional Keras model.
        input_shape: ``(H, W, C)`` to count at, required when the model was
            built with unknown spatial dimensions (``(None, None, 3)``).

    Returns:
        The number of multiply-adds, as an int.
    """
    if input_shape is not None or any(d is None for d in model.input_shape[1:]):
        if input_shape is None:
            raise ValueError(
                f"model input shape {model.input_shape[1:]} has unknown dimensions; "
                "pass input_shape=(H, W, C)")
        model = keras.models.clone_model(model, input_tensors=keras.Input(shape=tuple(input_shape)))
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            in_channels = layer.input.shape[-1]
            _, oh, ow, oc = layer.output.shape
            total += oh * ow * oc * kh * kw * in_channels // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            total += math.prod(layer.input.shape[1:]) * layer.units
        elif isinstance(layer, keras.Model):
            total += count_flops(layer)
    return int(total)
