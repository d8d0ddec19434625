"""The training loop: resume, steps, warm-up and plateau rules, evaluation, checkpoints, TensorBoard.

``train()`` runs one experiment described by data (``TrainConfig`` and the
``Task`` a recipe builds, both in ``keras_resnet.run_config``) in ``model_dir`` and
returns a stats dict. It is the same loop on one CPU, several GPUs (``MirroredStrategy``)
and several machines (``MultiWorkerMirroredStrategy``): a custom step under ``strategy.run``
(``keras_resnet.train_step``), since ``Model.fit`` fails under multi-worker training in
Keras 3 (keras-team/keras#20585).

What ``model_dir`` holds:

* ``config.json``: the run's configuration; a rerun with another one is refused.
* ``checkpoints/``: ``tf.train.Checkpoint`` of model, optimizer, step and
  schedule state, every ``checkpoint_every`` steps and at the end. TF writes
  a checkpoint completely before it records it, so a kill mid-write leaves the
  previous one as the latest. Rerunning the same command resumes from the newest
  one that reads cleanly (``keras_resnet.checkpoints``: damaged ones are set aside).
* ``train/``, ``test/`` (and ``validation/``): TensorBoard event files. Scalars
  ``loss`` and ``error`` (percent) in each; ``learning_rate`` and
  ``images_per_second`` in ``train/``; the step graph. The run's row of the HPARAMS tab
  (``keras_resnet.tensorboard_hparams``) is an event file at ``model_dir`` itself, whose
  metrics are those scalars.
* ``model.keras``: the final model, BN statistics averaged over replicas, and whatever
  the task exports beside it (the CIFAR-10 task: ``classifier.keras``, raw RGB in,
  probabilities out).
* ``provenance.json``: what produced the run, one segment per start or resume: code version and
  commit, library versions, machine, strategy, precision, data (``keras_resnet.provenance``); also
  a text summary in ``train/``. Another worker of a multi-worker job writes ``provenance-worker<N>.json``.
* ``stats.json``: the final numbers (written last; its presence marks a finished run).

How a run stops and stays resumable (SIGINT/SIGTERM, NaN, a lost worker, a failed write) is in
``keras_resnet.run_errors``; its errors are importable from here too.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any, NamedTuple

import keras
import tensorflow as tf
from absl import logging

from keras_resnet import checkpoints as checkpoints_lib
from keras_resnet import distribute, hardware, provenance, run_config, run_errors, tensorboard_hparams
from keras_resnet.models import recursion_limit_for
from keras_resnet.run_config import PRECISIONS, Task, TrainConfig
from keras_resnet.run_errors import CheckpointWriteError, NonFiniteLossError, WorkerLostError  # Raised by train().
from keras_resnet.schedules import PaperSchedule, PlateauDecay, WarmUp
from keras_resnet.train_step import StepCounters, make_optimizer, make_train_step

__all__ = ["CheckpointWriteError", "NonFiniteLossError", "STATS_FILE", "WorkerLostError", "train"]

STATS_FILE = "stats.json"


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


@dataclasses.dataclass
class _RunState:
    """What a run trains and checkpoints, created under the strategy's scope."""

    model: keras.Model
    optimizer: Any
    schedule: PaperSchedule
    counters: StepCounters
    warmup: WarmUp | None
    plateau: PlateauDecay | None
    checkpoint: tf.train.Checkpoint


def _build_run_state(config: TrainConfig, task: Task, strategy: tf.distribute.Strategy) -> _RunState:
    """Model, optimizer, schedule and its rules, counters, and the checkpoint holding them all.

    The warm-up and plateau state is checkpointed only when the rule is on, so that runs
    written before a rule existed keep resuming."""
    with strategy.scope():
        model = task.build_model(PRECISIONS[config.mixed_precision])
        optimizer, schedule = make_optimizer(config)
        optimizer.build(model.trainable_variables)
        counters = StepCounters()
        warmup = WarmUp(schedule, config.warmup_error, config.warmup_window) if config.warmup_lr else None
        plateau = None
        if config.plateau_patience_steps:
            plateau = PlateauDecay(schedule, config.plateau_patience_steps, config.plateau_threshold,
                                   config.plateau_max_drops)
        rules = {name: rule for name, rule in (("warmup", warmup), ("plateau", plateau)) if rule}
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=counters.step,
                                         warmup_end=schedule.warmup_end, plateau_factor=schedule.plateau_factor,
                                         **rules)
    return _RunState(model, optimizer, schedule, counters, warmup, plateau, checkpoint)


class _Checkpoints(NamedTuple):
    """This worker's checkpoint manager, the chief's, and this worker's folder."""

    own: tf.train.CheckpointManager
    chief: tf.train.CheckpointManager
    directory: str


def _checkpoint_managers(checkpoint: tf.train.Checkpoint, model_dir: str, strategy: tf.distribute.Strategy,
                         chief: bool, keep: int) -> _Checkpoints:
    """Non-chief workers must save too, but into a scratch folder; every worker restores the
    chief's checkpoints."""
    chief_dir = os.path.join(model_dir, "checkpoints")
    ckpt_dir = chief_dir if chief else os.path.join(model_dir, "scratch", f"worker{strategy.cluster_resolver.task_id}")
    manager = tf.train.CheckpointManager(checkpoint, ckpt_dir, max_to_keep=keep)
    chief_manager = manager if chief else tf.train.CheckpointManager(checkpoint, chief_dir, max_to_keep=keep)
    return _Checkpoints(manager, chief_manager, ckpt_dir)


def train(config: TrainConfig, task: Task, model_dir: str,
          strategy: tf.distribute.Strategy | None = None, stop_after: int | None = None) -> dict:
    """Trains ``task`` for ``config.train_steps`` in ``model_dir``, resuming if a checkpoint is there.

    ``stop_after`` ends this call early, with a checkpoint, once that global step
    is reached (to fit a time slot); rerunning continues from there. SIGINT and
    SIGTERM do the same after the current step.

    Returns:
        A dict with ``step``, ``train_loss``, ``train_error``, ``<eval>_loss``,
        ``<eval>_error`` at the final step, ``images_per_second`` and ``wall_seconds`` of this
        call (for a resumed run, its last segment), ``run_wall_seconds`` and ``segments``: the
        whole run's wall-clock time summed over the segments in ``provenance.json`` (time between
        segments not counted) and how many there were, ``complete``, ``interrupted`` (the signal
        number, or ``None``).

    Raises:
        run_config.ConfigMismatchError: ``model_dir`` holds a run of another configuration.
        NonFiniteLossError: the loss or the gradients became NaN/Inf (last good checkpoint kept).
        CheckpointWriteError: a checkpoint or the final model could not be written (last one kept).
        WorkerLostError: another worker of a multi-worker job stopped (last checkpoint kept).
    """
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ValueError(f"batch_size {config.batch_size} is not divisible by the {replicas} replicas")
    hparams = {**task.hparams, "replicas": replicas}
    chief = distribute.is_chief(strategy)
    run_config.prepare_model_dir(model_dir, hparams, chief)
    _warn_if_bfloat16_is_emulated(config, strategy)

    state = _build_run_state(config, task, strategy)
    start = _restore_newest_readable(state, os.path.join(model_dir, "checkpoints"), chief)
    checkpoints = _checkpoint_managers(state.checkpoint, model_dir, strategy, chief, config.keep_checkpoints)
    finished = _finished_run_stats(model_dir, start, config.train_steps)
    if finished is not None:
        return finished
    loop = _TrainingLoop(config, task, strategy, state, checkpoints, model_dir, chief, start)
    if start == 0 and chief:
        tensorboard_hparams.write(model_dir, hparams)
    loop.record_provenance()
    loop.run(config.train_steps if stop_after is None else min(config.train_steps, stop_after))
    return loop.finish()


def _warn_if_bfloat16_is_emulated(config: TrainConfig, strategy: tf.distribute.Strategy) -> None:
    """On a CPU without bfloat16 instructions, whether or not the machine also has GPUs."""
    try:
        devices = strategy.extended.worker_devices
    except RuntimeError:  # The default strategy: TF places ops on a GPU if there is one.
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
    if config.mixed_precision == "bfloat16" and not any("GPU" in d.upper() for d in devices):
        warning = hardware.emulated_bfloat16_warning()
        if warning:
            logging.warning(warning)


def _restore_newest_readable(state: _RunState, chief_dir: str, chief: bool) -> int:
    """Restores the chief's newest checkpoint that reads cleanly, if any (``keras_resnet.checkpoints``:
    damaged newer ones are reported and set aside); returns the global step to start from."""
    restored = checkpoints_lib.resume(
        chief_dir, lambda path: state.checkpoint.restore(path).assert_existing_objects_matched(), chief)
    if restored:
        logging.info("Resumed from %s at step %d", restored, int(state.counters.step.numpy()))
    return int(state.counters.step.numpy())


def _finished_run_stats(model_dir: str, start: int, train_steps: int) -> dict | None:
    """The final numbers of a run that already finished in ``model_dir`` (nothing to redo), else None."""
    stats_path = os.path.join(model_dir, STATS_FILE)
    if start < train_steps or not tf.io.gfile.exists(stats_path):
        return None
    logging.info("%s is a finished run (step %d); its final numbers are in %s", model_dir, start, stats_path)
    with tf.io.gfile.GFile(stats_path) as f:
        return json.load(f)


class _TrainingLoop:
    """One call of ``train``: its steps and what happens between them (the warm-up rule, logging,
    evaluation, checkpoints), then the final model and numbers."""

    def __init__(self, config: TrainConfig, task: Task, strategy: tf.distribute.Strategy, state: _RunState,
                 checkpoints: _Checkpoints, model_dir: str, chief: bool, start: int):
        self.config, self.task, self.strategy, self.state = config, task, strategy, state
        self.checkpoints, self.model_dir, self.chief = checkpoints, model_dir, chief
        self.start = self.step = start
        dataset = strategy.distribute_datasets_from_function(lambda ctx: task.train_dataset(ctx, start))
        self.iterator = iter(dataset)
        self.train_step = make_train_step(state.model, state.optimizer, strategy, config.batch_size,
                                          state.counters, config.jit_compile)
        variables = state.model.trainable_variables
        self.weights_finite = tf.function(
            lambda: tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in variables]))
        self.summaries = _Summaries(model_dir, ["train", *task.evaluations], chief)
        self.stats: dict[str, Any] = {"interrupted": None}
        self.provenance: provenance.RunProvenance | None = None
        self.t_start = time.time()
        self.clock = {"time": time.time(), "step": start, "images_per_second": float("nan")}

    def run(self, end: int) -> None:
        """Steps to global step ``end``, or to the end of the step in which SIGINT/SIGTERM arrived."""
        config, state = self.config, self.state
        stop = {"signal": None}
        warming = state.warmup is not None and state.warmup.active(self.start)
        trace_graph = self.chief and self.start == 0
        with run_errors.stop_on_signals(stop), recursion_limit_for(len(state.model.layers) // 6), \
                run_errors.reporting_lost_workers(lambda: self.step, self.checkpoints.chief):
            while self.step < end:
                if trace_graph:
                    tf.summary.trace_on(graph=True)
                _, wrong = self.train_step(self.iterator)
                self.step += 1
                step = self.step
                if trace_graph:
                    with self.summaries.writers["train"].as_default():
                        tf.summary.trace_export("train_step", step=step)
                    trace_graph = False
                if warming:
                    warming = self.warm_up(step, float(wrong))
                last = step == end
                if step % config.log_every == 0 or last or stop["signal"]:
                    self.log(step)
                if step % config.eval_every == 0 or step == config.train_steps:
                    self.evaluate(step)
                if step % config.checkpoint_every == 0 or last or stop["signal"]:
                    self.save(step)
                if stop["signal"]:
                    self.stats["interrupted"] = stop["signal"]
                    break

    def record_provenance(self) -> None:
        """Appends this segment to the run's provenance (each worker its own file) and, on the chief,
        writes it as a TensorBoard text summary at the first step."""
        worker = None if self.chief else f"worker{self.strategy.cluster_resolver.task_id}"
        facts = provenance.collect(self.strategy, self.config.mixed_precision, self.config.jit_compile,
                                   self.task.data, self.task.hparams.get("command"))
        self.provenance = provenance.RunProvenance(
            os.path.join(self.model_dir, provenance.file_name(worker)), facts, self.start)
        writer = self.summaries.writers.get("train")
        if writer is not None:
            with writer.as_default(step=self.start):
                tf.summary.text("provenance", provenance.markdown(self.provenance.segment))
            writer.flush()

    def finish(self) -> dict:
        """The final numbers; when the run is complete, the chief writes the model, its export and
        stats.json. A non-chief worker removes its scratch checkpoints."""
        self.summaries.flush()
        wall = time.time() - self.t_start
        self.stats.update(step=self.step, images_per_second=self.clock["images_per_second"], wall_seconds=wall,
                          run_wall_seconds=self.provenance.run_seconds() if self.provenance else wall,
                          segments=len(self.provenance.record["segments"]) if self.provenance else 1,
                          complete=self.step >= self.config.train_steps)
        if self.stats["complete"] and self.chief:
            with run_errors.reporting_write_errors(f"the final model in {self.model_dir}", self.checkpoints.chief):
                self.state.model.save(os.path.join(self.model_dir, "model.keras"))
                if self.task.export:
                    self.task.export(self.state.model, self.model_dir)
                run_config.write_json_atomic(os.path.join(self.model_dir, STATS_FILE), run_config.jsonable(self.stats))
        if self.provenance is not None:
            self.provenance.update(self.step, finished=self.stats["complete"])
        if not self.chief and tf.io.gfile.exists(self.checkpoints.directory):
            tf.io.gfile.rmtree(self.checkpoints.directory)
        return self.stats

    def warm_up(self, step: int, wrong: float) -> bool:
        """Section 4.2: lr 0.01 until the training error is below 80 %. Returns whether it goes on."""
        config, warmup = self.config, self.state.warmup
        self.finite_or_raise(step)
        mean = warmup.update(step, wrong / config.batch_size)
        if mean is not None:
            logging.info("step %d: training error of the last %d iterations %.1f%% < %.0f%%: warm-up "
                         "over, lr back to %g", step, config.warmup_window, 100 * mean,
                         100 * config.warmup_error, config.lr)
        return warmup.active(step)

    def finite_or_raise(self, step: int) -> None:
        """Never log on or checkpoint bad weights: stop, keeping the last good checkpoint."""
        bad = int(self.state.counters.first_bad.numpy())
        if bad >= 0 or not bool(self.weights_finite()):
            self.summaries.flush()
            raise NonFiniteLossError(
                f"loss or gradients became NaN/Inf at step {bad if bad >= 0 else step}; stopped without saving, "
                f"the last good checkpoint ({self.checkpoints.chief.latest_checkpoint or 'none'}) is kept")

    def log(self, step: int) -> None:
        """Training loss, error, learning rate and speed since the last log: TensorBoard and the log."""
        self.finite_or_raise(step)
        config, state, stats, clock = self.config, self.state, self.stats, self.clock
        loss_sum, wrong_sum, count = (float(v) for v in state.counters.sums.read_value())
        state.counters.sums.assign(tf.zeros([3]))
        now = time.time()
        clock["images_per_second"] = (step - clock["step"]) * config.batch_size / max(now - clock["time"], 1e-9)
        clock.update(time=now, step=step)
        lr = float(state.schedule(step - 1))
        stats.update(train_loss=loss_sum / count, train_error=100.0 * wrong_sum / count)
        scalars = {"loss": stats["train_loss"], "error": stats["train_error"],
                   "learning_rate": lr, "images_per_second": clock["images_per_second"]}
        if isinstance(state.optimizer, keras.optimizers.LossScaleOptimizer):  # float16: overflow halves it.
            scalars["loss_scale"] = stats["loss_scale"] = float(state.optimizer.dynamic_scale.numpy())
        self.summaries.scalars("train", step, scalars)
        eta = (config.train_steps - step) * config.batch_size / clock["images_per_second"]
        logging.info("step %d/%d  loss %.4f  error %.2f%%  lr %.4g  %.0f img/s  ETA %s",
                     step, config.train_steps, stats["train_loss"], stats["train_error"], lr,
                     clock["images_per_second"], _format_eta(eta))

    def evaluate(self, step: int) -> None:
        """Every evaluation of the task (test error and loss, ...), then the plateau rule on its result."""
        config, state = self.config, self.state
        distribute.sync_batch_norm_statistics(state.model, self.strategy)
        results = {}
        for name, fn in self.task.evaluations.items():
            metrics = fn(state.model)  # "loss" and errors ("error", e.g. "top5_error") as fractions.
            values = {"loss": metrics["loss"],
                      **{k: 100.0 * v for k, v in metrics.items() if k == "error" or k.endswith("_error")}}
            self.summaries.scalars(name, step, values)
            results.update({f"{name}_{k}": v for k, v in values.items()})
        logging.info("step %d  %s", step, "  ".join(f"{k} {v:.4g}" for k, v in results.items()))
        self.stats.update(results)
        if state.plateau and state.plateau.update(step, results[f"{config.plateau_metric}_error"]):
            logging.info("step %d: %s error gained < %g in %d steps: lr divided by 10, now %g",
                         step, config.plateau_metric, config.plateau_threshold, config.plateau_patience_steps,
                         float(state.schedule(step)))

    def save(self, step: int) -> None:
        """A checkpoint of step ``step``, after checking the weights and syncing BN statistics."""
        self.finite_or_raise(step)
        distribute.sync_batch_norm_statistics(self.state.model, self.strategy)
        directory = self.checkpoints.directory
        with run_errors.reporting_write_errors(f"the checkpoint of step {step} in {directory}", self.checkpoints.chief,
                                     directory, step):
            self.checkpoints.own.save(checkpoint_number=step)
            self.summaries.flush()
        if self.provenance is not None:
            self.provenance.update(step)
