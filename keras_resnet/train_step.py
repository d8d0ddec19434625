"""The compiled training step: the paper's objective and SGD on any ``tf.distribute`` strategy.

``make_train_step`` is what ``training.train()`` and the benchmarks run; ``StepCounters`` keeps its
bookkeeping on the device, so that a step needs no host sync.
"""

from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf

from keras_resnet.run_config import TrainConfig
from keras_resnet.schedules import PaperSchedule


class StepCounters:
    """Device-side bookkeeping of the train step, so that it needs no host sync per step:
    the global step, sums of (loss * batch, wrong, images) since the last log, and the first
    step whose loss or gradients were not finite (-1: none). Create under the strategy's scope."""

    def __init__(self):
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        self.sums = tf.Variable(tf.zeros([3]), trainable=False, name="interval_sums")
        self.first_bad = tf.Variable(-1, dtype=tf.int64, trainable=False, name="first_nonfinite_step")


def make_train_step(model: keras.Model, optimizer, strategy: tf.distribute.Strategy, global_batch: int,
                    counters: StepCounters, jit_compile: bool = False) -> Callable:
    """The compiled step ``iterator -> (loss, wrong)`` used by ``train()`` and the benchmarks.

    Cross-entropy averaged over the GLOBAL batch plus the model's L2 losses divided among the
    replicas, so the summed replica gradients equal the one-device gradient of the paper's
    objective; float16 loss scaling when ``optimizer`` is a ``LossScaleOptimizer``.

    Under loss scaling, a step is skipped on every replica when the gradients of any replica
    overflowed (Keras decides from the first replica's gradients alone, and another replica's
    Inf would be summed into the weights), and the optimizer's iteration count, which drives
    the learning-rate schedule, follows the global step, skipped steps included.
    """
    loss_scaling = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    def forward_backward(images, labels):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(images, training=True), tf.float32)
            per_example = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            decay = tf.add_n(model.losses) if model.losses else tf.constant(0.0)
            total = loss + tf.nn.scale_regularization_loss(tf.cast(decay, tf.float32))
            scaled = optimizer.scale_loss(total) if hasattr(optimizer, "scale_loss") else total
        grads = tape.gradient(scaled, model.trainable_variables)
        predicted = tf.argmax(logits, -1, output_type=tf.int32)
        wrong = tf.reduce_sum(tf.cast(predicted != tf.cast(labels, tf.int32), tf.float32))
        return loss, grads, wrong

    # XLA compiles each replica's forward and backward pass only: the update stays outside, where the
    # optimizer's cross-replica merge_call is allowed (inside a compiled function on 2+ GPUs it is not).
    compute = tf.function(forward_backward, jit_compile=True) if jit_compile else forward_backward

    def step_fn(images, labels):
        loss, grads, wrong = compute(images, labels)
        if loss_scaling:
            grads = _overflow_on_every_replica_if_on_any(optimizer, grads)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        # A finite loss does not prove finite gradients: oneDNN's fused conv+BN+ReLU maps NaN
        # activations to 0 in the forward pass while their gradients are NaN. Loss scaling
        # skips non-finite float16 gradients itself, so only other optimizers are checked.
        bad_grads = (tf.constant(0.0) if loss_scaling
                     else tf.cast(~tf.math.is_finite(tf.linalg.global_norm(grads)), tf.float32))
        return loss, wrong, bad_grads

    @tf.function
    def train_step(iterator):
        if loss_scaling:  # Skipped steps do not advance Keras's count; the schedule runs on the global step.
            optimizer.iterations.assign(counters.step)
        loss, wrong, bad_grads = strategy.run(step_fn, args=next(iterator))
        loss = strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
        wrong = strategy.reduce(tf.distribute.ReduceOp.SUM, wrong, axis=None)
        bad_grads = strategy.reduce(tf.distribute.ReduceOp.SUM, bad_grads, axis=None)
        counters.step.assign_add(1)
        counters.sums.assign_add(tf.stack([loss * global_batch, wrong, float(global_batch)]))
        bad = (counters.first_bad < 0) & (~tf.math.is_finite(loss) | (bad_grads > 0))
        counters.first_bad.assign(tf.where(bad, counters.step, counters.first_bad))
        return loss, wrong

    return train_step


def _overflow_on_every_replica_if_on_any(optimizer: keras.optimizers.LossScaleOptimizer, grads: list) -> list:
    """The gradients unchanged if every replica's are finite, else NaN on every replica, so that
    the loss-scale optimizer of each replica skips the step and halves the scale together."""
    overflowed = tf.cast(tf.logical_not(optimizer.check_finite(grads)), tf.float32)
    anywhere = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, overflowed) > 0
    factor = tf.where(anywhere, float("nan"), 1.0)
    return [None if g is None else g * tf.cast(factor, g.dtype) for g in grads]


def make_optimizer(config: TrainConfig):
    """SGD with momentum on the paper's schedule (wrapped for loss scaling under float16)."""
    schedule = PaperSchedule(config.lr, config.lr_boundaries, config.lr_decay, config.warmup_lr, config.warmup_steps)
    optimizer = keras.optimizers.SGD(schedule, momentum=config.momentum)
    if config.mixed_precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer, schedule
