"""Specification of the test protocols' scoring: final-iteration error with averaged softmax."""

import numpy as np
import pytest
import tensorflow as tf

import keras
from keras_resnet.evaluation import evaluate_classifier, paired_comparison, reestimate_batch_norm_statistics
from keras_resnet.layers import FusedBatchNormalization


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


def test_top5_error_counts_labels_outside_the_five_highest_scores():
    logits = np.arange(9.0, -1.0, -1.0, dtype=np.float32)  # Class 0 scores highest, class 9 lowest.
    images = np.tile(logits, (2, 1, 1, 1))
    inputs = keras.Input((None, None, 10))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    metrics = evaluate_classifier(model, tf.data.Dataset.from_tensors((images, [4, 5])))
    assert metrics["top5_error"] == pytest.approx(0.5) and metrics["error"] == pytest.approx(1.0)  # 5th in, 6th out.


def test_the_net_is_evaluated_in_inference_mode():
    inputs = keras.Input((None, None, 3))  # BN with its initial moving statistics (0, 1): about the identity.
    model = keras.Model(inputs, keras.layers.BatchNormalization()(keras.layers.GlobalAveragePooling2D()(inputs)))
    images = np.zeros((2, 2, 2, 3), np.float32)
    images[0, ..., 0], images[1, ..., 0] = 5.0, 6.0  # In training mode the batch's BN would give [-1, 0, 0] first.
    assert evaluate_classifier(model, tf.data.Dataset.from_tensors((images, [0, 0])))["error"] == 0.0


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


class LeftMinusRight(keras.Model):
    """Logits (mean of the left half, mean of the right half): a horizontal flip swaps them."""

    def call(self, images, training=False):
        half = tf.shape(images)[2] // 2
        return tf.stack([tf.reduce_mean(images[:, :, :half], [1, 2, 3]),
                         tf.reduce_mean(images[:, :, half:], [1, 2, 3])], axis=1)


def test_multiscale_averages_each_scale_with_its_horizontal_flip_unless_noflip():
    # Table 4 "as in [41]" (VGG): the scores of an image and its flip are averaged. softmax(a, b) and its
    # flip softmax(b, a) average to (1/2, 1/2) whatever a and b: the loss is exactly log 2.
    small = np.zeros((1, 4, 4, 3), np.float32)
    small[:, :, :2] = 3.0
    large = np.zeros((1, 6, 8, 3), np.float32)
    large[:, :, :4] = 1.0
    ds = tf.data.Dataset.from_tensors(((small, large), [0]))
    flipped = evaluate_classifier(LeftMinusRight(), ds, "multiscale")
    assert flipped["loss"] == pytest.approx(np.log(2.0), rel=1e-6)
    unflipped = evaluate_classifier(LeftMinusRight(), ds, "multiscale_noflip")
    expected = -np.log(np.mean([softmax(np.array([3.0, 0.0]))[0], softmax(np.array([1.0, 0.0]))[0]]))
    assert unflipped["loss"] == pytest.approx(expected, rel=1e-5) and unflipped["error"] == 0.0


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode must be one of 'single', 'ten_crop', 'multiscale', 'multiscale_noflip', got 'best'"):
        evaluate_classifier(mean_colour_model(), tf.data.Dataset.from_tensors((np.zeros((1, 2, 2, 3)), [0])), "best")


def test_cifar10_classifier_takes_raw_rgb_and_returns_the_nets_softmax():
    from keras_resnet import cifar_resnet
    from keras_resnet.data.cifar10 import CifarData, cifar10_eval_dataset
    from keras_resnet.export import cifar10_classifier

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 32, 32, 3)).astype(np.uint8)
    data = CifarData(images, np.zeros(6, np.int32), rng.uniform(0, 255, (32, 32, 3)).astype(np.float32),
                     rng.uniform(40, 80, 3).astype(np.float32))
    net = cifar_resnet(8, classifier_activation=None)
    for normalization in ("pixel_mean", "channel_mean_std"):
        normalised = next(iter(cifar10_eval_dataset(data, 6, normalization)))[0]
        expected = tf.nn.softmax(net(normalised, training=False)).numpy()
        got = cifar10_classifier(net, data.mean, data.std, normalization)(images.astype(np.float32), training=False).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


# Re-estimated BN statistics ("precise BN").

def bn_net(group_size=None):
    """BN on the input (statistics easy to compute by hand), then conv, BN, ReLU, pooling, logits."""
    inputs = keras.Input((4, 4, 3))
    x = FusedBatchNormalization(group_size=group_size, name="bn_in")(inputs)
    x = keras.layers.Conv2D(5, 3, padding="same", name="conv")(x)
    x = FusedBatchNormalization(group_size=group_size, name="bn_conv")(x)
    x = keras.layers.Activation("relu")(x)
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)))


def test_reestimated_statistics_are_the_mean_over_batches_of_each_groups_statistics():
    batches = [np.random.default_rng(i).normal(i, 1 + i, (8, 4, 4, 3)).astype(np.float32) for i in range(3)]
    model = bn_net(group_size=4)
    assert reestimate_batch_norm_statistics(model, batches) == 3
    groups = np.concatenate([b.reshape(2, 4, 4, 4, 3) for b in batches])  # 6 groups of 4 images.
    bn = model.get_layer("bn_in")
    np.testing.assert_allclose(bn.moving_mean.numpy(), groups.mean((1, 2, 3)).mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), groups.var((1, 2, 3)).mean(0), rtol=1e-5)


def test_after_reestimating_on_one_batch_inference_reproduces_training_mode_on_it():
    # Every BN layer, the later ones included, gets the statistics of the inputs it sees in training.
    images = np.random.default_rng(0).normal(3, 2, (8, 4, 4, 3)).astype(np.float32)
    model = bn_net()
    training_mode = model(images, training=True).numpy()
    reestimate_batch_norm_statistics(model, tf.data.Dataset.from_tensors((images, np.zeros(8))))
    np.testing.assert_allclose(model(images, training=False).numpy(), training_mode, rtol=1e-4, atol=1e-4)


def test_reestimating_changes_no_weight_and_a_failure_midway_leaves_the_statistics_as_they_were():
    model = bn_net()
    reestimate_batch_norm_statistics(model, [np.random.default_rng(0).normal(2, 3, (8, 4, 4, 3)).astype(np.float32)])
    before = [w.copy() for w in model.get_weights()]

    def failing_after_one_batch():
        yield np.random.default_rng(1).normal(-1, 1, (8, 4, 4, 3)).astype(np.float32)
        raise OSError("the reader failed")

    with pytest.raises(OSError, match="the reader failed"):
        reestimate_batch_norm_statistics(model, failing_after_one_batch())
    with pytest.raises(ValueError, match="no batches to re-estimate the BN statistics from"):
        reestimate_batch_norm_statistics(model, [])
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_reestimating_a_net_without_its_own_bn_layers_is_refused():
    with pytest.raises(ValueError, match="has no BatchNormalization layer of its own"):
        reestimate_batch_norm_statistics(mean_colour_model(), [np.zeros((2, 2, 2, 3), np.float32)])


def test_paired_comparison_counts_the_images_only_one_net_gets_wrong_and_gives_mcnemars_exact_p():
    a = np.array([True] * 70 + [False] * 15 + [True] * 5 + [False] * 10)  # 15 wrong only in a, 5 only in b.
    b = np.array([True] * 70 + [True] * 15 + [False] * 5 + [False] * 10)
    result = paired_comparison(a, b)
    assert (result["images"], result["only_a_wrong"], result["only_b_wrong"]) == (100, 15, 5)
    assert (result["error_a"], result["error_b"], result["difference"]) == (25.0, 15.0, 10.0)
    # Two-sided binomial test of 5 of 20 discordant images against 1/2: 2 * sum C(20, i<=5) / 2**20.
    assert result["p_value"] == pytest.approx(2 * 21_700 / 2**20)
    # Standard error of the paired difference: sqrt((b + c)/n - ((b - c)/n)**2) / sqrt(n), in points.
    assert result["difference_se"] == pytest.approx(100 * np.sqrt((0.20 - 0.10**2) / 100))
    assert paired_comparison(b, a)["p_value"] == result["p_value"] and paired_comparison(b, a)["difference"] == -10.0


def test_paired_comparison_of_nets_that_disagree_nowhere_is_no_evidence():
    a = np.array([True, False, True])
    assert paired_comparison(a, a)["p_value"] == 1.0 and paired_comparison(a, a)["difference_se"] == 0.0


def test_paired_comparison_needs_one_verdict_per_image_from_each():
    with pytest.raises(ValueError, match=r"shapes \(3,\) and \(2,\)"):
        paired_comparison(np.ones(3, bool), np.ones(2, bool))
