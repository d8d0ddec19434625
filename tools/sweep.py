"""Run every configuration of a table, each in its own model_dir, skipping finished runs.

    python -m tools.sweep --recipe=cifar10 --depths=20,32,44,56,110 --variants=plain,residual \
        --seeds=5 --root=runs/table6 [--dry_run] [--train_steps=6400 ...]

Any flag the sweep does not know is passed to the recipe. A run whose ``stats.json`` exists is
skipped; an unfinished one is rerun with the same command, which resumes it from its last
checkpoint. With several GPUs visible, runs go one per GPU in parallel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from absl import flags

from keras_resnet import cli

_RECIPE = flags.DEFINE_enum("recipe", "cifar10", ["cifar10", "imagenet"], "Which recipe to run.")
_DEPTHS = flags.DEFINE_list("depths", ["20", "32", "44", "56", "110"], "Depths.")
_VARIANTS = flags.DEFINE_list("variants", ["plain", "residual"], "plain and/or residual.")
_SEEDS = flags.DEFINE_integer("seeds", 1, "Seeds 0..N-1 per configuration.")
_ROOT = flags.DEFINE_string("root", "runs/sweep", "Folder of the run folders.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the commands and what would be skipped; run nothing.")
_GPUS = flags.DEFINE_integer("gpus", None, "Parallel runs, one per GPU (default: the visible GPUs, or 1).")

_PASSTHROUGH: list[str] = []


def plan(recipe: str, depths, variants, seeds: int, root: str, extra: list[str]) -> list[tuple[str, list[str]]]:
    """``(model_dir, command)`` for every configuration, in table order."""
    for variant in variants:
        if variant not in ("plain", "residual"):
            raise ValueError(f"variants must be plain and/or residual, got {variant!r}")
    runs = []
    for depth in depths:
        for variant in variants:
            for seed in range(seeds):
                name = f"{'plain' if variant == 'plain' else 'resnet'}{depth}-seed{seed}"
                model_dir = os.path.join(root, name)
                command = [sys.executable, "-m", f"recipes.{recipe}", f"--depth={depth}", f"--seed={seed}",
                           f"--model_dir={model_dir}", *(["--plain"] if variant == "plain" else []), *extra]
                runs.append((model_dir, command))
    return runs


def is_finished(model_dir: str) -> bool:
    return os.path.exists(os.path.join(model_dir, "stats.json"))


def run_sweep(runs, parallel: int = 1, dry_run: bool = False) -> dict[str, str]:
    """Runs what is not finished; returns ``{model_dir: "skipped" | "done" | "failed (code N)"}``."""
    status, pending = {}, []
    for model_dir, command in runs:
        if is_finished(model_dir):
            status[model_dir] = "skipped"
        else:
            pending.append((model_dir, command))
        print(f"{'skip' if model_dir in status else ('would run' if dry_run else 'run')}: {' '.join(command[1:])}")
    if dry_run:
        return status
    active: list[tuple[str, subprocess.Popen, int]] = []
    free = list(range(parallel))
    # Slot k runs on the k-th GPU this process may use: its own CUDA_VISIBLE_DEVICES mask if it has one.
    mask = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()] or None
    if mask and parallel > 1 and parallel > len(mask):
        raise ValueError(f"{parallel} runs in parallel, one per GPU, but CUDA_VISIBLE_DEVICES="
                         f"{os.environ['CUDA_VISIBLE_DEVICES']} allows {len(mask)} GPU(s)")
    while pending or active:
        while pending and free:
            model_dir, command = pending.pop(0)
            slot = free.pop(0)
            env = dict(os.environ, **({"CUDA_VISIBLE_DEVICES": mask[slot] if mask else str(slot)}
                                      if parallel > 1 else {}))
            active.append((model_dir, subprocess.Popen(command, env=env), slot))
        time.sleep(0.5)
        for item in list(active):
            model_dir, proc, slot = item
            if proc.poll() is None:
                continue
            active.remove(item)
            free.append(slot)
            status[model_dir] = "done" if proc.returncode == 0 and is_finished(model_dir) else (
                f"failed (code {proc.returncode})")
            print(f"{status[model_dir]}: {model_dir}")
    return status


def _visible_gpus() -> int:
    import tensorflow as tf
    return len(tf.config.list_physical_devices("GPU"))


def main(argv):
    del argv
    runs = plan(_RECIPE.value, _DEPTHS.value, _VARIANTS.value, _SEEDS.value, _ROOT.value, _PASSTHROUGH)
    parallel = _GPUS.value or (1 if _DRY_RUN.value else max(1, _visible_gpus()))
    status = run_sweep(runs, parallel, _DRY_RUN.value)
    failed = [d for d, s in status.items() if s.startswith("failed")]
    if failed:
        print(f"{len(failed)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


def _parse(argv):
    """Known flags for the sweep; everything else goes to the recipe."""
    rest = flags.FLAGS(argv, known_only=True)
    _PASSTHROUGH[:] = [a for a in rest[1:]]
    return rest[:1]


if __name__ == "__main__":
    cli.run(main, flags_parser=_parse)
