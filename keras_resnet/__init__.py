"""keras-resnet: the networks and recipes of He et al., "Deep Residual Learning
for Image Recognition" (CVPR 2016, arXiv:1512.03385), in Keras 3.

Installed as the distribution ``keras-resnet-paper`` (``keras-resnet`` on PyPI is another
project with the same import name). The public names below are imported on first use, so that importing a submodule
(e.g. ``keras_resnet.cli`` in the command-line tools) does not load TensorFlow.
"""

import importlib

_PUBLIC = {
    "BlockOptions": "keras_resnet.blocks",
    "basic_block": "keras_resnet.blocks",
    "bottleneck_block": "keras_resnet.blocks",
    "count_flops": "keras_resnet.flops",
    "feature_extractor": "keras_resnet.features",
    "stage_outputs": "keras_resnet.features",
    "FusedBatchNormalization": "keras_resnet.layers",
    "ZeroPadShortcut": "keras_resnet.layers",
    "IMAGENET_SPECS": "keras_resnet.models",
    "cifar_resnet": "keras_resnet.models",
    "imagenet_resnet": "keras_resnet.models",
    "torchvision_preprocessing": "keras_resnet.pretrained",
    "cifar10_preprocessing": "keras_resnet.trained",
    "reestimate_batch_norm_statistics": "keras_resnet.evaluation",
}
__all__ = sorted(_PUBLIC)
__version__ = "0.2.0"  # The one source of the version: pyproject.toml reads it (a dynamic version).


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'keras_resnet' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
