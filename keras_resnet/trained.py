"""Trained weights: the CIFAR-10 nets shipped inside the package, and which net a weights file fits.

``cifar_resnet(depth, weights="cifar10")`` loads the weights this package trained with its own
recipe at the paper's full schedule (keras.applications' convention: ``weights=None | "cifar10" |
path``). They live in ``keras_resnet/weights/`` and travel in the wheel, so they are found after
``pip install`` outside the repository. The nets expect what they were trained on: RGB images minus
the per-pixel mean of the 50,000 training images (section 4.2), which ``cifar10_preprocessing()``
subtracts::

    model = keras_resnet.cifar_resnet(20, weights="cifar10")
    probabilities = model(keras_resnet.cifar10_preprocessing()(images_0_255))

What is shipped, and how well each net does, is listed in ``weights/cifar10.json``; a finished run's net is
added with ``python -m tools.ship_weights`` (``keras_resnet.export.ship_cifar10_weights``).

Every ``.weights.h5`` written by this package records which net it is for (``mark_weights``), and
the builders refuse it for another one (``check_weights_fit``): nets of the same shapes can compute
different functions (the 1x1 and 3x3 stride placements; a plain net and its residual twin).
"""

from __future__ import annotations

import json
import os

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
_CONFIG_ATTR = "keras_resnet_config"  # In a .weights.h5: which net the weights are for.
CIFAR10_PIXEL_MEAN = "cifar10-pixel-mean.npy"  # (32, 32, 3) float32, of the 50,000 training images.
# The shipped nets, one entry each: file, depth, residual, test error (%) on the test_images original test
# images in the precision they were trained in (dtype; pass it to the builder to reproduce the figure) and
# in float32, what the run's weight decay applied to (weight_decay_on) and the run they come from. Written by
# `python -m tools.ship_weights` (export.ship_cifar10_weights).
CIFAR10_MANIFEST = "cifar10.json"


def read_manifest(weights_dir: str = WEIGHTS_DIR) -> list[dict]:
    """The entries of ``weights_dir``'s manifest (none when it has no manifest)."""
    path = os.path.join(weights_dir, CIFAR10_MANIFEST)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)["nets"]


def record_in_manifest(entry: dict, weights_dir: str = WEIGHTS_DIR) -> None:
    """Adds ``entry`` to the manifest, replacing the entry of the same net (depth and residual)."""
    nets = [n for n in read_manifest(weights_dir) if (n["depth"], n["residual"]) != (entry["depth"], entry["residual"])]
    nets = sorted(nets + [entry], key=lambda n: (not n["residual"], n["depth"]))
    path = os.path.join(weights_dir, CIFAR10_MANIFEST)
    with open(f"{path}.tmp", "w") as f:
        json.dump({"nets": nets}, f, indent=1)
        f.write("\n")
    os.replace(f"{path}.tmp", path)


# (depth, residual) -> (file in WEIGHTS_DIR, test error as trained).
CIFAR10_WEIGHTS = {(n["depth"], n["residual"]): (n["file"], n["test_error"]) for n in read_manifest()}


def _describe(depth: int, residual: bool) -> str:
    return f"{'ResNet' if residual else 'plain'}-{depth}"


def cifar10_weights(depth: int, residual: bool = True) -> str:
    """The shipped CIFAR-10 weights of a net; ``ValueError`` naming the nets that have some."""
    if (depth, residual) not in CIFAR10_WEIGHTS:
        have = ", ".join(f"{_describe(d, r)} ({error:.2f} % test error)"
                         for (d, r), (_, error) in sorted(CIFAR10_WEIGHTS.items()))
        raise ValueError(f'no trained CIFAR-10 weights for {_describe(depth, residual)}; weights="cifar10" '
                         f"exists for: {have}")
    path = os.path.join(WEIGHTS_DIR, CIFAR10_WEIGHTS[(depth, residual)][0])
    if not os.path.isfile(path):
        raise ValueError(f"the shipped weights {path} are missing from this installation; reinstall the package")
    return path


def cifar10_preprocessing(name: str = "preprocessing"):
    """A ``keras.layers.Normalization`` subtracting the per-pixel mean of CIFAR-10's 50,000 training
    images (section 4.2), as the shipped nets were trained: RGB 0-255 in, what they expect out."""
    import keras
    import numpy as np
    mean = np.load(os.path.join(WEIGHTS_DIR, CIFAR10_PIXEL_MEAN))
    return keras.layers.Normalization(axis=(1, 2, 3), mean=mean, variance=np.ones_like(mean), name=name)


def mark_weights(path: str, config: dict) -> None:
    """Records in a ``.weights.h5`` which net the weights are for (checked on loading)."""
    import h5py
    with h5py.File(path, "a") as f:
        f.attrs[_CONFIG_ATTR] = json.dumps(config)


def check_weights_fit(path: str, **net) -> None:
    """Raises ``ValueError`` if ``path`` is missing, or records a net that differs from ``net`` in
    any key it records (e.g. ``depth``, ``stride_on``, ``residual``). Files without a record pass."""
    import h5py
    if not os.path.isfile(path):
        raise ValueError(f"weights {path!r} does not exist or is not a file")
    with h5py.File(path, "r") as f:
        recorded = f.attrs.get(_CONFIG_ATTR)
    if recorded is None:
        return
    config = json.loads(recorded)
    differ = [k for k in net if k in config and config[k] != net[k]]
    if differ:
        theirs = ", ".join(f"{k}={config[k]!r}" for k in differ)
        ours = ", ".join(f"{k}={net[k]!r}" for k in differ)
        raise ValueError(f"weights {path!r} are for {theirs} (from {config.get('source')}); this net has {ours}")
