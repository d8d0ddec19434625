"""Specification of the test protocols' scoring: final-iteration error with averaged softmax."""

import numpy as np
import pytest
import tensorflow as tf

import keras
from keras_resnet.evaluation import evaluate_classifier


def mean_colour_model():
    """Logits = mean RGB of the image: any input size, easy to score by hand."""
    inputs = keras.Input((None, None, 3))
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_single_crop_error_and_loss():
    images = np.zeros((4, 2, 2, 3), np.float32)
    images[[0, 1], ..., 0] = 5.0
    images[[2, 3], ..., 2] = 5.0
    labels = np.array([0, 1, 2, 2])
    metrics = evaluate_classifier(mean_colour_model(), tf.data.Dataset.from_tensor_slices((images, labels)).batch(3))
    assert metrics["error"] == pytest.approx(0.25) and metrics["count"] == 4
    expected = -np.mean(np.log(softmax(images.mean((1, 2)))[np.arange(4), labels]))
    assert metrics["loss"] == pytest.approx(expected, rel=1e-5)


def test_ten_crop_averages_softmax_over_the_crops():
    crops = np.zeros((1, 10, 2, 2, 3), np.float32)
    crops[0, :6, ..., 0] = 1.0   # 6 crops vote weakly for class 0,
    crops[0, 6:, ..., 1] = 9.0   # 4 vote strongly for class 1: the mean softmax picks 1.
    metrics = evaluate_classifier(mean_colour_model(), tf.data.Dataset.from_tensors((crops, [1])), "ten_crop")
    assert metrics["error"] == 0.0


def test_multiscale_averages_softmax_over_scales_of_different_sizes():
    small = np.zeros((1, 4, 4, 3), np.float32)
    small[..., 0] = 1.0
    large = np.zeros((1, 6, 8, 3), np.float32)
    large[..., 2] = 9.0
    ds = tf.data.Dataset.from_tensors(((small, large), [2]))
    assert evaluate_classifier(mean_colour_model(), ds, "multiscale")["error"] == 0.0


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode must be one of 'single', 'ten_crop', 'multiscale', got 'best'"):
        evaluate_classifier(mean_colour_model(), tf.data.Dataset.from_tensors((np.zeros((1, 2, 2, 3)), [0])), "best")
