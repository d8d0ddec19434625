"""Specification of the builders: the paper's nets, exactly."""

import os
import subprocess
import sys

import numpy as np
import pytest

import keras
import keras_resnet
from keras_resnet import cifar_resnet, count_flops, imagenet_resnet


def trainable_params(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


# RESNET_PAPER.md: option-A CIFAR nets, trainable weights.
CIFAR_PARAMS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}
# RESNET_PAPER.md: option-B ImageNet nets, no conv bias.
IMAGENET_PARAMS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808}
# Table 1 multiply-adds.
IMAGENET_FLOPS = {18: 1.8e9, 34: 3.6e9, 50: 3.8e9, 101: 7.6e9, 152: 11.3e9}


@pytest.mark.parametrize("depth", sorted(CIFAR_PARAMS))
def test_cifar_resnet_has_the_papers_parameter_count(depth):
    assert trainable_params(cifar_resnet(depth)) == CIFAR_PARAMS[depth]


@pytest.mark.parametrize("depth", sorted(CIFAR_PARAMS))
def test_plain_twin_has_the_same_parameters_as_option_a_resnet(depth):
    assert trainable_params(cifar_resnet(depth, residual=False)) == CIFAR_PARAMS[depth]


def test_resnet_1202_has_19_4m_parameters():
    assert trainable_params(cifar_resnet(1202)) == 19_421_274


@pytest.mark.parametrize("depth", sorted(IMAGENET_PARAMS))
def test_imagenet_resnet_has_the_papers_parameter_count(depth):
    assert trainable_params(imagenet_resnet(depth)) == IMAGENET_PARAMS[depth]


@pytest.mark.parametrize("depth", sorted(IMAGENET_FLOPS))
def test_imagenet_flops_match_table_1(depth):
    assert abs(count_flops(imagenet_resnet(depth)) - IMAGENET_FLOPS[depth]) < 0.1e9


def test_resnet50_flops_are_exactly_what_the_readme_prints():
    assert count_flops(imagenet_resnet(50)) == 3_857_973_248


def test_importing_the_package_loads_no_tensorflow():
    code = "import sys, keras_resnet; print(any(m == 'tensorflow' or m.startswith('tensorflow.') for m in sys.modules))"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr[-2000:]


def test_v15_stride_on_3x3_costs_4_09_gflops():
    assert abs(count_flops(imagenet_resnet(50, stride_on="3x3")) - 4.09e9) < 0.01e9


def test_count_flops_of_resnet20():
    # 3x3 convs: stem 32*32*16*27, then per stage 2n convs; fc 64*10.
    expected = 32 * 32 * 16 * 27
    for size, cin, cout in ((32, 16, 16), (16, 32, 32), (8, 64, 64)):
        first_in = cin if size == 32 else cin // 2
        expected += size * size * cout * 9 * first_in + size * size * cout * 9 * cout * 5
    expected += 64 * 10
    assert count_flops(cifar_resnet(20)) == expected


def test_custom_blocks_build_the_same_net_as_the_named_depth():
    custom = imagenet_resnet(blocks=(3, 4, 6, 3), bottleneck=True)
    assert trainable_params(custom) == IMAGENET_PARAMS[50]
    assert custom.name == "resnet50"


def test_custom_blocks_with_three_stages():
    model = imagenet_resnet(blocks=(1, 1, 1), bottleneck=False, input_shape=(64, 64, 3), num_classes=5)
    assert model.output_shape == (None, 5)
    assert model.get_layer("conv4_1_out").output.shape[1:] == (4, 4, 256)


def test_option_c_projects_every_block_and_b_only_where_shape_changes():
    def projections(model):
        return sum(1 for layer in model.layers if layer.name.endswith("_shortcut_conv"))
    assert projections(imagenet_resnet(34, shortcut="B")) == 3
    assert projections(imagenet_resnet(34, shortcut="C")) == 16
    assert projections(imagenet_resnet(34, shortcut="A")) == 0
    assert projections(imagenet_resnet(50, shortcut="B")) == 4  # conv2_1 widens 64 -> 256.


def test_plain_net_has_no_addition():
    names = [layer.name for layer in cifar_resnet(20, residual=False).layers]
    assert not any(n.endswith("_add") or "shortcut" in n for n in names)


def test_layer_names_follow_table_1():
    model = imagenet_resnet(50)
    for name in ("conv1_conv", "conv1_bn", "pool1", "conv2_1_1_conv", "conv2_1_shortcut_conv",
                 "conv3_4_3_bn", "conv5_3_out", "avg_pool", "fc", "predictions"):
        model.get_layer(name)
    assert len({layer.name for layer in model.layers}) == len(model.layers)


def test_stage_output_sizes_match_table_1():
    model = imagenet_resnet(18)
    sizes = {stage: model.get_layer(f"{stage}_2_out").output.shape[1] for stage in ("conv2", "conv3", "conv4", "conv5")}
    assert sizes == {"conv2": 56, "conv3": 28, "conv4": 14, "conv5": 7}


def test_cifar_stage_maps_are_32_16_8():
    model = cifar_resnet(20)
    assert [model.get_layer(f"conv{s}_3_out").output.shape[1:] for s in (2, 3, 4)] == [
        (32, 32, 16), (16, 16, 32), (8, 8, 64)]


def test_no_conv_has_a_bias_and_bn_uses_caffe_constants():
    for layer in cifar_resnet(20).layers:
        if isinstance(layer, keras.layers.Conv2D):
            assert not layer.use_bias
        if isinstance(layer, keras.layers.BatchNormalization):
            assert layer.momentum == 0.9 and layer.epsilon == 1e-5


def test_strided_convs_pad_symmetrically():
    model = cifar_resnet(20)
    conv = model.get_layer("conv3_1_1_conv")
    assert conv.padding == "valid" and conv.strides == (2, 2)
    assert model.get_layer("conv3_1_1_pad").padding == ((1, 1), (1, 1))


def test_weight_decay_is_coupled_l2_of_half_lambda_on_kernels_only():
    model = cifar_resnet(20, weight_decay=1e-4, weight_decay_on="kernels")
    conv = model.get_layer("conv1_conv")
    assert conv.kernel_regularizer.l2 == pytest.approx(5e-5)
    assert model.get_layer("fc").kernel_regularizer.l2 == pytest.approx(5e-5)
    assert model.get_layer("fc").bias_regularizer is None
    assert model.get_layer("conv1_bn").gamma_regularizer is None
    expected = 5e-5 * sum(float(np.sum(np.square(w.numpy()))) for w in model.trainable_weights if w.path.endswith("kernel"))
    assert float(sum(model.losses)) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("build", [lambda **kw: cifar_resnet(8, **kw),
                                   lambda **kw: imagenet_resnet(blocks=(1, 1), bottleneck=True, input_shape=(32, 32, 3),
                                                                num_classes=5, **kw)])
def test_weight_decay_on_all_adds_bn_gammas_betas_and_the_fc_bias(build):
    model = build(weight_decay=1e-4, weight_decay_on="all")
    rng = np.random.default_rng(0)
    for w in model.trainable_weights:  # Non-zero betas and bias, so that each term counts.
        w.assign(rng.normal(size=w.shape).astype("float32"))
    decayed = [w for w in model.trainable_weights if w.path.rsplit("/", 1)[-1] in ("kernel", "gamma", "beta", "bias")]
    assert len(decayed) == len(model.trainable_weights)  # Every parameter.
    expected = 5e-5 * sum(float(np.sum(np.square(w.numpy()))) for w in decayed)
    assert float(sum(model.losses)) == pytest.approx(expected, rel=1e-4)


def test_cifar_resnet_decays_every_parameter_and_imagenet_resnet_the_kernels_by_default():
    # CIFAR-10: the measured default (docs/results/table6-64k); ImageNet: not yet measured there.
    cifar = cifar_resnet(8)
    assert cifar.get_layer("conv1_bn").gamma_regularizer is not None and cifar.get_layer("fc").bias_regularizer
    imagenet = imagenet_resnet(blocks=(1, 1), bottleneck=True, input_shape=(32, 32, 3), num_classes=5)
    assert imagenet.get_layer("fc").kernel_regularizer is not None and imagenet.get_layer("fc").bias_regularizer is None
    assert all(layer.gamma_regularizer is None for layer in imagenet.layers if hasattr(layer, "gamma_regularizer"))


def test_weight_decay_zero_adds_no_loss():
    assert cifar_resnet(20, weight_decay=0).losses == []


def test_he_init_is_an_untruncated_normal():
    keras.utils.set_random_seed(0)
    kernel = cifar_resnet(20).get_layer("conv3_2_1_conv").kernel.numpy()
    std = np.sqrt(2.0 / (9 * 32))
    assert kernel.std() == pytest.approx(std, rel=0.05)
    # A truncated normal stops at 2 sigma; 9216 normal draws go beyond it.
    assert np.abs(kernel).max() > 2.5 * std


def test_he_init_fan_in_differs_from_fan_out_on_a_widening_conv():
    keras.utils.set_random_seed(0)
    stds = {m: cifar_resnet(20, kernel_init=m).get_layer("conv3_1_1_conv").kernel.numpy().std()
            for m in ("fan_in", "fan_out")}
    assert stds["fan_in"] == pytest.approx(np.sqrt(2 / (9 * 16)), rel=0.05)
    assert stds["fan_out"] == pytest.approx(np.sqrt(2 / (9 * 32)), rel=0.05)


def test_zero_init_residual_zeroes_last_bn_gamma_of_each_branch_only():
    model = cifar_resnet(20, zero_init_residual=True)
    assert not np.any(model.get_layer("conv2_1_2_bn").gamma.numpy())
    assert np.all(model.get_layer("conv2_1_1_bn").gamma.numpy() == 1)
    assert np.all(cifar_resnet(20).get_layer("conv2_1_2_bn").gamma.numpy() == 1)


def test_zero_init_residual_leaves_a_plain_net_alone():
    # A plain net has no residual branch: zeroed gammas would cut its signal.
    model = cifar_resnet(8, residual=False, zero_init_residual=True)
    gammas = [layer.gamma.numpy() for layer in model.layers if layer.name.endswith("_bn")]
    assert gammas and all(np.all(g == 1) for g in gammas)


def test_identity_shortcuts_add_no_layer():
    names = [layer.name for layer in cifar_resnet(20).layers if "shortcut" in layer.name]
    assert names == ["conv3_1_shortcut", "conv4_1_shortcut"]  # Option A only where the shape changes.


@pytest.mark.parametrize("option, layer", [("A", "ZeroPadShortcut"), ("B", "Conv2D")])
def test_a_block_that_only_halves_the_maps_still_has_a_shortcut_of_its_option(option, layer):
    from keras_resnet.blocks import BlockOptions, basic_block
    inputs = keras.Input((8, 8, 16))
    model = keras.Model(inputs, basic_block(inputs, 16, 2, "b", BlockOptions(shortcut=option)))
    assert model.output.shape == (None, 4, 4, 16)
    shortcut = [l for l in model.layers if l.name.startswith("b_shortcut")][0]
    assert type(shortcut).__name__ == layer


def test_zero_init_residual_block_starts_as_identity_plus_relu():
    model = imagenet_resnet(50, zero_init_residual=True, input_shape=(64, 64, 3))
    assert not np.any(model.get_layer("conv3_2_3_bn").gamma.numpy())


def test_fully_convolutional_input_accepts_any_size():
    model = imagenet_resnet(18, input_shape=(None, None, 3))
    for h, w in ((224, 224), (256, 320), (97, 131)):
        assert model(np.zeros((1, h, w, 3), "float32")).shape == (1, 1000)


def test_fully_convolutional_option_a_handles_odd_sizes():
    model = imagenet_resnet(34, shortcut="A", input_shape=(None, None, 3))
    assert model(np.zeros((1, 97, 131, 3), "float32")).shape == (1, 1000)


def test_backbone_without_top():
    model = imagenet_resnet(50, include_top=False, input_shape=(224, 224, 3))
    assert model.output_shape == (None, 7, 7, 2048)
    assert imagenet_resnet(50, include_top=False, pooling="avg").output_shape == (None, 2048)
    assert imagenet_resnet(18, include_top=False, pooling="max").output_shape == (None, 512)


def test_logits_stay_float32_under_mixed_precision():
    for policy in ("mixed_bfloat16", "mixed_float16"):
        keras.mixed_precision.set_global_policy(policy)
        model = cifar_resnet(8, classifier_activation=None)
        assert model.get_layer("conv2_1_1_conv").compute_dtype == policy.split("_")[1]
        assert model.get_layer("conv2_1_1_bn").moving_mean.dtype == "float32"
        assert all(w.dtype == "float32" for w in model.weights)
        assert model(np.zeros((2, 32, 32, 3), "float32")).dtype == "float32"


def test_dtype_argument_sets_policy_without_global_state():
    model = cifar_resnet(8, dtype="mixed_bfloat16")
    assert model.get_layer("conv1_conv").compute_dtype == "bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"
    assert model.get_layer("fc").compute_dtype == "float32"


@pytest.mark.parametrize("builder", [
    lambda: cifar_resnet(8, shortcut="A"),
    lambda: cifar_resnet(8, shortcut="A", shortcut_a_padding="both", residual=True),
    lambda: imagenet_resnet(blocks=(1, 1), bottleneck=True, input_shape=(None, None, 3), num_classes=7),
])
def test_save_and_load_round_trip_gives_identical_outputs(tmp_path, builder):
    model = builder()
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]


def test_bn_is_fused_by_default_and_stock_keras_on_request_with_the_same_weights():
    fused = cifar_resnet(8, shortcut="B")
    stock = cifar_resnet(8, shortcut="B", fused_batch_norm=False)
    bns = [layer for layer in fused.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and all(type(layer) is keras_resnet.FusedBatchNormalization for layer in bns)
    assert not any(type(layer).__module__.startswith("keras_resnet") for layer in stock.layers)
    assert [w.path for w in fused.weights] == [w.path for w in stock.weights]
    stock.set_weights(fused.get_weights())
    x = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(fused(x, training=True), stock(x, training=True), atol=1e-5)
    for a, b in zip(fused.get_weights(), stock.get_weights()):  # Moving statistics included.
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_bn_groups_are_off_by_default_and_set_on_every_bn_layer_on_request():
    def group_sizes(model):
        return {layer.group_size for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}

    assert group_sizes(cifar_resnet(8)) == {None}
    assert group_sizes(cifar_resnet(8, bn_group_size=64)) == {64}
    assert group_sizes(imagenet_resnet(18, input_shape=(64, 64, 3), bn_group_size=32)) == {32}


def test_a_grouped_resnet_in_training_is_the_net_applied_to_each_group_alone():
    grouped = cifar_resnet(8, bn_group_size=4)
    whole = cifar_resnet(8)
    whole.set_weights(grouped.get_weights())
    x = np.random.default_rng(0).normal(size=(8, 32, 32, 3)).astype("float32")
    halves = np.concatenate([whole(x[:4], training=True), whole(x[4:], training=True)])
    np.testing.assert_allclose(grouped(x, training=True), halves, rtol=1e-5, atol=1e-6)


def test_saved_model_loads_in_a_new_process_after_importing_the_layers(tmp_path):
    model = cifar_resnet(8, shortcut="A")
    path = tmp_path / "model.keras"
    model.save(path)
    code = ("import keras, keras_resnet.layers; "
            f"m = keras.models.load_model({str(path)!r}); print(type(m.get_layer('conv1_bn')).__name__)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "FusedBatchNormalization"


def test_no_lambda_layers():
    model = imagenet_resnet(34, shortcut="A")
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)


def test_public_api_is_small():
    assert set(keras_resnet.__all__) >= {"cifar_resnet", "imagenet_resnet", "count_flops"}


BAD_ARGUMENTS = [
    (lambda: cifar_resnet(21), "depth must be 6n+2 (20, 32, 44, 56, 110, 1202, ...), got 21"),
    (lambda: cifar_resnet(2), "got 2"),
    (lambda: cifar_resnet("20"), "got '20'"),
    (lambda: cifar_resnet(20, shortcut="D"), "shortcut must be one of 'A', 'B', 'C', got 'D'"),
    (lambda: cifar_resnet(20, kernel_init="xavier"), "kernel_init must be one of 'fan_in', 'fan_out', got 'xavier'"),
    (lambda: cifar_resnet(20, weight_decay=-1), "weight_decay must be a number >= 0, got -1"),
    (lambda: cifar_resnet(20, weight_decay_on="bn"), "weight_decay_on must be one of 'kernels', 'all', got 'bn'"),
    (lambda: cifar_resnet(20, shortcut_a_padding="left"), "shortcut_a_padding must be one of 'end', 'both', got 'left'"),
    (lambda: cifar_resnet(20, num_classes=0), "num_classes must be a positive int, got 0"),
    (lambda: cifar_resnet(20, input_shape=(32, 32)), "input_shape must be (height, width, channels)"),
    (lambda: cifar_resnet(20, input_shape=(32, 32, None)), "input_shape must be"),
    (lambda: cifar_resnet(20, pooling="mean"), "pooling must be one of None, 'avg', 'max', got 'mean'"),
    (lambda: cifar_resnet(20, width=0), "width must be a positive int, got 0"),
    (lambda: imagenet_resnet(20), "depth must be one of 18, 34, 50, 101, 152 (or pass blocks=...), got 20"),
    (lambda: imagenet_resnet(), "pass depth (18, 34, 50, 101, 152) or blocks"),
    (lambda: imagenet_resnet(50, blocks=(3, 4, 6, 3)), "pass either depth or blocks, not both"),
    (lambda: imagenet_resnet(blocks=(3, 0, 6)), "blocks must be a non-empty sequence of positive ints"),
    (lambda: imagenet_resnet(blocks=(3, 4, 6, 3)), "bottleneck must be True or False when blocks is given"),
    (lambda: imagenet_resnet(50, bottleneck=False), "bottleneck=False contradicts depth=50"),
    (lambda: imagenet_resnet(50, stride_on="7x7"), "stride_on must be one of '1x1', '3x3', got '7x7'"),
    (lambda: cifar_resnet(20, fused_batch_norm="yes"), "fused_batch_norm must be True or False, got 'yes'"),
    (lambda: cifar_resnet(20, bn_group_size=0), "bn_group_size must be a positive int or None, got 0"),
    (lambda: cifar_resnet(20, bn_group_size=64, fused_batch_norm=False), "bn_group_size needs fused_batch_norm=True"),
]


@pytest.mark.parametrize("build,message", BAD_ARGUMENTS, ids=[m[:40] for _, m in BAD_ARGUMENTS])
def test_bad_argument_raises_one_line_value_error(build, message):
    with pytest.raises(ValueError) as info:
        build()
    assert message in str(info.value)
    assert "\n" not in str(info.value)
