"""Experiments as data: the paper's CIFAR-10 and ImageNet set-ups turned into a training ``Task``."""

from __future__ import annotations

import dataclasses
import os

import tensorflow as tf

from keras_resnet import data as cifar_data
from keras_resnet.data import imagenet as imagenet_data
from keras_resnet.evaluation import evaluate_classifier
from keras_resnet.export import cifar10_classifier
from keras_resnet.blocks import BlockOptions
from keras_resnet.models import IMAGENET_SPECS, check_cifar_depth, cifar_resnet, imagenet_resnet
from keras_resnet.paper import CIFAR_SCHEDULE
from keras_resnet.schedules import scale_boundaries
from keras_resnet.run_config import IMPLIED_WHEN_ABSENT, Task, TrainConfig

PROTOCOLS = ("test", "validation")
CIFAR_CLASSIFIER_FILE = "classifier.keras"  # Raw RGB in, probabilities out (keras_resnet.export).


@dataclasses.dataclass(frozen=True)
class CifarExperiment:
    """Section 4.2. ``protocol="test"``: train on all 50k, test on the 10k test
    images (Table 6). ``"validation"``: train on 45k, evaluate on the held-out
    5k (how the paper chose its schedule).

    ``bn_group_size``: BN statistics over groups of this many images of each
    replica's batch. The paper's batch of 128 was split over two GPUs, so its
    BN saw 64 images (section 4.2); 64 trains that function on any number of
    replicas. ``None`` normalises over each replica's whole batch.

    ``weight_decay_on``: ``"all"`` (default) decays the BN gammas and betas and the fc bias
    as well as the kernels, as Caffe and fb.resnet.torch do: measured at the paper's full
    schedule, ResNet-56 ends at 6.79 % test error with it and 8.04 % with the kernels alone
    (paper: 6.97 %; docs/results/table6-64k). ``"kernels"`` is the Keras and TF Model Garden
    convention, which every run before 2026-12-04 trained with.
    """

    depth: int = 20
    residual: bool = True
    shortcut: str = "A"
    protocol: str = "test"
    normalization: str = "pixel_mean"
    zero_init_residual: bool = False
    augment: bool = True
    bn_group_size: int | None = 64
    weight_decay_on: str = "all"

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        check_cifar_depth(self.depth)
        BlockOptions(shortcut=self.shortcut, bn_group_size=self.bn_group_size,
                     weight_decay_on=self.weight_decay_on)  # Validates all three.

    @property
    def splits(self) -> tuple[str, str]:
        # 90 % / 10 %: exactly 45,000 / 5,000 of CIFAR-10's 50,000 training images (TFDS's record order).
        return ("train", "test") if self.protocol == "test" else ("train[:90%]", "train[90%:]")

    @property
    def train_examples(self) -> int:
        return 50_000 if self.protocol == "test" else 45_000

    @property
    def name(self) -> str:
        return f"{'resnet' if self.residual else 'plain'}{self.depth}"

    def build_model(self, dtype=None):
        """The net this experiment trains, returning logits (``dtype``: a Keras dtype policy)."""
        return cifar_resnet(self.depth, residual=self.residual, shortcut=self.shortcut,
                            zero_init_residual=self.zero_init_residual, weight_decay_on=self.weight_decay_on,
                            bn_group_size=self.bn_group_size, classifier_activation=None, dtype=dtype)

    @classmethod
    def from_run_config(cls, config: dict) -> "CifarExperiment":
        """The experiment a run's ``config.json`` records. A setting it lacks takes the value every run
        written before that setting existed trained with (``run_config.IMPLIED_WHEN_ABSENT``: the
        kernels-only decay), else its default."""
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in {**IMPLIED_WHEN_ABSENT, **config}.items() if k in fields})


def check_bn_groups(batch_size: int, replicas: int, bn_group_size: int | None, jit_compile: bool = False) -> None:
    """Raises ``ValueError`` unless the BN groups tile the batch: each replica's share a multiple of the
    group (groups within a replica), or the group a multiple of the share that spans whole sets of
    replicas (the paper's 64 on 4 or 8 devices: statistics combined over 2 or 4 replicas,
    ``layers.FusedBatchNormalization``). Groups across replicas need an all-reduce inside each
    replica's forward pass, which MirroredStrategy cannot run inside an XLA-compiled function."""
    if bn_group_size is None or batch_size % replicas:
        return  # The replica split itself is checked where the strategy is made.
    per_replica = batch_size // replicas
    if per_replica % bn_group_size == 0:
        return
    span = bn_group_size // per_replica
    if bn_group_size % per_replica or replicas % span:
        raise ValueError(
            f"bn_group_size {bn_group_size} neither divides the per-replica batch of {per_replica} "
            f"(batch_size {batch_size} over {replicas} replica{'s' if replicas > 1 else ''}) nor spans a whole "
            "number of replicas that divides them; choose a divisor or such a multiple of the per-replica batch, "
            "or 0 to normalise over the whole per-replica batch")
    if jit_compile:
        raise ValueError(
            f"jit_compile cannot compile BN statistics shared across replicas (bn_group_size {bn_group_size} spans "
            f"{span} replicas of {per_replica}); train without --jit_compile, or with --bn_group_size={per_replica} "
            "or a divisor of it")


def experiment_hparams(dataset: str, experiment, config: TrainConfig) -> dict:
    """The flat configuration of a run: logged to TensorBoard and checked on resume."""
    return {"dataset": dataset, **dataclasses.asdict(experiment), **dataclasses.asdict(config)}


def cifar_train_config(depth: int, train_steps: int = CIFAR_SCHEDULE["train_steps"], train_examples: int = 50_000,
                       **overrides) -> TrainConfig:
    """The paper's CIFAR schedule for ``train_steps`` (boundaries scaled), with the
    0.01 warm-up for ResNet-110 and deeper (section 4.2), which ends when the training
    error over the last epoch of iterations (``train_examples`` / batch) is below 80%."""
    boundaries = scale_boundaries(CIFAR_SCHEDULE["boundaries"], CIFAR_SCHEDULE["train_steps"], train_steps)
    settings = dict(batch_size=CIFAR_SCHEDULE["batch_size"], lr=CIFAR_SCHEDULE["lr"],
                    train_steps=train_steps, lr_boundaries=boundaries,
                    warmup_lr=0.01 if depth >= 110 else None)
    settings.update(overrides)
    settings.setdefault("warmup_window", -(-train_examples // settings["batch_size"]))
    return TrainConfig(**settings)


def cifar10_task(experiment: CifarExperiment, config: TrainConfig, data_dir: str | None,
                 eval_batch_size: int = 500, eval_subset_mask: str | None = None) -> Task:
    """Loads the data (raises ``DataNotPreparedError`` when it is not prepared) and builds the task.

    ``eval_subset_mask``: a boolean ``.npy`` over the held-out split in the archive's record order
    (e.g. the 1,000 pixel-exact test images of ``../shared/data/cifar10/test_exact_mask.npy``);
    those images are also evaluated on their own, as ``<protocol>_subset`` (its own TensorBoard
    folder), at every evaluation.
    """
    train_split, eval_split = experiment.splits
    train = cifar_data.load_cifar10(train_split, data_dir, train_split=train_split)
    held_out = cifar_data.load_cifar10(eval_split, data_dir, train_split=train_split)
    evaluations = {}
    eval_ds = cifar_data.cifar10_eval_dataset(held_out, eval_batch_size, experiment.normalization)
    evaluations[experiment.protocol] = lambda model: _top1_only(evaluate_classifier(model, eval_ds))
    if eval_subset_mask:
        subset = _masked(held_out, eval_subset_mask)
        subset_ds = cifar_data.cifar10_eval_dataset(subset, eval_batch_size, experiment.normalization)
        evaluations[f"{experiment.protocol}_subset"] = lambda model: _top1_only(evaluate_classifier(model, subset_ds))

    def train_dataset(ctx: tf.distribute.InputContext, start_step: int):
        return cifar_data.cifar10_train_dataset(
            train, config.batch_size, seed=config.seed, start_step=start_step, input_context=ctx,
            augment=experiment.augment, normalization=experiment.normalization)

    def export(model, model_dir: str) -> None:
        classifier = cifar10_classifier(model, train.mean, train.std, experiment.normalization,
                                        name=f"{experiment.name}_cifar10")
        classifier.save(os.path.join(model_dir, CIFAR_CLASSIFIER_FILE))

    hparams = experiment_hparams("cifar10", experiment, config)
    if eval_subset_mask:
        hparams["eval_subset_mask"] = eval_subset_mask
    data = cifar_data.data_identity({train_split: train, eval_split: held_out}, data_dir)
    return Task(build_model=experiment.build_model, train_dataset=train_dataset, evaluations=evaluations,
                hparams=hparams, export=export, data=data)


def _masked(data: cifar_data.CifarData, mask_path: str) -> cifar_data.CifarData:
    """The images of ``data`` that a boolean mask over the archive's record order selects."""
    import numpy as np
    mask = np.load(mask_path)
    if mask.dtype != bool or mask.ndim != 1 or len(mask) <= int(data.record.max()):
        raise ValueError(f"eval_subset_mask {mask_path!r} must be a boolean array with one entry per record of the "
                         f"held-out split's archive ({int(data.record.max()) + 1}), got {mask.dtype} {mask.shape}")
    keep = mask[data.record]
    if not keep.any():
        raise ValueError(f"eval_subset_mask {mask_path!r} selects no image of the held-out split")
    return dataclasses.replace(data, images=data.images[keep], labels=data.labels[keep], record=data.record[keep])


def _top1_only(metrics: dict) -> dict:
    """CIFAR-10 results are top-1 (Table 6); top-5 of 10 classes says little."""
    return {"loss": metrics["loss"], "error": metrics["error"]}


@dataclasses.dataclass(frozen=True)
class ImagenetExperiment:
    """Section 3.4 / Table 1. ``eval_mode`` chooses the test protocol used
    during training ("center"); the final numbers add "ten_crop" (Tables 2, 3).

    ``bn_group_size``: the paper gives the batch (256) but not how it was split
    over GPUs. Goyal et al. (2017, the same group, section 5.1) train their ResNet-50
    baseline as "k = 8 workers (GPUs) and n = 32 samples per worker" and "use n = 32
    throughout": BN over 32 images. So the default is groups of 32 on any number of
    replicas, as the CIFAR default is the paper's 64; ``None`` normalises each
    replica's whole batch.

    ``resize_antialias``: resize with antialiasing (default) or plain bilinear, in training and
    evaluation alike (``data.imagenet.train_preprocess`` says what it costs).
    """

    depth: int = 50
    residual: bool = True
    shortcut: str = "B"
    stride_on: str = "1x1"
    zero_init_residual: bool = False
    eval_mode: str = "center"
    shuffle_buffer: int = 10_000
    bn_group_size: int | None = 32
    weight_decay_on: str = "kernels"
    resize_antialias: bool = True

    def __post_init__(self):
        if self.depth not in IMAGENET_SPECS:
            raise ValueError(f"depth must be one of {', '.join(map(str, IMAGENET_SPECS))}, got {self.depth!r}")
        BlockOptions(shortcut=self.shortcut, stride_on=self.stride_on, bn_group_size=self.bn_group_size,
                     weight_decay_on=self.weight_decay_on)  # Validates all four.
        if self.eval_mode not in imagenet_data.EVAL_MODES:
            raise ValueError(f"eval_mode must be one of {imagenet_data.EVAL_MODES}, got {self.eval_mode!r}")


IMAGENET_STEPS = 600_000  # Section 3.4: "up to 60 x 10^4 iterations" (about 120 epochs at batch 256).
# The plateau rule (section 3.4: LR divided by 10 "when the error plateaus"). The paper gives no
# numbers; these reproduce its schedule as Facebook's reimplementation ran it (fb.resnet.torch:
# /10 every 30 epochs, i.e. 3 drops to 1e-4 in 120 epochs):
# - patience 50k iterations (10 epochs of 5k iterations): at LR 0.1 the validation error still falls by
#   more than a point per 10 epochs until about epoch 30; after a drop it settles within 10-20 epochs;
# - threshold 0.5 points: 2.5 binomial standard deviations of the top-1 error on the 50k validation images
#   (sqrt(0.3 * 0.7 / 50000) = 0.2 points), so noise alone rarely counts as progress;
# - at most 3 drops (0.1 -> 1e-4), as in fb.resnet.torch's schedule.
# Patience scales with train_steps like the fixed boundaries do, so shorter runs keep the shape.
IMAGENET_PLATEAU = {"patience_steps": 50_000, "threshold": 0.5, "max_drops": 3}


def imagenet_train_config(train_steps: int = IMAGENET_STEPS, plateau: bool = True, **overrides) -> TrainConfig:
    """Batch 256, LR 0.1 divided by 10 on plateaus of the validation error (``IMAGENET_PLATEAU``;
    or, with ``plateau=False``, at fixed boundaries 150k/300k/450k), scaled to ``train_steps``.
    Evaluations every 5,000 iterations (one epoch) only decide when a plateau is noticed."""
    patience = scale_boundaries((IMAGENET_PLATEAU["patience_steps"],), IMAGENET_STEPS, train_steps)[0]
    settings = dict(batch_size=256, lr=0.1, train_steps=train_steps, eval_every=5000,
                    plateau_patience_steps=patience if plateau else 0,
                    plateau_threshold=IMAGENET_PLATEAU["threshold"], plateau_max_drops=IMAGENET_PLATEAU["max_drops"],
                    lr_boundaries=() if plateau else scale_boundaries((150_000, 300_000, 450_000), IMAGENET_STEPS,
                                                                       train_steps))
    settings.update(overrides)
    return TrainConfig(**settings)


def imagenet_task(experiment: ImagenetExperiment, config: TrainConfig, data_dir: str | None,
                  eval_batch_size: int = 50, eval_examples: int | None = None) -> Task:
    """ImageNet training with evaluation on the validation split (``eval_examples`` limits it)."""
    imagenet_data.imagenet_split("validation", data_dir)  # Fails early if not prepared.
    mode = experiment.eval_mode

    def build_model(dtype):
        shape = (None, None, 3) if mode.startswith("multiscale") else (224, 224, 3)
        return imagenet_resnet(experiment.depth, residual=experiment.residual, shortcut=experiment.shortcut,
                               stride_on=experiment.stride_on, zero_init_residual=experiment.zero_init_residual,
                               weight_decay_on=experiment.weight_decay_on,
                               bn_group_size=experiment.bn_group_size, input_shape=shape,
                               classifier_activation=None, dtype=dtype)

    def train_dataset(ctx, start_step):  # A resumed run sees the images an uninterrupted one would.
        return imagenet_data.imagenet_train_dataset(
            data_dir, config.batch_size, seed=config.seed + ctx.input_pipeline_id, start_step=start_step,
            input_context=ctx, shuffle_buffer=experiment.shuffle_buffer, antialias=experiment.resize_antialias)

    def validation(model):
        raw = imagenet_data.imagenet_split("validation", data_dir)
        if eval_examples:
            raw = raw.take(eval_examples)
        ds = imagenet_data.imagenet_eval_dataset(raw, mode, eval_batch_size, experiment.resize_antialias)
        return evaluate_classifier(model, ds, "single" if mode == "center" else mode)

    hparams = experiment_hparams("imagenet2012", experiment, config)
    return Task(build_model=build_model, train_dataset=train_dataset,
                evaluations={"validation": validation}, hparams=hparams, data=imagenet_data.data_identity(data_dir))


def imagenet_final_evaluation(experiment: ImagenetExperiment, model, data_dir: str | None,
                              modes=("center", "ten_crop", "multiscale"), batch_size: int = 25,
                              examples: int | None = None) -> dict:
    """Top-1/top-5 validation error of a trained net under each test protocol.

    For ``"multiscale"`` (and ``"multiscale_noflip"``) the weights are copied into a fully-convolutional twin
    (``input_shape=(None, None, 3)``), as the paper does for Table 4.
    """
    results = {}
    for mode in modes:
        net = model
        if mode.startswith("multiscale") and model.input_shape[1] is not None:
            net = imagenet_resnet(experiment.depth, residual=experiment.residual, shortcut=experiment.shortcut,
                                  stride_on=experiment.stride_on, input_shape=(None, None, 3),
                                  classifier_activation=None)
            net.set_weights(model.get_weights())
        raw = imagenet_data.imagenet_split("validation", data_dir)
        if examples:
            raw = raw.take(examples)
        metrics = evaluate_classifier(net, imagenet_data.imagenet_eval_dataset(raw, mode, batch_size,
                                                                               experiment.resize_antialias),
                                      "single" if mode == "center" else mode)
        results[f"{mode}_top1_error"] = 100.0 * metrics["error"]
        results[f"{mode}_top5_error"] = 100.0 * metrics["top5_error"]
    return results
