"""Residual and plain building blocks of He et al. (2015), section 3.

Each block is a function ``tensor -> tensor`` in the style of
keras.applications; the options they share (shortcut type, initialisation,
weight decay, BN constants) travel in one frozen :class:`BlockOptions`.

Layer names follow the paper's Table 1: block ``conv3_1`` holds
``conv3_1_1_conv``, ``conv3_1_1_bn``, ``conv3_1_1_relu``, ..., a projection
shortcut ``conv3_1_shortcut_conv``/``_bn``, the addition ``conv3_1_add`` and
the block output ``conv3_1_out``. A plain twin has the same names minus the
shortcut and the addition, so weights transfer between twins by name.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras

from keras_resnet.layers import PAD_VARIANTS, FusedBatchNormalization, ZeroPadShortcut

SHORTCUTS = ("A", "B", "C")
STRIDE_PLACEMENTS = ("1x1", "3x3")
INIT_MODES = ("fan_in", "fan_out")
DECAYED = ("kernels", "all")  # What weight decay applies to (BlockOptions.weight_decay_on).
BOTTLENECK_EXPANSION = 4  # Section 3.4: 1x1 (d), 3x3 (d), 1x1 (4d).


@dataclasses.dataclass(frozen=True)
class BlockOptions:
    """Options shared by every block of a net; the defaults are the paper's.

    Attributes:
        residual: bool. ``False`` builds the plain twin: no shortcut, no addition.
        shortcut: str. ``"A"`` zero-padding identity, ``"B"`` projection only
            where the shape changes, ``"C"`` projection everywhere (section 3.3).
        shortcut_a_padding: str. Where option A puts its zero channels,
            ``"end"`` (fb.resnet.torch, Facebook's reimplementation) or ``"both"``; see ``ZeroPadShortcut``.
        stride_on: str. Which conv of a downsampling bottleneck has stride 2:
            ``"1x1"`` (the paper, and Caffe's released models) or ``"3x3"``
            (the later "ResNet v1.5" of torchvision and Keras).
        zero_init_residual: bool. Initialise the last BN gamma of every
            residual branch to zero (Goyal et al. 2017); not in the paper.
        weight_decay: float. Caffe-style coupled decay ``lambda``: the
            gradient gets ``lambda * w``, i.e. Keras ``L2(lambda / 2)`` on conv
            and dense kernels. ``0`` disables it.
        weight_decay_on: str. ``"kernels"`` (default): conv and fc kernels only, as
            the Keras and TF Model Garden ResNets do. ``"all"``: also the BN gammas
            and betas and the fc bias, as Caffe does unless a layer says otherwise
            and fb.resnet.torch does for every parameter. The paper does not say; with
            the kernels alone BN's scale-invariance keeps the decay meaningful (it only
            shrinks weights whose scale BN removes) while gamma and beta keep the range
            the data asks for; and Goyal et al. (2017, section 5.1, the same group) write
            "following [the ResNet paper] we do not apply weight decay on the learnable BN
            coefficients". Measured on CIFAR-10 at the paper's schedule
            (docs/results/table6-64k), ResNet-56 ends at 8.04 % test error with the
            kernels alone and at 6.79 % with ``"all"`` (paper: 6.97 %), so ``cifar_resnet``
            and the CIFAR-10 recipe default to ``"all"``; ImageNet keeps ``"kernels"``
            until it is measured there.
        kernel_init: str. He normal initialisation (He et al. 2015b),
            ``"fan_in"`` (the paper's [13]) or ``"fan_out"`` (fb.resnet.torch).
        bn_momentum: float. Moving-average momentum (Caffe/Torch 0.9).
        bn_epsilon: float. BN epsilon (Caffe/Torch 1e-5).
        fused_batch_norm: bool. Build BN as ``FusedBatchNormalization`` (the
            same layer on TF's fused kernel, faster) or, with ``False``, as
            stock ``keras.layers.BatchNormalization`` (for models that must
            load without ``keras_resnet``, or another backend). Same weights.
        bn_group_size: Optional int. In training, every BN layer normalises
            consecutive groups of this many images of each replica's batch
            separately ("ghost" BN; see ``FusedBatchNormalization``), or, when
            larger than a replica's batch, the batches of consecutive replicas
            together: 64 gives the paper's CIFAR-10 BN (batch 128 on two GPUs,
            section 4.2) on 1, 2, 4 or 8 devices. ``None`` (default): the whole
            batch, as Keras.
        dtype: Optional dtype policy for every layer; ``None`` uses the global
            Keras policy.
    """

    residual: bool = True
    shortcut: str = "B"
    shortcut_a_padding: str = "end"
    stride_on: str = "1x1"
    zero_init_residual: bool = False
    weight_decay: float = 1e-4
    weight_decay_on: str = "kernels"
    kernel_init: str = "fan_in"
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    fused_batch_norm: bool = True
    bn_group_size: int | None = None
    dtype: Any = None

    def __post_init__(self):
        _check_choice("shortcut", self.shortcut, SHORTCUTS)
        _check_choice("shortcut_a_padding", self.shortcut_a_padding, PAD_VARIANTS)
        _check_choice("stride_on", self.stride_on, STRIDE_PLACEMENTS)
        _check_choice("kernel_init", self.kernel_init, INIT_MODES)
        _check_choice("weight_decay_on", self.weight_decay_on, DECAYED)
        if self.fused_batch_norm not in (True, False):
            raise ValueError(f"fused_batch_norm must be True or False, got {self.fused_batch_norm!r}")
        if self.bn_group_size is not None:
            if isinstance(self.bn_group_size, bool) or not isinstance(self.bn_group_size, int) \
                    or self.bn_group_size < 1:
                raise ValueError(f"bn_group_size must be a positive int or None, got {self.bn_group_size!r}")
            if not self.fused_batch_norm:
                raise ValueError("bn_group_size needs fused_batch_norm=True: stock keras.layers."
                                 "BatchNormalization cannot normalise groups of a batch")
        if isinstance(self.weight_decay, bool) or not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")

    def kernel_regularizer(self) -> keras.regularizers.Regularizer | None:
        # Keras L2(l) adds l * sum(w**2), whose gradient is 2 * l * w.
        return keras.regularizers.L2(self.weight_decay / 2) if self.weight_decay else None

    def other_regularizer(self) -> keras.regularizers.Regularizer | None:
        """The decay of BN gammas and betas and of biases: none unless ``weight_decay_on="all"``."""
        return self.kernel_regularizer() if self.weight_decay_on == "all" else None

    def kernel_initializer(self) -> keras.initializers.Initializer:
        return keras.initializers.VarianceScaling(
            scale=2.0, mode=self.kernel_init, distribution="untruncated_normal")


def _check_choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


def conv_bn(x, filters: int, kernel_size: int, strides: int, name: str, opts: BlockOptions,
            relu: bool = True, zero_gamma: bool = False):
    """Conv (no bias) -> BN [-> ReLU], BN before the ReLU (section 3.4).

    A strided conv is preceded by an explicit symmetric ``ZeroPadding2D`` and
    uses ``"valid"`` padding: TF's ``"same"`` would pad only bottom/right, and
    the net would no longer compute what the Caffe/Torch nets compute.
    """
    padding = "valid" if kernel_size == 1 else "same"
    if strides > 1 and kernel_size > 1:
        x = keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad", dtype=opts.dtype)(x)
        padding = "valid"
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=False,
        kernel_initializer=opts.kernel_initializer(),
        kernel_regularizer=opts.kernel_regularizer(),
        name=f"{name}_conv", dtype=opts.dtype)(x)
    bn_args = dict(momentum=opts.bn_momentum, epsilon=opts.bn_epsilon,
                   gamma_regularizer=opts.other_regularizer(), beta_regularizer=opts.other_regularizer(),
                   gamma_initializer="zeros" if zero_gamma else "ones", name=f"{name}_bn", dtype=opts.dtype)
    if opts.fused_batch_norm:
        x = FusedBatchNormalization(group_size=opts.bn_group_size, **bn_args)(x)
    else:
        x = keras.layers.BatchNormalization(**bn_args)(x)
    if relu:
        x = keras.layers.Activation("relu", name=f"{name}_relu", dtype=opts.dtype)(x)
    return x


def shortcut(x, filters: int, strides: int, name: str, opts: BlockOptions):
    """The shortcut path of a block: identity, option-A padding or a projection."""
    changes_shape = strides != 1 or x.shape[-1] != filters
    if opts.shortcut == "C" or (opts.shortcut == "B" and changes_shape):
        return conv_bn(x, filters, 1, strides, f"{name}_shortcut", opts, relu=False)
    if opts.shortcut == "A" and changes_shape:
        return ZeroPadShortcut(filters, strides, opts.shortcut_a_padding,
                               name=f"{name}_shortcut", dtype=opts.dtype)(x)
    return x


def _merge(x, branch, filters: int, strides: int, name: str, opts: BlockOptions):
    """ReLU(F(x) + shortcut(x)) for residual nets, ReLU(F(x)) for plain twins."""
    if opts.residual:
        branch = keras.layers.Add(name=f"{name}_add", dtype=opts.dtype)(
            [shortcut(x, filters, strides, name, opts), branch])
    return keras.layers.Activation("relu", name=f"{name}_out", dtype=opts.dtype)(branch)


def basic_block(x, filters: int, strides: int, name: str, opts: BlockOptions):
    """Two 3x3 convs (Figure 5, left): ResNet-18/34 and the CIFAR nets."""
    zero = opts.residual and opts.zero_init_residual
    y = conv_bn(x, filters, 3, strides, f"{name}_1", opts)
    y = conv_bn(y, filters, 3, 1, f"{name}_2", opts, relu=False, zero_gamma=zero)
    return _merge(x, y, filters, strides, name, opts)


def bottleneck_block(x, filters: int, strides: int, name: str, opts: BlockOptions):
    """1x1 (filters), 3x3 (filters), 1x1 (4 * filters) (Figure 5, right): ResNet-50/101/152.

    The stride sits on the first 1x1 conv as in the paper's released models,
    or on the 3x3 conv with ``opts.stride_on == "3x3"`` ("v1.5").
    """
    zero = opts.residual and opts.zero_init_residual
    s1, s3 = (strides, 1) if opts.stride_on == "1x1" else (1, strides)
    y = conv_bn(x, filters, 1, s1, f"{name}_1", opts)
    y = conv_bn(y, filters, 3, s3, f"{name}_2", opts)
    y = conv_bn(y, filters * BOTTLENECK_EXPANSION, 1, 1, f"{name}_3", opts,
                relu=False, zero_gamma=zero)
    return _merge(x, y, filters * BOTTLENECK_EXPANSION, strides, name, opts)


def stage(x, block_fn, num_blocks: int, filters: int, strides: int, name: str, opts: BlockOptions):
    """``num_blocks`` blocks; the first one downsamples by ``strides``."""
    for i in range(num_blocks):
        x = block_fn(x, filters, strides if i == 0 else 1, f"{name}_{i + 1}", opts)
    return x
