"""The paper's learning-rate schedules as one serializable Keras schedule.

* CIFAR-10 (section 4.2): 0.1, divided by 10 at 32k and 48k iterations.
  For a shorter run the boundaries scale with its length (``scale_boundaries``),
  so that a 6.4k-step run has the same shape, dropping at 3.2k and 4.8k.
* ResNet-110 and deeper (section 4.2): 0.01 "until the training error is
  below 80% (about 400 iterations)", then back to 0.1. The end of the warm-up
  is state (``warmup_end``), set by the training loop when the error drops.
* ImageNet (section 3.4): divided by 10 "when the error plateaus"; every
  plateau multiplies ``plateau_factor`` by the decay factor.
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf


def scale_boundaries(boundaries: Sequence[int], paper_steps: int, train_steps: int) -> tuple[int, ...]:
    """Boundaries of a ``paper_steps`` schedule moved proportionally to ``train_steps``."""
    return tuple(max(1, round(b * train_steps / paper_steps)) for b in boundaries)


class PaperSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Step decay with an optional error-terminated warm-up and plateau decay.

    ``lr(step) = warmup_lr`` while ``step < warmup_end``, else
    ``base_lr * decay**(boundaries passed) * plateau_factor``.

    Args:
        base_lr: float. The main learning rate (0.1).
        boundaries: Steps at which the rate is multiplied by ``decay``.
        decay: float. Factor per boundary or plateau (0.1).
        warmup_lr: Optional float. Rate of the warm-up (0.01 for ResNet-110).
        warmup_steps: int. Longest warm-up (400); the trainer may end it earlier.
    """

    def __init__(self, base_lr: float, boundaries: Sequence[int] = (), decay: float = 0.1,
                 warmup_lr: float | None = None, warmup_steps: int = 0):
        self.base_lr = float(base_lr)
        self.boundaries = tuple(int(b) for b in boundaries)
        self.decay = float(decay)
        self.warmup_lr = None if warmup_lr is None else float(warmup_lr)
        self.warmup_steps = int(warmup_steps) if warmup_lr is not None else 0
        # State that the trainer changes and checkpoints.
        self.warmup_end = tf.Variable(self.warmup_steps, dtype=tf.int64, trainable=False, name="warmup_end")
        self.plateau_factor = tf.Variable(1.0, dtype=tf.float32, trainable=False, name="plateau_factor")

    def __call__(self, step):
        step = tf.cast(step, tf.int64)
        passed = tf.reduce_sum(tf.cast(step >= tf.constant(self.boundaries or (2**62,), tf.int64), tf.float32))
        lr = self.base_lr * tf.pow(self.decay, passed) * self.plateau_factor
        if self.warmup_lr is not None:
            lr = tf.where(step < self.warmup_end, tf.constant(self.warmup_lr, tf.float32), lr)
        return lr

    def end_warmup(self, step: int) -> None:
        """The training error fell below the threshold at ``step``: back to ``base_lr``."""
        if step < int(self.warmup_end.numpy()):
            self.warmup_end.assign(step)

    def decay_on_plateau(self) -> None:
        self.plateau_factor.assign(self.plateau_factor * self.decay)

    def get_config(self):
        return {"base_lr": self.base_lr, "boundaries": list(self.boundaries), "decay": self.decay,
                "warmup_lr": self.warmup_lr, "warmup_steps": self.warmup_steps}
