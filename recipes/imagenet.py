"""ImageNet (section 3.4, Tables 2-4) with the paper's recipe.

    python -m recipes.imagenet --depth=50                          # ResNet-50, option B, stride on the 1x1
    python -m recipes.imagenet --depth=34 --shortcut=A             # Table 2/3
    python -m recipes.imagenet --depth=34 --plain                  # plain-34
    python -m recipes.imagenet --depth=50 --stride_on=3x3          # "v1.5"
    python -m recipes.imagenet --depth=50 --lr_schedule=steps      # fixed boundaries instead of plateaus

Batch 256, LR 0.1 divided by 10 when the validation error plateaus, up to 60e4
iterations, weight decay 1e-4, momentum 0.9. At the end the net is evaluated
with the centre crop, 10-crop (Tables 2/3) and multi-scale (Table 4) protocols.
Prepare the data once: python -m tools.prepare_imagenet --manual_dir=... --data_dir=...
"""

from __future__ import annotations

import json
import os
import sys

from absl import flags

from recipes import common  # First: keras_resnet.cli sets TF's environment before TF is imported.

from keras_resnet.data.imagenet import EVAL_MODES  # noqa: E402

_PROTOCOLS = list(EVAL_MODES)  # The test protocols of section 3.4.
_DEPTH = flags.DEFINE_integer("depth", 50, "18, 34, 50, 101 or 152.")
flags.register_validator("depth", lambda v: v in (18, 34, 50, 101, 152), message="must be 18, 34, 50, 101 or 152")
_PLAIN = flags.DEFINE_bool("plain", False, "Train the plain net (no shortcuts).")
_SHORTCUT = flags.DEFINE_string("shortcut", "B", "Shortcut option A, B (paper for 50+) or C.")
_STRIDE_ON = flags.DEFINE_string("stride_on", "1x1", "Bottleneck stride on the 1x1 (paper) or 3x3 (v1.5).")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 600_000, "Iterations (60e4 in the paper).", lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Global batch over all replicas.", lower_bound=1)
_LR = common.define_positive_float("lr", 0.1, "Base learning rate.")
_SCHEDULE = flags.DEFINE_enum("lr_schedule", "plateau", ["plateau", "steps"],
                              "plateau: /10 when the validation error gains < 0.5 points in 50k iterations, at most "
                              "3 times (scaled to --train_steps); steps: /10 at 25/50/75%.")
_EVAL_MODE = flags.DEFINE_enum("eval_mode", "center", _PROTOCOLS,
                               "Protocol for the evaluations during training.")
_EVAL_EXAMPLES = flags.DEFINE_integer("eval_examples", None, "Evaluate on the first N validation images only.",
                                       lower_bound=1)
_BN_GROUP = flags.DEFINE_integer("bn_group_size", 32, "BN statistics over groups of this many images of each "
                                 "replica's batch, or of consecutive replicas' batches together when larger "
                                 "(default 32: the paper does not say how its 256 were split; Goyal et al. 2017, "
                                 "the same group, use 8 GPUs of 32); 0 = the whole per-replica batch.",
                                 lower_bound=0)
_ANTIALIAS = flags.DEFINE_bool("resize_antialias", True, "Resize images with antialiasing (TF's area-weighted "
                               "bilinear when shrinking); --noresize_antialias: plain bilinear, 1.4-1.7x the "
                               "training images/s per core (docs/performance.md section 9).")
_FINAL_MODES = flags.DEFINE_list("final_eval_modes", ["center", "ten_crop", "multiscale"],
                                 "Protocols for the final evaluation: center, ten_crop, multiscale (Table 4: five "
                                 "scales, each with its horizontal flip, as VGG), multiscale_noflip.")
flags.register_validator("final_eval_modes", lambda modes: bool(modes) and set(modes) <= set(_PROTOCOLS),
                         message=f"must be a comma-separated list of {', '.join(_PROTOCOLS)}")


def main(argv):
    del argv
    from keras_resnet import run_config, tasks, training

    experiment = tasks.ImagenetExperiment(depth=_DEPTH.value, residual=not _PLAIN.value, shortcut=_SHORTCUT.value,
                                          stride_on=_STRIDE_ON.value, eval_mode=_EVAL_MODE.value,
                                          bn_group_size=_BN_GROUP.value or None,
                                          **common.weight_decay_on(),
                                          resize_antialias=_ANTIALIAS.value)
    f = common.FLAGS
    config = tasks.imagenet_train_config(
        _TRAIN_STEPS.value, plateau=_SCHEDULE.value == "plateau", batch_size=_BATCH_SIZE.value, lr=_LR.value,
        **common.runtime_settings())
    name = f"{'resnet' if experiment.residual else 'plain'}{experiment.depth}"
    model_dir = f.model_dir or f"runs/imagenet/{name}-seed{f.seed}"
    common.check_model_dir(model_dir)
    tasks.check_bn_groups(config.batch_size, common.planned_replicas(), experiment.bn_group_size,
                          config.jit_compile)
    strategy = common.setup_runtime(config.batch_size)
    run_config.check_config(model_dir, {**tasks.experiment_hparams("imagenet2012", experiment, config),
                                      "replicas": strategy.num_replicas_in_sync, "tf32": f.tf32})
    task = tasks.imagenet_task(experiment, config, f.data_dir, eval_examples=_EVAL_EXAMPLES.value)
    task.hparams.update(tf32=f.tf32, command=common.command_line(sys.argv))
    stats = training.train(config, task, model_dir, strategy, stop_after=f.stop_after)
    final_model = os.path.join(model_dir, "model.keras")
    if not stats.get("interrupted") and os.path.exists(final_model):
        import keras
        stats.update(tasks.imagenet_final_evaluation(
            experiment, keras.models.load_model(final_model), f.data_dir, _FINAL_MODES.value,
            examples=_EVAL_EXAMPLES.value))
        with open(os.path.join(model_dir, "final_eval.json"), "w") as out:
            json.dump(stats, out, indent=2)
    common.report(stats, model_dir)


if __name__ == "__main__":
    common.run(main)
