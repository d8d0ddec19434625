"""The two layers the paper's nets need beyond stock Keras.

* ``ZeroPadShortcut``: the option-A shortcut, which Keras lacks.
* ``FusedBatchNormalization``: ``keras.layers.BatchNormalization`` computed by
  TensorFlow's fused kernel, which Keras 3 no longer uses.

``FusedBatchNormalization`` also computes "ghost" BN (``group_size``): the
statistics of groups of a batch, as on the paper's two GPUs.

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
      channels, as in Facebook's Torch reimplementation (fb.resnet.torch,
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
    """``keras.layers.BatchNormalization`` on TensorFlow's fused kernel, with optional ghost batches.

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

    ``group_size`` ("ghost" batch norm, Hoffer et al. 2017; tf.keras 2 called
    it ``virtual_batch_size``): in training, the batch is cut into consecutive
    groups of ``group_size`` images and each group is normalised with its own
    statistics, as if each were on its own GPU. The paper's CIFAR-10 nets were
    trained with a batch of 128 on two GPUs (section 4.2), so their BN saw 64
    images; ``group_size=64`` computes that function on one device. The moving
    statistics are updated once per step with the mean over the groups of
    their means and biased variances, which is also what averaging the
    replicas' statistics gives on N devices. Inference is unaffected.

    A group larger than a replica's batch spans consecutive replicas: with
    the paper's batch of 128 on 4 devices (32 each) and ``group_size=64``,
    replicas 0-1 and 2-3 each normalise with the statistics of their 64
    images, combined over the pair (one all-reduce of a ``[replicas, 2 *
    channels]`` tensor per layer; its gradient is another). The data
    pipelines give replica ``r`` images ``r * B / N`` to ``(r + 1) * B / N``
    of each global batch, so this is the same function as one device with
    groups of 64. So the training batch of a replica must be a multiple of
    ``group_size``, or a divisor of it whose quotient divides the replicas.

    On CPUs with oneDNN, TF fuses a convolution, this op and a following ReLU
    into one kernel whose ReLU maps NaN to 0: a NaN input then gives a finite
    forward pass but NaN gradients (``train_step.make_train_step`` checks both).

    The fused path is taken for 4-D channels-last inputs of float32, float16
    or bfloat16 with a static batch size (when grouped) on the TensorFlow
    backend without a mask, ``renorm`` or ``synchronized``; otherwise the
    parent's code runs unchanged, or, when grouped, a portable ``keras.ops``
    version of the same computation.

    Args:
        group_size: Optional int. Images per BN group in training; ``None``
            normalises over the whole batch (standard Keras behaviour).
        **kwargs: Those of ``keras.layers.BatchNormalization``.
    """

    def __init__(self, *args, group_size: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if group_size is not None:
            if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
                raise ValueError(f"group_size must be a positive int or None, got {group_size!r}")
            if self.renorm or self.synchronized:
                raise ValueError("group_size cannot be combined with renorm or synchronized BN")
        self.group_size = group_size

    def _can_fuse(self, inputs, mask) -> bool:
        return (keras.backend.backend() == "tensorflow"
                and mask is None
                and not self.renorm
                and not self.synchronized
                and len(inputs.shape) == 4
                and self.axis in (-1, 3)
                and keras.backend.standardize_dtype(inputs.dtype) in _FUSED_DTYPES)

    def _num_groups(self, batch: int | None) -> int | None:
        """How many groups a training batch of ``batch`` images makes (``None``: unknown yet)."""
        if self.group_size is None:
            return 1
        if batch is None:
            return None
        if batch % self.group_size:
            raise ValueError(f"{self.name}: a training batch of {batch} images is not a multiple of "
                             f"group_size={self.group_size}")
        return batch // self.group_size

    def _replicas_per_group(self, batch: int | None) -> int:
        """How many replicas one group spans: 1 unless ``group_size`` is a multiple of the batch."""
        if self.group_size is None or batch is None or batch >= self.group_size or self.group_size % batch:
            return 1
        import tensorflow as tf  # Groups across replicas exist only under a tf.distribute strategy.

        span = self.group_size // batch
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        if replicas % span:
            raise ValueError(
                f"{self.name}: group_size={self.group_size} spans {span} replicas of {batch} images, which does "
                f"not divide the {replicas} replica{'s' if replicas > 1 else ''}; use a group of the per-replica "
                "batch or a multiple of it that divides the global batch")
        return span

    def call(self, inputs, training=None, mask=None):
        grouped = training and self.trainable and self.group_size is not None
        if grouped and mask is not None:
            raise ValueError(f"{self.name}: group_size does not support masks")
        if grouped and keras.backend.backend() == "tensorflow":
            span = self._replicas_per_group(inputs.shape[0])
            if span > 1:
                return self._cross_replica_call(inputs, span)
        groups = self._num_groups(inputs.shape[0]) if grouped else 1
        if not self._can_fuse(inputs, mask) or groups is None:
            if grouped:
                return self._grouped_call(inputs)
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf  # Only reached on the TensorFlow backend.

        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones([channels], "float32")
        beta = self.beta if self.center else tf.zeros([channels], "float32")
        gamma, beta = tf.cast(gamma, "float32"), tf.cast(beta, "float32")
        if training and self.trainable:
            empty = tf.constant([], "float32")
            # Consecutive groups are contiguous blocks of an NHWC batch: splitting costs no copy.
            parts = tf.split(inputs, groups, axis=0) if groups > 1 else [inputs]
            outputs, means, variances = [], [], []
            for part in parts:
                y, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                    x=part, scale=gamma, offset=beta, mean=empty, variance=empty,
                    epsilon=self.epsilon, exponential_avg_factor=1.0,
                    data_format="NHWC", is_training=True)
                outputs.append(y)
                means.append(mean)
                variances.append(variance)
            outputs = tf.concat(outputs, axis=0) if groups > 1 else outputs[0]
            mean = tf.add_n(means) / groups if groups > 1 else means[0]
            variance = tf.add_n(variances) / groups if groups > 1 else variances[0]
            count = tf.cast(tf.size(parts[0], out_type=tf.int64) // channels, "float32")
            variance = variance * (count - 1.0) / count  # Unbiased -> biased.
            self._update_moving_statistics(mean, variance)
        else:
            outputs, _, _, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=gamma, offset=beta,
                mean=tf.cast(self.moving_mean, "float32"),
                variance=tf.cast(self.moving_variance, "float32"),
                epsilon=self.epsilon, data_format="NHWC", is_training=False)
        return ops.cast(outputs, self.compute_dtype)

    def _cross_replica_call(self, inputs, span: int):
        """Training-mode BN whose statistics are those of ``span`` consecutive replicas' batches.

        Each replica's mean and sum of squared deviations are gathered (one all-reduce of a
        ``[replicas, 2 * channels]`` tensor in which each replica fills its own row) and combined as
        Chan et al. (1979) do, which keeps float32's precision (sums of squares would not: the
        variance is their small difference)."""
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync
        replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
        x = tf.cast(inputs, "float32")
        axes = list(range(len(x.shape) - 1))
        channels = x.shape[-1]
        count = tf.cast(tf.size(x) // channels, "float32")  # Per replica; equal on every replica.
        mean, variance = tf.nn.moments(x, axes)
        mine = tf.one_hot(replica, replicas, dtype="float32")[:, None]
        rows = context.all_reduce(tf.distribute.ReduceOp.SUM, mine * tf.concat([mean, variance * count], 0)[None])
        rows = tf.gather(tf.reshape(rows, [replicas // span, span, 2 * channels]), replica // span)
        means, squares = rows[:, :channels], rows[:, channels:]
        mean = tf.reduce_mean(means, axis=0)
        variance = (tf.reduce_sum(squares, 0) + count * tf.reduce_sum(tf.square(means - mean), 0)) / (count * span)
        y = (x - mean) * tf.math.rsqrt(variance + self.epsilon)  # Biased variance, as Keras's.
        if self.scale:
            y = y * tf.cast(self.gamma, "float32")
        if self.center:
            y = y + tf.cast(self.beta, "float32")
        self._update_moving_statistics(mean, variance)
        return ops.cast(y, self.compute_dtype)

    def _grouped_call(self, inputs):
        """Training-mode ghost BN in ``keras.ops`` (any backend, rank, axis or dynamic batch)."""
        dtype = keras.backend.result_type(inputs.dtype, "float32")  # Statistics in float32 at least.
        x = ops.cast(inputs, dtype)
        rank = len(x.shape)
        axis = self.axis % rank
        shape = ops.shape(x)
        # (batch, ...) -> (groups, group_size, ...): the channel axis moves to axis + 1.
        x = ops.reshape(x, (-1, self.group_size, *shape[1:]))
        reduce = [i + 1 for i in range(rank) if i != axis]
        mean, variance = ops.moments(x, axes=reduce, keepdims=True)
        broadcast = [1] * (rank + 1)
        broadcast[axis + 1] = self.moving_mean.shape[0]
        y = (x - mean) * ops.rsqrt(variance + self.epsilon)
        if self.scale:
            y = y * ops.reshape(ops.cast(self.gamma, dtype), broadcast)
        if self.center:
            y = y + ops.reshape(ops.cast(self.beta, dtype), broadcast)
        self._update_moving_statistics(ops.reshape(ops.mean(mean, axis=0), [-1]),
                                       ops.reshape(ops.mean(variance, axis=0), [-1]))
        return ops.cast(ops.reshape(y, shape), self.compute_dtype)

    def _update_moving_statistics(self, mean, variance) -> None:
        """``moving = momentum * moving + (1 - momentum) * batch``, as Keras does."""
        moving_mean = ops.cast(self.moving_mean, mean.dtype)
        moving_variance = ops.cast(self.moving_variance, variance.dtype)
        self.moving_mean.assign(moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(moving_variance * self.momentum + variance * (1.0 - self.momentum))

    def get_config(self):
        config = super().get_config()
        config["group_size"] = self.group_size
        return config
