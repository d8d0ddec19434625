"""Write the ready-to-use classifier of a finished CIFAR-10 run (for runs from before the recipe wrote it).

    python -m tools.export_classifier --model_dir=runs/cifar10/resnet20-seed0 --data_dir=data/tfds \
        [--out=resnet20-cifar10.keras]

Reads the run's ``config.json`` and ``model.keras``, and writes ``classifier.keras`` (raw 0-255 RGB in,
class probabilities out; ``keras_resnet.export.cifar10_classifier``) with the statistics of the
run's own training split and normalisation, as the CIFAR recipe does at the end of a run.
"""

from __future__ import annotations

import os

from absl import flags

from keras_resnet import cli

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "A finished CIFAR-10 run.", required=True)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory holding the prepared cifar10.")
_OUT = flags.DEFINE_string("out", None, "Where to write it (default: <model_dir>/classifier.keras).")


def export_run(model_dir: str, data_dir: str | None, out: str | None = None) -> str:

    import keras_resnet.layers  # noqa: F401  (registers the package's layers for loading)
    from keras_resnet import runs as runs_lib
    from keras_resnet import tasks
    from keras_resnet.data.cifar10 import pixel_statistics
    from keras_resnet.export import cifar10_classifier, load_saved_model

    config = runs_lib.read_config(model_dir)
    net_path = os.path.join(model_dir, "model.keras")
    if config.get("dataset") != "cifar10" or not os.path.exists(net_path):
        raise ValueError(f"--model_dir={model_dir} is not a finished CIFAR-10 run (needs config.json of a "
                         "cifar10 run and model.keras)")
    experiment = tasks.CifarExperiment(depth=config["depth"], protocol=config.get("protocol", "test"))
    train_split = experiment.splits[0]
    mean, std = pixel_statistics(train_split, data_dir)
    name = f"{'resnet' if config.get('residual', True) else 'plain'}{config['depth']}_cifar10"
    classifier = cifar10_classifier(load_saved_model(net_path), mean, std,
                                    config.get("normalization", "pixel_mean"), name=name)
    out = out or os.path.join(model_dir, tasks.CIFAR_CLASSIFIER_FILE)
    classifier.save(out)
    return out


def main(argv):
    del argv
    print(f"Wrote {export_run(_MODEL_DIR.value, _DATA_DIR.value, _OUT.value)}")


if __name__ == "__main__":
    cli.run(main)
