"""Training and inference throughput of one net, through the recipes' own train step.

``measure`` is meant to run in a fresh process per configuration (``tools.perf.benchmark`` does
that), so that the peak host memory it reports belongs to that configuration alone.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from keras_resnet.flops import count_flops
from keras_resnet.hardware import cpu_description
from keras_resnet.models import cifar_resnet, imagenet_resnet, recursion_limit_for
from keras_resnet.run_config import PRECISIONS, TrainConfig
from keras_resnet.train_step import StepCounters, make_optimizer, make_train_step

MODELS = ("cifar20", "cifar56", "cifar110", "cifar1202", "imagenet50", "keras_resnet50")
# Dense peak TFLOP/s of known accelerators (vendor figures): float32 (TF32 off) and 16-bit.
PEAK_TFLOPS = {
    "H100": {"float32": 67.0, "bfloat16": 989.0, "float16": 989.0},
    "H200": {"float32": 67.0, "bfloat16": 989.0, "float16": 989.0},
    "A100": {"float32": 19.5, "bfloat16": 312.0, "float16": 312.0},
    "V100": {"float32": 15.7, "bfloat16": 0.0, "float16": 125.0},
}


def build(name: str, precision: str, image_size: int | None = None,
          fused_batch_norm: bool = True, bn_group_size: int | None = None) -> keras.Model:
    """The net ``name`` returning logits, under the dtype policy of ``precision``
    (``bn_group_size``: ghost BN groups, ours only)."""
    policy = PRECISIONS[precision]
    if name.startswith("cifar"):
        size = image_size or 32
        return cifar_resnet(int(name[5:]), classifier_activation=None, dtype=policy, input_shape=(size, size, 3),
                            fused_batch_norm=fused_batch_norm, bn_group_size=bn_group_size)
    size = image_size or 224
    if name == "imagenet50":
        return imagenet_resnet(50, classifier_activation=None, dtype=policy, input_shape=(size, size, 3),
                               fused_batch_norm=fused_batch_norm, bn_group_size=bn_group_size)
    if name == "keras_resnet50":
        # keras.applications takes no dtype argument: the process-wide policy is the only way.
        keras.mixed_precision.set_global_policy(policy)
        return keras.applications.ResNet50(weights=None, classifier_activation=None, input_shape=(size, size, 3))
    raise ValueError(f"model must be one of {', '.join(MODELS)}, got {name!r}")


def _device_peak(precision: str, peak_tflops: float | None) -> tuple[str, float | None]:
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return cpu_description(), peak_tflops
    name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    if peak_tflops:
        return name, peak_tflops
    for key, peaks in PEAK_TFLOPS.items():
        if key in name:
            return name, peaks["float32" if precision == "none" else precision] or None
    return name, None


def matmul_tflops(precision: str = "none", size: int = 2048, repeats: int = 30) -> dict:
    """The machine's attainable dense-matmul rate: median TFLOP/s of ``size`` x ``size`` products.

    ``precision`` ``"none"`` multiplies float32 matrices, ``"bfloat16"``/``"float16"`` matrices of
    that type (what mixed precision's convolutions run in). This is the reference that CPU
    training rates are compared with ("of peak"): no vendor figure exists for a share of a CPU.
    """
    dtype = {"none": tf.float32, "bfloat16": tf.bfloat16, "float16": tf.float16}[precision]
    rng = np.random.default_rng(0)
    a, b = (tf.constant(rng.normal(size=(size, size)), dtype) for _ in range(2))
    product = tf.function(lambda: tf.reduce_sum(tf.cast(tf.linalg.matmul(a, b)[:1, :1], tf.float32)))
    for _ in range(2):
        float(product())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        float(product())
        times.append(time.perf_counter() - start)
    return {"model": "matmul", "precision": precision, "size": size, "device": _device_peak(precision, None)[0],
            "tflops": 2 * size**3 / statistics.median(times) / 1e12}


def synthetic_train_step(model: keras.Model, precision: str, batch_size: int,
                         jit_compile: bool = False) -> tuple[Callable[[], tuple], tf.Tensor]:
    """The recipes' train step on one fixed synthetic batch, and that batch's images.

    ``step()`` runs one step of ``train_step.make_train_step`` (SGD with momentum, the
    model's weight decay, the precision's loss scaling) and returns its outputs.
    """
    rng = np.random.default_rng(0)
    images = tf.constant(rng.normal(size=(batch_size, *model.input_shape[1:])).astype(np.float32))
    labels = tf.constant(rng.integers(0, model.output_shape[-1], batch_size).astype(np.int32))
    config = TrainConfig(batch_size=batch_size, mixed_precision=precision, jit_compile=jit_compile)
    optimizer, _ = make_optimizer(config)
    optimizer.build(model.trainable_variables)
    step = make_train_step(model, optimizer, tf.distribute.get_strategy(), batch_size, StepCounters(),
                           jit_compile)
    iterator = iter(tf.data.Dataset.from_tensors((images, labels)).repeat())
    return (lambda: step(iterator)), images


def measure(name: str, precision: str = "none", batch_size: int = 128, jit_compile: bool = False,
            steps: int = 10, warmup: int = 3, image_size: int | None = None,
            peak_tflops: float | None = None, bn_group_size: int | None = None,
            fused_batch_norm: bool = True) -> dict:
    """Median training and inference images/s, peak memory and achieved FLOP/s of one net
    (``fused_batch_norm=False``: our nets with stock Keras BN, to measure what the fused one gains)."""
    model = build(name, precision, image_size, fused_batch_norm=fused_batch_norm, bn_group_size=bn_group_size)
    step, images = synthetic_train_step(model, precision, batch_size, jit_compile)

    def timed(fn, n):
        times = []
        for _ in range(n):
            start = time.perf_counter()
            float(tf.reduce_sum(fn()[0]))  # Wait for the device.
            times.append(time.perf_counter() - start)
        return times

    with recursion_limit_for(len(model.layers) // 6):  # Tracing ResNet-1202 recurses deeply.
        timed(step, warmup)
        train_times = timed(step, steps)
        infer = tf.function(lambda x: model(x, training=False), jit_compile=jit_compile)
        timed(lambda: [infer(images)], warmup)
        infer_times = timed(lambda: [infer(images)], steps)

    train_ips = batch_size / statistics.median(train_times)
    flops_per_image = 2 * 3 * count_flops(model)  # Multiply-add = 2 FLOPs; backward ~ 2x forward.
    device, peak = _device_peak(precision, peak_tflops)
    achieved = train_ips * flops_per_image / 1e12
    gpus = tf.config.list_physical_devices("GPU")
    gpu_peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20 if gpus else None
    return {
        "model": name, "precision": precision, "batch_size": batch_size, "jit_compile": jit_compile,
        "bn_group_size": bn_group_size, "fused_batch_norm": fused_batch_norm and name != "keras_resnet50",
        "device": device, "train_images_per_second": train_ips,
        "inference_images_per_second": batch_size / statistics.median(infer_times),
        "train_step_seconds_median": statistics.median(train_times), "timed_steps": steps,
        "train_images_per_second_mean": batch_size * len(train_times) / sum(train_times),
        "peak_host_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mib": gpu_peak, "achieved_tflops": achieved,
        "fraction_of_peak": achieved / peak if peak else None,
    }


def measure_recipe(depth: int, data_dir: str, precision: str = "none", batch_size: int = 128,
                   steps: int = 20, bn_group_size: int | None = 64) -> dict:
    """The CIFAR recipe's loop against the bare train step: what logging and input cost.

    Runs ``training.train`` (the real CIFAR-10 input pipeline from ``data_dir``, step
    counters, TensorBoard scalars, the final checkpoint) for ``steps`` warm-up steps and
    ``steps`` timed steps, and takes its images/s over the timed log window; then the bare
    step of ``measure`` on one synthetic batch (the same BN groups), mean over as many steps. Evaluation is
    left out of both (its cost is one pass over the test set per ``eval_every`` steps).
    """
    import tempfile

    from keras_resnet import tasks, training

    experiment = tasks.CifarExperiment(depth=depth, bn_group_size=bn_group_size)
    config = tasks.cifar_train_config(depth, 2 * steps, batch_size=batch_size, mixed_precision=precision,
                                      log_every=steps, eval_every=2 * steps, checkpoint_every=2 * steps)
    task = tasks.cifar10_task(experiment, config, data_dir)
    task.evaluations = {}
    with tempfile.TemporaryDirectory() as scratch:
        stats = training.train(config, task, scratch)
    keras.backend.clear_session()
    bare = measure(f"cifar{depth}", precision, batch_size, steps=steps, warmup=3, bn_group_size=bn_group_size)
    recipe_ips, bare_ips = stats["images_per_second"], bare["train_images_per_second_mean"]
    return {"model": f"cifar{depth}", "precision": precision, "batch_size": batch_size,
            "bn_group_size": bn_group_size, "timed_steps": steps,
            "recipe_images_per_second": recipe_ips, "bare_images_per_second": bare_ips,
            "overhead": 1.0 - recipe_ips / bare_ips}


_MEDIANS = ("train_images_per_second", "inference_images_per_second", "train_step_seconds_median",
            "train_images_per_second_mean", "achieved_tflops", "fraction_of_peak")
_MAXIMA = ("peak_host_rss_mib", "peak_gpu_mib")
_RANGES = ("train_images_per_second", "fraction_of_peak")


def over_rounds(results: list[dict]) -> list[dict]:
    """One row per configuration: medians of the speeds over its rounds, maxima of the memory.

    Rows of more than one round also carry ``<key>_range``, the (lowest, highest) round, for the
    training speed and the share of peak.
    """
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        key = (r["model"], r["precision"], r["batch_size"], r["jit_compile"], r.get("bn_group_size"),
               r.get("fused_batch_norm"))
        groups.setdefault(key, []).append(r)
    rows = []
    for runs in groups.values():
        row = dict(runs[0], rounds=len(runs))
        row.pop("round", None)
        for key in _MEDIANS + _MAXIMA:
            values = [r[key] for r in runs if r[key] is not None]
            if values:
                row[key] = statistics.median(values) if key in _MEDIANS else max(values)
                if key in _RANGES and len(values) > 1:
                    row[f"{key}_range"] = (min(values), max(values))
        rows.append(row)
    return rows


def comparison_table(ours: list[dict], theirs: list[dict], peer: str) -> str:
    """One row per alternating round, then the medians over rounds and ours / ``peer``."""
    rows = [f"| round | ours img/s | {peer} img/s | ours / {peer} |", "| ---: | ---: | ---: | ---: |"]
    for i, (a, b) in enumerate(zip(ours, theirs), 1):
        x, y = a["train_images_per_second"], b["train_images_per_second"]
        rows.append(f"| {i} | {x:.1f} | {y:.1f} | {x / y:.2f}x |")
    x = statistics.median(r["train_images_per_second"] for r in ours)
    y = statistics.median(r["train_images_per_second"] for r in theirs)
    rows.append(f"| median | {x:.1f} | {y:.1f} | {x / y:.2f}x |")
    return "\n".join(rows)


def write_record(path: str, tool: str, results) -> None:
    """Writes a benchmark's results as JSON with what a reader needs to trust or redo them: the
    command (``python -m <tool>`` and its flags), the UTC date, the machine (CPU model and ISA
    flags from ``/proc/cpuinfo``, core count, oneDNN setting, TF and Keras versions)."""
    record = {
        "command": " ".join(["python", "-m", tool, *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpu": cpu_description(), "cpu_count": os.cpu_count(),
                    "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
                    "tensorflow": tf.__version__, "keras": keras.__version__},
        "results": results,
    }
    with open(path, "w") as f:
        json.dump(record, f, indent=2)
