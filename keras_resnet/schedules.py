"""The paper's learning-rate schedules as one serializable Keras schedule.

* CIFAR-10 (section 4.2): 0.1, divided by 10 at 32k and 48k iterations.
  For a shorter run the boundaries scale with its length (``scale_boundaries``),
  so that a 6.4k-step run has the same shape, dropping at 3.2k and 4.8k.
* ResNet-110 and deeper (section 4.2): 0.01 "until the training error is
  below 80% (about 400 iterations)", then back to 0.1. The end of the warm-up
  is state (``warmup_end``), set by ``WarmUp`` when the training error,
  averaged over the last epoch of iterations, is below 80%.
* ImageNet (section 3.4): divided by 10 "when the error plateaus"; every
  plateau multiplies ``plateau_factor`` by the decay factor. ``PlateauDecay``
  decides when, from the error measured at each evaluation, with a patience
  in iterations (not in evaluations) and a cap on the number of drops.
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


class WarmUp(tf.Module):
    """Section 4.2: "we use 0.01 to warm up the training until the training error is below 80%
    (about 400 iterations), and then go back to 0.1".

    The training error is the mean error of the last ``window`` iterations'
    batches. The recipe's window is one epoch (391 iterations of 128 images
    for 50k images): a training error is conventionally an epoch's, it cannot
    end the warm-up before about 400 iterations, which is where the paper says
    it ended, and its mean is not moved by a lucky stretch of batches (the
    error of one batch of 128 has a standard deviation of 3.5 points near 80 %,
    the mean of 391 batches 0.2). A 10-iteration window, tried first, ended
    ResNet-110's warm-up at iteration 63 on the real data, after which the
    error rose again at 0.1 (docs/results.md).

    Args:
        schedule: The ``PaperSchedule`` whose warm-up this ends.
        error: float. Threshold on the mean error (0.8).
        window: int. Iterations averaged.
    """

    def __init__(self, schedule: PaperSchedule, error: float, window: int):
        super().__init__(name="warmup")
        self.schedule = schedule
        self.error = float(error)
        self.window = int(window)
        # The last ``window`` batch errors, checkpointed so that a resumed warm-up goes on where it was.
        self.recent = tf.Variable(tf.zeros([0], tf.float32), shape=tf.TensorShape([None]), trainable=False,
                                  name="recent_batch_errors")

    def active(self, step: int) -> bool:
        """Whether the rate of the step after ``step`` is still the warm-up's."""
        return step < int(self.schedule.warmup_end.numpy())

    def update(self, step: int, batch_error: float) -> float | None:
        """Takes the error of the batch of ``step``; ends the warm-up and returns the mean when it is low enough."""
        recent = self.recent.numpy().tolist()[-(self.window - 1):] if self.window > 1 else []
        recent.append(batch_error)
        self.recent.assign(recent)
        mean = sum(recent) / len(recent)
        if len(recent) == self.window and mean < self.error:
            self.schedule.end_warmup(step)
            return mean
        return None


class PlateauDecay(tf.Module):
    """Section 3.4: "the learning rate ... is divided by 10 when the error plateaus".

    The error has plateaued at step ``s`` when the best error seen up to ``s``
    is less than ``threshold`` (in the error's units) below the best error seen
    up to ``s - patience_steps``: it gained less than ``threshold`` in the last
    ``patience_steps`` iterations. The rate is then divided, at most
    ``max_drops`` times in a run and at least ``patience_steps`` iterations
    apart. Defined on iterations, the rule gives the same drops whatever the
    evaluation interval, up to the interval itself (the error is only known
    where it is measured). The state (the best error after each evaluation,
    the drops) is TF variables, checkpointed with the run.

    Args:
        schedule: The ``PaperSchedule`` whose ``plateau_factor`` is lowered.
        patience_steps: int. The window, in iterations, over which the gain is measured.
        threshold: float. The gain below which the error counts as flat.
        max_drops: int. Drops allowed in the whole run.
    """

    def __init__(self, schedule: PaperSchedule, patience_steps: int, threshold: float, max_drops: int):
        super().__init__(name="plateau")
        self.schedule = schedule
        self.patience_steps = int(patience_steps)
        self.threshold = float(threshold)
        self.max_drops = int(max_drops)
        # One row (step, best error so far) per evaluation.
        self.history = tf.Variable(tf.zeros([0, 2], tf.float64), shape=tf.TensorShape([None, 2]),
                                   trainable=False, name="best_error_history")
        self.last_drop = tf.Variable(0, dtype=tf.int64, trainable=False, name="last_drop_step")
        self.drops = tf.Variable(0, dtype=tf.int64, trainable=False, name="drops")

    def update(self, step: int, error: float) -> bool:
        """Takes the error measured at ``step``; returns whether the rate was divided now."""
        history = self.history.numpy()
        best = min(error, history[-1, 1]) if len(history) else error
        self.history.assign(tf.concat([history, [[step, best]]], axis=0))
        earlier = history[history[:, 0] <= step - self.patience_steps]
        if (len(earlier) == 0 or int(self.drops.numpy()) >= self.max_drops
                or step - int(self.last_drop.numpy()) < self.patience_steps
                or earlier[-1, 1] - best >= self.threshold):
            return False
        self.schedule.decay_on_plateau()
        self.drops.assign_add(1)
        self.last_drop.assign(step)
        return True
