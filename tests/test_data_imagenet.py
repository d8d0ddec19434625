"""Specification of the ImageNet pipeline on a tiny fake ILSVRC layout, through TFDS's real builder."""

import numpy as np
import pytest
import tensorflow as tf

from fake_data import jpeg
from keras_resnet.data import imagenet


def test_builder_prepares_the_fake_ilsvrc_layout(tiny_imagenet):
    train = list(imagenet.imagenet_split("train", tiny_imagenet).as_numpy_iterator())
    val = list(imagenet.imagenet_split("validation", tiny_imagenet).as_numpy_iterator())
    assert len(train) == 4 and len(val) == 3
    assert {label for _, label in train} == {0, 1}


def test_train_batches_shape_and_range(tiny_imagenet):
    x, y = next(iter(imagenet.imagenet_train_dataset(tiny_imagenet, 3, seed=0, shuffle_buffer=4)))
    assert x.shape == (3, 224, 224, 3) and x.dtype == tf.float32 and y.shape == (3,)
    # Mean-subtracted 0..255 plus a small PCA colour offset: centred, not 0..255 or 0..1.
    assert -170 < float(tf.reduce_min(x)) < -50 and 100 < float(tf.reduce_max(x)) < 180


def _batches(data_dir, start_step, steps, seed=0):
    ds = imagenet.imagenet_train_dataset(data_dir, 2, seed=seed, start_step=start_step, shuffle_buffer=4)
    return [(x.numpy(), y.numpy()) for x, y in ds.take(steps)]


def test_a_resumed_stream_gives_the_images_an_uninterrupted_one_gives_from_that_step(tiny_imagenet):
    # 4 training images in batches of 2: step 3 is the second half of epoch 1 (a mid-epoch resume).
    whole = _batches(tiny_imagenet, 0, 6)
    for start in (1, 2, 3):
        resumed = _batches(tiny_imagenet, start, 6 - start)
        for (x, y), (rx, ry) in zip(whole[start:], resumed):
            np.testing.assert_array_equal(ry, y)
            np.testing.assert_array_equal(rx, x)  # Same crops, flips and colour noise too.


def test_each_epoch_sees_every_image_once_in_an_order_of_its_own(tiny_imagenet):
    whole = _batches(tiny_imagenet, 0, 8)
    epochs = [np.concatenate([x for x, _ in whole[e * 2:(e + 1) * 2]]) for e in range(4)]
    labels = [np.concatenate([y for _, y in whole[e * 2:(e + 1) * 2]]) for e in range(4)]
    assert all(sorted(l.tolist()) == [0, 0, 1, 1] for l in labels)
    assert not all(np.array_equal(epochs[0], e) for e in epochs[1:])  # Re-augmented,
    assert not all(np.array_equal(labels[0], l) for l in labels[1:])  # and reshuffled.


@pytest.mark.parametrize("mode,shape", [("center", (2, 224, 224, 3)), ("ten_crop", (2, 10, 224, 224, 3))])
def test_eval_modes_shapes(tiny_imagenet, mode, shape):
    raw = imagenet.imagenet_split("validation", tiny_imagenet)
    x, y = next(iter(imagenet.imagenet_eval_dataset(raw, mode, batch_size=2)))
    assert x.shape == shape and y.shape == (2,)


def test_multiscale_gives_whole_images_at_five_short_sides(tiny_imagenet):
    raw = imagenet.imagenet_split("validation", tiny_imagenet)
    scales, _ = next(iter(imagenet.imagenet_eval_dataset(raw, "multiscale")))
    assert [min(s.shape[1:3]) for s in scales] == [224, 256, 384, 480, 640]  # Section 3.4.
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


def _windows(shape, n):
    draw = tf.function(lambda seeds: tf.map_fn(lambda seed: imagenet.train_crop_window(tf.constant(shape), seed),
                                               seeds, fn_output_signature=tf.int32))
    return draw(tf.stack([tf.range(n, dtype=tf.int64), tf.zeros([n], tf.int64)], axis=1)).numpy()


def test_train_crop_scale_takes_both_ends_of_256_to_480():
    # A short side of 4,800 makes every S in [256, 480] a different window side: 224 * 4800 / S.
    sides = _windows([4800, 6400, 3], 3000)[:, 2]
    assert sides.min() == 2240 and sides.max() == 4200  # S = 480 and S = 256 (each about 1 in 225 draws).


def test_train_crop_position_is_uniform_over_every_place_and_the_axes_independent():
    windows = _windows([256, 256, 3], 3000)
    y, x, side = windows[:, 0], windows[:, 1], windows[:, 2]
    assert y.min() == 0 and x.min() == 0 and (y <= 256 - side).all() and (x <= 256 - side).all()
    assert (y == 256 - side).any() and (x == 256 - side).any()  # The bottom and right edges too.
    assert np.mean(x == y) < 0.1


def test_train_flip_is_horizontal_only():
    # Rows brighten downwards, columns leftwards: a horizontal flip turns the columns round, never the rows.
    rows, cols = np.meshgrid(np.arange(300), np.arange(400)[::-1], indexing="ij")
    image = np.repeat(((rows * 0.4 + cols * 0.3)[..., None]).astype(np.uint8), 3, axis=2)
    data = tf.io.encode_jpeg(tf.constant(image), quality=100)
    downwards, leftwards = [], []
    for i in range(20):
        out = imagenet.train_preprocess(data, tf.constant([i, 7], tf.int64)).numpy().mean(axis=2)
        downwards.append(out[-8:].mean() > out[:8].mean())
        leftwards.append(out[:, :8].mean() > out[:, -8:].mean())
    assert all(downwards) and 0 < sum(leftwards) < 20


def test_resizing_rounds_the_long_side_to_the_nearest_pixel():
    scales = imagenet.eval_preprocess(tf.constant(jpeg(300, 451)), "multiscale")
    assert [tuple(s.shape[:2]) for s in scales[:2]] == [(224, 337), (256, 385)]  # 336.75 and 384.85.


def test_train_preprocess_is_deterministic_per_seed_and_handles_greyscale():
    data = tf.constant(jpeg(300, 500, channels=1))
    a = imagenet.train_preprocess(data, tf.constant([1, 2], tf.int64))
    b = imagenet.train_preprocess(data, tf.constant([1, 2], tf.int64))
    c = imagenet.train_preprocess(data, tf.constant([3, 4], tf.int64))
    assert a.shape == (224, 224, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def _stripes(height: int = 1200, width: int = 1200) -> tf.Tensor:
    """One-pixel black and white columns, as a lossless-enough JPEG: all detail is above any resize's Nyquist."""
    row = np.tile(np.array([0, 255], np.uint8), width // 2)
    image = np.repeat(np.broadcast_to(row[None, :, None], (height, width, 1)), 3, axis=2)
    return tf.io.encode_jpeg(tf.constant(image), quality=100)


def test_the_antialiased_resize_averages_detail_that_plain_bilinear_aliases():
    """Shrinking 1200 -> 256 (evaluation) or a crop of 560-1050 -> 224 (training): antialiasing turns 1-pixel stripes
    into near-uniform grey; plain bilinear, the cheaper option, keeps stripes of aliasing."""
    data = _stripes()
    seed = tf.constant([1, 2], tf.int64)
    for smooth, aliased in ((imagenet.eval_preprocess(data, "center"), imagenet.eval_preprocess(data, "center", False)),
                            (imagenet.train_preprocess(data, seed), imagenet.train_preprocess(data, seed, False))):
        spread = [np.std(image.numpy(), axis=(0, 1)).max() for image in (smooth, aliased)]  # Per channel.
        assert spread[0] < 15 < spread[1], spread


def test_pca_lighting_adds_one_colour_offset_per_image():
    image = tf.zeros([4, 4, 3])
    out = imagenet.pca_lighting(image, tf.constant([0, 1], tf.int64)).numpy()
    offset = out[0, 0]
    np.testing.assert_allclose(out, np.broadcast_to(offset, out.shape))
    assert 0 < np.abs(offset).max() < 30  # ~0.1 * 55 grey levels along the main eigenvector.


def test_unknown_eval_mode_is_refused():
    with pytest.raises(ValueError, match="mode must be one of"):
        imagenet.eval_preprocess(tf.constant(jpeg(10, 10)), "five_crop")


def _decoded_and_resized_to_256(data):
    image = tf.image.decode_jpeg(data, channels=3)
    height, width = image.shape[:2]
    size = (256, round(width * 256 / height)) if height <= width else (round(height * 256 / width), 256)
    return tf.image.resize(image, size, method="bilinear", antialias=True).numpy()


def test_center_crop_is_the_central_224_of_the_image_resized_to_a_256_short_side():
    data = tf.constant(jpeg(300, 400))
    resized = _decoded_and_resized_to_256(data)
    assert resized.shape == (256, 341, 3)
    expected = resized[16:240, 58:282] - imagenet.RGB_MEAN  # (256 - 224) / 2 and (341 - 224) // 2.
    np.testing.assert_allclose(imagenet.eval_preprocess(data, "center").numpy(), expected, atol=1e-4)


def test_ten_crops_are_the_corners_and_centre_of_the_256_image_and_their_mirrors():
    data = tf.constant(jpeg(400, 300))
    image = _decoded_and_resized_to_256(data) - imagenet.RGB_MEAN  # (341, 256, 3)
    crops = imagenet.eval_preprocess(data, "ten_crop").numpy()
    corners = [image[:224, :224], image[:224, 32:], image[117:, :224], image[117:, 32:], image[58:282, 16:240]]
    for i, crop in enumerate(corners):
        np.testing.assert_allclose(crops[i], crop, atol=1e-4)
        np.testing.assert_allclose(crops[5 + i], crop[:, ::-1], atol=1e-4)
    np.testing.assert_allclose(crops[4], imagenet.eval_preprocess(data, "center").numpy(), atol=1e-4)


def test_pca_noise_has_std_0_1_along_each_eigenvector():
    offsets = np.stack([imagenet.pca_lighting(tf.zeros([1, 1, 3]), tf.constant([i, 7], tf.int64)).numpy()[0, 0]
                        for i in range(2000)])
    # offset = eigvec @ (alpha * eigval): back to alpha in the eigenbasis.
    alphas = np.linalg.solve(imagenet.PCA_EIGVEC, offsets.T).T / imagenet.PCA_EIGVAL
    np.testing.assert_allclose(alphas.std(axis=0), [0.1, 0.1, 0.1], rtol=0.08)
    np.testing.assert_allclose(alphas.mean(axis=0), [0.0, 0.0, 0.0], atol=0.01)
