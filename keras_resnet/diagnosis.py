"""Where a CIFAR-10 run's test error comes from: its precision, its BN statistics, how well it fits.

When a run misses the paper, the first suspects cost minutes to rule out, not another run:
``diagnose_cifar10_run`` scores one net of a run (its final ``model.keras`` or any checkpoint) on the
run's held-out split as trained, in float32, and with every BN layer's moving averages replaced by
statistics re-estimated over many training batches (``evaluation.reestimate_batch_norm_statistics``),
and on training images without augmentation (how closely the net fits what it was trained on).
"""

from __future__ import annotations

import dataclasses
import os

import keras
import tensorflow as tf

from keras_resnet import checkpoints, runs
from keras_resnet.data import cifar10 as cifar_data
from keras_resnet.evaluation import evaluate_classifier, reestimate_batch_norm_statistics
from keras_resnet.export import load_saved_model
from keras_resnet.run_config import PRECISIONS
from keras_resnet.tasks import CifarExperiment

FINAL_MODEL = "model.keras"


def load_run_net(model_dir: str, checkpoint: str | None = None) -> tuple[keras.Model, CifarExperiment, dict, str]:
    """One net of a CIFAR-10 run, in the precision it trained in: ``(net, experiment, config, which)``.

    ``checkpoint``: a checkpoint prefix (``.../checkpoints/ckpt-N``); ``None``: the run's final
    ``model.keras`` if it has finished, else its newest checkpoint. ``which`` names what was loaded.
    """
    config = runs.read_cifar10_config(model_dir, "runs are diagnosed")
    experiment = CifarExperiment.from_run_config(config)
    final = os.path.join(model_dir, FINAL_MODEL)
    if checkpoint is None and os.path.isfile(final):
        return load_saved_model(final), experiment, config, FINAL_MODEL
    if checkpoint is None:
        newest = checkpoints.checkpoints_newest_first(os.path.join(model_dir, "checkpoints"))
        if not newest:
            raise ValueError(f"--model_dir={model_dir} has neither {FINAL_MODEL} nor a checkpoint")
        checkpoint = newest[0]
    if not tf.io.gfile.exists(checkpoint + ".index"):
        raise ValueError(f"--checkpoint={checkpoint} is not a checkpoint (no {checkpoint}.index)")
    net = experiment.build_model(PRECISIONS[config.get("mixed_precision", "none")])
    try:
        tf.train.Checkpoint(model=net).restore(checkpoint).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ValueError(f"{checkpoint} does not hold the net {model_dir}/config.json describes "
                         f"({experiment.name}): {reason}") from None
    return net, experiment, config, os.path.basename(checkpoint)


def diagnose_cifar10_run(model_dir: str, data_dir: str | None, checkpoint: str | None = None,
                         batches: int = 100, train_images: int = 10_000, seed: int = 1) -> dict:
    """Errors (%) of one net of a run, each a suspect ruled in or out:

    * ``as_trained``: on the held-out split, in the run's precision, BN moving averages;
    * ``float32``: the same weights in float32 (what the precision costs);
    * ``bn_reestimated_augmented`` / ``bn_reestimated_plain``: float32, the BN statistics re-estimated
      over ``batches`` training batches of the run's size, augmented as in training or not (what the
      moving averages' noise costs);
    * ``train_plain``: on the first ``train_images`` training images without augmentation, float32,
      moving averages (how closely the net fits its training set).

    ``seed`` draws the re-estimation batches (another order than the run's own seed 0).
    """
    net, experiment, config, which = load_run_net(model_dir, checkpoint)
    train_split, eval_split = experiment.splits
    train = cifar_data.load_cifar10(train_split, data_dir, train_split=train_split)
    held_out = cifar_data.load_cifar10(eval_split, data_dir, train_split=train_split)
    normalization = experiment.normalization

    def error(model, data) -> float:
        return 100.0 * evaluate_classifier(model, cifar_data.cifar10_eval_dataset(data, 500, normalization))["error"]

    float32_net = experiment.build_model("float32")
    float32_net.set_weights(net.get_weights())
    first = dataclasses.replace(train, images=train.images[:train_images], labels=train.labels[:train_images],
                                record=None)
    result = {"model_dir": model_dir, "net": which, "split": eval_split, "images": len(held_out),
              "as_trained_dtype": PRECISIONS[config.get("mixed_precision", "none")],
              "as_trained": error(net, held_out), "float32": error(float32_net, held_out),
              "train_plain": error(float32_net, first), "train_images": len(first), "bn_batches": batches}
    for augment in (True, False):
        stream = cifar_data.cifar10_train_dataset(train, config.get("batch_size", 128), seed=seed, augment=augment,
                                                  normalization=normalization).take(batches)
        reestimate_batch_norm_statistics(float32_net, stream)
        result[f"bn_reestimated_{'augmented' if augment else 'plain'}"] = error(float32_net, held_out)
    return result
