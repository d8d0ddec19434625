"""The first thing to run on a machine with GPUs: ResNet-20 through the recipes' training loop on one
and on all GPUs, in float32, float16 and bfloat16, with and without XLA. Each configuration runs a
few hundred steps in a fresh process and prints images/s, the loss, peak GPU memory and any error, so
that one command shows what works and how fast (under 8 minutes on one modern GPU).

    python -m tools.perf.gpu_smoke [--steps=300] [--gpus=1,all] [--precisions=none,float16,bfloat16] \
        [--xla=off,on] [--out=gpu_smoke.json]

Synthetic CIFAR-sized images through the real augmentation pipeline; batch 128 (BN over groups of 64
where each replica's batch allows it, as the recipe trains). ``--allow_cpu`` runs the same checks on
the CPU (to test this script where no GPU is lent); the table then says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import flags

from keras_resnet import cli

_STEPS = flags.DEFINE_integer("steps", 300, "Training steps per configuration (the last half is timed).",
                              lower_bound=2)
_BATCH = flags.DEFINE_integer("batch_size", 128, "Global batch.", lower_bound=1)
_GPUS = flags.DEFINE_list("gpus", ["1", "all"], "GPU counts to try: numbers and/or 'all'.")
_PRECISIONS = flags.DEFINE_list("precisions", ["none", "float16", "bfloat16"], "none (float32), float16, bfloat16.")
_XLA = flags.DEFINE_list("xla", ["off", "on"], "XLA off and/or on.")
_ALLOW_CPU = flags.DEFINE_bool("allow_cpu", False, "With no GPU visible, run on the CPU instead of refusing.")
_OUT = flags.DEFINE_string("out", None, "Write every result as JSON here.")
_SINGLE = flags.DEFINE_string("single", None, "Internal: run one configuration 'gpus:precision:xla'.")


def _run_one(gpus: int, precision: str, xla: bool, steps: int, batch: int) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_resnet import cifar_resnet, distribute, run_config, training
    from keras_resnet.data.cifar10 import CifarData, cifar10_train_dataset

    strategy = distribute.make_strategy(gpus) if gpus else tf.distribute.OneDeviceStrategy("/cpu:0")
    keras.utils.set_random_seed(0)  # The same weights and batches in every configuration: comparable losses.
    per_replica = batch // strategy.num_replicas_in_sync
    group = 64 if per_replica % 64 == 0 else None
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch * 8, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, batch * 8).astype(np.int32)
    data = CifarData(images, labels, images.astype(np.float32).mean(0), images.reshape(-1, 3).std(0))
    task = run_config.Task(
        build_model=lambda dtype: cifar_resnet(20, classifier_activation=None, bn_group_size=group, dtype=dtype),
        train_dataset=lambda ctx, start: cifar10_train_dataset(data, batch, start_step=start, input_context=ctx),
        evaluations={}, hparams={"dataset": "synthetic", "depth": 20})
    config = run_config.TrainConfig(batch_size=batch, train_steps=steps, lr_boundaries=(), log_every=steps // 2,
                                  eval_every=10**9, checkpoint_every=10**9, mixed_precision=precision,
                                  jit_compile=xla)
    with tempfile.TemporaryDirectory() as model_dir:
        stats = training.train(config, task, model_dir, strategy)
    peak = None
    if gpus:
        peak = max(tf.config.experimental.get_memory_info(f"GPU:{i}")["peak"] for i in range(gpus)) / 2**20
    return {"images_per_second": stats["images_per_second"], "loss": stats["train_loss"],
            "replicas": strategy.num_replicas_in_sync, "bn_group_size": group, "peak_gpu_mib": peak}


def _physical_gpus() -> int:
    import tensorflow as tf
    return len(tf.config.list_physical_devices("GPU"))


def main(argv):
    del argv
    if _SINGLE.value:
        gpus, precision, xla = _SINGLE.value.split(":")
        print(json.dumps(_run_one(int(gpus), precision, xla == "on", _STEPS.value, _BATCH.value)))
        return
    for p in _PRECISIONS.value:
        if p not in ("none", "float16", "bfloat16"):
            raise ValueError(f"precisions must be among none, float16, bfloat16, got {p!r}")
    for x in _XLA.value:
        if x not in ("off", "on"):
            raise ValueError(f"xla must be off and/or on, got {x!r}")
    available = _physical_gpus()
    if not available and not _ALLOW_CPU.value:
        raise ValueError("no GPU is visible (nvidia-smi, CUDA_VISIBLE_DEVICES?); --allow_cpu runs the same checks "
                         "on the CPU")
    counts = []
    for g in _GPUS.value:
        if g != "all" and not (g.isdigit() and int(g) >= 1):
            raise ValueError(f"gpus must be positive numbers or 'all', got {g!r}")
        n = available if g == "all" else int(g)
        if n > available and available:
            raise ValueError(f"gpus: {n} asked for, {available} visible")
        if (n if available else 0) not in counts:
            counts.append(n if available else 0)
    device = f"{available} GPU(s)" if available else "the CPU (--allow_cpu: no GPU visible)"
    print(f"ResNet-20, batch {_BATCH.value}, {_STEPS.value} steps per configuration, on {device}")
    rows = ["| GPUs | precision | XLA | images/s | loss | peak GPU MiB | seconds | error |",
            "| ---: | --- | --- | ---: | ---: | ---: | ---: | --- |"]
    results = []
    for n in counts:
        for precision in _PRECISIONS.value:
            for xla in _XLA.value:
                start = time.time()
                proc = subprocess.run(
                    [sys.executable, "-m", "tools.perf.gpu_smoke", f"--single={n}:{precision}:{xla}",
                     f"--steps={_STEPS.value}", f"--batch_size={_BATCH.value}"],
                    capture_output=True, text=True, timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
                lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
                result = {"gpus": n, "precision": precision, "xla": xla, "seconds": round(time.time() - start, 1)}
                if proc.returncode or not lines:
                    errors = [l for l in proc.stderr.strip().splitlines() if l.strip()]
                    result["error"] = errors[-1][:200] if errors else f"exit status {proc.returncode}"
                else:
                    result.update(json.loads(lines[-1]))
                results.append(result)
                fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
                rows.append(f"| {n} | {precision} | {xla} | {fmt(result.get('images_per_second'), '.0f')} | "
                            f"{fmt(result.get('loss'), '.3f')} | {fmt(result.get('peak_gpu_mib'), '.0f')} | "
                            f"{result['seconds']:.0f} | {result.get('error', '')} |")
                print(rows[-1], flush=True)
    print("\n".join(rows))
    if _OUT.value:
        with open(_OUT.value, "w") as f:
            json.dump({"command": " ".join(["python -m tools.perf.gpu_smoke", *sys.argv[1:]]), "device": device,
                       "results": results}, f, indent=2)


if __name__ == "__main__":
    cli.run(main)
