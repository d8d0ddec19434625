"""The two layers the paper's nets need beyond stock Keras.

* ``ZeroPadShortcut``: the option-A shortcut, which Keras lacks.
* ``FusedBatchNormalization``: ``keras.layers.BatchNormalization`` computed by
  TensorFlow's fused kernel, which Keras 3 no longer uses.

Both are registered for serialization, so models that use them save to
``.keras`` and load back with ``keras.models.load_model`` without
``custom_objects`` (after ``import keras_resnet``).
"""

from __future__ import annotations

import keras
from keras import ops

PAD_VARIANTS = ("end", "both")


@keras.saving.register_keras_serializable(package="keras_resnet")
class ZeroPadShortcut(keras.layers.Layer):
    """Option-A shortcut: parameter-free identity for a change of shape.

    He et al. (2015), section 3.3, option (A): "the shortcut still performs
    identity mapping, with extra zero entries padded for increasing
    dimensions", and when the feature maps halve "the shortcuts are performed
    with a stride of 2". Concretely:

    * spatial subsampling keeps every ``strides``-th pixel starting at the
      top-left one (``x[:, ::s, ::s, :]``); this is the pixel on which the
      symmetric-padded stride-2 3x3 convolution of the residual branch is
      centred, so both paths see the same grid.
    * the ``out_channels - in_channels`` new channels are zeros. With
      ``padding="end"`` (default) they are appended after the identity
      channels, as in the authors' Torch reference (fb.resnet.torch,
      ``nn.Concat(identity, MulConstant(0))``). ``padding="both"`` splits them
      half before and half after, as in several popular CIFAR
      reimplementations (``F.pad(x, (0, 0, 0, 0, p, p))``).

    Args:
        out_channels: int. Number of channels of the output.
        strides: int. Spatial subsampling factor (1 or 2 in ResNets).
        padding: str. Where the zero channels go: ``"end"`` or ``"both"``.
    """

    def __init__(self, out_channels: int, strides: int = 1, padding: str = "end", **kwargs):
        super().__init__(**kwargs)
        if padding not in PAD_VARIANTS:
            raise ValueError(f"padding must be one of {PAD_VARIANTS}, got {padding!r}")
        if strides < 1:
            raise ValueError(f"strides must be a positive integer, got {strides!r}")
        self.out_channels = int(out_channels)
        self.strides = int(strides)
        self.padding = padding

    def _pad_widths(self, in_channels: int) -> tuple[int, int]:
        extra = self.out_channels - in_channels
        if extra < 0:
            raise ValueError(
                f"ZeroPadShortcut cannot reduce channels: input has {in_channels}, "
                f"out_channels={self.out_channels}")
        if self.padding == "end":
            return 0, extra
        return extra // 2, extra - extra // 2

    def build(self, input_shape):
        self._pad_widths(input_shape[-1])  # Validates the channel counts early.

    def call(self, inputs):
        x = inputs
        if self.strides > 1:
            # x[:, ::s, ::s, :] exactly (the mean of a 1x1 window is its one pixel, NaN and inf
            # included), but the gradient is a pooling kernel instead of StridedSliceGrad's
            # scatter: forward + backward 4x faster on CPU (docs/performance.md).
            x = ops.average_pool(x, pool_size=1, strides=self.strides, padding="valid")
        before, after = self._pad_widths(x.shape[-1])
        if before or after:
            x = ops.pad(x, [[0, 0], [0, 0], [0, 0], [before, after]])
        return x

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        s = self.strides
        height = None if height is None else -(-height // s)
        width = None if width is None else -(-width // s)
        return (batch, height, width, self.out_channels)

    def get_config(self):
        config = super().get_config()
        config.update(out_channels=self.out_channels, strides=self.strides, padding=self.padding)
        return config


_FUSED_DTYPES = ("float32", "float16", "bfloat16")


@keras.saving.register_keras_serializable(package="keras_resnet")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` on TensorFlow's fused kernel.

    Same arguments, weights, weight names, moving-average update and outputs
    as the Keras layer (it is a subclass, so ``isinstance`` checks and weight
    transfer by name keep working); only the arithmetic is done by one
    ``FusedBatchNormV3`` op (and its fused gradient) instead of the dozen
    elementwise and reduction ops Keras 3 emits. On this project's CPU
    benchmark that makes ResNet-20 training 1.19x and inference 1.11x faster
    (docs/performance.md); on GPUs the op is cuDNN's.

    Batch normalization follows He et al. (2015), section 3.4 ("we adopt batch
    normalization right after each convolution and before activation") and
    Ioffe & Szegedy (2015): training normalises with the batch mean and the
    biased batch variance, and the moving statistics are updated as
    ``moving = momentum * moving + (1 - momentum) * batch`` with the biased
    variance, exactly as in Keras (TF's op reports the unbiased variance; it
    is rescaled by ``(n - 1) / n``). The computation is in float32 for
    float16/bfloat16 inputs, and the output has the input's dtype.

    On CPUs with oneDNN, TF fuses a convolution, this op and a following ReLU
    into one kernel whose ReLU maps NaN to 0: a NaN input then gives a finite
    forward pass but NaN gradients (``training.make_train_step`` checks both).

    The fused path is taken for 4-D channels-last inputs of float32, float16
    or bfloat16 on the TensorFlow backend without a mask, ``renorm`` or
    ``synchronized``; everything else runs the parent's code unchanged.
    """

    def _can_fuse(self, inputs, mask) -> bool:
        return (keras.backend.backend() == "tensorflow"
                and mask is None
                and not self.renorm
                and not self.synchronized
                and len(inputs.shape) == 4
                and self.axis in (-1, 3)
                and keras.backend.standardize_dtype(inputs.dtype) in _FUSED_DTYPES)

    def call(self, inputs, training=None, mask=None):
        if not self._can_fuse(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf  # Only reached on the TensorFlow backend.

        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones([channels], "float32")
        beta = self.beta if self.center else tf.zeros([channels], "float32")
        gamma, beta = tf.cast(gamma, "float32"), tf.cast(beta, "float32")
        if training and self.trainable:
            empty = tf.constant([], "float32")
            outputs, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=gamma, offset=beta, mean=empty, variance=empty,
                epsilon=self.epsilon, exponential_avg_factor=1.0,
                data_format="NHWC", is_training=True)
            count = tf.cast(tf.size(inputs, out_type=tf.int64) // channels, "float32")
            variance = variance * (count - 1.0) / count  # Unbiased -> biased.
            moving_mean = tf.cast(self.moving_mean, "float32")
            moving_variance = tf.cast(self.moving_variance, "float32")
            self.moving_mean.assign(moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            outputs, _, _, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=gamma, offset=beta,
                mean=tf.cast(self.moving_mean, "float32"),
                variance=tf.cast(self.moving_variance, "float32"),
                epsilon=self.epsilon, data_format="NHWC", is_training=False)
        return ops.cast(outputs, self.compute_dtype)
