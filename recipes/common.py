"""What every recipe shares: process set-up, and bad input turned into one line and exit status 2."""

from __future__ import annotations

import os
import sys

from absl import flags

from keras_resnet import cli

flags.DEFINE_string("model_dir", None, "Where checkpoints, TensorBoard logs and the final model go "
                    "(default: runs/<dataset>/<net>-seed<seed>).")
flags.DEFINE_string("data_dir", None, "TFDS data directory (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).")
flags.DEFINE_integer("seed", 0, "Seeds weights, data order and augmentation.", lower_bound=0)
flags.DEFINE_bool("deterministic", False, "Enable TF op determinism (bit-identical reruns on CPU).")
flags.DEFINE_enum("mixed_precision", "none", ["none", "float16", "bfloat16", "auto"],
                  "float16 (GPUs, with loss scaling) or bfloat16; variables, BN and logits stay float32. "
                  "auto: what the hardware computes natively (bfloat16 on GPUs of compute capability 8.0+ "
                  "and CPUs with AVX512-BF16/AMX, float16 on older GPUs, else none); logged and recorded.")
flags.DEFINE_integer("num_gpus", None, "GPUs to use with MirroredStrategy (default: all visible).", lower_bound=0)
flags.DEFINE_integer("cpu_replicas", 0, "Split the CPU into this many logical devices under "
                     "MirroredStrategy (for testing multi-replica runs without GPUs).", lower_bound=0)
flags.DEFINE_enum("weight_decay_on", None, ["kernels", "all"],
                  "What the 1e-4 weight decay applies to: conv and fc kernels only (Keras and TF Model Garden) or "
                  "all parameters, BN gammas and betas and the fc bias too (Caffe and fb.resnet.torch). The paper "
                  "does not say. Default: the recipe's, CIFAR-10 all (measured: ResNet-56 ends 1.25 points lower, "
                  "docs/results/table6-64k), ImageNet kernels (not yet measured there).")
flags.DEFINE_bool("tf32", False, "Let Ampere and newer GPUs compute float32 matmuls and convolutions in TensorFloat-32 "
                  "(TF's own default, 10-bit mantissas: not the paper's float32). Off: float32 means float32; "
                  "recorded in config.json.")
flags.DEFINE_bool("jit_compile", False, "Compile the train step with XLA (measured 2.5x slower on CPU; try on GPUs).")
flags.DEFINE_integer("log_every", 100, "Steps between progress lines and training scalars.", lower_bound=1)
flags.DEFINE_integer("eval_every", None, "Steps between evaluations (default: the recipe's, CIFAR-10 2000, "
                     "ImageNet 5000); the ImageNet plateau rule counts iterations, not evaluations.", lower_bound=1)
flags.DEFINE_integer("checkpoint_every", 1000, "Steps between checkpoints.", lower_bound=1)
flags.DEFINE_integer("stop_after", None, "Stop with a checkpoint at this step (to fit a time slot); "
                     "rerunning without it resumes.", lower_bound=1)

FLAGS = flags.FLAGS


def define_positive_float(name: str, default: float, help_text: str) -> flags.FlagHolder:
    """A float flag refused at parsing (one line, exit status 2) unless positive and finite."""
    import math
    holder = flags.DEFINE_float(name, default, help_text)
    flags.register_validator(name, lambda v: v is not None and v > 0 and math.isfinite(v),
                             message="must be a positive number")
    return holder


class UsageError(ValueError):
    """Bad input: reported as one line on stderr with exit status 2."""


run = cli.run


def weight_decay_on() -> dict:
    """``--weight_decay_on`` as experiment keyword arguments: none when the flag is not given, so that
    the experiment's own default applies (``tasks.CifarExperiment``, ``tasks.ImagenetExperiment``)."""
    return {"weight_decay_on": FLAGS.weight_decay_on} if FLAGS.weight_decay_on else {}


def resolved_precision() -> str:
    """``--mixed_precision``, with ``auto`` replaced by the native precision of the devices the run trains
    on (logged): the first GPU's, or the CPU's with ``--num_gpus=0``, ``--cpu_replicas`` or no GPU."""
    if FLAGS.mixed_precision != "auto":
        return FLAGS.mixed_precision
    from absl import logging

    from keras_resnet import hardware

    precision, device = hardware.training_precision(FLAGS.num_gpus, FLAGS.cpu_replicas)
    logging.info("--mixed_precision=auto: %s on %s", precision if precision != "none" else "float32", device)
    return precision


def runtime_settings() -> dict:
    """The shared flags that go into every recipe's ``TrainConfig``."""
    settings = dict(seed=FLAGS.seed, mixed_precision=resolved_precision(), jit_compile=FLAGS.jit_compile,
                    log_every=FLAGS.log_every, checkpoint_every=FLAGS.checkpoint_every)
    if FLAGS.eval_every is not None:  # Otherwise the recipe's own default.
        settings["eval_every"] = FLAGS.eval_every
    return settings


def check_model_dir(path: str) -> None:
    """A ``model_dir`` must be a directory or creatable as one; nothing is created here."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"--model_dir={path} exists and is not a directory")
    parent = os.path.abspath(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise UsageError(f"--model_dir={path} cannot be created: {parent} is not a writable directory")


def planned_replicas() -> int:
    """How many replicas ``setup_runtime`` will train on, before any strategy exists."""
    if FLAGS.cpu_replicas > 1:
        return FLAGS.cpu_replicas
    from keras_resnet.distribute import planned_replicas as replicas_for
    return replicas_for(FLAGS.num_gpus)


def setup_runtime(batch_size: int):
    """Process-wide settings that library code never touches: devices, TF32, seeds, determinism.

    Checks that ``batch_size`` divides over the replicas before anything is
    created, and returns the ``tf.distribute`` strategy to train under.
    """
    import keras
    import tensorflow as tf

    from keras_resnet.distribute import make_strategy

    if FLAGS.cpu_replicas > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * FLAGS.cpu_replicas)
    replicas = planned_replicas()
    if batch_size % replicas:
        raise UsageError(f"batch_size {batch_size} is not divisible by the {replicas} replicas")
    tf.config.experimental.enable_tensor_float_32_execution(FLAGS.tf32)
    keras.utils.set_random_seed(FLAGS.seed)
    if FLAGS.deterministic:
        tf.config.experimental.enable_op_determinism()
    if FLAGS.cpu_replicas > 1:
        return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(FLAGS.cpu_replicas)])
    return make_strategy(FLAGS.num_gpus)


def command_line(argv) -> str:
    """The command that reproduces this run, for config.json and the report."""
    import shlex
    return "python -m " + " ".join(shlex.quote(a) for a in [sys.modules["__main__"].__spec__.name, *argv[1:]])


def report(stats: dict, model_dir: str) -> None:
    """Final line; an interrupted run exits 128 + signal, saying how to resume."""
    if stats.get("interrupted"):
        print(f"Interrupted at step {stats['step']}; checkpoint written to {model_dir}/checkpoints. "
              "Rerun the same command to resume.", file=sys.stderr)
        sys.exit(128 + int(stats["interrupted"]))
    if not stats.get("complete"):
        print(f"Stopped at step {stats['step']} (--stop_after); rerun without it to continue.")
        return
    shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in stats.items()
             if k not in ("interrupted", "complete")}
    print(f"Finished {model_dir}: {shown}")


