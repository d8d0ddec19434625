"""Specification of the option-A shortcut layer and the fused batch-normalization layer."""

import numpy as np
import pytest
import tensorflow as tf

import keras
from keras_resnet import FusedBatchNormalization, ZeroPadShortcut


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


def test_option_a_both_puts_an_odd_zero_channel_after_the_identity():
    y = ZeroPadShortcut(7, padding="both")(np.ones((1, 2, 2, 4), "float32")).numpy()
    assert y[0, 0, 0].tolist() == [0, 1, 1, 1, 1, 0, 0]  # 3 zero channels: 1 before, 2 after.


def test_option_a_output_shape_for_odd_and_unknown_sizes():
    layer = ZeroPadShortcut(32, strides=2)
    assert layer(np.zeros((1, 7, 5, 16), "float32")).shape == (1, 4, 3, 32)
    assert layer.compute_output_shape((None, None, 9, 16)) == (None, None, 5, 32)
    assert layer.compute_output_shape((None, 7, 9, 16)) == (None, 4, 5, 32)  # Rounded up, as the call.


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


def _bn_pair(channels=3, **kwargs):
    """A fused layer and a stock Keras layer with the same (non-trivial) weights."""
    fused = FusedBatchNormalization(momentum=0.9, epsilon=1e-5, **kwargs)
    stock = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, **kwargs)
    rng = np.random.default_rng(1)
    for layer in (fused, stock):
        layer.build((None, 4, 5, channels))
    for weights in zip(fused.weights, stock.weights):
        value = rng.uniform(0.5, 2.0, size=weights[0].shape).astype("float32")
        for w in weights:
            w.assign(value)
    return fused, stock


def _images(shape=(6, 4, 5, 3), seed=0):
    return (np.random.default_rng(seed).normal(size=shape) * 3 + 1).astype("float32")


def test_fused_bn_training_normalises_with_batch_mean_and_biased_variance():
    x = _images()
    layer = FusedBatchNormalization(epsilon=1e-5)
    y = layer(x, training=True).numpy()
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), atol=1e-5)


def test_fused_bn_updates_moving_statistics_with_momentum_and_biased_variance():
    x = _images()
    layer = FusedBatchNormalization(momentum=0.9)
    layer(x, training=True)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.1 * x.mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.9 + 0.1 * x.var(axis=(0, 1, 2)), rtol=1e-5)


def test_fused_bn_inference_uses_moving_statistics():
    fused, _ = _bn_pair()
    x = _images()
    gamma, beta, mean, var = (w.numpy() for w in fused.weights)
    np.testing.assert_allclose(fused(x, training=False).numpy(),
                               gamma * (x - mean) / np.sqrt(var + 1e-5) + beta, atol=1e-5)


@pytest.mark.parametrize("training", [True, False])
def test_fused_bn_matches_keras_bn_outputs_gradients_and_moving_statistics(training):
    fused, stock = _bn_pair()
    x = keras.ops.convert_to_tensor(_images())
    results = []
    for layer in (fused, stock):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = keras.ops.sum(layer(x, training=training) ** 3)
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append([loss] + grads + [layer.moving_mean, layer.moving_variance])
    for a, b in zip(*results):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_fused_bn_under_mixed_precision_returns_the_compute_dtype_and_matches_keras(policy):
    fused, stock = _bn_pair(dtype=policy)
    x = _images()
    for training in (True, False):
        a, b = fused(x, training=training), stock(x, training=training)
        assert keras.backend.standardize_dtype(a.dtype) == fused.compute_dtype
        np.testing.assert_allclose(np.asarray(a, "float32"), np.asarray(b, "float32"), atol=0.05)
    assert fused.moving_mean.dtype == "float32"
    np.testing.assert_allclose(fused.moving_mean.numpy(), stock.moving_mean.numpy(), rtol=1e-2)


def test_fused_bn_frozen_layer_trains_with_moving_statistics():
    fused, stock = _bn_pair()
    fused.trainable = stock.trainable = False
    x = _images()
    np.testing.assert_allclose(fused(x, training=True), stock(x, training=True), atol=1e-5)
    np.testing.assert_allclose(fused.moving_mean.numpy(), stock.moving_mean.numpy())


def test_fused_bn_without_scale_and_center_matches_keras():
    fused, stock = _bn_pair(scale=False, center=False)
    x = _images()
    np.testing.assert_allclose(fused(x, training=True), stock(x, training=True), atol=1e-5)


@pytest.mark.parametrize("shape", [(6, 3), (2, 4, 5, 6, 3)])
def test_fused_bn_falls_back_to_keras_for_inputs_that_are_not_4d(shape):
    fused = FusedBatchNormalization(momentum=0.9, epsilon=1e-5)
    stock = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    x = _images(shape)
    np.testing.assert_allclose(fused(x, training=True), stock(x, training=True), atol=1e-5)
    np.testing.assert_allclose(fused.moving_variance.numpy(), stock.moving_variance.numpy(), rtol=1e-6)


def test_fused_bn_falls_back_to_keras_for_channels_first():
    fused = FusedBatchNormalization(axis=1)
    stock = keras.layers.BatchNormalization(axis=1)
    x = _images((2, 3, 4, 5))
    np.testing.assert_allclose(fused(x, training=True), stock(x, training=True), atol=1e-5)


def test_fused_bn_is_a_keras_bn_with_the_same_weight_names_and_config_round_trip():
    layer = FusedBatchNormalization(momentum=0.9, epsilon=1e-5, gamma_initializer="zeros", name="bn")
    layer.build((None, 4, 4, 8))
    assert isinstance(layer, keras.layers.BatchNormalization)
    stock = keras.layers.BatchNormalization(name="bn")
    stock.build((None, 4, 4, 8))
    assert [w.path for w in layer.weights] == [w.path for w in stock.weights]
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(clone) is FusedBatchNormalization
    assert clone.get_config() == layer.get_config()


def test_fused_bn_compiles_with_xla_and_matches_the_eager_result():
    x = tf.constant(_images())
    eager, compiled = _bn_pair()[0], _bn_pair()[0]

    def loss_and_grad(layer, x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True) ** 2)
        return loss, tape.gradient(loss, x)

    expected = loss_and_grad(eager, x)
    got = tf.function(lambda x: loss_and_grad(compiled, x), jit_compile=True)(x)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(compiled.moving_variance.numpy(), eager.moving_variance.numpy(), rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_option_a_subsampling_is_exact_for_every_value_and_dtype(dtype):
    x = np.random.default_rng(0).normal(size=(2, 7, 6, 3)).astype("float32")
    x[0, 0, 0, :] = [np.nan, np.inf, -np.inf]
    x[1, 2, 4, :] = [3.4e38, -3.4e38, 1e-30]
    x = keras.ops.cast(x, dtype)
    y = ZeroPadShortcut(3, strides=2, dtype=dtype)(x)
    assert keras.backend.standardize_dtype(y.dtype) == dtype
    np.testing.assert_array_equal(np.asarray(keras.ops.cast(y, "float32")),
                                  np.asarray(keras.ops.cast(x[:, ::2, ::2, :], "float32")))


def test_option_a_gradient_reaches_exactly_the_kept_pixels():
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 6, 5, 3)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = ZeroPadShortcut(8, strides=2)(x)
        loss = tf.reduce_sum(y * tf.range(8, dtype="float32"))
    expected = np.zeros(x.shape, "float32")
    expected[:, ::2, ::2, :] = [0.0, 1.0, 2.0]
    np.testing.assert_array_equal(tape.gradient(loss, x).numpy(), expected)


@pytest.mark.parametrize("training", [True, False])
def test_fused_bn_runs_one_fused_kernel_for_4d_channels_last_inputs(training):
    layer = FusedBatchNormalization()
    layer.build((None, 4, 5, 3))
    graph = tf.function(lambda x: layer(x, training=training)).get_concrete_function(
        tf.TensorSpec((2, 4, 5, 3), "float32")).graph
    op_types = {op.type for op in graph.get_operations()}
    assert "FusedBatchNormV3" in op_types and not {"Mean", "SquaredDifference", "Rsqrt"} & op_types


# Ghost batch norm: BN statistics over groups of a batch (the paper's 64 images per GPU).

def _grouped(group_size=4, channels=3):
    layer = FusedBatchNormalization(momentum=0.9, epsilon=1e-5, group_size=group_size)
    layer.build((None, 4, 5, channels))
    return layer


def test_grouped_bn_in_training_equals_bn_applied_to_each_group_alone():
    x = _images((128, 4, 5, 3))
    y = _grouped(64)(x, training=True).numpy()
    alone = FusedBatchNormalization(momentum=0.9, epsilon=1e-5)
    halves = [alone(x[:64], training=True).numpy(), alone(x[64:], training=True).numpy()]
    np.testing.assert_array_equal(y, np.concatenate(halves))


def test_grouped_bn_normalises_each_group_with_its_own_mean_and_biased_variance():
    x = _images((12, 4, 5, 3))
    y = _grouped(4)(x, training=True).numpy()
    for g in range(3):
        part = x[4 * g:4 * (g + 1)].astype("float64")
        expected = (part - part.mean((0, 1, 2))) / np.sqrt(part.var((0, 1, 2)) + 1e-5)
        np.testing.assert_allclose(y[4 * g:4 * (g + 1)], expected, rtol=1e-4, atol=1e-4)


def test_grouped_bn_updates_moving_statistics_with_the_mean_over_groups():
    x = _images((12, 4, 5, 3)).astype("float64")
    layer = _grouped(4)
    layer(x.astype("float32"), training=True)
    groups = x.reshape(3, 4, 4, 5, 3)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.1 * groups.mean((1, 2, 3)).mean(0), rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.9 + 0.1 * groups.var((1, 2, 3)).mean(0),
                               rtol=1e-5)


def test_grouped_bn_inference_is_unchanged():
    grouped, (plain, _) = _grouped(4), _bn_pair()
    for a, b in zip(grouped.weights, plain.weights):
        a.assign(b)
    x = _images((12, 4, 5, 3))
    np.testing.assert_array_equal(grouped(x, training=False).numpy(), plain(x, training=False).numpy())


def test_grouped_bn_with_one_group_is_standard_bn():
    x = _images((8, 4, 5, 3))
    whole = FusedBatchNormalization(epsilon=1e-5)(x, training=True).numpy()
    np.testing.assert_array_equal(_grouped(8)(x, training=True).numpy(), whole)


def test_grouped_bn_portable_path_matches_the_fused_path_with_an_unknown_batch_size():
    x = _images((12, 4, 5, 3)) * 1e-3  # A variance near epsilon, so that epsilon counts.
    fused, portable = _grouped(4), _grouped(4)
    dynamic = tf.function(lambda t: portable(t, training=True),
                          input_signature=[tf.TensorSpec((None, 4, 5, 3), "float32")])
    graph = dynamic.get_concrete_function().graph
    assert "FusedBatchNormV3" not in {op.type for op in graph.get_operations()}
    np.testing.assert_allclose(dynamic(x).numpy(), fused(x, training=True).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(portable.moving_mean.numpy(), fused.moving_mean.numpy(), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(portable.moving_variance.numpy(), fused.moving_variance.numpy(), rtol=1e-5)


def test_a_frozen_grouped_bn_normalises_with_its_moving_statistics_and_keeps_them():
    # Keras 3's convention for fine-tuning: a BN layer with trainable=False runs in inference mode.
    grouped, plain = _grouped(4), FusedBatchNormalization(momentum=0.9, epsilon=1e-5)
    plain.build((None, 4, 5, 3))
    grouped.trainable = False
    x = _images((8, 4, 5, 3))
    expected = plain(x, training=False).numpy()
    dynamic = tf.function(lambda t: grouped(t, training=True),  # An unknown batch: the portable path.
                          input_signature=[tf.TensorSpec((None, 4, 5, 3), "float32")])
    for y in (grouped(x, training=True), dynamic(x)):
        np.testing.assert_allclose(y.numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(grouped.moving_mean.numpy(), np.zeros(3, "float32"))


def test_grouped_bn_gradients_match_per_group_bn():
    x = tf.constant(_images((8, 4, 5, 3)))
    grouped, alone = _grouped(4), FusedBatchNormalization(momentum=0.9, epsilon=1e-5)
    alone.build((None, 4, 5, 3))
    weights = np.random.default_rng(2).normal(size=(8, 4, 5, 3)).astype("float32")

    def grads(fn, layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(fn() * weights)
        return tape.gradient(loss, [x, layer.gamma, layer.beta])

    ours = grads(lambda: grouped(x, training=True), grouped)
    theirs = grads(lambda: tf.concat([alone(x[:4], training=True), alone(x[4:], training=True)], 0), alone)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_grouped_bn_keeps_float32_statistics_under_mixed_precision(policy):
    x = _images((8, 4, 5, 3))
    half = FusedBatchNormalization(momentum=0.9, epsilon=1e-5, group_size=4, dtype=policy)
    full = _grouped(4)
    y = half(x, training=True)
    assert y.dtype == half.compute_dtype and half.moving_mean.dtype == "float32"
    rounded = tf.cast(tf.cast(x, half.compute_dtype), "float32")
    full(rounded, training=True)
    np.testing.assert_allclose(half.moving_mean.numpy(), full.moving_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(half.moving_variance.numpy(), full.moving_variance.numpy(), rtol=1e-5)


def test_grouped_bn_refuses_a_batch_that_is_not_a_multiple_of_the_group():
    with pytest.raises(ValueError, match="a training batch of 10 images is not a multiple of group_size=4"):
        _grouped(4)(_images((10, 4, 5, 3)), training=True)


def test_a_group_spanning_more_replicas_than_there_are_is_refused():
    """A group of 8 over a batch of 2 would span 4 replicas; outside a strategy there is one."""
    with pytest.raises(ValueError, match="group_size=8 spans 4 replicas of 2 images, which does not divide the 1 "
                                         "replica"):
        _grouped(8)(_images((2, 4, 5, 3)), training=True)


@pytest.mark.parametrize("bad", [0, -4, 2.5, True])
def test_grouped_bn_rejects_a_group_size_that_is_not_a_positive_int(bad):
    with pytest.raises(ValueError, match=f"group_size must be a positive int or None, got {bad!r}"):
        FusedBatchNormalization(group_size=bad)


def test_grouped_bn_config_round_trip_and_save_load(tmp_path):
    layer = FusedBatchNormalization(momentum=0.9, epsilon=1e-5, group_size=64, name="bn")
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert clone.group_size == 64 and clone.get_config() == layer.get_config()
    model = keras.Sequential([keras.Input((4, 5, 3)), FusedBatchNormalization(group_size=4)])
    model.save(tmp_path / "m.keras")
    assert keras.models.load_model(tmp_path / "m.keras").layers[0].group_size == 4
