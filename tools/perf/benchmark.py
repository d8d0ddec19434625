"""Training/inference speed and memory of our nets beside keras.applications.ResNet50, in one run.

    python -m tools.perf.benchmark [--models=cifar20,cifar56,cifar110,imagenet50] \
        [--precision=none,bfloat16,float16] [--batch_size=128] [--imagenet_batch_size=16] \
        [--jit_compile=auto|on|off] [--rounds=1] [--bn_group_sizes=0,64] [--recipe_data_dir=DIR] [--out=bench.json]

Every configuration runs in a fresh process (so peak memory is its own), through the recipes'
own train step on the same synthetic batch. With ``imagenet50`` in the list,
``keras.applications.ResNet50`` runs right after it at the same batch and precision, and the
table gives the ratio. ``--rounds=N`` repeats the whole list N times, alternating, and the table
gives medians over rounds (the JSON keeps every round): on a shared machine one pair of runs
can differ by 20 %. ``--bn_group_sizes=0,64`` measures our nets with standard BN (0) and with
ghost BN over groups of 64 images (the CIFAR recipe's default), alternating.
``--jit_compile=auto`` uses XLA on GPUs only (it was 2.5x slower on CPU).

On CPUs, "of peak" is the training FLOP/s as a share of the machine's attainable dense-matmul rate
in the same precision, measured in every round right after its nets (``--matmul_size``), so that
a slower moment of a shared machine slows both; with several rounds the table gives the median
share and, in brackets, the lowest and highest round.

With ``--recipe_data_dir`` (a prepared CIFAR-10), the CIFAR recipe's own loop (real input
pipeline, TensorBoard logging, checkpoint) is timed against the bare step: the recipe overhead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from absl import flags

from keras_resnet import cli

_MODELS = flags.DEFINE_list("models", ["cifar20", "cifar56", "cifar110", "imagenet50"], "Nets to measure.")
_PRECISION = flags.DEFINE_list("precision", ["none", "bfloat16"], "none (float32), bfloat16, float16.")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Batch of the CIFAR nets.")
_IMAGENET_BATCH = flags.DEFINE_integer("imagenet_batch_size", 16, "Batch of the ImageNet nets.")
_JIT = flags.DEFINE_enum("jit_compile", "auto", ["auto", "on", "off"], "XLA for the train step.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps (median reported).")
_ROUNDS = flags.DEFINE_integer("rounds", 1, "Repeat the list this many times, alternating; medians over rounds.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps first.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Override the input size (tests use small images).")
_PEAK = flags.DEFINE_float("peak_tflops", None, "Device peak TFLOP/s, for devices not in the built-in table.")
_GROUPS = flags.DEFINE_list("bn_group_sizes", ["0"], "BN group sizes of our nets (0: the whole batch; "
                            "the CIFAR recipe trains with 64).")
_BN = flags.DEFINE_list("batch_norm", ["fused"], "BN kernel of our nets: fused (FusedBatchNormV3, the builders' "
                        "default) and/or keras (stock Keras BatchNormalization; standard BN only: it cannot normalise groups, so "
                        "grouped sizes are measured fused).")
_OUT = flags.DEFINE_string("out", None, "Write the results as JSON here.")
_RECIPE_DATA = flags.DEFINE_string("recipe_data_dir", None, "With a prepared CIFAR-10 here, also compare the "
                                   "CIFAR recipe's loop (input, logging) with the bare step.")
_SINGLE = flags.DEFINE_string("single", None, "Internal: measure one 'model:precision:batch:group[:fused|keras]' "
                              "and print JSON.")
_MATMUL = flags.DEFINE_integer("matmul_size", 2048, "Size of the square matmuls that measure a CPU's attainable "
                               "rate (the 'of peak' reference on CPUs).", lower_bound=1)


def _gpu() -> bool:
    import tensorflow as tf
    return bool(tf.config.list_physical_devices("GPU"))


def _jit() -> bool:
    if _JIT.value == "auto":
        return _gpu()
    return _JIT.value == "on"


def _one(spec: str) -> dict:
    """Runs ``spec`` in a fresh process and returns its measurement."""
    argv = [sys.executable, "-m", "tools.perf.benchmark", f"--single={spec}", f"--jit_compile={_JIT.value}",
            f"--steps={_STEPS.value}", f"--warmup={_WARMUP.value}"]
    argv += [f"--image_size={_IMAGE_SIZE.value}"] if _IMAGE_SIZE.value else []
    argv += [f"--peak_tflops={_PEAK.value}"] if _PEAK.value else []
    argv += [f"--recipe_data_dir={_RECIPE_DATA.value}"] if _RECIPE_DATA.value else []
    argv += [f"--matmul_size={_MATMUL.value}"]
    result = subprocess.run(argv, capture_output=True, text=True)
    lines = [l for l in result.stdout.splitlines() if l.startswith("{")]
    if result.returncode or not lines:
        raise RuntimeError(f"benchmark of {spec} failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(lines[-1])


def table(results: list[dict]) -> str:
    """Markdown, one row per configuration (``benchmarking.over_rounds`` rows)."""
    rows = ["| model | precision | batch | BN | BN group | XLA | train img/s | inference img/s | peak host MiB "
            "| peak GPU MiB | TFLOP/s | of peak | ours / keras.applications |",
            "| --- | --- | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    ours = {(r["precision"], r["batch_size"]): r for r in results
            if r["model"] == "imagenet50" and r.get("fused_batch_norm", True)}
    for r in results:
        ratio = ""
        if r["model"] == "keras_resnet50" and (r["precision"], r["batch_size"]) in ours:
            ratio = f"{ours[(r['precision'], r['batch_size'])]['train_images_per_second'] / r['train_images_per_second']:.2f}x"
        fmt = lambda v, f: "-" if v is None else format(v, f)

        def spread(key, f):  # "median (lowest-highest round)" when there were several rounds.
            low_high = r.get(f"{key}_range")
            text = fmt(r[key], f)
            return text + (f" ({format(low_high[0], f)}-{format(low_high[1], f)})" if low_high else "")
        group = r.get("bn_group_size") or "-"
        bn = "fused" if r.get("fused_batch_norm", True) else "Keras"
        rows.append(f"| {r['model']} | {r['precision']} | {r['batch_size']} | {bn} | {group} | "
                    f"{'on' if r['jit_compile'] else 'off'} | "
                    f"{spread('train_images_per_second', '.1f')} | {r['inference_images_per_second']:.1f} | "
                    f"{r['peak_host_rss_mib']:.0f} | {fmt(r['peak_gpu_mib'], '.0f')} | "
                    f"{r['achieved_tflops']:.3f} | {spread('fraction_of_peak', '.1%')} | {ratio} |")
    return "\n".join(rows)


def overhead_table(results: list[dict]) -> str:
    rows = ["| model | precision | batch | BN group | recipe loop img/s | bare step img/s | overhead |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        rows.append(f"| {r['model']} | {r['precision']} | {r['batch_size']} | {r.get('bn_group_size') or '-'} | "
                    f"{r['recipe_images_per_second']:.1f} | "
                    f"{r['bare_images_per_second']:.1f} | {r['overhead']:.1%} |")
    return "\n".join(rows)


def main(argv):
    del argv
    from keras_resnet import benchmarking
    if _SINGLE.value:
        name, precision, batch, group, *kernel = _SINGLE.value.split(":")
        group, fused = int(group) or None, kernel != ["keras"]
        if name == "matmul":
            print(json.dumps(benchmarking.matmul_tflops(precision, _MATMUL.value)))
            return
        if name.startswith("recipe-cifar"):
            print(json.dumps(benchmarking.measure_recipe(int(name[12:]), _RECIPE_DATA.value, precision,
                                                         int(batch), _STEPS.value, group)))
            return
        print(json.dumps(benchmarking.measure(name, precision, int(batch), _jit(), _STEPS.value, _WARMUP.value,
                                              _IMAGE_SIZE.value, _PEAK.value, group, fused)))
        return
    for name in _MODELS.value:
        if name not in benchmarking.MODELS:
            raise ValueError(f"models must be among {', '.join(benchmarking.MODELS)}, got {name!r}")
    if _RECIPE_DATA.value and not os.path.isdir(_RECIPE_DATA.value):
        raise ValueError(f"--recipe_data_dir={_RECIPE_DATA.value} is not a directory")
    for precision in _PRECISION.value:
        if precision not in ("none", "bfloat16", "float16"):
            raise ValueError(f"precision must be among none, bfloat16, float16, got {precision!r}")
    if _ROUNDS.value < 1:
        raise ValueError(f"rounds must be a positive integer, got {_ROUNDS.value}")
    for kernel in _BN.value:
        if kernel not in ("fused", "keras"):
            raise ValueError(f"batch_norm must be fused and/or keras, got {kernel!r}")
    for group in _GROUPS.value:
        if not group.isdigit():
            raise ValueError(f"bn_group_sizes must be integers >= 0 (0: the whole batch), got {group!r}")
        if int(group) and _BATCH.value % int(group):
            raise ValueError(f"bn_group_sizes: {group} does not divide --batch_size={_BATCH.value}")
    results, references = [], []
    for round_ in range(1, _ROUNDS.value + 1):
        round_results = []
        for name in _MODELS.value:
            for precision in _PRECISION.value:
                if name in ("imagenet50", "keras_resnet50"):  # Groups are for the CIFAR batch.
                    batch, groups = _IMAGENET_BATCH.value, ["0"]
                else:
                    batch, groups = _BATCH.value, _GROUPS.value
                # Stock Keras BN cannot normalise groups of a batch: grouped BN is measured fused only.
                specs = [f"{name}:{precision}:{batch}:{group}:{kernel}" for group in groups for kernel in _BN.value
                         if kernel == "fused" or group == "0"]
                if name == "imagenet50":  # The peer, right after, same batch and precision.
                    specs.append(f"keras_resnet50:{precision}:{batch}:0")
                round_results += [dict(_one(spec), round=round_) for spec in specs]
        if not _gpu():  # A CPU has no vendor peak: its measured matmul rate is the reference, in each round.
            peaks = {p: dict(_one(f"matmul:{p}:0:0"), round=round_) for p in _PRECISION.value}
            for row in round_results:
                row["fraction_of_peak"] = row["achieved_tflops"] / peaks[row["precision"]]["tflops"]
            print(f"round {round_}: attainable matmul rate (" + ", ".join(
                f"{p if p != 'none' else 'float32'} {r['tflops']:.3f} TFLOP/s" for p, r in peaks.items())
                + f", {_MATMUL.value}x{_MATMUL.value}): this round's 'of peak' reference")
            references += peaks.values()
        results += round_results
    summary = benchmarking.over_rounds(results)
    results += references
    if _ROUNDS.value > 1:
        print(f"medians over {_ROUNDS.value} alternating rounds")
    print(table(summary))
    if _RECIPE_DATA.value:
        overheads = [_one(f"recipe-{name}:{precision}:{_BATCH.value}:{group}")
                     for name in _MODELS.value if name.startswith("cifar") for precision in _PRECISION.value
                     for group in _GROUPS.value]
        print()
        print(overhead_table(overheads))
        results += overheads
    if _OUT.value:
        benchmarking.write_record(_OUT.value, "tools.perf.benchmark", results)


if __name__ == "__main__":
    cli.run(main)
