"""ImageNet weights from the PyTorch world: torchvision and timm ResNet state dicts, converted offline.

``imagenet_resnet(depth, stride_on="3x3")`` computes exactly the function of torchvision's
``resnet18/34/50/101/152`` (the "v1.5" nets: stride on the bottleneck's 3x3, option-B projections,
BN epsilon 1e-5, symmetric padding, max-pool padding that never wins after a ReLU), so their published
ImageNet checkpoints serve it once every tensor is renamed and transposed:

    python -m tools.convert_weights --checkpoint=resnet50.safetensors --depth=50 --out=resnet50.weights.h5

    model = keras_resnet.imagenet_resnet(50, stride_on="3x3", weights="resnet50.weights.h5")
    probabilities = model(keras_resnet.pretrained.torchvision_preprocessing()(images_0_255))

Nothing is downloaded here: the user brings the file (torchvision's ``.pth`` files from
download.pytorch.org, or timm's ``model.safetensors`` from the Hugging Face hub, e.g.
``timm/resnet50.tv2_in1k``). ``.safetensors`` needs only the ``safetensors`` package; ``.pth``
needs PyTorch.
"""

from __future__ import annotations

import os
import re

import keras
import numpy as np

from keras_resnet.trained import mark_weights

# torchvision's transforms: ToTensor() (RGB / 255), then Normalize(mean, std).
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)
_IGNORED = re.compile(r".*num_batches_tracked$")  # BN bookkeeping without a Keras counterpart.


def torchvision_preprocessing(name: str = "torchvision_preprocessing") -> keras.layers.Normalization:
    """RGB values in [0, 255] to torchvision's input, ``(x / 255 - mean) / std`` per channel."""
    mean = np.array(TORCHVISION_MEAN, np.float32) * 255.0
    std = np.array(TORCHVISION_STD, np.float32) * 255.0
    return keras.layers.Normalization(axis=-1, mean=mean, variance=np.square(std), name=name)


def _torch_name(layer_name: str) -> str | None:
    """``conv3_2_1_conv`` -> ``layer2.1.conv1``, ``conv4_1_shortcut_bn`` -> ``layer3.0.downsample.1``, ..."""
    if layer_name in ("conv1_conv", "conv1_bn"):
        return "conv1" if layer_name.endswith("conv") else "bn1"
    if layer_name == "fc":
        return "fc"
    match = re.fullmatch(r"conv(\d+)_(\d+)_(\d|shortcut)_(conv|bn)", layer_name)
    if not match:
        return None
    stage, block, part, kind = match.groups()
    prefix = f"layer{int(stage) - 1}.{int(block) - 1}"
    if part == "shortcut":
        return f"{prefix}.downsample.{0 if kind == 'conv' else 1}"
    return f"{prefix}.{'conv' if kind == 'conv' else 'bn'}{part}"


_FIELDS = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
           "moving_mean": "running_mean", "moving_variance": "running_var"}


def torchvision_keys(model: keras.Model) -> list[tuple[str, keras.Variable]]:
    """``(torchvision state-dict key, our variable)`` for every weight of an ImageNet ResNet."""
    pairs = []
    for layer in model.layers:
        for variable in layer.weights:
            base = _torch_name(layer.name)
            field = _FIELDS.get(variable.path.rsplit("/", 1)[-1])
            if base is None or field is None:
                raise ValueError(f"{model.name}: no torchvision name for weight {variable.path!r}")
            pairs.append((f"{base}.{field}", variable))
    return pairs


def _to_keras(key: str, value: np.ndarray) -> np.ndarray:
    if value.ndim == 4:  # Conv: (out, in, h, w) -> (h, w, in, out).
        return value.transpose(2, 3, 1, 0)
    if key == "fc.weight":  # Linear: (out, in) -> (in, out).
        return value.T
    return value


def _to_torch(key: str, value: np.ndarray) -> np.ndarray:
    if value.ndim == 4:
        return value.transpose(3, 2, 0, 1)
    if key == "fc.weight":
        return value.T
    return value


def to_torchvision_state_dict(model: keras.Model) -> dict[str, np.ndarray]:
    """Our weights under torchvision's names and layouts (the inverse of ``load_torchvision_weights``)."""
    return {key: np.ascontiguousarray(_to_torch(key, np.asarray(v.numpy()))) for key, v in torchvision_keys(model)}


def read_state_dict(path: str) -> dict[str, np.ndarray]:
    """A state dict from ``.safetensors`` (no PyTorch needed) or ``.pth``/``.pt`` (PyTorch needed)."""
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint {path!r} does not exist or is not a file")
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file
        return dict(load_file(path))
    if path.endswith((".pth", ".pt", ".bin")):
        try:
            import torch
        except ImportError:
            raise ValueError(f"checkpoint {path!r} is a PyTorch pickle: reading it needs PyTorch (pip install torch), "
                             "or convert it to .safetensors first") from None
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        return {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()}
    raise ValueError(f"checkpoint {path!r}: expected a .safetensors or .pth file")


def converted_weights(model: keras.Model, state: dict[str, np.ndarray]) -> list[tuple[keras.Variable, np.ndarray]]:
    """Every variable of ``model`` with its value from ``state``, checked: raises ``ValueError`` naming the
    first tensor that is missing, has the wrong shape, or has no place in the net. Assigns nothing."""
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    pairs, used = [], set()
    for key, variable in torchvision_keys(model):
        if key not in state:
            raise ValueError(f"the checkpoint lacks {key!r} (for {variable.path}, shape {tuple(variable.shape)})")
        value = _to_keras(key, np.asarray(state[key]))
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(f"{key!r} has shape {tuple(np.asarray(state[key]).shape)} in the checkpoint, which does "
                             f"not fit {variable.path} {tuple(variable.shape)}: another depth or width?")
        pairs.append((variable, value.astype(np.float32)))
        used.add(key)
    extra = sorted(k for k in state if k not in used and not _IGNORED.match(k))
    if extra:
        raise ValueError(f"the checkpoint has {extra[0]!r}, which this net has no place for (and "
                         f"{len(extra) - 1} more): another architecture?")
    return pairs


def load_torchvision_weights(model: keras.Model, state: dict[str, np.ndarray]) -> keras.Model:
    """Assigns a torchvision/timm ResNet state dict to ``model`` (all checked first)."""
    for variable, value in converted_weights(model, state):
        variable.assign(value)
    return model


def convert_checkpoint(checkpoint: str, depth: int, out: str) -> str:
    """Converts a torchvision/timm ResNet-``depth`` checkpoint to a Keras ``.weights.h5`` for
    ``imagenet_resnet(depth, stride_on="3x3", weights=out)``. Nothing is written on error."""
    from keras_resnet.models import imagenet_resnet

    if not out.endswith(".weights.h5"):
        raise ValueError(f"out must end in .weights.h5 (Keras's weights format), got {out!r}")
    state = read_state_dict(checkpoint)
    model = imagenet_resnet(depth, stride_on="3x3", classifier_activation=None)
    load_torchvision_weights(model, state)
    model.save_weights(out)
    mark_weights(out, {"depth": depth, "stride_on": "3x3", "source": os.path.basename(checkpoint)})
    return out
