"""Classification error on a test set, for the paper's test protocols.

Errors are reported at the final iteration, as in the paper's tables; nothing
here picks a best checkpoint on the test set.
"""

from __future__ import annotations

import weakref

import keras
import numpy as np
import tensorflow as tf


def _accumulate(model, dataset, predict) -> dict:
    loss_sum, wrong, wrong5, count = 0.0, 0, 0, 0
    for images, labels in dataset:
        probs = predict(images)
        labels = tf.cast(labels, tf.int32)
        loss_sum += float(tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(labels, probs)))
        wrong += int(tf.reduce_sum(tf.cast(tf.argmax(probs, -1, output_type=tf.int32) != labels, tf.int32)))
        k = min(5, probs.shape[-1])
        wrong5 += int(tf.reduce_sum(tf.cast(~tf.math.in_top_k(labels, probs, k), tf.int32)))
        count += int(labels.shape[0])
    if count == 0:
        raise ValueError("the evaluation dataset is empty")
    return {"loss": loss_sum / count, "error": wrong / count, "top5_error": wrong5 / count, "count": count}


_PREDICTORS: "weakref.WeakKeyDictionary[keras.Model, tf.types.experimental.GenericFunction]" = \
    weakref.WeakKeyDictionary()


def _probabilities(model: keras.Model):
    """One compiled softmax predictor per model, reused across evaluations."""
    if model not in _PREDICTORS:
        _PREDICTORS[model] = tf.function(
            lambda images: tf.nn.softmax(tf.cast(model(images, training=False), tf.float32)),
            reduce_retracing=True)
    return _PREDICTORS[model]


def evaluate_classifier(model: keras.Model, dataset: tf.data.Dataset, mode: str = "single") -> dict:
    """Mean cross-entropy, top-1 and top-5 error (fractions) of a logits model.

    Args:
        model: Returns logits.
        dataset: ``(images, labels)`` batches. For ``mode="ten_crop"`` images are
            ``(B, 10, H, W, 3)``; for ``"multiscale"`` a tuple of ``(1, H_s, W_s, 3)``.
        mode: ``"single"``, ``"ten_crop"`` (softmax averaged over the crops),
            ``"multiscale"`` (softmax averaged over the scales and each scale's horizontal flip: section
            3.4 takes the fully-convolutional form "as in [41]", VGG, which averages the scores of an
            image and its flip) or ``"multiscale_noflip"`` (over the scales only).
    """
    probabilities = _probabilities(model)

    if mode == "single":
        predict = probabilities
    elif mode == "ten_crop":
        def predict(images):
            shape = tf.shape(images)
            flat = tf.reshape(images, tf.concat([[-1], shape[2:]], 0))
            return tf.reduce_mean(tf.reshape(probabilities(flat), [shape[0], shape[1], -1]), axis=1)
    elif mode in ("multiscale", "multiscale_noflip"):
        flips = mode == "multiscale"

        def predict(images):
            views = [*images, *(tf.reverse(x, axis=[2]) for x in images)] if flips else list(images)
            return tf.reduce_mean(tf.stack([probabilities(x) for x in views]), axis=0)
    else:
        raise ValueError(f"mode must be one of 'single', 'ten_crop', 'multiscale', 'multiscale_noflip', got {mode!r}")
    return _accumulate(model, dataset, predict)


def reestimate_batch_norm_statistics(model: keras.Model, batches) -> int:
    """Sets every BN layer's moving mean and variance to the mean, over ``batches``, of the statistics
    it normalises with in training ("precise BN": Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm";
    ``torch.optim.swa_utils.update_bn``). Tells what a test error owes to the noise of the moving
    averages, which follow the last few dozen batches only (momentum 0.9).

    Each batch goes through the net in training mode, so that every layer sees the inputs it saw in
    training; a BN layer with ``group_size`` ("ghost" BN) contributes the mean of its groups'
    statistics, as its moving averages do in training (biased variance, as Keras). The weights are
    not changed.

    Args:
        model: A functional Keras model whose own layers include its BN layers, each called once
            (e.g. ``cifar_resnet(...)``).
        batches: An iterable of image batches, or of ``(images, labels)``.

    Returns:
        The number of batches used.
    """
    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        raise ValueError(f"{model.name} has no BatchNormalization layer of its own to re-estimate "
                         "(pass the net itself, not a model that wraps it)")
    for layer in layers:
        if layer.axis not in (-1, len(layer.input.shape) - 1):
            raise ValueError(f"{layer.name} normalises axis {layer.axis}; only channels-last BN is re-estimated")
    probe = keras.Model(model.inputs, [layer.input for layer in layers])

    @tf.function(reduce_retracing=True)
    def statistics(images):
        inputs = probe(images, training=True)
        inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        out = []
        for layer, x in zip(layers, inputs):
            x = tf.cast(x, tf.float32)
            group = getattr(layer, "group_size", None)
            if group:  # (groups, group, ..., channels): each group's statistics, then their mean.
                x = tf.reshape(x, [-1, group, *x.shape[1:]])
            else:
                x = x[None]
            mean, variance = tf.nn.moments(x, axes=list(range(1, len(x.shape) - 1)))
            out.append((tf.reduce_mean(mean, 0), tf.reduce_mean(variance, 0)))
        return out

    saved = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in layers]
    sums, count = None, 0
    try:
        for batch in batches:
            images = batch[0] if isinstance(batch, (list, tuple)) else batch
            stats = [(m.numpy().astype(np.float64), v.numpy().astype(np.float64)) for m, v in statistics(images)]
            sums = stats if sums is None else [(a + m, b + v) for (a, b), (m, v) in zip(sums, stats)]
            count += 1
    finally:  # Training-mode calls moved the moving averages: they are either replaced or put back.
        for layer, (mean, variance) in zip(layers, saved):
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(variance)
    if count == 0:
        raise ValueError("no batches to re-estimate the BN statistics from")
    for layer, (mean, variance) in zip(layers, sums):
        layer.moving_mean.assign((mean / count).astype(layer.moving_mean.dtype))
        layer.moving_variance.assign((variance / count).astype(layer.moving_variance.dtype))
    return count



def paired_comparison(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """Two classifiers scored on the same images, compared image by image (McNemar's test).

    Which of two nets is better on one test set turns on the images only one of them gets wrong;
    a paired test on those is sharper than comparing two binomial errors. It measures the test
    set's sampling error only, not the spread between training runs (seeds), which one pair of
    runs cannot show.

    Args:
        correct_a, correct_b: booleans, one per image, in the same image order.

    Returns:
        ``images``, ``error_a`` and ``error_b`` (%), ``only_a_wrong`` and ``only_b_wrong`` (image
        counts), ``difference`` (error_a - error_b, points) with its standard error
        ``difference_se``, and ``p_value``: McNemar's exact two-sided p-value (the binomial test of the
        discordant images against an even split).
    """
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"need one verdict per image from each classifier on the same images, "
                         f"got shapes {a.shape} and {b.shape}")
    n = len(a)
    only_a, only_b = int((~a & b).sum()), int((a & ~b).sum())
    discordant, fewer = only_a + only_b, min(only_a, only_b)
    tail, term = 0, 1  # sum of C(discordant, i) for i <= fewer, in exact integers.
    for i in range(fewer + 1):
        tail += term
        term = term * (discordant - i) // (i + 1)
    p_value = min(1.0, 2 * tail / 2 ** discordant)
    difference = 100.0 * (only_a - only_b) / n
    variance = (discordant - (only_a - only_b) ** 2 / n) / n ** 2
    return {"images": n, "error_a": 100.0 * int((~a).sum()) / n, "error_b": 100.0 * int((~b).sum()) / n,
            "only_a_wrong": only_a, "only_b_wrong": only_b, "difference": difference,
            "difference_se": 100.0 * max(variance, 0.0) ** 0.5, "p_value": p_value}
