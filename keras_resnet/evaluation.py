"""Classification error on a test set, for the paper's test protocols.

Errors are reported at the final iteration, as in the paper's tables; nothing
here picks a best checkpoint on the test set.
"""

from __future__ import annotations

import weakref

import keras
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
