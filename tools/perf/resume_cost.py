"""What an exact ImageNet resume costs: the records of the current epoch already used are read again
(not decoded) and skipped. Measured on synthetic records of ImageNet's size, through the training
stream's own record order (``keras_resnet.data.imagenet.epoch_records``), then scaled to a resume in
the middle of an epoch of the full training set.

    python -m tools.perf.resume_cost [--records=4000] [--record_kb=110] [--files=16] [--dir=/tmp/x]

ILSVRC 2012's 1,281,167 training JPEGs take about 140 GB (110 kB each): a mid-epoch resume on one
worker reads about 640,000 of them again. The figure is from the page cache when the records fit in
memory (printed as such): from a disk, reading is bounded by the disk's bandwidth instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

from absl import flags

from keras_resnet import cli

_RECORDS = flags.DEFINE_integer("records", 4000, "Synthetic records to write and skip.", lower_bound=1)
_KB = flags.DEFINE_integer("record_kb", 110, "Size of each record in kB (ImageNet's mean JPEG: about 110).",
                           lower_bound=1)
_FILES = flags.DEFINE_integer("files", 16, "Files to spread them over.", lower_bound=1)
_DIR = flags.DEFINE_string("dir", None, "Where to write them (default: a temporary directory, removed after).")
_BUFFER = flags.DEFINE_integer("shuffle_buffer", 10_000, "The training stream's block of shuffled records.",
                               lower_bound=1)

IMAGENET_TRAIN = 1_281_167


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf

    from keras_resnet.data.imagenet import epoch_records
    from keras_resnet.hardware import cpu_description

    root = _DIR.value or tempfile.mkdtemp(prefix="resume_cost_")
    os.makedirs(root, exist_ok=True)
    try:
        payload = np.random.default_rng(0).integers(0, 256, _KB.value * 1000, np.uint8).tobytes()
        files = [os.path.join(root, f"train.tfrecord-{i:05d}") for i in range(_FILES.value)]
        for i, path in enumerate(files):
            with tf.io.TFRecordWriter(path) as writer:
                for _ in range(i, _RECORDS.value, _FILES.value):
                    writer.write(payload)
        skip = _RECORDS.value - 1
        seconds = []
        for _ in range(3):
            ds = epoch_records(files, seed=0, epoch=tf.constant(3, tf.int64), shuffle_buffer=_BUFFER.value)
            start = time.perf_counter()
            for _ in ds.skip(skip).take(1):
                pass
            seconds.append(time.perf_counter() - start)
        best = sorted(seconds)[1]  # Median of 3.
        rate = skip / best
        mid_epoch = IMAGENET_TRAIN // 2
        print(f"{cpu_description()}: skipped {skip:,} records of {_KB.value} kB through the training stream's order "
              f"in {best:.2f} s (median of 3: {', '.join(f'{s:.2f}' for s in seconds)}): {rate:,.0f} records/s, "
              f"{rate * _KB.value / 1e6:.2f} GB/s, from the page cache")
        print(f"a mid-epoch resume of full ImageNet on one worker ({mid_epoch:,} records, "
              f"{mid_epoch * _KB.value / 1e6:.0f} GB) at that rate: {mid_epoch / rate / 60:.1f} min; with N workers "
              "each pipeline skips 1/N of it in parallel")
    finally:
        if not _DIR.value:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    cli.run(main)
