"""Milliseconds of one 3x3 convolution's forward, input-gradient and filter-gradient kernels,
float32 against bfloat16: where mixed-precision training time goes on a CPU.

    python -m tools.perf.benchmark_conv [--batch_size=128] [--repeats=10] [--out=FILE]

Shapes are the three stages of the CIFAR ResNets (32x32x16, 16x16x32, 8x8x64), stride 1.
Each kernel is a ``tf.function`` over ``tf.raw_ops``, timed as the median of ``--repeats``
calls after one untimed call. The header names the CPU and its vector extensions: bfloat16 is
native only with avx512_bf16 or amx_bf16.
"""

from __future__ import annotations

import statistics
import time

from absl import flags

from keras_resnet import cli

_BATCH = flags.DEFINE_integer("batch_size", 128, "Batch of every convolution.")
_REPEATS = flags.DEFINE_integer("repeats", 10, "Timed calls per kernel (median reported).")
_OUT = flags.DEFINE_string("out", None, "Write the results as JSON here.")

SHAPES = ((32, 16), (16, 32), (8, 64))  # (height = width, channels) of the CIFAR stages.


def measure(batch: int, size: int, channels: int, dtype: str, repeats: int) -> dict:
    import tensorflow as tf

    rng = tf.random.Generator.from_seed(0)
    x = tf.cast(rng.normal([batch, size, size, channels]), dtype)
    w = tf.cast(rng.normal([3, 3, channels, channels]), dtype)
    dy = tf.cast(rng.normal([batch, size, size, channels]), dtype)
    strides = [1, 1, 1, 1]
    kernels = {
        "forward": tf.function(lambda: tf.raw_ops.Conv2D(input=x, filter=w, strides=strides, padding="SAME")),
        "input_gradient": tf.function(lambda: tf.raw_ops.Conv2DBackpropInput(
            input_sizes=tf.shape(x), filter=w, out_backprop=dy, strides=strides, padding="SAME")),
        "filter_gradient": tf.function(lambda: tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=tf.shape(w), out_backprop=dy, strides=strides, padding="SAME")),
    }
    result = {"dtype": dtype, "batch_size": batch, "size": size, "channels": channels}
    for name, kernel in kernels.items():
        kernel().numpy()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            kernel().numpy()
            times.append(time.perf_counter() - start)
        result[f"{name}_ms"] = 1e3 * statistics.median(times)
    return result


def table(results: list[dict]) -> str:
    rows = ["| input | dtype | forward ms | input gradient ms | filter gradient ms |",
            "| --- | --- | ---: | ---: | ---: |"]
    for r in results:
        rows.append(f"| {r['batch_size']}x{r['size']}x{r['size']}x{r['channels']} | {r['dtype']} | "
                    f"{r['forward_ms']:.1f} | {r['input_gradient_ms']:.1f} | {r['filter_gradient_ms']:.1f} |")
    return "\n".join(rows)


def main(argv):
    del argv
    import os

    from keras_resnet.hardware import cpu_description
    if _BATCH.value < 1 or _REPEATS.value < 1:
        raise ValueError(f"--batch_size and --repeats must be positive, got {_BATCH.value} and {_REPEATS.value}")
    results = [measure(_BATCH.value, size, channels, dtype, _REPEATS.value)
               for size, channels in SHAPES for dtype in ("float32", "bfloat16")]
    print(f"{cpu_description()}, TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS')}")
    print(table(results))
    if _OUT.value:
        from keras_resnet.benchmarking import write_record
        write_record(_OUT.value, "tools.perf.benchmark_conv", results)


if __name__ == "__main__":
    cli.run(main)
