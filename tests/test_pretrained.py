"""Specification of the torchvision/timm weight conversion (no download, no PyTorch needed)."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from safetensors.numpy import save_file

from keras_resnet import imagenet_resnet, pretrained
import torchvision_reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _random_net(depth, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    model = imagenet_resnet(depth, stride_on="3x3", classifier_activation=None, **kwargs)
    rng = np.random.default_rng(seed)
    for w in model.weights:  # Non-trivial BN statistics too.
        w.assign(rng.uniform(0.5, 1.5, w.shape).astype("float32") if "variance" in w.path
                 else rng.normal(0, 0.05, w.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def resnet18_checkpoint(tmp_path_factory):
    """A state dict of a random ResNet-18 of ours in torchvision's names and layouts, as .safetensors."""
    model = _random_net(18)
    path = str(tmp_path_factory.mktemp("ckpt") / "resnet18.safetensors")
    state = pretrained.to_torchvision_state_dict(model)
    state["bn1.num_batches_tracked"] = np.array(7, np.int64)  # As torchvision writes it: ignored.
    save_file(state, path)
    return path, [w.numpy() for w in model.weights]


def test_a_torchvision_state_dict_round_trips_exactly(resnet18_checkpoint, tmp_path):
    path, weights = resnet18_checkpoint
    out = pretrained.convert_checkpoint(path, 18, str(tmp_path / "r18.weights.h5"))
    loaded = imagenet_resnet(18, stride_on="3x3", weights=out)
    for a, b in zip(loaded.weights, weights):
        np.testing.assert_array_equal(a.numpy(), b)


def test_resnet50_has_torchvisions_tensors_names_and_layouts():
    state = pretrained.to_torchvision_state_dict(imagenet_resnet(50, stride_on="3x3"))
    # torchvision's resnet50: 53 convs (4 of them downsample.0), 53 BNs x 4 tensors, fc weight and bias.
    assert len(state) == 53 + 53 * 4 + 2
    assert state["conv1.weight"].shape == (64, 3, 7, 7) and state["fc.weight"].shape == (1000, 2048)
    assert state["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert state["layer2.0.conv2.weight"].shape == (128, 128, 3, 3) and "layer2.1.downsample.0.weight" not in state
    assert state["layer4.2.bn3.running_var"].shape == (2048,)


def test_the_backbone_takes_its_weights_from_the_file(resnet18_checkpoint, tmp_path):
    path, weights = resnet18_checkpoint
    out = pretrained.convert_checkpoint(path, 18, str(tmp_path / "r18.weights.h5"))
    full = imagenet_resnet(18, stride_on="3x3", weights=out)
    backbone = imagenet_resnet(18, stride_on="3x3", include_top=False, pooling="avg", weights=out)
    np.testing.assert_array_equal(backbone.get_layer("conv5_2_2_bn").moving_mean.numpy(),
                                  full.get_layer("conv5_2_2_bn").moving_mean.numpy())


def test_weights_converted_for_the_3x3_stride_are_refused_by_the_papers_1x1_net(resnet18_checkpoint, tmp_path):
    path, _ = resnet18_checkpoint
    out = pretrained.convert_checkpoint(path, 18, str(tmp_path / "r18.weights.h5"))
    with pytest.raises(ValueError, match="are for depth=18 .*this net has depth=34"):
        imagenet_resnet(34, stride_on="3x3", weights=out)
    with pytest.raises(ValueError, match="are for stride_on='3x3' .*this net has stride_on='1x1'"):
        imagenet_resnet(18, weights=out)


@pytest.mark.parametrize("change,message", [
    (lambda s: s.pop("layer3.1.bn2.running_mean"), "the checkpoint lacks 'layer3.1.bn2.running_mean'"),
    (lambda s: s.update({"layer1.0.conv1.weight": np.zeros((64, 64, 1, 1), np.float32)}),
     "'layer1.0.conv1.weight' has shape (64, 64, 1, 1) in the checkpoint"),
    (lambda s: s.update({"layer5.0.conv1.weight": np.zeros((1,), np.float32)}),
     "the checkpoint has 'layer5.0.conv1.weight', which this net has no place for"),
])
def test_a_bad_checkpoint_names_the_first_bad_tensor_and_writes_nothing(resnet18_checkpoint, tmp_path, change, message):
    from safetensors.numpy import load_file
    path, _ = resnet18_checkpoint
    state = dict(load_file(path))
    change(state)
    bad = str(tmp_path / "bad.safetensors")
    save_file(state, bad)
    out = tmp_path / "out.weights.h5"
    result = subprocess.run([sys.executable, "-m", "tools.convert_weights", f"--checkpoint={bad}", "--depth=18",
                             f"--out={out}"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""))
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr[-2000:]
    assert not out.exists()


def test_torchvision_preprocessing_is_rgb_over_255_minus_mean_over_std():
    images = np.random.default_rng(0).integers(0, 256, (2, 4, 4, 3)).astype("float32")
    expected = (images / 255.0 - np.array(pretrained.TORCHVISION_MEAN)) / np.array(pretrained.TORCHVISION_STD)
    np.testing.assert_allclose(pretrained.torchvision_preprocessing()(images).numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("depth", [18, 50])
def test_converted_seeded_weights_give_the_logits_torchvision_computed_for_them(depth):
    """Checked against torchvision itself on every run, without PyTorch: the seeded weights in torchvision's
    layouts, converted, must give the logits torchvision gave for them (tests/fixtures/make_torchvision_logits.py)."""
    import json
    fixture = np.load(os.path.join(os.path.dirname(__file__), "fixtures", torchvision_reference.FIXTURE))
    meta = json.loads(str(fixture["meta"]))
    net = meta["nets"][f"resnet{depth}"]
    state = torchvision_reference.seeded_state_dict(net["shapes"], seed=net["seed"])
    ours = imagenet_resnet(depth, stride_on="3x3", num_classes=meta["num_classes"], classifier_activation=None,
                           input_shape=torchvision_reference.IMAGE_SHAPE[1:])
    pretrained.load_torchvision_weights(ours, state)
    expected = fixture[f"resnet{depth}"]
    got = ours(torchvision_reference.images(0), training=False).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def _torchvision():
    try:
        import torch  # noqa: F401
        import torchvision
        return torchvision
    except ImportError:
        return None


@pytest.mark.skipif(_torchvision() is None, reason="needs torch and torchvision (optional)")
@pytest.mark.parametrize("depth", [18, 50])
def test_converted_net_gives_torchvisions_logits(depth, tmp_path):
    import torch
    torchvision = _torchvision()
    torch.manual_seed(0)
    reference = getattr(torchvision.models, f"resnet{depth}")().eval()
    with torch.no_grad():  # Non-trivial BN statistics.
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    path = str(tmp_path / "tv.pth")
    torch.save(reference.state_dict(), path)
    out = pretrained.convert_checkpoint(path, depth, str(tmp_path / "tv.weights.h5"))
    ours = imagenet_resnet(depth, stride_on="3x3", classifier_activation=None, weights=out)
    images = np.random.default_rng(0).normal(size=(2, 224, 224, 3)).astype("float32")
    with torch.no_grad():
        expected = reference(torch.from_numpy(images.transpose(0, 3, 1, 2))).numpy()
    got = ours(images, training=False).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
