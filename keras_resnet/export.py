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


def ship_cifar10_weights(model_dir: str, data_dir: str | None, weights_dir: str | None = None,
                         source: str | None = None, batch_size: int = 500) -> dict:
    """Ships a finished CIFAR-10 run's net as ``weights="cifar10"``: its ``.weights.h5`` in
    ``weights_dir`` (default: the package's, ``keras_resnet.trained.WEIGHTS_DIR``), recording which
    net it is for, and its entry in the manifest with the test error measured through the user's path
    (``cifar_resnet(depth, weights=...)`` behind ``cifar10_preprocessing``) on the test split of
    ``data_dir``, in the run's precision and in float32, and what the run decayed (``weight_decay_on``:
    not part of the net, so not checked when the weights are loaded, but of how it was trained).

    Refused, with one line saying why: a run that is not CIFAR-10, unfinished, or trained otherwise
    than the paper's recipe in what the shipped preprocessing assumes (all 50,000 training images,
    per-pixel mean, option A); training images whose per-pixel mean differs from the one already
    shipped; weights that do not reproduce the run's own net. Returns the manifest entry.
    """
    import os
    import tempfile

    import tensorflow as tf

    from keras_resnet import models, runs, trained
    from keras_resnet.data.cifar10 import data_identity, load_cifar10
    from keras_resnet.run_config import IMPLIED_WHEN_ABSENT, PRECISIONS

    weights_dir = weights_dir or trained.WEIGHTS_DIR
    config = runs.read_cifar10_config(model_dir, "nets are shipped")
    for name in ("stats.json", "model.keras"):
        if not os.path.isfile(os.path.join(model_dir, name)):
            raise ValueError(f"--model_dir={model_dir} is not a finished run (no {name})")
    paper = {"protocol": "test", "normalization": "pixel_mean", "shortcut": "A"}
    differ = [f"{k}={config.get(k)!r}" for k, v in paper.items() if config.get(k, v) != v]
    if differ:
        raise ValueError(f"--model_dir={model_dir} was trained with {', '.join(differ)}; shipped weights are for the "
                         "paper's recipe (protocol 'test': all 50,000 training images; pixel_mean; shortcut 'A'), "
                         "which cifar10_preprocessing() and weights=\"cifar10\" assume")
    depth, residual = int(config["depth"]), bool(config.get("residual", True))
    dtype = PRECISIONS[config.get("mixed_precision", "none")]
    # What the run decayed: not part of the net (the weights fit any builder of it), but of how it was trained.
    decay = config.get("weight_decay_on", IMPLIED_WHEN_ABSENT["weight_decay_on"])

    test = load_cifar10("test", data_dir)  # Its mean: of the 50,000 training images.
    mean_path = os.path.join(weights_dir, trained.CIFAR10_PIXEL_MEAN)
    if os.path.exists(mean_path):
        gap = float(np.abs(np.load(mean_path) - test.mean).max())
        if gap > 1e-3:
            raise ValueError(f"the training images of {data_dir} have another per-pixel mean than {mean_path} "
                             f"(up to {gap:.3g} apart): the shipped nets share one cifar10_preprocessing()")
    preprocessing = keras.layers.Normalization(axis=(1, 2, 3), mean=test.mean, variance=np.ones_like(test.mean))
    preprocessing.build((None, 32, 32, 3))  # Here, not inside the first tf.function that calls it.

    net = load_saved_model(os.path.join(model_dir, "model.keras"))
    file = f"{'resnet' if residual else 'plain'}{depth}-cifar10.weights.h5"
    source = source or (f"{model_dir} (recipes.cifar10 --depth={depth}{'' if residual else ' --plain'} "
                        f"--weight_decay_on={decay}, {config.get('train_steps', 0):,} iterations, "
                        f"seed {config.get('seed')})")
    os.makedirs(weights_dir, exist_ok=True)
    # Staged in a hidden folder (outside the package's weights/*.weights.h5), moved in once checked.
    with tempfile.TemporaryDirectory(dir=weights_dir, prefix=".staging-") as staging:
        staged = os.path.join(staging, file)
        net.save_weights(staged)
        trained.mark_weights(staged, {"depth": depth, "residual": residual, "shortcut": "A", "dataset": "cifar10",
                                      "source": source})
        errors = {}
        for policy in dict.fromkeys((dtype, "float32")):
            shipped = models.cifar_resnet(depth, residual=residual, weights=staged, dtype=policy,
                                          classifier_activation=None)  # Logits, as the run's net.
            predict = tf.function(lambda x, m=shipped: tf.cast(m(preprocessing(x), training=False), tf.float32))
            if policy == dtype:  # The weights are the run's net: same logits, same precision.
                sample = test.images[:batch_size].astype(np.float32)
                ours = predict(sample).numpy()
                theirs = tf.function(lambda x: tf.cast(net(preprocessing(x), training=False), tf.float32))(sample).numpy()
                if not np.allclose(ours, theirs, atol=1e-4):
                    raise ValueError(f"the weights saved from {model_dir}/model.keras do not reproduce its logits "
                                     f"(up to {np.abs(ours - theirs).max():.3g} apart); nothing was shipped")
            wrong = sum(int((predict(test.images[i:i + batch_size].astype(np.float32)).numpy().argmax(-1)
                             != test.labels[i:i + batch_size]).sum()) for i in range(0, len(test), batch_size))
            errors[policy] = 100.0 * wrong / len(test)
        os.replace(staged, os.path.join(weights_dir, file))
    if not os.path.exists(mean_path):
        np.save(mean_path, test.mean.astype(np.float32))
    entry = {"file": file, "depth": depth, "residual": residual, "dtype": dtype,
             "test_error": round(errors[dtype], 2), "test_error_float32": round(errors["float32"], 2),
             "test_images": len(test), "test_data": data_identity({"test": test}, data_dir)["summary"],
             "weight_decay_on": decay, "source": source}
    trained.record_in_manifest(entry, weights_dir)
    return entry
