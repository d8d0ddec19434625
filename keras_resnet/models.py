"""ResNet builders: the CIFAR nets of section 4.2 and the ImageNet nets of Table 1.

The depth tables are data; one private builder assembles stem, stages and head;
``cifar_resnet`` and ``imagenet_resnet`` are thin, validated fronts over it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Callable, Sequence

import keras

from keras_resnet import blocks as blocks_lib
from keras_resnet import trained
from keras_resnet.blocks import BlockOptions

# Table 1: depth -> (blocks per stage conv2_x..conv5_x, bottleneck?).
IMAGENET_SPECS: dict[int, tuple[tuple[int, ...], bool]] = {
    18: ((2, 2, 2, 2), False),
    34: ((3, 4, 6, 3), False),
    50: ((3, 4, 6, 3), True),
    101: ((3, 4, 23, 3), True),
    152: ((3, 8, 36, 3), True),
}
POOLINGS = (None, "avg", "max")


def cifar_resnet(
    depth: int,
    *,
    residual: bool = True,
    shortcut: str = "A",
    num_classes: int = 10,
    input_shape: Sequence[int | None] = (32, 32, 3),
    include_top: bool = True,
    pooling: str | None = None,
    classifier_activation: str | None = "softmax",
    width: int = 16,
    shortcut_a_padding: str = "end",
    zero_init_residual: bool = False,
    weight_decay: float = 1e-4,
    weight_decay_on: str = "all",
    kernel_init: str = "fan_in",
    fused_batch_norm: bool = True,
    bn_group_size: int | None = None,
    dtype: Any = None,
    name: str | None = None,
    weights: str | None = None,
) -> keras.Model:
    """The CIFAR-10 ResNet (or plain net) of section 4.2, depth ``6n + 2``.

    A 3x3 conv with 16 filters, then three stages of ``n`` basic blocks on
    32x32, 16x16 and 8x8 maps with 16, 32 and 64 filters (downsampling by
    stride-2 convs), global average pooling and a 10-way fully-connected layer.
    Option A shortcuts by default, so a net and its plain twin have exactly the
    same parameters (ResNet-20: 269,722 trainable weights).

    Args:
        depth: int. ``6n + 2`` for ``n >= 1``: 8, 14, 20, 32, 44, 56, 110, 1202, ...
        residual: bool. ``False`` builds the plain net of Figure 6.
        shortcut: str. ``"A"`` (paper), ``"B"`` or ``"C"``; see ``BlockOptions``.
        num_classes: int. Size of the classifier.
        input_shape: tuple. ``(H, W, C)``; ``H`` and ``W`` may be ``None``.
        include_top: bool. Whether to add the pooling + ``fc`` classifier.
        pooling: ``None``, ``"avg"`` or ``"max"``: the pooling applied to the
            features when ``include_top=False``, as in keras.applications.
        classifier_activation: Activation of the output, ``"softmax"`` or
            ``None`` for logits. The classifier always computes in float32.
        width: int. Filters of the first stage (16 in the paper).
        weight_decay_on: str. ``"all"`` (default here): the weight decay also applies
            to the BN gammas and betas and the fc bias, as in Caffe and fb.resnet.torch;
            measured at the paper's schedule, ResNet-56 ends 1.25 points lower with it than
            with ``"kernels"`` (the Keras convention and ``imagenet_resnet``'s default; see
            ``BlockOptions`` and docs/results/table6-64k).
        shortcut_a_padding, zero_init_residual, weight_decay, kernel_init,
            fused_batch_norm, bn_group_size, dtype: see ``BlockOptions``. The
            recipes train with ``bn_group_size=64``, the paper's BN batch;
            the builder's default ``None`` keeps standard Keras BN.
        name: Model name; defaults to ``"resnet20"`` / ``"plain20"``.
        weights: ``None`` (random initialisation), ``"cifar10"`` (the weights this package
            trained with the paper's recipe and schedule, shipped inside it: ResNet-20, -56 and
            -110; ``keras_resnet/weights/cifar10.json`` gives each one's test error, and a
            ``ValueError`` names them for any other net), or the path of a ``.weights.h5`` saved
            from a net of the same architecture. Trained weights expect
            images minus the training set's per-pixel mean: ``keras_resnet.cifar10_preprocessing()``.
            With ``include_top=False`` the backbone's weights are taken from them.

    Returns:
        A functional ``keras.Model``.

    Example:
        >>> model = cifar_resnet(20)
        >>> len(model.trainable_weights) > 0
        True
    """
    check_cifar_depth(depth)
    _check_positive_int("width", width)
    n = (depth - 2) // 6
    opts = BlockOptions(
        residual=residual, shortcut=shortcut, shortcut_a_padding=shortcut_a_padding,
        zero_init_residual=zero_init_residual, weight_decay=weight_decay, weight_decay_on=weight_decay_on,
        kernel_init=kernel_init, fused_batch_norm=fused_batch_norm, bn_group_size=bn_group_size,
        dtype=dtype)

    def stem(x):
        return blocks_lib.conv_bn(x, width, 3, 1, "conv1", opts)

    def build(include_top: bool) -> keras.Model:
        return _build(
            stem=stem, block_fn=blocks_lib.basic_block, stage_blocks=(n, n, n),
            stage_filters=(width, 2 * width, 4 * width), stage_strides=(1, 2, 2), opts=opts,
            input_shape=input_shape, include_top=include_top, pooling=pooling,
            num_classes=num_classes, classifier_activation=classifier_activation,
            name=name or f"{'resnet' if residual else 'plain'}{depth}")

    if weights is None:
        return build(include_top)
    if weights == "cifar10":
        weights = trained.cifar10_weights(depth, residual)
        if num_classes != 10 or shortcut != "A" or width != 16:
            raise ValueError(f'weights="cifar10" are for 10 classes, shortcut "A" and width 16; got '
                             f"num_classes={num_classes}, shortcut={shortcut!r}, width={width}")
    else:
        _check_weights_file(weights, 'None, "cifar10" (trained by this package) or the path of a .weights.h5 file')
    trained.check_weights_fit(weights, depth=depth, residual=residual, shortcut=shortcut)
    return _with_weights(build, weights, include_top)


def _with_weights(build: Callable[[bool], keras.Model], weights: str, include_top: bool) -> keras.Model:
    """The net with ``weights`` loaded; without its top, the backbone's weights taken from them."""
    full = build(True)
    full.load_weights(weights)
    if include_top:
        return full
    backbone = build(False)
    for layer in backbone.layers:
        if layer.weights:
            layer.set_weights(full.get_layer(layer.name).get_weights())
    return backbone


def imagenet_resnet(
    depth: int | None = None,
    *,
    blocks: Sequence[int] | None = None,
    bottleneck: bool | None = None,
    residual: bool = True,
    shortcut: str = "B",
    stride_on: str = "1x1",
    num_classes: int = 1000,
    input_shape: Sequence[int | None] = (224, 224, 3),
    include_top: bool = True,
    pooling: str | None = None,
    classifier_activation: str | None = "softmax",
    width: int = 64,
    shortcut_a_padding: str = "end",
    zero_init_residual: bool = False,
    weight_decay: float = 1e-4,
    weight_decay_on: str = "kernels",
    kernel_init: str = "fan_in",
    fused_batch_norm: bool = True,
    bn_group_size: int | None = None,
    dtype: Any = None,
    name: str | None = None,
    weights: str | None = None,
) -> keras.Model:
    """The ImageNet ResNet (or plain net) of Table 1.

    Stem: 7x7/64 (``width``) conv stride 2 and 3x3 max-pool stride 2 (both symmetrically
    padded); stages ``conv2_x``..``conv5_x`` with 64/128/256/512 base filters,
    downsampling by stride 2 at ``conv3_1``, ``conv4_1`` and ``conv5_1``;
    global average pooling and a 1000-way fully-connected layer.

    Args:
        depth: int. 18 or 34 (basic blocks), 50, 101 or 152 (bottlenecks).
            Leave ``None`` and pass ``blocks`` for another net.
        blocks: Blocks per stage, e.g. ``(3, 4, 6, 3)``; stage ``i`` has
            ``width * 2**i`` base filters. Requires ``bottleneck``.
        bottleneck: bool. Block type for ``blocks``; implied by ``depth``.
        residual: bool. ``False`` builds the plain net of Table 2.
        shortcut: str. ``"B"`` (default, ResNet-50/101/152 in the paper),
            ``"A"`` (ResNet-18/34 of Table 2) or ``"C"`` (Table 3).
            Ignored by plain nets, which have no shortcuts.
        stride_on: str. ``"1x1"`` (paper) or ``"3x3"`` ("v1.5") for bottlenecks.
        input_shape: tuple. ``(None, None, 3)`` builds a fully-convolutional
            net for the multi-scale testing of section 3.4.
        num_classes, include_top, pooling, classifier_activation, width,
            shortcut_a_padding, zero_init_residual, weight_decay, weight_decay_on, kernel_init,
            fused_batch_norm, bn_group_size, dtype, name: as in ``cifar_resnet``.
        weights: Optional path of a ``.weights.h5`` to load, e.g. ImageNet weights converted
            from torchvision or timm by ``tools.convert_weights`` (those need
            ``stride_on="3x3"``; a file converted for another depth or stride is refused).
            None are shipped and nothing is downloaded, so ``"imagenet"`` is refused with how to
            get them. With ``include_top=False`` the backbone's weights are taken from it.

    Returns:
        A functional ``keras.Model``.
    """
    if depth is not None and blocks is not None:
        raise ValueError(f"pass either depth or blocks, not both (got depth={depth!r}, blocks={blocks!r})")
    if depth is not None:
        if isinstance(depth, bool) or depth not in IMAGENET_SPECS:
            raise ValueError(
                f"depth must be one of {', '.join(map(str, IMAGENET_SPECS))} (or pass blocks=...), got {depth!r}")
        stage_blocks, implied = IMAGENET_SPECS[depth]
        if bottleneck is not None and bottleneck != implied:
            raise ValueError(
                f"bottleneck={bottleneck!r} contradicts depth={depth}, which uses "
                f"{'bottleneck' if implied else 'basic'} blocks")
        bottleneck = implied
    elif blocks is not None:
        stage_blocks = tuple(blocks) if isinstance(blocks, (list, tuple)) else ()
        if not stage_blocks or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in stage_blocks):
            raise ValueError(f"blocks must be a non-empty sequence of positive ints, e.g. (3, 4, 6, 3), got {blocks!r}")
        if bottleneck not in (True, False):
            raise ValueError(f"bottleneck must be True or False when blocks is given, got {bottleneck!r}")
        depth = 2 + sum(stage_blocks) * (3 if bottleneck else 2)
    else:
        raise ValueError("pass depth (18, 34, 50, 101, 152) or blocks, e.g. blocks=(3, 4, 6, 3)")
    _check_positive_int("width", width)
    opts = BlockOptions(
        residual=residual, shortcut=shortcut, shortcut_a_padding=shortcut_a_padding,
        stride_on=stride_on, zero_init_residual=zero_init_residual,
        weight_decay=weight_decay, weight_decay_on=weight_decay_on, kernel_init=kernel_init,
        fused_batch_norm=fused_batch_norm, bn_group_size=bn_group_size, dtype=dtype)

    def stem(x):
        x = blocks_lib.conv_bn(x, width, 7, 2, "conv1", opts)
        x = keras.layers.ZeroPadding2D(1, name="pool1_pad", dtype=dtype)(x)
        return keras.layers.MaxPooling2D(3, strides=2, name="pool1", dtype=dtype)(x)

    num_stages = len(stage_blocks)

    def build(include_top: bool) -> keras.Model:
        return _build(
            stem=stem,
            block_fn=blocks_lib.bottleneck_block if bottleneck else blocks_lib.basic_block,
            stage_blocks=stage_blocks,
            stage_filters=tuple(width * 2**i for i in range(num_stages)),
            stage_strides=(1,) + (2,) * (num_stages - 1), opts=opts,
            input_shape=input_shape, include_top=include_top, pooling=pooling,
            num_classes=num_classes, classifier_activation=classifier_activation,
            name=name or f"{'resnet' if residual else 'plain'}{depth}")

    if weights is None:
        return build(include_top)
    if weights == "imagenet" and not os.path.isfile(weights):
        raise ValueError('weights="imagenet": no ImageNet weights come with this package and nothing is downloaded; '
                         "convert torchvision's or timm's with `python -m tools.convert_weights` and pass the "
                         '.weights.h5 file (README: "ImageNet-pretrained weights")')
    _check_weights_file(weights, "None or the path of a .weights.h5 file (e.g. from tools.convert_weights)")
    trained.check_weights_fit(weights, depth=depth, stride_on=stride_on)
    return _with_weights(build, weights, include_top)


def _build(*, stem: Callable, block_fn: Callable, stage_blocks: Sequence[int],
           stage_filters: Sequence[int], stage_strides: Sequence[int], opts: BlockOptions,
           input_shape, include_top: bool, pooling: str | None, num_classes: int,
           classifier_activation, name: str) -> keras.Model:
    """Stem, stages ``conv2_x``, ``conv3_x``, ... and the head, as one functional model."""
    input_shape = _check_input_shape(input_shape)
    _check_choice_top(include_top, pooling, num_classes)
    with recursion_limit_for(sum(stage_blocks)):
        inputs = keras.Input(shape=input_shape, name="image")
        x = stem(inputs)
        for i, (num, filters, strides) in enumerate(zip(stage_blocks, stage_filters, stage_strides)):
            x = blocks_lib.stage(x, block_fn, num, filters, strides, f"conv{i + 2}", opts)
        if include_top:
            x = keras.layers.GlobalAveragePooling2D(name="avg_pool", dtype=opts.dtype)(x)
            # The classifier computes in float32 under any mixed-precision policy.
            x = keras.layers.Dense(
                num_classes, kernel_regularizer=opts.kernel_regularizer(), bias_regularizer=opts.other_regularizer(),
                name="fc",
                dtype="float32")(x)
            if classifier_activation is not None:
                x = keras.layers.Activation(classifier_activation, name="predictions",
                                            dtype="float32")(x)
        elif pooling == "avg":
            x = keras.layers.GlobalAveragePooling2D(name="avg_pool", dtype=opts.dtype)(x)
        elif pooling == "max":
            x = keras.layers.GlobalMaxPooling2D(name="max_pool", dtype=opts.dtype)(x)
        return keras.Model(inputs, x, name=name)


def check_cifar_depth(depth: Any) -> None:
    """Raises ``ValueError`` unless ``depth`` is ``6n + 2`` with ``n >= 1``."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6n+2 (20, 32, 44, 56, 110, 1202, ...), got {depth!r}")


@contextlib.contextmanager
def recursion_limit_for(num_blocks: int):
    """Temporarily raise Python's recursion limit for very deep nets.

    Keras walks the functional graph recursively; ResNet-1202 (600 blocks)
    exceeds the default limit of 1000 frames. The previous limit is restored
    on exit, so no global state leaks out of the builders.
    """
    needed = 2000 + 40 * num_blocks
    previous = sys.getrecursionlimit()
    if needed > previous:
        sys.setrecursionlimit(needed)
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


def _check_weights_file(weights: Any, allowed: str) -> None:
    if not isinstance(weights, (str, os.PathLike)) or not os.path.isfile(weights):
        raise ValueError(f"weights={weights!r} is not a file; weights takes {allowed}")


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_input_shape(input_shape) -> tuple:
    try:
        shape = tuple(input_shape)
        ok = len(shape) == 3 and all(d is None or (isinstance(d, int) and d > 0) for d in shape) \
            and shape[-1] is not None
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(
            f"input_shape must be (height, width, channels) with positive ints or None for "
            f"height/width, got {input_shape!r}")
    return shape


def _check_choice_top(include_top: bool, pooling, num_classes) -> None:
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of None, 'avg', 'max', got {pooling!r}")
    if include_top:
        _check_positive_int("num_classes", num_classes)
