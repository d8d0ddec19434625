"""Specification of the ImageNet pipeline on a tiny fake ILSVRC layout, through TFDS's real builder."""

import numpy as np
import pytest
import tensorflow as tf

from fake_data import jpeg, write_ilsvrc_tars
from keras_resnet.data import imagenet


@pytest.fixture(scope="module")
def tiny_imagenet(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    write_ilsvrc_tars(str(root / "manual"))
    imagenet.prepare_imagenet(str(root / "manual"), str(root / "tfds"))
    return str(root / "tfds")


def test_builder_prepares_the_fake_ilsvrc_layout(tiny_imagenet):
    train = list(imagenet.imagenet_split("train", tiny_imagenet).as_numpy_iterator())
    val = list(imagenet.imagenet_split("validation", tiny_imagenet).as_numpy_iterator())
    assert len(train) == 4 and len(val) == 3
    assert {label for _, label in train} == {0, 1}


def test_train_batches_shape_and_range(tiny_imagenet):
    raw = imagenet.imagenet_split("train", tiny_imagenet)
    x, y = next(iter(imagenet.imagenet_train_dataset(raw, batch_size=3, seed=0, shuffle_buffer=4)))
    assert x.shape == (3, 224, 224, 3) and x.dtype == tf.float32 and y.shape == (3,)
    # Mean-subtracted 0..255 plus a small PCA colour offset: centred, not 0..255 or 0..1.
    assert -170 < float(tf.reduce_min(x)) < -50 and 100 < float(tf.reduce_max(x)) < 180


@pytest.mark.parametrize("mode,shape", [("center", (2, 224, 224, 3)), ("ten_crop", (2, 10, 224, 224, 3))])
def test_eval_modes_shapes(tiny_imagenet, mode, shape):
    raw = imagenet.imagenet_split("validation", tiny_imagenet)
    x, y = next(iter(imagenet.imagenet_eval_dataset(raw, mode, batch_size=2)))
    assert x.shape == shape and y.shape == (2,)


def test_multiscale_gives_whole_images_at_five_short_sides(tiny_imagenet):
    raw = imagenet.imagenet_split("validation", tiny_imagenet)
    scales, _ = next(iter(imagenet.imagenet_eval_dataset(raw, "multiscale")))
    assert [min(s.shape[1:3]) for s in scales] == list(imagenet.MULTISCALE_SIZES)
    assert all(s.shape[0] == 1 for s in scales)


def test_ten_crop_geometry_matches_numpy():
    image = np.arange(6 * 8 * 3, dtype=np.float32).reshape(6, 8, 3)
    crops = imagenet.ten_crops(tf.constant(image), size=4).numpy()
    expected = [image[0:4, 0:4], image[0:4, 4:8], image[2:6, 0:4], image[2:6, 4:8], image[1:5, 2:6]]
    for i, e in enumerate(expected):
        np.testing.assert_array_equal(crops[i], e)
        np.testing.assert_array_equal(crops[i + 5], e[:, ::-1])


def test_train_crop_covers_short_side_scaled_to_256_to_480():
    sides = []
    for i in range(300):
        y, x, h, w = imagenet.train_crop_window(tf.constant([400, 600, 3]), tf.constant([i, 0])).numpy()
        assert h == w and 0 <= y <= 400 - h and 0 <= x <= 600 - w
        sides.append(h)
    # Side = 224 * 400 / S for S in [256, 480]: from 186.7 up to 350.
    assert 186 <= min(sides) < 195 and 340 < max(sides) <= 350


def test_train_preprocess_is_deterministic_per_seed_and_handles_greyscale():
    data = tf.constant(jpeg(300, 500, channels=1))
    a = imagenet.train_preprocess(data, tf.constant([1, 2], tf.int64))
    b = imagenet.train_preprocess(data, tf.constant([1, 2], tf.int64))
    c = imagenet.train_preprocess(data, tf.constant([3, 4], tf.int64))
    assert a.shape == (224, 224, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_pca_lighting_adds_one_colour_offset_per_image():
    image = tf.zeros([4, 4, 3])
    out = imagenet.pca_lighting(image, tf.constant([0, 1], tf.int64)).numpy()
    offset = out[0, 0]
    np.testing.assert_allclose(out, np.broadcast_to(offset, out.shape))
    assert 0 < np.abs(offset).max() < 30  # ~0.1 * 55 grey levels along the main eigenvector.


def test_unknown_eval_mode_is_refused():
    with pytest.raises(ValueError, match="mode must be one of"):
        imagenet.eval_preprocess(tf.constant(jpeg(10, 10)), "five_crop")
