"""Seeded ResNet weights in torchvision's names and layouts, and the images they are run on: the same
numbers with or without PyTorch, so that torchvision's logits for them, computed once by
``tests/fixtures/make_torchvision_logits.py``, check our conversion on machines without PyTorch."""

import numpy as np

FIXTURE = "torchvision_logits.npz"
IMAGE_SHAPE = (2, 64, 64, 3)  # NHWC; two images small enough for a test, large enough for every stage.


def seeded_state_dict(shapes: dict[str, list[int]], seed: int) -> dict[str, np.ndarray]:
    """A value for every tensor of ``shapes`` (torchvision's keys in their state-dict order, torch layouts):
    He-scaled conv and fc weights, BN scale/shift and running statistics far from their initial values, so
    that a transposed kernel, a swapped pair of statistics or a misplaced tensor changes the logits."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in shapes.items():
        if len(shape) == 4:  # Conv: (out, in, h, w).
            value = rng.normal(size=shape) * np.sqrt(2.0 / np.prod(shape[1:]))
        elif len(shape) == 2:  # fc: (out, in).
            value = rng.normal(size=shape) * np.sqrt(1.0 / shape[1])
        elif key.endswith("running_var"):
            value = rng.uniform(0.5, 2.0, size=shape)
        elif key.endswith("weight"):  # BN gamma.
            value = rng.uniform(0.5, 1.5, size=shape)
        else:  # BN beta, running_mean, fc bias.
            value = rng.normal(size=shape) * 0.2
        state[key] = value.astype(np.float32)
    return state


def images(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=IMAGE_SHAPE).astype(np.float32)
