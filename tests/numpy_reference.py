"""An independent NumPy forward pass of the paper's nets, for checking the Keras builders.

Written from the paper (sections 3.3, 3.4, 4.2), not from the Keras code: it
only borrows the trained weights by layer name. Convolutions pad
symmetrically by ``k // 2`` as Caffe and Torch do; BN uses inference
statistics.
"""

import numpy as np


def conv2d(x, kernel, stride):
    """NHWC cross-correlation, symmetric zero padding k // 2, like Caffe."""
    k = kernel.shape[0]
    p = k // 2
    x = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    n, h, w, c = x.shape
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    out = np.zeros((n, oh, ow, kernel.shape[-1]))
    for i in range(k):
        for j in range(k):
            patch = x[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride, :]
            out += patch @ kernel[i, j]
    return out


def batch_norm(x, gamma, beta, mean, var, eps=1e-5):
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def relu(x):
    return np.maximum(x, 0)


class Reference:
    """Runs a net whose weights come from a dict ``layer name -> [arrays]``."""

    def __init__(self, weights, shortcut="A", stride_on="1x1", residual=True):
        self.w = weights
        self.shortcut_type = shortcut
        self.stride_on = stride_on
        self.residual = residual

    def conv_bn(self, x, name, stride, activate=True):
        (kernel,) = self.w[f"{name}_conv"]
        y = batch_norm(conv2d(x, kernel, stride), *self.w[f"{name}_bn"])
        return relu(y) if activate else y

    def shortcut(self, x, name, out_channels, stride):
        changes = stride != 1 or x.shape[-1] != out_channels
        if self.shortcut_type == "C" or (self.shortcut_type == "B" and changes):
            return self.conv_bn(x, f"{name}_shortcut", stride, activate=False)
        if self.shortcut_type == "A" and changes:
            # Option A: subsample, then the extra channels are zeros appended.
            x = x[:, ::stride, ::stride, :]
            return np.pad(x, ((0, 0), (0, 0), (0, 0), (0, out_channels - x.shape[-1])))
        return x

    def basic(self, x, name, stride):
        y = self.conv_bn(x, f"{name}_1", stride)
        y = self.conv_bn(y, f"{name}_2", 1, activate=False)
        return self.merge(x, y, name, stride)

    def bottleneck(self, x, name, stride):
        s1, s3 = (stride, 1) if self.stride_on == "1x1" else (1, stride)
        y = self.conv_bn(x, f"{name}_1", s1)
        y = self.conv_bn(y, f"{name}_2", s3)
        y = self.conv_bn(y, f"{name}_3", 1, activate=False)
        return self.merge(x, y, name, stride)

    def merge(self, x, y, name, stride):
        if self.residual:
            y = y + self.shortcut(x, name, y.shape[-1], stride)
        return relu(y)

    def head(self, x):
        x = x.mean(axis=(1, 2))
        kernel, bias = self.w["fc"]
        logits = x @ kernel + bias
        e = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def cifar(self, x, n):
        x = self.conv_bn(x, "conv1", 1)
        for s, stride in enumerate((1, 2, 2)):
            for b in range(n):
                x = self.basic(x, f"conv{s + 2}_{b + 1}", stride if b == 0 else 1)
        return self.head(x)

    def imagenet(self, x, stage_blocks, bottleneck):
        x = self.conv_bn(x, "conv1", 2)
        x = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))  # After ReLU, zero pad == -inf pad.
        n, h, w, c = x.shape
        oh, ow = (h - 3) // 2 + 1, (w - 3) // 2 + 1
        x = np.max([x[:, i:i + 2 * oh - 1:2, j:j + 2 * ow - 1:2] for i in range(3) for j in range(3)], axis=0)
        block = self.bottleneck if bottleneck else self.basic
        for s, num in enumerate(stage_blocks):
            for b in range(num):
                x = block(x, f"conv{s + 2}_{b + 1}", 2 if (s > 0 and b == 0) else 1)
        return self.head(x)
