"""Tiny datasets written by the tests in the real on-disk layouts (never downloaded)."""

import io
import os
import tarfile

import numpy as np
import tensorflow as tf

CIFAR_PREFIX = "cifar-10-batches-bin/"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar_records(images: np.ndarray, labels: np.ndarray) -> bytes:
    """The official binary layout: a label byte, then the R, G and B planes."""
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    return np.concatenate([labels.astype(np.uint8)[:, None], planes], axis=1).astype(np.uint8).tobytes()


def _add(tar, name, payload):
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def write_cifar_archive(path, train_per_batch=20, test=30, seed=0, truncate=False):
    """A cifar-10-binary.tar.gz with 5 x ``train_per_batch`` train and ``test`` test images.

    Returns (train_images, train_labels, test_images, test_labels) as written.
    """
    rng = np.random.default_rng(seed)
    n_train = 5 * train_per_batch
    train_x = rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8)
    train_y = np.arange(n_train) % 10
    test_x = rng.integers(0, 256, (test, 32, 32, 3), dtype=np.uint8)
    test_y = rng.integers(0, 10, test)
    with tarfile.open(path, "w:gz") as tar:
        for i in range(5):
            part = slice(i * train_per_batch, (i + 1) * train_per_batch)
            payload = cifar_records(train_x[part], train_y[part])
            if truncate and i == 2:
                payload = payload[:-100]
            _add(tar, f"{CIFAR_PREFIX}data_batch_{i + 1}.bin", payload)
        _add(tar, f"{CIFAR_PREFIX}test_batch.bin", cifar_records(test_x, test_y))
        _add(tar, f"{CIFAR_PREFIX}batches.meta.txt", ("\n".join(CLASSES) + "\n").encode())
    return train_x, train_y, test_x, test_y


def jpeg(height, width, channels=3, seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    return tf.io.encode_jpeg(pixels, quality=95).numpy()


def write_ilsvrc_tars(manual_dir, synsets=("n01440764", "n01443537"), per_class=2, val=3):
    """ILSVRC2012_img_train.tar (a tar of per-synset tars) and ILSVRC2012_img_val.tar."""
    os.makedirs(manual_dir, exist_ok=True)
    with tarfile.open(os.path.join(manual_dir, "ILSVRC2012_img_train.tar"), "w") as outer:
        for k, synset in enumerate(synsets):
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as tar:
                for i in range(per_class):
                    channels = 1 if i == 0 else 3  # Real ImageNet has greyscale JPEGs.
                    _add(tar, f"{synset}_{i}.JPEG", jpeg(300 + 40 * i, 400 - 30 * k, channels, seed=i + 10 * k))
            _add(outer, f"{synset}.tar", inner.getvalue())
    with tarfile.open(os.path.join(manual_dir, "ILSVRC2012_img_val.tar"), "w") as tar:
        for i in range(val):
            _add(tar, f"ILSVRC2012_val_{i + 1:08d}.JPEG", jpeg(260 + 20 * i, 350, 3, seed=100 + i))
