"""Stage outputs as backbone features (keras_resnet.features)."""

import numpy as np
import pytest

import keras
from keras_resnet import cifar_resnet, imagenet_resnet
from keras_resnet.features import feature_extractor, stage_outputs


def shapes(outputs):
    return {name: tuple(tensor.shape[1:]) for name, tensor in outputs.items()}


def test_imagenet_stage_outputs_are_table1s_stages_at_strides_2_to_32():
    model = imagenet_resnet(50, input_shape=(64, 64, 3), include_top=False)
    assert shapes(stage_outputs(model)) == {"conv1": (32, 32, 64), "conv2": (16, 16, 256), "conv3": (8, 8, 512),
                                            "conv4": (4, 4, 1024), "conv5": (2, 2, 2048)}
    assert stage_outputs(model)["conv4"] is model.get_layer("conv4_6_out").output  # The stage's last block.


def test_cifar_stage_outputs_are_the_three_stages_of_section_4_2_plain_or_residual():
    for residual in (True, False):
        model = cifar_resnet(14, residual=residual)
        assert shapes(stage_outputs(model)) == {"conv1": (32, 32, 16), "conv2": (32, 32, 16),
                                                "conv3": (16, 16, 32), "conv4": (8, 8, 64)}
        assert stage_outputs(model)["conv3"] is model.get_layer("conv3_2_out").output


def test_the_last_stage_pooled_and_classified_gives_the_nets_own_logits():
    model = imagenet_resnet(18, input_shape=(64, 64, 3), num_classes=7, classifier_activation=None)
    features = feature_extractor(model, stages=["conv5"])
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
    pooled = features(x)["conv5"].numpy().mean(axis=(1, 2))
    np.testing.assert_allclose(model.get_layer("fc")(pooled).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)


def test_the_extractor_shares_the_nets_weights():
    model = cifar_resnet(8)
    features = feature_extractor(model)
    assert list(features.output) == ["conv1", "conv2", "conv3", "conv4"]
    kernel = model.get_layer("conv1_conv").kernel
    assert any(w is kernel for w in features.weights)  # One variable: training or loading one sets the other.
    assert len(features.trainable_weights) == len(model.trainable_weights) - 2  # All but fc's kernel and bias.


@pytest.mark.parametrize("stages, message", [
    (["conv5"], r"stages=\['conv5'\] names \['conv5'\]: 'resnet8' has conv1, conv2, conv3, conv4"),
    ([], r"names no stage"),
])
def test_a_stage_the_net_does_not_have_is_one_clear_error(stages, message):
    with pytest.raises(ValueError, match=message):
        feature_extractor(cifar_resnet(8, name="resnet8"), stages=stages)


def test_a_model_not_built_by_the_builders_is_one_clear_error():
    inputs = keras.Input((8, 8, 3))
    other = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs), name="other")
    with pytest.raises(ValueError, match="model 'other' is not a net of keras_resnet's builders"):
        stage_outputs(other)
