"""Input-pipeline throughput: images/s of the CIFAR-10 and ImageNet training pipelines.

    python -m tools.perf.benchmark_input --data_dir=data/tfds [--imagenet_jpegs=../shared/data/imagenet-samples] \
        [--out=input.json]

CIFAR: the real prepared data (``--data_dir``), batches of 128, exactly what the
recipe feeds. ImageNet: the training preprocessing (fused decode-and-crop,
scale augmentation, flip, PCA colour) on JPEGs in memory: generated 500x375
photographs-like images, or the files of ``--imagenet_jpegs``; with the antialiased resize (the
default) and with plain bilinear (the ImageNet recipe's ``--noresize_antialias``), on every core and
on one thread, alternated repeat by repeat.
"""

from __future__ import annotations

import glob
import statistics
import time

from absl import flags

from keras_resnet import cli  # noqa: I001 - first: imports TensorFlow quietly.
import numpy as np
import tensorflow as tf
from keras_resnet.data import cifar10_train_dataset, load_cifar10
from keras_resnet.data.imagenet import train_preprocess

_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir with cifar10 prepared.")
_JPEGS = flags.DEFINE_string("imagenet_jpegs", None, "Folder of JPEGs; default: generated 500x375 images.")
_BATCHES = flags.DEFINE_integer("batches", 200, "Timed CIFAR batches per repeat.", lower_bound=1)
_REPEATS = flags.DEFINE_integer("repeats", 3, "Repeats; the median is reported.", lower_bound=1)
_IMAGENET_BATCHES = flags.DEFINE_integer("imagenet_batches", 20, "Timed ImageNet batches (of 32) per repeat.",
                                         lower_bound=1)
_OUT = flags.DEFINE_string("out", None, "Also write the rows as JSON here, with the CPU and the command.")


def images_per_second(dataset: tf.data.Dataset, batches: int, batch_size: int, repeats: int) -> list[float]:
    return alternated({"": dataset}, batches, batch_size, repeats)[""]


def alternated(datasets: dict[str, tf.data.Dataset], batches: int, batch_size: int,
               repeats: int) -> dict[str, list[float]]:
    """Images/s of each dataset, one timed repeat of each in turn (so that a noisy neighbour hits all alike).
    Each repeat starts a fresh iterator (warmed up by 5 batches), so that no pipeline fills its prefetch
    buffers while another one is timed."""
    rates = {name: [] for name in datasets}
    for _ in range(repeats):
        for name, ds in datasets.items():
            iterator = iter(ds)
            for _ in range(5):  # Warm-up: tracing, autotuning, prefetch buffers.
                next(iterator)
            start = time.perf_counter()
            for _ in range(batches):
                next(iterator)
            rates[name].append(batches * batch_size / (time.perf_counter() - start))
            del iterator
    return rates


def generated_jpegs(n: int = 64, seed: int = 0) -> list[bytes]:
    """Smooth random images (so JPEG sizes resemble photographs), 500x375 like ImageNet's average."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.integers(0, 256, (24, 32, 3)).astype(np.float32)
        big = tf.image.resize(small[None], [375, 500], method="bicubic")[0]
        noisy = tf.clip_by_value(big + rng.normal(0, 8, (375, 500, 3)), 0, 255)
        out.append(tf.io.encode_jpeg(tf.cast(noisy, tf.uint8), quality=90).numpy())
    return out


def imagenet_dataset(jpegs: list[bytes], batch_size: int, antialias: bool = True, threads: int = 0) -> tf.data.Dataset:
    """The training preprocessing on ``jpegs``; ``threads`` > 0: on a tf.data pool of that many threads."""
    ds = tf.data.Dataset.from_tensor_slices(jpegs).repeat()
    ds = tf.data.Dataset.zip(ds, tf.data.Dataset.random(seed=0).batch(2))
    ds = ds.map(lambda jpeg, seed: train_preprocess(jpeg, seed, antialias), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    if threads:
        options = tf.data.Options()
        options.threading.private_threadpool_size = threads
        ds = ds.with_options(options)
    return ds


def main(argv):
    del argv
    rows = []
    if _DATA_DIR.value:
        data = load_cifar10("train", _DATA_DIR.value)
        rates = images_per_second(cifar10_train_dataset(data, 128, seed=0), _BATCHES.value, 128, _REPEATS.value)
        rows.append(("CIFAR-10 train (real data, batch 128)", rates))
    if _JPEGS.value:
        files = sorted(glob.glob(f"{_JPEGS.value}/*.JPEG"))
        jpegs = [open(f, "rb").read() for f in files]
        label = f"ImageNet train ({len(jpegs)} real JPEGs, batch 32)"
    else:
        jpegs = generated_jpegs()
        label = "ImageNet train (generated 500x375 JPEGs, batch 32)"
    variants = {f"{label}, {resize}{', 1 thread' if threads else ''}": imagenet_dataset(jpegs, 32, antialias, threads)
                for threads in (0, 1) for antialias, resize in ((True, "antialiased resize"),
                                                                (False, "plain bilinear resize"))}
    rows += alternated(variants, _IMAGENET_BATCHES.value, 32, _REPEATS.value).items()
    print("| pipeline | images/s (median) | runs |\n| --- | ---: | --- |")
    for name, rates in rows:
        print(f"| {name} | {statistics.median(rates):,.0f} | {', '.join(f'{r:,.0f}' for r in rates)} |")
    if _OUT.value:
        from keras_resnet.benchmarking import write_record
        write_record(_OUT.value, "tools.perf.benchmark_input",
                     [{"pipeline": name, "images_per_second_median": statistics.median(rates),
                       "images_per_second": rates} for name, rates in rows])

if __name__ == "__main__":
    cli.run(main)
