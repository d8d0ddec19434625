"""CIFAR-10 (section 4.2, Table 6, Figure 6) with the paper's recipe.

    python -m recipes.cifar10 --depth=110                    # ResNet-110, 64k steps, warm-up 0.01
    python -m recipes.cifar10 --depth=56 --plain             # plain-56, the degradation twin
    python -m recipes.cifar10 --depth=20 --train_steps=6400  # the same schedule, 10x shorter
    python -m recipes.cifar10 --protocol=validation          # 45k/5k train/validation split

Prepare the data once (no download needed): python -m tools.prepare_cifar10 --archive=... --data_dir=...
"""

from __future__ import annotations

import os
import sys

from absl import flags

from recipes import common

_DEPTH = flags.DEFINE_integer("depth", 20, "6n+2: 20, 32, 44, 56, 110, 1202, ...")
flags.register_validator("depth", lambda v: v is not None and v >= 8 and (v - 2) % 6 == 0,
                         message="must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, 1202, ...)")
_PLAIN = flags.DEFINE_bool("plain", False, "Train the plain twin (no shortcuts).")
_SHORTCUT = flags.DEFINE_string("shortcut", "A", "Shortcut option: A (paper), B or C.")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 64_000, "Iterations; LR boundaries 32k/48k scale with it.",
                                     lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Global batch over all replicas.", lower_bound=1)
_LR = common.define_positive_float("lr", 0.1, "Base learning rate.")
_PROTOCOL = flags.DEFINE_string("protocol", "test", "test: 50k train / 10k test (Table 6); validation: 45k/5k.")
_NORMALIZATION = flags.DEFINE_string("normalization", "pixel_mean", "pixel_mean (paper) or channel_mean_std.")
_SUBSET = flags.DEFINE_string("eval_subset_mask", None, "Boolean .npy over the held-out split in the archive's "
                              "order: also evaluate those images alone, as <protocol>_subset (e.g. "
                              "../shared/data/cifar10/test_exact_mask.npy: the 1,000 pixel-exact test images).")
_BN_GROUP = flags.DEFINE_integer("bn_group_size", 64, "BN statistics over groups of this many images of each "
                                 "replica's batch, or of consecutive replicas' batches together when larger: 64 is "
                                 "the paper's (128 on two GPUs), on any of 1, 2, 4 or 8 devices; 0 = the whole "
                                 "per-replica batch.",
                                 lower_bound=0)


def main(argv):
    del argv
    from keras_resnet import run_config, tasks, training

    experiment = tasks.CifarExperiment(depth=_DEPTH.value, residual=not _PLAIN.value, shortcut=_SHORTCUT.value,
                                       protocol=_PROTOCOL.value, normalization=_NORMALIZATION.value,
                                       bn_group_size=_BN_GROUP.value or None,
                                       **common.weight_decay_on())
    f = common.FLAGS
    config = tasks.cifar_train_config(
        experiment.depth, _TRAIN_STEPS.value, experiment.train_examples, batch_size=_BATCH_SIZE.value, lr=_LR.value,
        **common.runtime_settings())
    model_dir = f.model_dir or f"runs/cifar10/{experiment.name}-seed{f.seed}"
    common.check_model_dir(model_dir)
    tasks.check_bn_groups(config.batch_size, common.planned_replicas(), experiment.bn_group_size,
                          config.jit_compile)
    strategy = common.setup_runtime(config.batch_size)
    run_config.check_config(model_dir, {**tasks.experiment_hparams("cifar10", experiment, config),
                                      "replicas": strategy.num_replicas_in_sync, "tf32": f.tf32})
    if _SUBSET.value and not os.path.isfile(_SUBSET.value):
        raise ValueError(f"--eval_subset_mask={_SUBSET.value} is not a file")
    task = tasks.cifar10_task(experiment, config, f.data_dir, eval_subset_mask=_SUBSET.value)
    task.hparams.update(tf32=f.tf32, command=common.command_line(sys.argv))
    common.report(training.train(config, task, model_dir, strategy, stop_after=f.stop_after), model_dir)


if __name__ == "__main__":
    common.run(main)
