"""The one layer Keras lacks for the paper's nets: the option-A shortcut.

Everything else in the ResNets is built from stock Keras layers. This layer is
registered for serialization, so models that use it save to ``.keras`` and load
back with ``keras.models.load_model`` without ``custom_objects``.
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
            x = x[:, :: self.strides, :: self.strides, :]
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
