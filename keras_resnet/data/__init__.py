"""Input pipelines: CIFAR-10 (section 4.2) and ImageNet (section 3.4) through TFDS."""

from keras_resnet.data.cifar10 import (CifarData, DataNotPreparedError, cifar10_eval_dataset,
                                       cifar10_train_dataset, data_identity, load_cifar10, prepare_cifar10)

__all__ = [
    "CifarData",
    "DataNotPreparedError",
    "cifar10_eval_dataset",
    "cifar10_train_dataset",
    "data_identity",
    "load_cifar10",
    "prepare_cifar10",
]
