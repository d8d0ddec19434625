"""Specification of the CIFAR-10 pipeline (section 4.2) on tiny data written by the tests."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from fake_data import write_cifar_archive
from keras_resnet.data import (DataNotPreparedError, cifar10_eval_dataset, cifar10_train_dataset,
                               load_cifar10, prepare_cifar10)
from keras_resnet.data.cifar10 import crop_and_flip


def test_prepared_data_loads_with_plain_tfds_and_keeps_records_in_order(tiny_cifar):
    data_dir, (train_x, train_y, test_x, test_y) = tiny_cifar
    train = tfds.as_numpy(tfds.load("cifar10", split="train", data_dir=data_dir, download=False, batch_size=-1))
    # TFDS shuffles its records on write; every written image must be there with its label.
    order = np.argsort([int(i.decode()[len("train_"):]) for i in train["id"]])
    np.testing.assert_array_equal(train["image"][order], train_x)
    np.testing.assert_array_equal(train["label"][order], train_y)
    test = tfds.load("cifar10", split="test", data_dir=data_dir, download=False)
    assert len(test) == len(test_y)


def test_split_sizes_and_label_range(tiny_cifar):
    data_dir, _ = tiny_cifar
    train = load_cifar10("train", data_dir)
    assert len(train) == 100 and len(load_cifar10("test", data_dir)) == 30
    assert len(load_cifar10("train[:90]", data_dir, train_split="train[:90]")) == 90
    assert len(load_cifar10("train[90:]", data_dir, train_split="train[:90]")) == 10
    assert train.labels.min() >= 0 and train.labels.max() <= 9 and train.labels.dtype == np.int32


def test_mean_is_per_pixel_mean_of_the_training_split_used(tiny_cifar):
    data_dir, _ = tiny_cifar
    full = load_cifar10("train", data_dir)
    np.testing.assert_allclose(full.mean, full.images.astype(np.float64).mean(axis=0), rtol=1e-6)
    part = load_cifar10("train[:90]", data_dir, train_split="train[:90]")
    np.testing.assert_allclose(part.mean, part.images.astype(np.float64).mean(axis=0), rtol=1e-6)
    assert not np.allclose(full.mean, part.mean)  # The cache is keyed by split.
    test = load_cifar10("test", data_dir)
    np.testing.assert_array_equal(test.mean, full.mean)  # Test images use the train mean.


def test_processed_train_images_have_zero_mean(tiny_cifar):
    data_dir, _ = tiny_cifar
    data = load_cifar10("train", data_dir)
    images = np.concatenate([x for x, _ in cifar10_eval_dataset(data, 32).as_numpy_iterator()])
    assert abs(images.mean(axis=0)).max() < 1e-3


def test_crop_and_flip_match_numpy_on_known_images():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(3, 32, 32, 3)).astype(np.float32)
    images = np.concatenate([images, images[:1]])
    offsets = np.array([[0, 0], [8, 3], [4, 4], [2, 7]], np.int32)  # Row and column offsets differ in the last.
    flips = np.array([False, True, False, False])
    out = crop_and_flip(tf.constant(images), tf.constant(offsets), tf.constant(flips)).numpy()
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
    for i, ((y, x), flip) in enumerate(zip(offsets, flips)):
        expected = padded[i, y:y + 32, x:x + 32]
        np.testing.assert_array_equal(out[i], expected[:, ::-1] if flip else expected)
    np.testing.assert_array_equal(out[2], images[2])  # Offset 4, no flip: the original.
    assert not np.any(out[0, :4, :4])  # Zero padding shows at the top-left corner.


def test_augmentation_draws_every_crop_of_the_padded_image_and_flips_half(tiny_cifar):
    """Section 4.2: 4 pixels padded on each side, a 32x32 crop "randomly sampled from the padded image
    or its horizontal flip": each of the 9 offsets per axis, independently, and a flip half the time.
    Each augmented image is matched with the crop of its un-augmented version that it is."""
    data_dir, _ = tiny_cifar
    data = load_cifar10("train", data_dir)
    take = lambda augment: np.concatenate(  # noqa: E731
        [x.numpy() for x, _ in cifar10_train_dataset(data, 20, seed=4, augment=augment).take(30)])
    plain, augmented = take(False), take(True)  # The same images in the same order (seed, step).
    padded = np.pad(plain, ((0, 0), (4, 4), (4, 4), (0, 0)))
    drawn = []
    for i in range(len(plain)):
        found = [(dy, dx, flip) for dy in range(9) for dx in range(9) for flip in (False, True)
                 if np.array_equal(padded[i, dy:dy + 32, dx:dx + 32][:, ::-1] if flip
                                   else padded[i, dy:dy + 32, dx:dx + 32], augmented[i])]
        assert len(found) == 1, f"image {i}: {found}"
        drawn.append(found[0])
    dy, dx, flips = (np.array(v) for v in zip(*drawn))
    assert set(dy) == set(dx) == set(range(9))  # 600 crops: every offset, on both axes.
    assert np.mean(dy == dx) < 0.3 and 0.4 < np.mean(flips) < 0.6


def test_each_epoch_has_its_own_order(tiny_cifar):
    data_dir, _ = tiny_cifar
    data = load_cifar10("train", data_dir)
    labels = [y.numpy() for _, y in cifar10_train_dataset(data, 100, seed=3, augment=False).take(3)]
    assert not np.array_equal(labels[0], labels[1]) and not np.array_equal(labels[1], labels[2])


def test_train_batches_are_augmented_and_sized(tiny_cifar):
    data_dir, _ = tiny_cifar
    data = load_cifar10("train", data_dir)
    x, y = next(iter(cifar10_train_dataset(data, 16, seed=0)))
    assert x.shape == (16, 32, 32, 3) and x.dtype == tf.float32 and y.shape == (16,)
    plain = (data.images.astype(np.float32) - data.mean)
    # Some images are shifted or flipped, so not every one equals its un-augmented version.
    assert any(not any(np.array_equal(img, p) for p in plain) for img in x.numpy())


def test_train_pipeline_runs_without_the_autotuning_thread_that_delays_exit(tiny_cifar):
    """Deleting an iterator waits for tf.data's autotuning thread (TF 2.21): a run stopped with Ctrl-C
    or SIGTERM took 10-45 s to exit after its checkpoint; the pipeline needs no tuning."""
    data_dir, _ = tiny_cifar
    dataset = cifar10_train_dataset(load_cifar10("train", data_dir), 16, seed=0)
    assert dataset.options().autotune.enabled is False


def test_same_seed_same_stream_and_other_seed_differs(tiny_cifar):
    data_dir, _ = tiny_cifar
    data = load_cifar10("train", data_dir)
    take = lambda seed: [b[0].numpy() for b in cifar10_train_dataset(data, 16, seed=seed).take(8)]
    a, b, c = take(1), take(1), take(2)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])


def test_every_image_appears_once_per_epoch(tiny_cifar):
    data_dir, _ = tiny_cifar
    data = load_cifar10("train", data_dir)
    index_of = {(data.images[i].astype(np.float32) - data.mean).tobytes(): i for i in range(len(data))}
    assert len(index_of) == len(data)  # The tiny images are all distinct.
    for epoch in range(2):  # 100 images, 5 batches of 20 per epoch.
        batches = cifar10_train_dataset(data, 20, seed=3, augment=False, start_step=5 * epoch).take(5)
        seen = [index_of[image.tobytes()] for x, _ in batches for image in x.numpy()]
        assert sorted(seen) == list(range(len(data)))


def test_start_step_resumes_the_same_stream(tiny_cifar):
    data_dir, _ = tiny_cifar
    data = load_cifar10("train", data_dir)
    full = [x.numpy() for x, _ in cifar10_train_dataset(data, 16, seed=5).take(10)]
    resumed = [x.numpy() for x, _ in cifar10_train_dataset(data, 16, seed=5, start_step=7).take(3)]
    for u, v in zip(full[7:], resumed):
        np.testing.assert_array_equal(u, v)
    # Several epochs in (20 x 16 = 320 images = 3 epochs + 20): the same images and crops.
    far = [x.numpy() for x, _ in cifar10_train_dataset(data, 16, seed=5).take(22)][20:]
    jumped = [x.numpy() for x, _ in cifar10_train_dataset(data, 16, seed=5, start_step=20).take(2)]
    for u, v in zip(far, jumped):
        np.testing.assert_array_equal(u, v)


def test_two_pipelines_get_disjoint_halves_of_each_global_batch(tiny_cifar):
    data_dir, _ = tiny_cifar
    data = load_cifar10("train", data_dir)
    whole = [x.numpy() for x, _ in cifar10_train_dataset(data, 20, seed=7).take(3)]
    parts = []
    for pipeline in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline, num_replicas_in_sync=2)
        parts.append([x.numpy() for x, _ in cifar10_train_dataset(data, 20, seed=7, input_context=ctx).take(3)])
    for step in range(3):
        assert parts[0][step].shape == (10, 32, 32, 3)
        np.testing.assert_array_equal(np.concatenate([parts[0][step], parts[1][step]]), whole[step])


def test_one_pipeline_for_two_replicas_emits_per_replica_batches_in_order(tiny_cifar):
    data_dir, _ = tiny_cifar
    data = load_cifar10("train", data_dir)
    whole = [x.numpy() for x, _ in cifar10_train_dataset(data, 20, seed=7).take(2)]
    ctx = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=2)
    halves = [x.numpy() for x, _ in cifar10_train_dataset(data, 20, seed=7, input_context=ctx).take(4)]
    np.testing.assert_array_equal(np.concatenate(halves[:2]), whole[0])
    np.testing.assert_array_equal(np.concatenate(halves[2:]), whole[1])


def test_channel_normalization_ablation(tiny_cifar):
    data_dir, _ = tiny_cifar
    data = load_cifar10("train", data_dir)
    x = np.concatenate([b for b, _ in cifar10_eval_dataset(data, 50, normalization="channel_mean_std").as_numpy_iterator()])
    np.testing.assert_allclose(x.reshape(-1, 3).std(axis=0), 1.0, rtol=1e-3)
    with pytest.raises(ValueError, match="normalization must be one of"):
        cifar10_eval_dataset(data, 50, normalization="zca")


def test_unprepared_data_says_how_to_prepare(tmp_path):
    with pytest.raises(DataNotPreparedError, match="cifar10 is not prepared in .* python -m tools.prepare_cifar10 --archive="):
        load_cifar10("train", str(tmp_path))


@pytest.mark.parametrize("make,message", [
    (lambda p: None, "does not exist"),
    (lambda p: p.write_bytes(b"not a tar"), "is not a readable tar.gz"),
    (lambda p: write_cifar_archive(p, truncate=True), "not a positive multiple of the 3073-byte record size"),
])
def test_bad_archive_is_refused_with_one_line(tmp_path, make, message):
    archive = tmp_path / "cifar.tar.gz"
    make(archive)
    with pytest.raises(ValueError, match=message) as info:
        prepare_cifar10(str(archive), str(tmp_path / "tfds"))
    assert "\n" not in str(info.value)
    assert not (tmp_path / "tfds").exists()
