"""keras-resnet: the networks and recipes of He et al., "Deep Residual Learning
for Image Recognition" (CVPR 2016, arXiv:1512.03385), in Keras 3."""

from keras_resnet.blocks import BlockOptions, basic_block, bottleneck_block
from keras_resnet.flops import count_flops
from keras_resnet.layers import ZeroPadShortcut
from keras_resnet.models import IMAGENET_SPECS, cifar_resnet, imagenet_resnet

__all__ = [
    "BlockOptions",
    "IMAGENET_SPECS",
    "ZeroPadShortcut",
    "basic_block",
    "bottleneck_block",
    "cifar_resnet",
    "count_flops",
    "imagenet_resnet",
]
__version__ = "0.1.0"
