"""Trained weights shipped with the package (keras_resnet.trained) and the shipped classifiers."""

import glob
import os

import keras
import numpy as np
import pytest

import keras_resnet
import keras_resnet.layers  # noqa: F401  (registers the package's layers for loading)
from keras_resnet import trained

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Raw RGB in, probabilities out: runs' classifier.keras and their copies; not a run's model.keras (which
# takes images minus the per-pixel mean).
SHIPPED_CLASSIFIERS = sorted(p for p in glob.glob(os.path.join(ROOT, "docs", "results", "**", "*.keras"), recursive=True)
                             if os.path.basename(p) != "model.keras")


def raw_images(n=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3)).astype(np.float32)


def test_cifar10_weights_compute_the_shipped_resnet20_classifier():
    """weights="cifar10" + cifar10_preprocessing is the run's exported classifier (which computes in
    mixed bfloat16, as it was trained)."""
    classifier = keras.models.load_model(
        os.path.join(ROOT, "docs", "results", "cifar10-resnet20-64k", "resnet20-cifar10.keras"))
    model = keras_resnet.cifar_resnet(20, weights="cifar10", dtype="mixed_bfloat16")
    x = raw_images()
    ours = np.asarray(model(keras_resnet.cifar10_preprocessing()(x)))
    np.testing.assert_allclose(ours, np.asarray(classifier(x)), atol=1e-6)


def test_the_64k_runs_model_keras_is_the_shipped_classifier_behind_its_preprocessing():
    """Figure 7 draws the run's model.keras (rebuilt from the shipped weights): it must be the shipped net."""
    folder = os.path.join(ROOT, "docs", "results", "cifar10-resnet20-64k")
    classifier = keras.models.load_model(os.path.join(folder, "resnet20-cifar10.keras"))
    net = keras.models.load_model(os.path.join(folder, "resnet20-seed0", "model.keras"))
    x = raw_images()
    logits = np.asarray(net(keras_resnet.cifar10_preprocessing()(x)), np.float32)
    np.testing.assert_allclose(np.asarray(keras.ops.softmax(logits)), np.asarray(classifier(x)), atol=1e-6)


# The Table 6 runs' nets shipped as weights="cifar10", each with its run's classifier.keras committed beside it.
SHIPPED_RUNS = [(e["depth"], os.path.join(ROOT, e["source"].split(" ")[0], "classifier.keras"))
                for e in trained.read_manifest()
                if os.path.exists(os.path.join(ROOT, e["source"].split(" ")[0], "classifier.keras"))]


@pytest.mark.parametrize("depth,path", SHIPPED_RUNS, ids=[f"resnet{d}" for d, _ in SHIPPED_RUNS])
def test_cifar10_weights_of_a_table6_net_compute_its_runs_classifier(depth, path):
    model = keras_resnet.cifar_resnet(depth, weights="cifar10", dtype="mixed_bfloat16")
    x = raw_images(8)
    ours = np.asarray(model(keras_resnet.cifar10_preprocessing()(x)))
    np.testing.assert_allclose(ours, np.asarray(keras.models.load_model(path)(x)), atol=1e-6)


def test_there_are_shipped_table6_nets_to_check():
    assert {depth for depth, _ in SHIPPED_RUNS} >= {56, 110}


def test_cifar10_weights_without_the_top_are_the_backbone_of_the_trained_net():
    full = keras_resnet.cifar_resnet(20, weights="cifar10")
    backbone = keras_resnet.cifar_resnet(20, weights="cifar10", include_top=False, pooling="avg")
    x = keras_resnet.cifar10_preprocessing()(raw_images(4))
    features = keras.Model(full.input, full.get_layer("avg_pool").output)(x)
    np.testing.assert_allclose(np.asarray(backbone(x)), np.asarray(features), atol=1e-6)


@pytest.mark.parametrize("kwargs,message", [
    (dict(depth=44), r"no trained CIFAR-10 weights for ResNet-44; .*ResNet-20 \(8\.48 % test error\)"),
    (dict(depth=20, residual=False), r"no trained CIFAR-10 weights for plain-20"),
    (dict(depth=20, num_classes=100), r'weights="cifar10" are for 10 classes'),
])
def test_cifar10_weights_for_a_net_without_them_is_one_clear_error(kwargs, message):
    depth = kwargs.pop("depth")
    with pytest.raises(ValueError, match=message):
        keras_resnet.cifar_resnet(depth, weights="cifar10", **kwargs)


@pytest.mark.parametrize("build,weights,message", [
    (lambda w: keras_resnet.cifar_resnet(20, weights=w), "imagenet",
     r"^weights='imagenet' is not a file; weights takes None, \"cifar10\" \(trained by this package\) or the path"),
    (lambda w: keras_resnet.cifar_resnet(20, weights=w), 20, r"^weights=20 is not a file"),
    (lambda w: keras_resnet.imagenet_resnet(50, weights=w), "imagenet",
     r'^weights="imagenet": no ImageNet weights come with this package .*tools.convert_weights'),
    (lambda w: keras_resnet.imagenet_resnet(50, weights=w), "/nonexistent/r50.weights.h5",
     r"^weights='/nonexistent/r50.weights.h5' is not a file; weights takes None or the path of a .weights.h5"),
])
def test_weights_neither_known_nor_a_file_is_one_error_naming_what_is_allowed(build, weights, message):
    with pytest.raises(ValueError, match=message):
        build(weights)


def test_a_weights_file_of_a_residual_net_is_refused_for_its_plain_twin():
    """The twins have the same shapes (option A), so only the record tells them apart."""
    with pytest.raises(ValueError, match=r"are for residual=True .*this net has residual=False"):
        keras_resnet.cifar_resnet(20, residual=False, weights=trained.cifar10_weights(20))


def test_every_shipped_weights_file_is_package_data_of_the_wheel():
    import tomllib
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        patterns = tomllib.load(f)["tool"]["setuptools"]["package-data"]["keras_resnet"]
    package = os.path.join(ROOT, "keras_resnet")
    packaged = {os.path.relpath(p, package) for pattern in patterns for p in glob.glob(os.path.join(package, pattern))}
    shipped = {f"weights/{name}" for name, _ in trained.CIFAR10_WEIGHTS.values()}
    shipped |= {f"weights/{trained.CIFAR10_PIXEL_MEAN}", f"weights/{trained.CIFAR10_MANIFEST}"}
    assert shipped <= packaged


@pytest.mark.parametrize("path", SHIPPED_CLASSIFIERS, ids=[os.path.relpath(p, ROOT) for p in SHIPPED_CLASSIFIERS])
def test_every_shipped_classifier_loads_and_gives_probabilities_for_raw_images(path):
    model = keras.models.load_model(path)
    probabilities = np.asarray(model(raw_images(8)))
    assert probabilities.shape == (8, 10) and (probabilities >= 0).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_there_is_a_shipped_classifier_to_check():
    assert SHIPPED_CLASSIFIERS


# Shipping a run's net (keras_resnet.export.ship_cifar10_weights, tools.ship_weights).

def copy_of(run, tmp_path, **config_changes):
    import json
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, **config_changes}))
    return str(copy)


def test_shipped_weights_reproduce_the_runs_classifier_and_its_test_error(finished_cifar_run, tmp_path):
    import json

    from keras_resnet import export

    data_dir, run = finished_cifar_run
    weights_dir = str(tmp_path / "weights")
    export.ship_cifar10_weights(run, data_dir, weights_dir)
    entry = export.ship_cifar10_weights(run, data_dir, weights_dir)  # Again: replaces, never duplicates.
    assert trained.read_manifest(weights_dir) == [entry]
    stats = json.loads(open(os.path.join(run, "stats.json")).read())
    assert entry["test_error"] == pytest.approx(stats["test_error"], abs=0.005) and entry["test_images"] == 30
    assert (entry["file"], entry["depth"], entry["residual"], entry["dtype"]) == ("resnet8-cifar10.weights.h5", 8, True,
                                                                                   "float32")
    assert entry["weight_decay_on"] == "all" and "--weight_decay_on=all" in entry["source"]  # The recipe's default.
    mean = np.load(os.path.join(weights_dir, trained.CIFAR10_PIXEL_MEAN))
    net = keras_resnet.cifar_resnet(8, weights=os.path.join(weights_dir, entry["file"]))
    preprocessing = keras.layers.Normalization(axis=(1, 2, 3), mean=mean, variance=np.ones_like(mean))
    x = raw_images(8)
    ours = net(preprocessing(x))  # Probabilities: the builder's top ends in a softmax.
    classifier = keras.models.load_model(os.path.join(run, "classifier.keras"))
    np.testing.assert_allclose(np.asarray(ours), np.asarray(classifier(x)), atol=1e-5)
    assert sorted(os.listdir(weights_dir)) == sorted([entry["file"], trained.CIFAR10_PIXEL_MEAN,
                                                      trained.CIFAR10_MANIFEST])  # No staging left.


def test_a_net_trained_with_the_kernels_only_decay_is_shipped_saying_so(finished_cifar_run, tmp_path):
    """Its weights fit the builder whatever it decayed, so the manifest is where a user reads how it was trained
    (ResNet-20 and ResNet-110 are shipped from kernels-only runs, ResNet-56 from one that decayed every parameter)."""
    from keras_resnet import export

    data_dir, run = finished_cifar_run
    weights_dir = str(tmp_path / "weights")
    entry = export.ship_cifar10_weights(copy_of(run, tmp_path, weight_decay_on="kernels"), data_dir, weights_dir)
    assert entry["weight_decay_on"] == "kernels" and "--weight_decay_on=kernels" in entry["source"]
    assert trained.read_manifest(weights_dir) == [entry]
    keras_resnet.cifar_resnet(8, weights=os.path.join(weights_dir, entry["file"]))  # The default builder takes them.


@pytest.mark.parametrize("change,message", [
    (dict(dataset="imagenet2012"), r"is a 'imagenet2012' run; only CIFAR-10"),
    (dict(protocol="validation"), r"was trained with protocol='validation'; shipped weights are for the paper's"),
    (dict(normalization="channel_mean_std"), r"was trained with normalization='channel_mean_std'"),
    ("unfinished", r"is not a finished run \(no stats.json\)"),
])
def test_shipping_refuses_a_run_the_shipped_preprocessing_does_not_fit(finished_cifar_run, tmp_path, change, message):
    from keras_resnet import export

    data_dir, run = finished_cifar_run
    copy = copy_of(run, tmp_path, **(change if isinstance(change, dict) else {}))
    if change == "unfinished":
        os.remove(os.path.join(copy, "stats.json"))
    with pytest.raises(ValueError, match=message):
        export.ship_cifar10_weights(copy, data_dir, str(tmp_path / "weights"))
    assert not os.path.exists(tmp_path / "weights")


def test_shipping_refuses_training_images_whose_mean_differs_from_the_shipped_one(finished_cifar_run, tmp_path):
    from keras_resnet import export

    data_dir, run = finished_cifar_run
    os.makedirs(tmp_path / "weights")
    np.save(tmp_path / "weights" / trained.CIFAR10_PIXEL_MEAN, np.full((32, 32, 3), 120.0, np.float32))
    with pytest.raises(ValueError, match=r"have another per-pixel mean than .* share one cifar10_preprocessing"):
        export.ship_cifar10_weights(run, data_dir, str(tmp_path / "weights"))
    assert os.listdir(tmp_path / "weights") == [trained.CIFAR10_PIXEL_MEAN]


def test_weights_that_do_not_reproduce_the_runs_net_are_not_shipped(finished_cifar_run, tmp_path):
    """A run whose config.json says plain while its net is residual: the plain builder with these weights
    computes another function, and nothing is written."""
    from keras_resnet import export

    data_dir, run = finished_cifar_run
    copy = copy_of(run, tmp_path, residual=False)
    with pytest.raises(ValueError, match=r"do not reproduce its logits .* nothing was shipped"):
        export.ship_cifar10_weights(copy, data_dir, str(tmp_path / "weights"))
    assert os.listdir(tmp_path / "weights") == []
