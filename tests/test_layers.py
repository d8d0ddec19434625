"""Specification of the option-A shortcut layer."""

import numpy as np
import pytest

import keras
from keras_resnet import ZeroPadShortcut


def test_option_a_subsamples_top_left_pixels_and_appends_zero_channels():
    x = np.arange(2 * 4 * 4 * 3, dtype="float32").reshape(2, 4, 4, 3)
    y = ZeroPadShortcut(8, strides=2)(x).numpy()
    assert y.shape == (2, 2, 2, 8)
    np.testing.assert_array_equal(y[..., :3], x[:, ::2, ::2, :])
    assert not np.any(y[..., 3:])


def test_option_a_both_splits_zero_channels_around_the_identity():
    x = np.ones((1, 2, 2, 4), "float32")
    y = ZeroPadShortcut(8, strides=1, padding="both")(x).numpy()
    assert not np.any(y[..., :2]) and not np.any(y[..., 6:])
    np.testing.assert_array_equal(y[..., 2:6], x)


def test_option_a_output_shape_for_odd_and_unknown_sizes():
    layer = ZeroPadShortcut(32, strides=2)
    assert layer(np.zeros((1, 7, 5, 16), "float32")).shape == (1, 4, 3, 32)
    assert layer.compute_output_shape((None, None, 9, 16)) == (None, None, 5, 32)


def test_option_a_refuses_to_drop_channels():
    with pytest.raises(ValueError, match="cannot reduce channels: input has 16, out_channels=8"):
        ZeroPadShortcut(8)(np.zeros((1, 2, 2, 16), "float32"))


def test_option_a_rejects_unknown_padding():
    with pytest.raises(ValueError, match="padding must be one of"):
        ZeroPadShortcut(8, padding="middle")


def test_option_a_config_round_trip():
    layer = ZeroPadShortcut(64, strides=2, padding="both", name="s")
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(clone, ZeroPadShortcut)
    assert clone.get_config() == layer.get_config()
