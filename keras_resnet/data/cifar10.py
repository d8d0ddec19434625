"""CIFAR-10 through TFDS, with the paper's preprocessing (section 4.2).

* ``prepare_cifar10`` turns a local ``cifar-10-binary.tar.gz`` into TFDS's
  ``cifar10`` dataset without any download, so that
  ``tfds.load("cifar10", data_dir=..., download=False)`` works afterwards.
* ``load_cifar10`` reads a split into memory as uint8 (150 MB for 50k images)
  together with the per-pixel mean image of the training split used.
* ``cifar10_train_dataset`` streams augmented batches: 4-pixel zero padding,
  random 32x32 crop and horizontal flip, vectorised over a batch. Which image
  goes into which step and how it is cropped depends only on ``(seed, step)``,
  not on the number of replicas, so runs are reproducible, resumable at any
  step and identical on 1 or N replicas.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import tarfile
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_resnet.provenance import file_sha256 as sha256

_RECORD_BYTES = 1 + 32 * 32 * 3
_PREFIX = "cifar-10-batches-bin/"
_MEMBERS = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin", "batches.meta.txt"]
PAD = 4  # Section 4.2: "4 pixels are padded on each side".
IMAGE_SIZE = 32
NORMALIZATIONS = ("pixel_mean", "channel_mean_std")
# The md5 of each file of the official cifar-10-binary.tar.gz (the tarball itself differs between
# copies: its headers and compression, not its contents). ``archive_md5s`` rebuilds these files from
# prepared records, so a run can tell the original data from a rebuilt or altered copy.
OFFICIAL_MD5 = {
    "data_batch_1.bin": "5dd7e06a14cb22eb9f671a540d1b7c25",
    "data_batch_2.bin": "5ea93a67294ea407fff1d09f752e9692",
    "data_batch_3.bin": "942cd6a4bcdd0dd3c604fbe906cb4421",
    "data_batch_4.bin": "ae636b3ba5c66a11e91e8cb52e771fcb",
    "data_batch_5.bin": "53f37980c15c3d472c316c40844f3f0d",
    "test_batch.bin": "803d5f7f4d78ea53de84dbe85f74fb6d",
}
SOURCE_FILE = "source.json"  # Beside the prepared data: the archive it came from (prepare_cifar10).


class DataNotPreparedError(RuntimeError):
    """The dataset is neither prepared in ``data_dir`` nor downloadable."""


def md5_of_members(archive: str) -> dict[str, str]:
    """The md5 of each ``.bin`` file inside a CIFAR-10 binary archive."""
    result = {}
    with tarfile.open(archive, "r:*") as tar:
        for name in OFFICIAL_MD5:
            digest = hashlib.md5()
            with tar.extractfile(tar.getmember(_PREFIX + name)) as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            result[name] = digest.hexdigest()
    return result


def check_cifar10_archive(archive: str) -> None:
    """Raises ``ValueError`` (one line) unless ``archive`` is a CIFAR-10 binary tarball."""
    if not os.path.isfile(archive):
        raise ValueError(f"archive {archive!r} does not exist or is not a file")
    try:
        with tarfile.open(archive, "r:*") as tar:
            sizes = {m.name: m.size for m in tar.getmembers() if m.isfile()}
    except (tarfile.TarError, OSError, EOFError) as e:
        reason = str(e).splitlines()[0].rstrip(":")
        raise ValueError(f"archive {archive!r} is not a readable tar.gz ({reason})") from None
    missing = [m for m in _MEMBERS if _PREFIX + m not in sizes]
    if missing:
        raise ValueError(f"archive {archive!r} lacks {_PREFIX}{missing[0]}; expected the CIFAR-10 "
                         "binary layout (cifar-10-binary.tar.gz)")
    for member in _MEMBERS[:-1]:
        size = sizes[_PREFIX + member]
        if size == 0 or size % _RECORD_BYTES:
            raise ValueError(f"archive {archive!r}: {member} has {size} bytes, not a positive "
                             f"multiple of the {_RECORD_BYTES}-byte record size (truncated or corrupt)")


class _LocalArchive:
    """Stands in for TFDS's download manager: 'downloading' returns the extracted folder."""

    def __init__(self, extracted: str):
        self.extracted = extracted

    def download_and_extract(self, url):
        del url
        return self.extracted


def prepare_cifar10(archive: str, data_dir: str) -> tfds.core.DatasetBuilder:
    """Prepares TFDS ``cifar10`` in ``data_dir`` from a local binary archive, offline.

    TFDS's own builder does the work (same splits, features and file format
    as a downloaded copy); only its download step is pointed at the extracted
    archive. The archive's checksum is logged rather than checked, since
    rebuilt copies differ byte-wise from the official file.
    """
    check_cifar10_archive(archive)
    source = {"archive": os.path.abspath(archive), "archive_sha256": sha256(archive), "bin_md5": md5_of_members(archive)}
    source["official_md5"] = source["bin_md5"] == OFFICIAL_MD5
    logging.info("Preparing cifar10 from %s (sha256 %s; %s)", archive, source["archive_sha256"],
                 "every .bin has the official md5" if source["official_md5"] else "NOT the official .bin files")
    builder = tfds.builder("cifar10", data_dir=data_dir)
    if builder.is_prepared():
        _check_prepared_from(builder, data_dir, archive, source["bin_md5"])
        logging.info("cifar10 is already prepared in %s, from the same files as %s", builder.data_dir, archive)
        _write_source(builder.data_dir, source)
        return builder
    os.makedirs(data_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".extract-") as tmp:
        with tarfile.open(archive, "r:*") as tar:
            members = [tar.getmember(_PREFIX + m) for m in _MEMBERS]  # Fixed names: no path traversal.
            not_files = [m.name for m in members if not m.isfile()]
            if not_files:
                raise ValueError(f"{archive} is not a CIFAR-10 binary archive: {not_files[0]} is not a regular file")
            # The "data" filter (Python >= 3.11.4, 3.10.12) also drops modes and owners; older Pythons lack it.
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(tmp, members=members, **safe)
        generate = builder._split_generators  # Bound method of TFDS's cifar10 builder.
        builder._split_generators = lambda dl_manager, **kw: generate(_LocalArchive(tmp), **kw)
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS))
    _write_source(builder.data_dir, source)
    return builder


def _check_prepared_from(builder, data_dir: str, archive: str, bin_md5: dict[str, str]) -> None:
    """Raises ``ValueError`` unless the prepared records rebuild exactly the archive's files."""
    for split in ("train", "test"):
        images, labels, record = _read_split(split, data_dir)
        prepared = archive_md5s(CifarData(images, labels, np.zeros(0), np.zeros(0), record), split)
        for name, md5 in (prepared or {}).items():
            if md5 != bin_md5[name]:
                raise ValueError(f"cifar10 in {builder.data_dir} was prepared from other files than {archive} "
                                 f"({name}: md5 {md5} prepared, {bin_md5[name]} in the archive); "
                                 "prepare into another --data_dir")


def _write_source(builder_dir: str, source: dict) -> None:
    import json
    from datetime import datetime, timezone
    path = os.path.join(builder_dir, "keras_resnet", SOURCE_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump({**source, "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds")}, f, indent=2)
    os.replace(path + ".tmp", path)


def read_source(data_dir: str | None) -> dict | None:
    """What ``prepare_cifar10`` recorded of the archive the prepared data came from, or ``None``."""
    import json
    builder = prepared_builder("cifar10", data_dir, "python -m tools.prepare_cifar10 --data_dir={data_dir}")
    path = os.path.join(builder.data_dir, "keras_resnet", SOURCE_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def archive_md5s(data: "CifarData", split: str) -> dict[str, str] | None:
    """The md5 of each original ``.bin`` file, rebuilt from ``data`` (a whole ``train`` or ``test``
    split: 1 label byte, then the R, G and B planes of each record, in the archive's order);
    ``None`` for a part of a split, which covers no file whole."""
    names = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}.get(split)
    if names is None or data.record is None or len(data.record) % len(names):
        return None
    order = np.argsort(data.record)
    if not np.array_equal(data.record[order], np.arange(len(order))):
        return None
    per_file = len(order) // len(names)  # 10,000 in CIFAR-10; the archive's files are of equal size.
    records = np.concatenate([data.labels[order].astype(np.uint8)[:, None],
                              data.images[order].transpose(0, 3, 1, 2).reshape(len(order), -1)], axis=1)
    return {name: hashlib.md5(records[i * per_file:(i + 1) * per_file].tobytes()).hexdigest()
            for i, name in enumerate(names)}


def data_identity(splits: dict[str, "CifarData"], data_dir: str | None) -> dict:
    """What a run read, for its provenance: TFDS's dataset version, the md5 of every original file
    rebuilt from the records read (or of the records themselves, for part of a split), whether they
    are the official files, and the archive the data was prepared from (``None``: prepared before
    this was recorded)."""
    builder = prepared_builder("cifar10", data_dir, "python -m tools.prepare_cifar10 --data_dir={data_dir}")
    read = {}
    for split, data in splits.items():
        md5 = archive_md5s(data, split)
        if md5 is None:
            order = np.argsort(data.record)
            content = hashlib.md5(data.labels[order].astype(np.uint8).tobytes() + data.images[order].tobytes())
            read[split] = {"images": len(data), "records_md5": content.hexdigest(), "official": None}
        else:
            read[split] = {"images": len(data), "bin_md5": md5,
                           "official": all(OFFICIAL_MD5[n] == v for n, v in md5.items())}
    official = all(r["official"] for r in read.values())
    partial = any(r["official"] is None for r in read.values())
    summary = (f"cifar10 (TFDS {builder.version}), "
               + ("part of a split: records md5 recorded" if partial else
                  "every .bin has the official md5" if official else "NOT the official CIFAR-10 files"))
    identity = {"dataset": "cifar10", "tfds_version": str(builder.version), "splits": read}
    return {"identity": identity, "summary": summary, "data_dir": builder.data_dir,
            "prepared_from": read_source(data_dir)}


@dataclasses.dataclass(frozen=True)
class CifarData:
    """A split in memory: ``images`` uint8 (N, 32, 32, 3), ``labels`` int32 (N,),
    ``mean`` float32 (32, 32, 3), the per-pixel mean of the training split used, ``std`` the
    per-channel std, and ``record`` (N,): each image's position in the original archive's
    batch files (TFDS shuffles records when it prepares a dataset; a mask or a list over the
    archive's order, such as ``test_exact_mask.npy``, is indexed with it)."""

    images: np.ndarray
    labels: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    record: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


def prepared_builder(name: str, data_dir: str | None, how_to_prepare: str) -> tfds.core.DatasetBuilder:
    """TFDS's builder for ``name`` if it is prepared in ``data_dir``, else ``DataNotPreparedError``.

    Checked on disk first, so a missing dataset gives one clear line and no TFDS warnings.
    """
    root = os.path.expanduser(data_dir or os.environ.get("TFDS_DATA_DIR") or tfds.core.constants.DATA_DIR)
    version_dir = os.path.join(root, name, str(tfds.builder_cls(name).VERSION))
    if not os.path.exists(os.path.join(version_dir, "dataset_info.json")):
        raise DataNotPreparedError(f"{name} is not prepared in {version_dir} and cannot be downloaded here; "
                                   f"run {how_to_prepare.format(data_dir=root)}")
    return tfds.builder(name, data_dir=root)


def _read_split(split: str, data_dir: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    builder = prepared_builder(
        "cifar10", data_dir,
        "python -m tools.prepare_cifar10 --archive=PATH/cifar-10-binary.tar.gz --data_dir={data_dir}")
    data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, shuffle_files=False))
    # TFDS's ids are "train_00042" / "test_00042": the record's position in the archive.
    record = np.array([int(i.decode().rsplit("_", 1)[1]) for i in data["id"]], np.int64)
    return data["image"], data["label"].astype(np.int32), record


def _mean_cache_path(builder_dir: str, split: str) -> str:
    key = re.sub(r"[^A-Za-z0-9]+", "_", split).strip("_")
    return os.path.join(builder_dir, "keras_resnet", f"pixel_mean_{key}.npz")


def pixel_statistics(split: str, data_dir: str | None,
                     images: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel mean image and per-channel std of ``split``, cached beside the data.

    The cache file is keyed by the split string, so choosing another training
    split (e.g. the 45k/5k protocol) recomputes it.
    """
    builder = prepared_builder("cifar10", data_dir, "python -m tools.prepare_cifar10 --data_dir={data_dir}")
    path = _mean_cache_path(builder.data_dir, split)
    if os.path.exists(path):
        with np.load(path) as cached:
            return cached["mean"], cached["std"]
    if images is None:  # ``images`` may be passed when the caller already read ``split``.
        images, _, _ = _read_split(split, data_dir)
    pixels = images.astype(np.float64)
    mean = pixels.mean(axis=0).astype(np.float32)
    std = pixels.reshape(-1, 3).std(axis=0).astype(np.float32)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez(tmp, mean=mean, std=std)
    os.replace(tmp, path)  # Atomic: a crash never leaves a half-written cache.
    return mean, std


def load_cifar10(split: str, data_dir: str | None = None, train_split: str = "train") -> CifarData:
    """Loads ``split`` into memory, with the statistics of ``train_split``.

    Args:
        split: TFDS split, e.g. ``"train"``, ``"test"``, ``"train[:90%]"``.
        data_dir: TFDS data directory (``None``: ``TFDS_DATA_DIR`` or the default).
        train_split: The training split whose per-pixel mean is subtracted.
    """
    images, labels, record = _read_split(split, data_dir)
    mean, std = pixel_statistics(train_split, data_dir, images if split == train_split else None)
    return CifarData(images=images, labels=labels, mean=mean, std=std, record=record)


def _normalize(images: tf.Tensor, data: CifarData, normalization: str) -> tf.Tensor:
    """Section 4.2: subtract the per-pixel mean; or per-channel mean/std (ablation)."""
    x = tf.cast(images, tf.float32)
    if normalization == "pixel_mean":
        return x - data.mean
    return (x - data.mean.reshape(-1, 3).mean(axis=0)) / data.std


def check_normalization(normalization: str) -> None:
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")


def crop_and_flip(images: tf.Tensor, offsets: tf.Tensor, flips: tf.Tensor) -> tf.Tensor:
    """Zero-pads a batch by 4 pixels, crops 32x32 at ``offsets`` (B, 2) and mirrors where ``flips``.

    One gather per axis for the whole batch, no per-image ops. Zero padding
    happens after mean subtraction, i.e. with the mean image, as in the
    Facebook's Torch reimplementation (fb.resnet.torch pads normalised images with zeros).
    """
    padded = tf.pad(images, [[0, 0], [PAD, PAD], [PAD, PAD], [0, 0]])
    grid = tf.range(IMAGE_SIZE)
    rows = offsets[:, :1] + grid
    cols = tf.where(flips[:, None], offsets[:, 1:] + IMAGE_SIZE - 1 - grid, offsets[:, 1:] + grid)
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(out, cols, axis=2, batch_dims=1)


def _global_batches(num_examples: int, global_batch: int, seed: int, start_step: int) -> tf.data.Dataset:
    """(step, indices) for every step from ``start_step``: a fresh permutation every epoch,
    batches running on across epoch boundaries, everything a function of (seed, step)."""
    # Jump straight to the epoch and position of ``start_step``: resuming costs nothing.
    first_epoch, offset = divmod(start_step * global_batch, num_examples)
    epochs = tf.data.Dataset.range(first_epoch, 2**62)

    def permutation(epoch):
        return tf.random.experimental.stateless_shuffle(
            tf.range(num_examples, dtype=tf.int32), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))

    indices = epochs.map(permutation).unbatch().skip(offset).batch(global_batch, drop_remainder=True)
    return tf.data.Dataset.zip(tf.data.Dataset.range(start_step, 2**62), indices)


def cifar10_train_dataset(
    data: CifarData,
    global_batch_size: int,
    *,
    seed: int = 0,
    start_step: int = 0,
    input_context: tf.distribute.InputContext | None = None,
    augment: bool = True,
    normalization: str = "pixel_mean",
) -> tf.data.Dataset:
    """Endless augmented training batches for one input pipeline.

    Step ``k`` always holds the same images with the same crops and flips for
    a given ``seed``; with an ``input_context`` (from
    ``strategy.distribute_datasets_from_function``) each pipeline keeps only
    its disjoint share of every global batch, split into per-replica batches.

    Args:
        data: From ``load_cifar10``.
        global_batch_size: Images per step over all replicas (128 in the paper).
        seed: Seed for the order and the augmentation.
        start_step: First step to produce (resume without replaying the past).
        input_context: ``tf.distribute.InputContext``; ``None`` for one pipeline.
        augment: Pad-crop-flip (section 4.2); ``False`` streams plain images.
        normalization: ``"pixel_mean"`` (paper) or ``"channel_mean_std"``.
    """
    check_normalization(normalization)
    pipelines, pipeline_id, per_replica = 1, 0, global_batch_size
    if input_context is not None:
        pipelines, pipeline_id = input_context.num_input_pipelines, input_context.input_pipeline_id
        per_replica = input_context.get_per_replica_batch_size(global_batch_size)
    share = global_batch_size // pipelines
    images, labels = tf.constant(data.images), tf.constant(data.labels)

    def draw(step, indices):
        key = tf.stack([tf.cast(seed, tf.int64), step])
        offsets = tf.random.stateless_uniform([global_batch_size, 2], seed=key, maxval=2 * PAD + 1, dtype=tf.int32)
        flips = tf.random.stateless_uniform([global_batch_size], seed=key + [0, 1 << 40]) < 0.5
        if not augment:
            offsets, flips = tf.fill([global_batch_size, 2], PAD), tf.zeros([global_batch_size], tf.bool)
        part = slice(pipeline_id * share, (pipeline_id + 1) * share)
        return indices[part], offsets[part], flips[part]

    def assemble(indices, offsets, flips):
        x = _normalize(tf.gather(images, indices), data, normalization)
        return crop_and_flip(x, offsets, flips), tf.gather(labels, indices)

    ds = _global_batches(len(data), global_batch_size, seed, start_step)
    ds = ds.map(draw).unbatch().batch(per_replica, drop_remainder=True)
    ds = ds.map(assemble, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    # Without tf.data's autotuning thread (AUTOTUNE then means the core count, and the prefetch buffer
    # grows on its own): the pipeline has 100x the speed training needs either way (about 100,000
    # images/s on 2 Zen 4 cores with or without it), and on TF 2.21 deleting an iterator waits for that
    # thread, which held a run's exit after Ctrl-C or SIGTERM for 10-45 s (median 2.6 s without it).
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def cifar10_eval_dataset(data: CifarData, batch_size: int, normalization: str = "pixel_mean") -> tf.data.Dataset:
    """Every image once, in order, un-augmented (section 4.2: "the single view
    of the original 32x32 image"); the last batch may be smaller."""
    check_normalization(normalization)
    ds = tf.data.Dataset.from_tensor_slices((data.images, data.labels)).batch(batch_size)
    ds = ds.map(lambda x, y: (_normalize(x, data, normalization), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
