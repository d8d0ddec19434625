"""Where a CIFAR-10 run's test error comes from, in minutes: precision, BN statistics, fit.

    python -m tools.diagnose_run --model_dir=RUN --data_dir=DIR [--checkpoint=RUN/checkpoints/ckpt-N] \
        [--batches=100] [--json=out.json]

Scores the run's final net (or its newest, or the named, checkpoint) on its held-out split as trained,
in float32, and in float32 with the BN statistics re-estimated over ``--batches`` training batches
(augmented, and not), and on 10,000 training images without augmentation
(``keras_resnet.diagnosis.diagnose_cifar10_run``). A ResNet-56 checkpoint takes about 10 minutes on one
Zen 4 core.
"""

from __future__ import annotations

import json

from absl import flags

from keras_resnet import cli

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "A CIFAR-10 run (finished or not).", required=True)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory holding the prepared cifar10.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "A checkpoint prefix of the run (default: model.keras if "
                                  "the run has finished, else its newest checkpoint).")
_BATCHES = flags.DEFINE_integer("batches", 100, "Training batches to re-estimate the BN statistics over.",
                                lower_bound=1)
_JSON = flags.DEFINE_string("json", None, "Also write the results here as JSON.")

ROWS = (
    ("as_trained", "as trained ({dtype}), BN moving averages"),
    ("float32", "float32, BN moving averages"),
    ("bn_reestimated_augmented", "float32, BN statistics re-estimated on {batches} augmented training batches"),
    ("bn_reestimated_plain", "float32, BN statistics re-estimated on {batches} un-augmented training batches"),
)


def main(argv):
    del argv
    from keras_resnet.diagnosis import diagnose_cifar10_run

    result = diagnose_cifar10_run(_MODEL_DIR.value, _DATA_DIR.value, _CHECKPOINT.value, _BATCHES.value)
    print(f"{result['model_dir']} ({result['net']}): error on the {result['images']:,} images of "
          f"'{result['split']}'")
    for key, label in ROWS:
        print(f"  {result[key]:6.2f} %  {label.format(dtype=result['as_trained_dtype'], batches=result['bn_batches'])}")
    print(f"  {result['train_plain']:6.2f} %  on the first {result['train_images']:,} training images, "
          "un-augmented (float32, moving averages)")
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    cli.run(main)
