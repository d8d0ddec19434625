"""ImageNet (ILSVRC 2012) through TFDS ``imagenet2012``, with the paper's
augmentation (section 3.4) and its three test protocols.

Train: scale augmentation (short side resized to a random length in
[256, 480]), a random 224x224 crop or its flip, mean subtraction and
AlexNet-style PCA colour augmentation. The crop is computed in the original
image's coordinates, so JPEG decoding and cropping are fused
(``decode_and_crop_jpeg``) and only the pixels used are decoded.

Test: ``"center"`` (single 224 crop of the 256-resized image), ``"ten_crop"``
(4 corners + centre and their flips, as in Tables 2 and 3) and
``"multiscale"`` (whole image with short side in {224, 256, 384, 480, 640},
for fully-convolutional nets, as in Table 4; scored with each scale's horizontal flip, as VGG [41]
does, or without as ``"multiscale_noflip"``).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_resnet.data.cifar10 import prepared_builder

CROP = 224
SCALE_RANGE = (256, 480)  # Section 3.4, following [41].
EVAL_RESIZE = 256
MULTISCALE_SIZES = (224, 256, 384, 480, 640)  # Section 3.4, following [41, 13].
EVAL_MODES = ("center", "ten_crop", "multiscale", "multiscale_noflip")
# Mean RGB of the ImageNet training images. The paper subtracts a per-pixel
# mean image; over random 224 crops of resized images it is flat to within a
# few grey levels, so the per-channel mean is used (as the later Caffe and
# Torch ResNet releases do).
RGB_MEAN = np.array([123.68, 116.779, 103.939], np.float32)
# AlexNet-style PCA lighting noise (Krizhevsky et al. 2012), eigen-decomposition
# of ImageNet RGB covariance in [0, 255] units, as in fb.resnet.torch.
PCA_EIGVAL = np.array([0.2175, 0.0188, 0.0045], np.float32) * 255.0
PCA_EIGVEC = np.array([[-0.5675, 0.7192, 0.4009],
                       [-0.5808, -0.0045, -0.8140],
                       [-0.5836, -0.6948, 0.4203]], np.float32)
PCA_STD = 0.1


def prepare_imagenet(manual_dir: str, data_dir: str | None = None) -> tfds.core.DatasetBuilder:
    """Runs TFDS's ``imagenet2012`` builder on the ILSVRC tars in ``manual_dir``
    (``ILSVRC2012_img_train.tar``, ``ILSVRC2012_img_val.tar``), no network."""
    for name in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"):
        if not os.path.isfile(os.path.join(manual_dir, name)):
            raise ValueError(f"manual_dir {manual_dir!r} lacks {name} (the ILSVRC 2012 tar files)")
    builder = tfds.builder("imagenet2012", data_dir=data_dir)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    return builder


def imagenet_split(split: str, data_dir: str | None = None, shuffle_files: bool = False,
                   input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
    """Raw ``(jpeg_bytes, label)`` pairs of a prepared split (files sharded per pipeline)."""
    builder = prepared_builder(
        "imagenet2012", data_dir,
        "python -m tools.prepare_imagenet --manual_dir=DIR_WITH_ILSVRC2012_TARS --data_dir={data_dir}")
    read_config = tfds.ReadConfig(input_context=input_context, shuffle_seed=None)
    ds = builder.as_dataset(split=split, shuffle_files=shuffle_files, read_config=read_config,
                            decoders={"image": tfds.decode.SkipDecoding()})
    return ds.map(lambda ex: (ex["image"], ex["label"]))


def data_identity(data_dir: str | None = None) -> dict:
    """What a run reads, for its provenance: TFDS's dataset version and the examples and files of each
    split as prepared (the ILSVRC2012 tarballs themselves are not hashed: 150 GB)."""
    builder = prepared_builder(
        "imagenet2012", data_dir,
        "python -m tools.prepare_imagenet --manual_dir=DIR_WITH_ILSVRC2012_TARS --data_dir={data_dir}")
    splits = {name: {"images": info.num_examples, "shards": len(info.filenames)}
              for name, info in builder.info.splits.items()}
    identity = {"dataset": "imagenet2012", "tfds_version": str(builder.version), "splits": splits}
    summary = f"imagenet2012 (TFDS {builder.version}), " + ", ".join(f"{k} {v['images']:,}" for k, v in splits.items())
    return {"identity": identity, "summary": summary, "data_dir": builder.data_dir}


def _resize_short_side(image: tf.Tensor, size, antialias: bool = True) -> tf.Tensor:
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.cast(size, tf.float32) / tf.reduce_min(shape)
    new = tf.cast(tf.round(shape * scale), tf.int32)
    return tf.image.resize(image, new, method="bilinear", antialias=antialias)


def normalize(image: tf.Tensor) -> tf.Tensor:
    return tf.cast(image, tf.float32) - RGB_MEAN


def pca_lighting(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Adds ``eigvec @ (alpha * eigval)``, ``alpha ~ N(0, 0.1)``, to every pixel."""
    alpha = tf.random.stateless_normal([3], seed=seed, stddev=PCA_STD)
    return image + tf.linalg.matvec(PCA_EIGVEC, alpha * PCA_EIGVAL)


def train_crop_window(image_shape: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """``[y, x, side, side]`` in original pixels: the region that becomes the
    224 crop after resizing the short side to ``S ~ U[256, 480]``."""
    seeds = tf.random.experimental.stateless_split(seed, 3)
    height, width = image_shape[0], image_shape[1]
    target = tf.random.stateless_uniform([], seeds[0], SCALE_RANGE[0], SCALE_RANGE[1] + 1, tf.int32)
    short = tf.minimum(height, width)
    side = tf.cast(tf.round(CROP * tf.cast(short, tf.float32) / tf.cast(target, tf.float32)), tf.int32)
    side = tf.clip_by_value(side, 1, short)
    y = tf.random.stateless_uniform([], seeds[1], 0, height - side + 1, tf.int32)
    x = tf.random.stateless_uniform([], seeds[2], 0, width - side + 1, tf.int32)
    return tf.stack([y, x, side, side])


def train_preprocess(jpeg: tf.Tensor, seed: tf.Tensor, antialias: bool = True) -> tf.Tensor:
    """One training image: scale augmentation, random crop, flip, mean, PCA colour.

    ``antialias``: the crop is resized to 224 with TF's antialiased bilinear filter (area-weighted when
    shrinking, which the scale augmentation almost always does: a 500x375 photo's crop of up to 375
    pixels becomes 224), or, with ``False``, plain bilinear interpolation: 1.4-1.7x the images/s
    (docs/performance.md section 9), with some aliasing. The paper does not say how it resized.
    """
    seeds = tf.random.experimental.stateless_split(seed, 3)
    window = train_crop_window(tf.image.extract_jpeg_shape(jpeg), seeds[0])
    image = tf.image.decode_and_crop_jpeg(jpeg, window, channels=3)  # Greyscale -> RGB.
    image = tf.image.resize(image, [CROP, CROP], method="bilinear", antialias=antialias)
    image = tf.image.stateless_random_flip_left_right(image, seeds[1])
    return pca_lighting(normalize(image), seeds[2])


def ten_crops(image: tf.Tensor, size: int = CROP) -> tf.Tensor:
    """The 4 corner and centre crops and their mirror images: ``(10, size, size, 3)``."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    starts = [(0, 0), (0, width - size), (height - size, 0), (height - size, width - size),
              ((height - size) // 2, (width - size) // 2)]
    crops = tf.stack([image[y:y + size, x:x + size] for y, x in starts])
    return tf.ensure_shape(tf.concat([crops, tf.reverse(crops, axis=[2])], axis=0), [10, size, size, 3])


def eval_preprocess(jpeg: tf.Tensor, mode: str = "center", antialias: bool = True):
    """One test image for ``mode``: ``"center"`` -> (224, 224, 3); ``"ten_crop"``
    -> (10, 224, 224, 3); ``"multiscale"``/``"multiscale_noflip"`` -> a tuple of 5 whole images (the
    flips are taken when scoring). ``antialias``: as in ``train_preprocess``."""
    if mode not in EVAL_MODES:
        raise ValueError(f"mode must be one of {EVAL_MODES}, got {mode!r}")
    image = normalize(tf.image.decode_jpeg(jpeg, channels=3))
    if mode.startswith("multiscale"):
        return tuple(_resize_short_side(image, s, antialias) for s in MULTISCALE_SIZES)
    image = _resize_short_side(image, EVAL_RESIZE, antialias)
    if mode == "ten_crop":
        return ten_crops(image)
    y = (tf.shape(image)[0] - CROP) // 2
    x = (tf.shape(image)[1] - CROP) // 2
    return tf.ensure_shape(image[y:y + CROP, x:x + CROP], [CROP, CROP, 3])


def epoch_records(files: list[str], seed: int, epoch: tf.Tensor | int, shuffle_buffer: int) -> tf.data.Dataset:
    """The serialized records of ``files`` in epoch ``epoch``'s order: the files permuted by ``(seed,
    epoch)``, read 16 at a time in a fixed interleave, and each block of ``shuffle_buffer`` consecutive
    records permuted by ``(seed, epoch, block)``. Stateless, so a resumed stream draws what an
    uninterrupted one drew (tf.data's ``shuffle`` refuses tensor seeds once a global seed is set, and
    its draws would not depend on the epoch)."""
    seed_e = tf.constant(seed, tf.int64) * 1_000_003 + tf.cast(epoch, tf.int64)
    order = tf.random.experimental.stateless_shuffle(tf.constant(files), seed=tf.stack([tf.constant(seed, tf.int64),
                                                                                        tf.cast(epoch, tf.int64)]))
    records = tf.data.Dataset.from_tensor_slices(order).interleave(
        tf.data.TFRecordDataset, cycle_length=min(16, len(files)), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True)
    blocks = tf.data.Dataset.zip(records.batch(shuffle_buffer), tf.data.Dataset.range(2**62))
    return blocks.map(lambda block, b: tf.random.experimental.stateless_shuffle(
        block, seed=tf.stack([seed_e, b]))).unbatch()


def imagenet_train_dataset(data_dir: str | None, global_batch_size: int, *, seed: int = 0, start_step: int = 0,
                           input_context: tf.distribute.InputContext | None = None,
                           shuffle_buffer: int = 10_000, antialias: bool = True) -> tf.data.Dataset:
    """Endless augmented per-replica batches of the prepared training split, in an order fixed by ``seed``.

    Epoch ``e`` of a pipeline reads its share of the files (every ``num_input_pipelines``-th) in the
    order of ``epoch_records``; each image's crop, flip and colour noise are seeded by ``seed`` and the
    image's position in the stream. So ``start_step=k`` yields exactly the batches that an uninterrupted
    stream yields from step ``k`` on (an exact resume): the stream starts at ``k``'s epoch and skips
    the records of that epoch already used, reading them without decoding (their cost:
    docs/performance.md).
    """
    builder = prepared_builder(
        "imagenet2012", data_dir,
        "python -m tools.prepare_imagenet --manual_dir=DIR_WITH_ILSVRC2012_TARS --data_dir={data_dir}")
    split = builder.info.splits["train"]
    pipelines, pipeline = 1, 0
    per_replica = global_batch_size
    if input_context is not None:
        pipelines, pipeline = input_context.num_input_pipelines, input_context.input_pipeline_id
        per_replica = input_context.get_per_replica_batch_size(global_batch_size)
    files = [os.path.join(builder.data_dir, name) for name in split.filenames][pipeline::pipelines]
    if not files:
        raise ValueError(f"{len(split.filenames)} training files cannot feed {pipelines} input pipelines")
    epoch_size = sum(split.shard_lengths[pipeline::pipelines])
    start_epoch, offset = divmod(start_step * (global_batch_size // pipelines), epoch_size)
    features = builder.info.features

    def epoch(e):
        records = epoch_records(files, seed, e, shuffle_buffer)
        return tf.data.Dataset.zip(records, tf.data.Dataset.range(e * epoch_size, (e + 1) * epoch_size))

    def example(serialized, position):
        item = features.deserialize_example(serialized, decoders={"image": tfds.decode.SkipDecoding()})
        seeds = tf.stack([tf.constant(seed, tf.int64), position])
        return train_preprocess(item["image"], seeds, antialias), item["label"]

    ds = tf.data.Dataset.range(start_epoch, 2**62).flat_map(epoch).skip(offset)
    ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(per_replica, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def imagenet_eval_dataset(raw: tf.data.Dataset, mode: str = "center", batch_size: int = 50,
                          antialias: bool = True) -> tf.data.Dataset:
    """Test batches for ``mode``; ``"multiscale"`` yields one image (at 5 scales) per element."""
    ds = raw.map(lambda jpeg, label: (eval_preprocess(jpeg, mode, antialias), label),
                 num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(1 if mode.startswith("multiscale") else batch_size)
    return ds.prefetch(tf.data.AUTOTUNE)
