"""The Keras nets compute the paper's function: checked against an independent NumPy pass."""

import numpy as np
import pytest

from keras_resnet import cifar_resnet, imagenet_resnet
from numpy_reference import Reference


def randomise(model, seed=0):
    """Random weights everywhere, BN statistics included, so that no term can hide."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        new = []
        for w in layer.weights:
            shape = tuple(w.shape)
            if "moving_variance" in w.path:
                new.append(rng.uniform(0.5, 2.0, shape))
            elif "gamma" in w.path:
                new.append(rng.uniform(0.5, 1.5, shape))
            elif "kernel" in w.path:
                new.append(rng.normal(0, np.sqrt(2.0 / np.prod(shape[:-1])), shape))
            else:
                new.append(rng.normal(0, 0.1, shape))
        layer.set_weights([a.astype("float32") for a in new])
    return {layer.name: [w.numpy().astype("float64") for w in layer.weights] for layer in model.layers if layer.weights}


@pytest.mark.parametrize("shortcut", ["A", "B", "C"])
@pytest.mark.parametrize("residual", [True, False])
def test_cifar_resnet8_matches_numpy(shortcut, residual):
    model = cifar_resnet(8, shortcut=shortcut, residual=residual)
    weights = randomise(model)
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3))
    expected = Reference(weights, shortcut=shortcut, residual=residual).cifar(x, n=1)
    np.testing.assert_allclose(model.predict(x.astype("float32"), verbose=0), expected, atol=1e-4)


@pytest.mark.parametrize("stride_on", ["1x1", "3x3"])
@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_small_bottleneck_net_matches_numpy(stride_on, shortcut):
    model = imagenet_resnet(blocks=(1, 2), bottleneck=True, width=8, stride_on=stride_on,
                            shortcut=shortcut, input_shape=(None, None, 3), num_classes=5)
    weights = randomise(model)
    x = np.random.default_rng(2).normal(size=(2, 45, 38, 3))  # Odd sizes exercise the padding.
    expected = Reference(weights, shortcut=shortcut, stride_on=stride_on).imagenet(x, (1, 2), True)
    np.testing.assert_allclose(model.predict(x.astype("float32"), verbose=0), expected, atol=1e-4)


def test_small_basic_imagenet_net_matches_numpy():
    model = imagenet_resnet(blocks=(1, 1), bottleneck=False, width=8, input_shape=(40, 40, 3), num_classes=4)
    weights = randomise(model)
    x = np.random.default_rng(3).normal(size=(1, 40, 40, 3))
    expected = Reference(weights, shortcut="B").imagenet(x, (1, 1), False)
    np.testing.assert_allclose(model.predict(x.astype("float32"), verbose=0), expected, atol=1e-4)
