"""Trained weights shipped with the package (keras_resnet.trained) and the shipped classifiers."""

import glob
import os

import keras
import numpy as np
import pytest

import keras_resnet
import keras_resnet.layers  # noqa: F401  (registers the package's layers for loading)
from keras_resnet import trained

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED_CLASSIFIERS = sorted(glob.glob(os.path.join(ROOT, "docs", "results", "**", "*.keras"), recursive=True))


def raw_images(n=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3)).astype(np.float32)


def test_cifar10_weights_compute_the_shipped_resnet20_classifier():
    """weights="cifar10" + cifar10_preprocessing is the run's exported classifier (which computes in
    mixed bfloat16, as it was trained)."""
    classifier = keras.models.load_model(
        os.path.join(ROOT, "docs", "results", "cifar10-resnet20-64k", "resnet20-cifar10.keras"))
    model = keras_resnet.cifar_resnet(20, weights="cifar10", dtype="mixed_bfloat16")
    x = raw_images()
    ours = np.asarray(model(keras_resnet.cifar10_preprocessing()(x)))
    np.testing.assert_allclose(ours, np.asarray(classifier(x)), atol=1e-6)


def test_cifar10_weights_without_the_top_are_the_backbone_of_the_trained_net():
    full = keras_resnet.cifar_resnet(20, weights="cifar10")
    backbone = keras_resnet.cifar_resnet(20, weights="cifar10", include_top=False, pooling="avg")
    x = keras_resnet.cifar10_preprocessing()(raw_images(4))
    features = keras.Model(full.input, full.get_layer("avg_pool").output)(x)
    np.testing.assert_allclose(np.asarray(backbone(x)), np.asarray(features), atol=1e-6)


@pytest.mark.parametrize("kwargs,message", [
    (dict(depth=56), r"no trained CIFAR-10 weights for ResNet-56; .*ResNet-20 \(8\.48 % test error\)"),
    (dict(depth=20, residual=False), r"no trained CIFAR-10 weights for plain-20"),
    (dict(depth=20, num_classes=100), r'weights="cifar10" are for 10 classes'),
])
def test_cifar10_weights_for_a_net_without_them_is_one_clear_error(kwargs, message):
    depth = kwargs.pop("depth")
    with pytest.raises(ValueError, match=message):
        keras_resnet.cifar_resnet(depth, weights="cifar10", **kwargs)


def test_a_weights_file_of_a_residual_net_is_refused_for_its_plain_twin():
    """The twins have the same shapes (option A), so only the record tells them apart."""
    with pytest.raises(ValueError, match=r"are for residual=True .*this net has residual=False"):
        keras_resnet.cifar_resnet(20, residual=False, weights=trained.cifar10_weights(20))


def test_every_shipped_weights_file_is_package_data_of_the_wheel():
    import tomllib
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        patterns = tomllib.load(f)["tool"]["setuptools"]["package-data"]["keras_resnet"]
    package = os.path.join(ROOT, "keras_resnet")
    packaged = {os.path.relpath(p, package) for pattern in patterns for p in glob.glob(os.path.join(package, pattern))}
    shipped = {f"weights/{name}" for name, _ in trained.CIFAR10_WEIGHTS.values()} | {f"weights/{trained.CIFAR10_PIXEL_MEAN}"}
    assert shipped <= packaged


@pytest.mark.parametrize("path", SHIPPED_CLASSIFIERS, ids=[os.path.relpath(p, ROOT) for p in SHIPPED_CLASSIFIERS])
def test_every_shipped_classifier_loads_and_gives_probabilities_for_raw_images(path):
    model = keras.models.load_model(path)
    probabilities = np.asarray(model(raw_images(8)))
    assert probabilities.shape == (8, 10) and (probabilities >= 0).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_there_is_a_shipped_classifier_to_check():
    assert SHIPPED_CLASSIFIERS
