"""Prepare TFDS's cifar10 from a local archive, with no network.

    python -m tools.prepare_cifar10 --archive=../shared/data/cifar10/cifar-10-binary.tar.gz --data_dir=data/tfds

Afterwards ``tfds.load("cifar10", data_dir="data/tfds", download=False)`` and
``python -m recipes.cifar10 --data_dir=data/tfds`` work. The archive's sha256
is logged; rebuilt copies whose checksum differs from the official one are accepted.
"""

from absl import flags, logging

from keras_resnet import cli
from keras_resnet.data.cifar10 import prepare_cifar10

_ARCHIVE = flags.DEFINE_string("archive", None, "Path to cifar-10-binary.tar.gz.", required=True)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory to prepare into.", required=True)


def main(argv):
    del argv
    builder = prepare_cifar10(_ARCHIVE.value, _DATA_DIR.value)
    splits = {name: info.num_examples for name, info in builder.info.splits.items()}
    logging.info("cifar10 ready in %s: %s", builder.data_dir, splits)
    print(f"cifar10 prepared in {builder.data_dir}: {splits}")


if __name__ == "__main__":
    cli.run(main)
