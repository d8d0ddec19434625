"""Prepare TFDS's imagenet2012 from the ILSVRC 2012 tar files (TFDS's manual-download procedure).

    python -m tools.prepare_imagenet --manual_dir=/path/with/ILSVRC2012_img_{train,val}.tar --data_dir=data/tfds
"""

from absl import flags

from keras_resnet import cli
from keras_resnet.data.imagenet import prepare_imagenet

_MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "Folder with the ILSVRC 2012 tars.", required=True)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory to prepare into.")


def main(argv):
    del argv
    builder = prepare_imagenet(_MANUAL_DIR.value, _DATA_DIR.value)
    print(f"imagenet2012 prepared in {builder.data_dir}: "
          f"{ {name: info.num_examples for name, info in builder.info.splits.items()} }")


if __name__ == "__main__":
    cli.run(main)
