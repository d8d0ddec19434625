"""Tiny tasks for the training tests: small nets and in-memory data."""

import numpy as np
import tensorflow as tf

import keras
from keras_resnet import cifar_resnet
from keras_resnet.data.cifar10 import CifarData, cifar10_eval_dataset, cifar10_train_dataset
from keras_resnet.evaluation import evaluate_classifier
from keras_resnet.run_config import Task, TrainConfig


def learnable_cifar(n=64, seed=0):
    """Images whose class is written in their colour: a net can learn it in a few steps."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 4).astype(np.int32)
    palette = rng.integers(0, 256, (4, 3))
    images = np.clip(palette[labels][:, None, None, :] + rng.normal(0, 20, (n, 32, 32, 3)), 0, 255).astype(np.uint8)
    mean = images.astype(np.float32).mean(axis=0)
    return CifarData(images, labels, mean, images.reshape(-1, 3).std(axis=0).astype(np.float32))


def tiny_task(data=None, depth=8, batch_size=16, seed=0, nan_at_step=None, build_model=None, hparams=None):
    data = data or learnable_cifar()
    eval_ds = cifar10_eval_dataset(data, 32)

    def train_dataset(ctx, start_step):
        ds = cifar10_train_dataset(data, batch_size, seed=seed, start_step=start_step, input_context=ctx)
        if nan_at_step is not None:  # Poison the images of one step.
            steps = tf.data.Dataset.range(start_step + 1, 2**62)
            ds = tf.data.Dataset.zip(ds, steps).map(
                lambda batch, step: (tf.where(step == nan_at_step, np.nan, batch[0]), batch[1]))
        return ds

    return Task(
        build_model=build_model or (lambda dtype: cifar_resnet(depth, num_classes=4, classifier_activation=None, dtype=dtype)),
        train_dataset=train_dataset,
        evaluations={"test": lambda model: evaluate_classifier(model, eval_ds)},
        hparams=hparams or {"dataset": "toy", "depth": depth, "batch_size": batch_size, "seed": seed})


def tiny_config(**overrides):
    settings = dict(batch_size=16, train_steps=6, lr=0.05, lr_boundaries=(4,), log_every=2,
                    eval_every=3, checkpoint_every=3)
    settings.update(overrides)
    return TrainConfig(**settings)


def dense_model(dtype=None):
    """A net without BN, whose gradient does not depend on how the batch is split."""
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.AveragePooling2D(8),
        keras.layers.Flatten(),
        keras.layers.Dense(4, kernel_regularizer=keras.regularizers.L2(0.05)),
    ])
