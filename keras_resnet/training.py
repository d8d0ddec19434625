"""The training loop: strategy-aware train step, schedule, checkpoints, TensorBoard.

``train()`` runs one experiment described by data (``TrainConfig`` and the
``Task`` a recipe builds) in ``model_dir`` and returns a stats dict. It is the
same loop on one CPU, several GPUs (``MirroredStrategy``) and several machines
(``MultiWorkerMirroredStrategy``): a custom step under ``strategy.run``, since
``Model.fit`` fails under multi-worker training in Keras 3 (keras-team/keras#20585).

What ``model_dir`` holds:

* ``config.json``: the run's configuration; a rerun with another one is refused.
* ``checkpoints/``: ``tf.train.Checkpoint`` of model, optimizer, step and
  schedule state, every ``checkpoint_every`` steps and at the end. TF writes
  a checkpoint completely before it records it, so a kill mid-write leaves the
  previous one as the latest. Rerunning the same command resumes there.
* ``train/``, ``test/`` (and ``validation/``): TensorBoard event files. Scalars
  ``loss`` and ``error`` (percent) in each; ``learning_rate`` and
  ``images_per_second`` in ``train/``; the hparams of the run; the step graph.
* ``model.keras``: the final model, BN statistics averaged over replicas.
* ``stats.json``: the final numbers (written last; its presence marks a finished run).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import time
from typing import Any, Callable

import keras
import tensorflow as tf
from absl import logging

from keras_resnet import distribute, hardware
from keras_resnet.models import recursion_limit_for
from keras_resnet.schedules import PaperSchedule

PRECISIONS = {"none": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
# Keys that may change between a run and its resumption without mixing two experiments.
RUNTIME_KEYS = frozenset({"log_every", "eval_every", "checkpoint_every", "keep_checkpoints",
                          "data_dir", "model_dir", "num_gpus", "jit_compile", "eval_batch_size",
                          "command"})
STATS_FILE = "stats.json"
CONFIG_FILE = "config.json"


class ConfigMismatchError(ValueError):
    """``model_dir`` holds a run with a different configuration."""


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf; the last good checkpoint is kept."""


class CheckpointWriteError(RuntimeError):
    """A checkpoint or the final model could not be written (a full disk, say); the last
    complete checkpoint is kept and rerunning the same command resumes from it."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping; defaults are the paper's CIFAR-10 recipe (section 4.2).

    Attributes:
        batch_size: Global batch over all replicas (128).
        train_steps: Iterations (64k).
        lr: Base learning rate (0.1).
        lr_boundaries: Steps where the rate is divided by 10 (32k, 48k), already
            scaled to ``train_steps``.
        lr_decay: Factor at each boundary or plateau (0.1).
        momentum: SGD momentum (0.9).
        warmup_lr: Warm-up rate for very deep nets (0.01 for ResNet-110), or ``None``.
        warmup_steps: Longest warm-up (400).
        warmup_error: Warm-up ends when the training error (mean of the last
            ``warmup_window`` steps) is below this fraction (0.8).
        plateau_patience: Evaluations without improvement of the ``plateau_metric``
            before the rate is divided by 10 (ImageNet); 0 disables it.
        mixed_precision: ``"none"``, ``"float16"`` (GPUs, with loss scaling) or ``"bfloat16"``.
        jit_compile: Compile the train step with XLA.
        seed: Seeds the weights, the data order and the augmentation.
        log_every, eval_every, checkpoint_every: Intervals in steps.
        keep_checkpoints: How many checkpoints to keep.
    """

    batch_size: int = 128
    train_steps: int = 64_000
    lr: float = 0.1
    lr_boundaries: tuple[int, ...] = (32_000, 48_000)
    lr_decay: float = 0.1
    momentum: float = 0.9
    warmup_lr: float | None = None
    warmup_steps: int = 400
    warmup_error: float = 0.8
    warmup_window: int = 10
    plateau_patience: int = 0
    plateau_metric: str = "validation"
    mixed_precision: str = "none"
    jit_compile: bool = False
    seed: int = 0
    log_every: int = 100
    eval_every: int = 2000
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3

    def __post_init__(self):
        if self.mixed_precision not in PRECISIONS:
            raise ValueError(f"mixed_precision must be one of {', '.join(PRECISIONS)}, got {self.mixed_precision!r}")
        for name in ("batch_size", "train_steps", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")


@dataclasses.dataclass
class Task:
    """What a recipe supplies: the model and the data, as functions.

    Attributes:
        build_model: ``dtype -> keras.Model`` returning logits (no softmax);
            called under the strategy's scope.
        train_dataset: ``(input_context, start_step) -> tf.data.Dataset`` of
            per-replica ``(images, labels)`` batches, starting at ``start_step``.
        evaluations: ``name -> (model -> {"loss": float, "error": float})``,
            e.g. ``{"test": ...}``; each writes to ``model_dir/<name>``.
        hparams: The run's configuration, logged and checked on resume.
    """

    build_model: Callable[[Any], keras.Model]
    train_dataset: Callable[[tf.distribute.InputContext, int], tf.data.Dataset]
    evaluations: dict[str, Callable[[keras.Model], dict]]
    hparams: dict


def check_config(model_dir: str, hparams: dict) -> None:
    """Refuses a ``model_dir`` that holds a run of another configuration."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return
    with open(path) as f:
        saved = json.load(f)
    differ = sorted(k for k in set(saved) | set(hparams)
                    if k not in RUNTIME_KEYS and saved.get(k) != _jsonable(hparams.get(k)))
    if differ:
        details = ", ".join(f"{k}: {saved.get(k)!r} there vs {hparams.get(k)!r} now" for k in differ)
        raise ConfigMismatchError(
            f"model_dir {model_dir!r} holds a run with a different configuration ({details}); "
            "use another --model_dir")


def _jsonable(value):
    return json.loads(json.dumps(value))


def _write_json_atomic(path: str, payload: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


@contextlib.contextmanager
def _stop_on_signals(flag: dict):
    """SIGINT/SIGTERM set ``flag['signal']``; the loop stops after the current step."""
    def handler(signum, frame):
        del frame
        flag["signal"] = signum
        logging.warning("Received %s: finishing the current step and writing a checkpoint.",
                        signal.Signals(signum).name)
    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # Not the main thread: leave signals alone.
        pass
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _format_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class _Summaries:
    """TensorBoard writers, one per split; no-ops on non-chief workers."""

    def __init__(self, model_dir: str, names, enabled: bool):
        self.writers = {n: tf.summary.create_file_writer(os.path.join(model_dir, n)) for n in names} if enabled else {}

    def scalars(self, split: str, step: int, values: dict) -> None:
        writer = self.writers.get(split)
        if writer is None:
            return
        with writer.as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(name, value)

    def flush(self) -> None:
        for writer in self.writers.values():
            writer.flush()


def _write_hparams(summaries: _Summaries, hparams: dict) -> None:
    writer = summaries.writers.get("train")
    if writer is None:
        return
    from tensorboard.plugins.hparams import api as hp
    flat = {k: (v if isinstance(v, (bool, int, float, str)) else json.dumps(v)) for k, v in hparams.items()}
    with writer.as_default():
        hp.hparams(flat)


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
    """
    loss_scaling = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    def step_fn(images, labels):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(images, training=True), tf.float32)
            per_example = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            decay = tf.add_n(model.losses) if model.losses else tf.constant(0.0)
            total = loss + tf.nn.scale_regularization_loss(tf.cast(decay, tf.float32))
            scaled = optimizer.scale_loss(total) if hasattr(optimizer, "scale_loss") else total
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        predicted = tf.argmax(logits, -1, output_type=tf.int32)
        wrong = tf.reduce_sum(tf.cast(predicted != tf.cast(labels, tf.int32), tf.float32))
        # A finite loss does not prove finite gradients: oneDNN's fused conv+BN+ReLU maps NaN
        # activations to 0 in the forward pass while their gradients are NaN. Loss scaling
        # skips non-finite float16 gradients itself, so only other optimizers are checked.
        bad_grads = (tf.constant(0.0) if loss_scaling
                     else tf.cast(~tf.math.is_finite(tf.linalg.global_norm(grads)), tf.float32))
        return loss, wrong, bad_grads

    replica_step = tf.function(step_fn, jit_compile=True) if jit_compile else step_fn

    @tf.function
    def train_step(iterator):
        loss, wrong, bad_grads = strategy.run(replica_step, args=next(iterator))
        loss = strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
        wrong = strategy.reduce(tf.distribute.ReduceOp.SUM, wrong, axis=None)
        bad_grads = strategy.reduce(tf.distribute.ReduceOp.SUM, bad_grads, axis=None)
        counters.step.assign_add(1)
        counters.sums.assign_add(tf.stack([loss * global_batch, wrong, float(global_batch)]))
        bad = (counters.first_bad < 0) & (~tf.math.is_finite(loss) | (bad_grads > 0))
        counters.first_bad.assign(tf.where(bad, counters.step, counters.first_bad))
        return loss, wrong

    return train_step


def make_optimizer(config: TrainConfig):
    """SGD with momentum on the paper's schedule (wrapped for loss scaling under float16)."""
    schedule = PaperSchedule(config.lr, config.lr_boundaries, config.lr_decay, config.warmup_lr, config.warmup_steps)
    optimizer = keras.optimizers.SGD(schedule, momentum=config.momentum)
    if config.mixed_precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer, schedule


def train(config: TrainConfig, task: Task, model_dir: str,
          strategy: tf.distribute.Strategy | None = None, stop_after: int | None = None) -> dict:
    """Trains ``task`` for ``config.train_steps`` in ``model_dir``, resuming if a checkpoint is there.

    ``stop_after`` ends this call early, with a checkpoint, once that global step
    is reached (to fit a time slot); rerunning continues from there. SIGINT and
    SIGTERM do the same after the current step.

    Returns:
        A dict with ``step``, ``train_loss``, ``train_error``, ``<eval>_loss``,
        ``<eval>_error`` at the final step, ``images_per_second``,
        ``wall_seconds``, ``interrupted`` (the signal number, or ``None``).

    Raises:
        ConfigMismatchError: ``model_dir`` holds a run of another configuration.
        NonFiniteLossError: the loss or the gradients became NaN/Inf (last good checkpoint kept).
    """
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ValueError(f"batch_size {config.batch_size} is not divisible by the {replicas} replicas")
    hparams = {**task.hparams, "replicas": replicas}
    check_config(model_dir, hparams)
    chief = distribute.is_chief(strategy)
    os.makedirs(model_dir, exist_ok=True)
    if chief and not os.path.exists(os.path.join(model_dir, CONFIG_FILE)):
        _write_json_atomic(os.path.join(model_dir, CONFIG_FILE), _jsonable(hparams))

    if config.mixed_precision == "bfloat16" and not tf.config.list_physical_devices("GPU"):
        warning = hardware.emulated_bfloat16_warning()
        if warning:
            logging.warning(warning)
    with strategy.scope():
        model = task.build_model(PRECISIONS[config.mixed_precision])
        optimizer, schedule = make_optimizer(config)
        optimizer.build(model.trainable_variables)
        best = tf.Variable(float("inf"), trainable=False, name="plateau_best")
        since_best = tf.Variable(0, dtype=tf.int64, trainable=False, name="plateau_wait")
        counters = StepCounters()
        global_step, sums, first_bad = counters.step, counters.sums, counters.first_bad
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=global_step,
                                         warmup_end=schedule.warmup_end, plateau_factor=schedule.plateau_factor,
                                         plateau_best=best, plateau_wait=since_best)
    ckpt_dir = os.path.join(model_dir, "checkpoints")
    if not chief:  # Non-chief workers must save too, but into a scratch folder.
        ckpt_dir = os.path.join(model_dir, "scratch", f"worker{strategy.cluster_resolver.task_id}")
    manager = tf.train.CheckpointManager(checkpoint, ckpt_dir, max_to_keep=config.keep_checkpoints)
    chief_manager = manager if chief else tf.train.CheckpointManager(
        checkpoint, os.path.join(model_dir, "checkpoints"), max_to_keep=config.keep_checkpoints)
    if chief_manager.latest_checkpoint:
        checkpoint.restore(chief_manager.latest_checkpoint).assert_existing_objects_matched()
        logging.info("Resumed from %s at step %d", chief_manager.latest_checkpoint, int(global_step.numpy()))
    start = int(global_step.numpy())

    dataset = strategy.distribute_datasets_from_function(lambda ctx: task.train_dataset(ctx, start))
    iterator = iter(dataset)
    global_batch = config.batch_size

    train_step = make_train_step(model, optimizer, strategy, global_batch, counters, config.jit_compile)

    @tf.function
    def weights_finite():
        return tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in model.trainable_variables])

    summaries = _Summaries(model_dir, ["train", *task.evaluations], chief)
    if start == 0:
        _write_hparams(summaries, hparams)
    stats: dict[str, Any] = {"interrupted": None}
    stop = {"signal": None}
    window: list[float] = []
    warming = config.warmup_lr is not None and start < int(schedule.warmup_end.numpy())
    t_start = time.time()
    t_log, step_log = time.time(), start
    images_per_second = float("nan")

    def finite_or_raise(step: int):
        """Never log on or checkpoint bad weights: stop, keeping the last good checkpoint."""
        bad = int(first_bad.numpy())
        if bad >= 0 or not bool(weights_finite()):
            summaries.flush()
            raise NonFiniteLossError(
                f"loss or gradients became NaN/Inf at step {bad if bad >= 0 else step}; stopped without saving, "
                f"the last good checkpoint ({chief_manager.latest_checkpoint or 'none'}) is kept")

    def evaluate(step: int) -> dict:
        distribute.sync_batch_norm_statistics(model, strategy)
        results = {}
        for name, fn in task.evaluations.items():
            metrics = fn(model)
            summaries.scalars(name, step, {"loss": metrics["loss"], "error": 100.0 * metrics["error"]})
            results.update({f"{name}_loss": metrics["loss"], f"{name}_error": 100.0 * metrics["error"]})
        logging.info("step %d  %s", step, "  ".join(f"{k} {v:.4g}" for k, v in results.items()))
        return results

    def save(step: int) -> None:
        finite_or_raise(step)
        distribute.sync_batch_norm_statistics(model, strategy)
        with _reporting_write_errors(f"the checkpoint of step {step} in {ckpt_dir}", chief_manager, ckpt_dir, step):
            manager.save(checkpoint_number=step)
            summaries.flush()

    trace_graph = chief and start == 0
    end = config.train_steps if stop_after is None else min(config.train_steps, stop_after)
    with _stop_on_signals(stop), recursion_limit_for(len(model.layers) // 6):
        step = start
        while step < end:
            if trace_graph:
                tf.summary.trace_on(graph=True)
            loss, wrong = train_step(iterator)
            step += 1
            if trace_graph:
                with summaries.writers["train"].as_default():
                    tf.summary.trace_export("train_step", step=step)
                trace_graph = False
            if warming:  # Section 4.2: 0.01 until the training error is below 80%.
                window = (window + [float(wrong) / global_batch])[-config.warmup_window:]
                finite_or_raise(step)
                if len(window) == config.warmup_window and sum(window) / len(window) < config.warmup_error:
                    schedule.end_warmup(step)
                    logging.info("step %d: training error %.1f%% < %.0f%%, warm-up over, lr back to %g",
                                 step, 100 * sum(window) / len(window), 100 * config.warmup_error, config.lr)
                warming = step < int(schedule.warmup_end.numpy())
            last = step == end
            if step % config.log_every == 0 or last or stop["signal"]:
                finite_or_raise(step)
                loss_sum, wrong_sum, count = (float(v) for v in sums.read_value())
                sums.assign(tf.zeros([3]))
                now = time.time()
                images_per_second = (step - step_log) * global_batch / max(now - t_log, 1e-9)
                t_log, step_log = now, step
                lr = float(schedule(step - 1))
                stats.update(train_loss=loss_sum / count, train_error=100.0 * wrong_sum / count)
                scalars = {"loss": stats["train_loss"], "error": stats["train_error"],
                           "learning_rate": lr, "images_per_second": images_per_second}
                if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):  # float16: overflow halves it.
                    scalars["loss_scale"] = stats["loss_scale"] = float(optimizer.dynamic_scale.numpy())
                summaries.scalars("train", step, scalars)
                eta = (config.train_steps - step) * global_batch / images_per_second
                logging.info("step %d/%d  loss %.4f  error %.2f%%  lr %.4g  %.0f img/s  ETA %s",
                             step, config.train_steps, stats["train_loss"], stats["train_error"], lr,
                             images_per_second, _format_eta(eta))
            if step % config.eval_every == 0 or step == config.train_steps:
                results = evaluate(step)
                stats.update(results)
                if config.plateau_patience:
                    _plateau(schedule, best, since_best, results[f"{config.plateau_metric}_error"],
                             config.plateau_patience, step)
            if step % config.checkpoint_every == 0 or last or stop["signal"]:
                save(step)
            if stop["signal"]:
                stats["interrupted"] = stop["signal"]
                break
    summaries.flush()
    stats.update(step=step, images_per_second=images_per_second, wall_seconds=time.time() - t_start,
                 complete=step >= config.train_steps)
    if stats["complete"]:
        if chief:
            with _reporting_write_errors(f"the final model in {model_dir}", chief_manager):
                model.save(os.path.join(model_dir, "model.keras"))
                _write_json_atomic(os.path.join(model_dir, STATS_FILE), _jsonable(stats))
    if not chief and tf.io.gfile.exists(ckpt_dir):
        tf.io.gfile.rmtree(ckpt_dir)
    return stats


@contextlib.contextmanager
def _reporting_write_errors(what: str, manager: tf.train.CheckpointManager, ckpt_dir: str | None = None,
                            step: int | None = None):
    """Turns a failed write (full disk, quota, permissions) into ``CheckpointWriteError``
    naming the checkpoint that is kept, after removing this write's partial files."""
    try:
        yield
    except (tf.errors.OpError, OSError) as e:
        if ckpt_dir is not None:  # The shards of an unfinished write: never picked, but they hold space.
            for partial in tf.io.gfile.glob(os.path.join(ckpt_dir, f"ckpt-{step}_temp*")):
                tf.io.gfile.rmtree(partial)
        reason = (getattr(e, "message", None) or str(e)).strip().splitlines()[0]
        raise CheckpointWriteError(
            f"could not write {what} ({reason}); the last complete checkpoint "
            f"({manager.latest_checkpoint or 'none'}) is kept: free space, then rerun the same command to resume"
        ) from e


def _plateau(schedule, best, since_best, error: float, patience: int, step: int) -> None:
    """Section 3.4: divide the rate by 10 when the monitored error stops improving."""
    if error < float(best.numpy()) - 1e-3:
        best.assign(error)
        since_best.assign(0)
        return
    since_best.assign_add(1)
    if int(since_best.numpy()) >= patience:
        schedule.decay_on_plateau()
        since_best.assign(0)
        logging.info("step %d: error plateaued for %d evaluations; lr factor now %g",
                     step, patience, float(schedule.plateau_factor.numpy()))
