"""Trained nets as self-contained classifiers: raw RGB in, class probabilities out.

The training loop saves the net as it trains it (``model.keras``: normalised
images in, logits out). ``cifar10_classifier`` puts the normalisation of
section 4.2 (the per-pixel mean of the training images, subtracted) in front
and a softmax behind, with stock Keras layers only, so that a user can
classify CIFAR-10 images without any of this package's pipelines::

    import keras, keras_resnet.layers  # Registers the layers of the saved net.
    model = keras.models.load_model("resnet20-cifar10.keras")
    probabilities = model.predict(images_uint8)   # (N, 32, 32, 3), 0-255 RGB
"""

from __future__ import annotations

import keras
import numpy as np

from keras_resnet.data.cifar10 import check_normalization


def cifar10_classifier(net: keras.Model, mean: np.ndarray, std: np.ndarray, normalization: str = "pixel_mean",
                       name: str | None = None) -> keras.Model:
    """``net`` (normalised images -> logits) behind the normalisation it was trained with.

    Args:
        net: The trained net; it is used as a layer (its weights are shared, not copied).
        mean, std: The training split's per-pixel mean (32, 32, 3) and per-channel std (3,),
            e.g. ``keras_resnet.data.cifar10.pixel_statistics(train_split, data_dir)``.
        normalization: ``"pixel_mean"`` (paper: ``x - mean`` per pixel) or
            ``"channel_mean_std"`` (``(x - mean_c) / std_c``), as in training.

    Returns:
        A ``keras.Model`` from ``(None, 32, 32, 3)`` RGB values in [0, 255] (any batch) to
        float32 class probabilities; the preprocessing is a ``keras.layers.Normalization``
        holding the statistics, so the file needs no data to be used.
    """
    check_normalization(normalization)
    if normalization == "pixel_mean":  # (x - mean) / sqrt(1): exactly the training pipeline's x - mean.
        norm = keras.layers.Normalization(axis=(1, 2, 3), mean=mean, variance=np.ones_like(mean),
                                          name="preprocessing")
    else:
        channel_mean = mean.reshape(-1, 3).mean(axis=0)
        norm = keras.layers.Normalization(axis=-1, mean=channel_mean, variance=np.square(std),
                                          name="preprocessing")
    images = keras.Input(shape=(32, 32, 3), name="rgb")
    logits = net(norm(images))
    probabilities = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    return keras.Model(images, probabilities, name=name or f"{net.name}_cifar10")


def has_preprocessing(model: keras.Model) -> bool:
    """Whether ``model`` normalises its input itself (a ``cifar10_classifier``)."""
    return any(isinstance(layer, keras.layers.Normalization) for layer in model.layers)


def outputs_probabilities(model: keras.Model) -> bool:
    """Whether ``model`` ends in a softmax (else its outputs are taken as logits)."""
    return getattr(model.layers[-1], "activation", None) is keras.activations.softmax


def load_saved_model(path: str) -> keras.Model:
    """``keras.models.load_model`` of a ``.keras`` file, with the package's layers registered; a
    missing or damaged file is one ``ValueError`` line naming it (not a traceback from the zip reader)."""
    import os

    import keras_resnet.layers  # noqa: F401  (registers the package's layers for loading)
    if not os.path.isfile(path):
        raise ValueError(f"{path} is not a file")
    try:
        return keras.models.load_model(path)
    except Exception as e:  # noqa: BLE001 (zipfile, h5py, JSON and Keras errors alike)
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ValueError(f"{path} cannot be loaded as a Keras model ({type(e).__name__}: {reason}); the file is "
                         "damaged or not a .keras model: copy it again from its source") from None
