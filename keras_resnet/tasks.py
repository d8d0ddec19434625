"""Experiments as data: the paper's CIFAR-10 and ImageNet set-ups turned into a training ``Task``."""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from keras_resnet import data as cifar_data
from keras_resnet.data import imagenet as imagenet_data
from keras_resnet.evaluation import evaluate_classifier
from keras_resnet.blocks import BlockOptions
from keras_resnet.models import IMAGENET_SPECS, check_cifar_depth, cifar_resnet, imagenet_resnet
from keras_resnet.paper import CIFAR_SCHEDULE
from keras_resnet.schedules import scale_boundaries
from keras_resnet.training import TrainConfig, Task

PROTOCOLS = ("test", "validation")


@dataclasses.dataclass(frozen=True)
class CifarExperiment:
    """Section 4.2. ``protocol="test"``: train on all 50k, test on the 10k test
    images (Table 6). ``"validation"``: train on 45k, evaluate on the held-out
    5k (how the paper chose its schedule)."""

    depth: int = 20
    residual: bool = True
    shortcut: str = "A"
    protocol: str = "test"
    normalization: str = "pixel_mean"
    zero_init_residual: bool = False
    augment: bool = True

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        check_cifar_depth(self.depth)
        BlockOptions(shortcut=self.shortcut)  # Validates the shortcut.

    @property
    def splits(self) -> tuple[str, str]:
        return ("train", "test") if self.protocol == "test" else ("train[:45000]", "train[45000:]")

    @property
    def name(self) -> str:
        return f"{'resnet' if self.residual else 'plain'}{self.depth}"


def experiment_hparams(dataset: str, experiment, config: TrainConfig) -> dict:
    """The flat configuration of a run: logged to TensorBoard and checked on resume."""
    return {"dataset": dataset, **dataclasses.asdict(experiment), **dataclasses.asdict(config)}


def cifar_train_config(depth: int, train_steps: int = CIFAR_SCHEDULE["train_steps"], **overrides) -> TrainConfig:
    """The paper's CIFAR schedule for ``train_steps`` (boundaries scaled), with the
    0.01 warm-up for ResNet-110 and deeper (section 4.2)."""
    boundaries = scale_boundaries(CIFAR_SCHEDULE["boundaries"], CIFAR_SCHEDULE["train_steps"], train_steps)
    settings = dict(batch_size=CIFAR_SCHEDULE["batch_size"], lr=CIFAR_SCHEDULE["lr"],
                    train_steps=train_steps, lr_boundaries=boundaries,
                    warmup_lr=0.01 if depth >= 110 else None)
    settings.update(overrides)
    return TrainConfig(**settings)


def cifar10_task(experiment: CifarExperiment, config: TrainConfig, data_dir: str | None,
                 eval_batch_size: int = 500) -> Task:
    """Loads the data (raises ``DataNotPreparedError`` when it is not prepared) and builds the task."""
    train_split, eval_split = experiment.splits
    train = cifar_data.load_cifar10(train_split, data_dir, train_split=train_split)
    held_out = cifar_data.load_cifar10(eval_split, data_dir, train_split=train_split)

    def build_model(dtype):
        return cifar_resnet(experiment.depth, residual=experiment.residual, shortcut=experiment.shortcut,
                            zero_init_residual=experiment.zero_init_residual,
                            classifier_activation=None, dtype=dtype)

    def train_dataset(ctx: tf.distribute.InputContext, start_step: int):
        return cifar_data.cifar10_train_dataset(
            train, config.batch_size, seed=config.seed, start_step=start_step, input_context=ctx,
            augment=experiment.augment, normalization=experiment.normalization)

    eval_ds = cifar_data.cifar10_eval_dataset(held_out, eval_batch_size, experiment.normalization)
    hparams = experiment_hparams("cifar10", experiment, config)
    return Task(build_model=build_model, train_dataset=train_dataset,
                evaluations={experiment.protocol: lambda model: evaluate_classifier(model, eval_ds)},
                hparams=hparams)


@dataclasses.dataclass(frozen=True)
class ImagenetExperiment:
    """Section 3.4 / Table 1. ``eval_mode`` chooses the test protocol used
    during training ("center"); the final numbers add "ten_crop" (Tables 2, 3)."""

    depth: int = 50
    residual: bool = True
    shortcut: str = "B"
    stride_on: str = "1x1"
    zero_init_residual: bool = False
    eval_mode: str = "center"
    shuffle_buffer: int = 10_000

    def __post_init__(self):
        if self.depth not in IMAGENET_SPECS:
            raise ValueError(f"depth must be one of {', '.join(map(str, IMAGENET_SPECS))}, got {self.depth!r}")
        BlockOptions(shortcut=self.shortcut, stride_on=self.stride_on)  # Validates both.
        if self.eval_mode not in imagenet_data.EVAL_MODES:
            raise ValueError(f"eval_mode must be one of {imagenet_data.EVAL_MODES}, got {self.eval_mode!r}")


def imagenet_train_config(train_steps: int = 600_000, plateau: bool = True, **overrides) -> TrainConfig:
    """Batch 256, LR 0.1 divided by 10 on plateaus of the validation error (or, with
    ``plateau=False``, at fixed boundaries 150k/300k/450k scaled to ``train_steps``)."""
    settings = dict(batch_size=256, lr=0.1, train_steps=train_steps, eval_every=5000,
                    plateau_patience=3 if plateau else 0,
                    lr_boundaries=() if plateau else scale_boundaries((150_000, 300_000, 450_000), 600_000, train_steps))
    settings.update(overrides)
    return TrainConfig(**settings)


def imagenet_task(experiment: ImagenetExperiment, config: TrainConfig, data_dir: str | None,
                  eval_batch_size: int = 50, eval_examples: int | None = None) -> Task:
    """ImageNet training with evaluation on the validation split (``eval_examples`` limits it)."""
    imagenet_data.imagenet_split("validation", data_dir)  # Fails early if not prepared.
    mode = experiment.eval_mode

    def build_model(dtype):
        shape = (None, None, 3) if mode == "multiscale" else (224, 224, 3)
        return imagenet_resnet(experiment.depth, residual=experiment.residual, shortcut=experiment.shortcut,
                               stride_on=experiment.stride_on, zero_init_residual=experiment.zero_init_residual,
                               input_shape=shape, classifier_activation=None, dtype=dtype)

    def train_dataset(ctx, start_step):
        del start_step  # ImageNet is streamed from files; a resumed run reshuffles.
        raw = imagenet_data.imagenet_split("train", data_dir, shuffle_files=True, input_context=ctx)
        return imagenet_data.imagenet_train_dataset(
            raw, ctx.get_per_replica_batch_size(config.batch_size), seed=config.seed + ctx.input_pipeline_id,
            shuffle_buffer=experiment.shuffle_buffer)

    def validation(model):
        raw = imagenet_data.imagenet_split("validation", data_dir)
        if eval_examples:
            raw = raw.take(eval_examples)
        ds = imagenet_data.imagenet_eval_dataset(raw, mode, eval_batch_size)
        return evaluate_classifier(model, ds, "single" if mode == "center" else mode)

    hparams = experiment_hparams("imagenet2012", experiment, config)
    return Task(build_model=build_model, train_dataset=train_dataset,
                evaluations={"validation": validation}, hparams=hparams)


def imagenet_final_evaluation(experiment: ImagenetExperiment, model, data_dir: str | None,
                              modes=("center", "ten_crop", "multiscale"), batch_size: int = 25,
                              examples: int | None = None) -> dict:
    """Top-1/top-5 validation error of a trained net under each test protocol.

    For ``"multiscale"`` the weights are copied into a fully-convolutional twin
    (``input_shape=(None, None, 3)``), as the paper does for Table 4.
    """
    results = {}
    for mode in modes:
        net = model
        if mode == "multiscale" and model.input_shape[1] is not None:
            net = imagenet_resnet(experiment.depth, residual=experiment.residual, shortcut=experiment.shortcut,
                                  stride_on=experiment.stride_on, input_shape=(None, None, 3),
                                  classifier_activation=None)
            net.set_weights(model.get_weights())
        raw = imagenet_data.imagenet_split("validation", data_dir)
        if examples:
            raw = raw.take(examples)
        metrics = evaluate_classifier(net, imagenet_data.imagenet_eval_dataset(raw, mode, batch_size),
                                      "single" if mode == "center" else mode)
        results[f"{mode}_top1_error"] = 100.0 * metrics["error"]
        results[f"{mode}_top5_error"] = 100.0 * metrics["top5_error"]
    return results
