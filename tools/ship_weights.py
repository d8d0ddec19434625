"""Ship a finished CIFAR-10 run's net inside the package, as ``cifar_resnet(depth, weights="cifar10")``.

    python -m tools.ship_weights --model_dir=runs/table6/resnet56-seed0 --data_dir=data/tfds \
        [--source="docs/results/table6-64k/resnet56-seed0 (...)"] [--weights_dir=keras_resnet/weights]

Writes ``<resnet|plain><depth>-cifar10.weights.h5`` (recording which net it is for) and its entry in
``cifar10.json`` beside it: the test error on the test split of ``--data_dir``, measured through the
path a user takes (the builder with these weights behind ``cifar10_preprocessing()``), in the
precision the run trained in and in float32. Checks first that the weights reproduce the run's own
net and that the run is the paper's recipe in what the shipped preprocessing assumes
(``keras_resnet.export.ship_cifar10_weights``). Commit the weights folder afterwards.
"""

from __future__ import annotations

from absl import flags

from keras_resnet import cli

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "A finished CIFAR-10 run (with model.keras).", required=True)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory holding the prepared cifar10.")
_WEIGHTS_DIR = flags.DEFINE_string("weights_dir", None, "Where to ship it (default: the package's weights folder).")
_SOURCE = flags.DEFINE_string("source", None, "Where the run is kept, for the record (default: --model_dir and "
                              "its recipe).")


def main(argv):
    del argv
    from keras_resnet import export

    entry = export.ship_cifar10_weights(_MODEL_DIR.value, _DATA_DIR.value, _WEIGHTS_DIR.value, _SOURCE.value)
    kind = "ResNet" if entry["residual"] else "plain"
    print(f"Shipped {kind}-{entry['depth']} as {entry['file']}: test error {entry['test_error']:.2f} % in "
          f"{entry['dtype']}, {entry['test_error_float32']:.2f} % in float32, on {entry['test_images']:,} "
          f"images ({entry['test_data']})")


if __name__ == "__main__":
    cli.run(main)
