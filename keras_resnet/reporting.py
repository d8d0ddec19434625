"""Reading runs back: scalars from TensorBoard event files, and per-run metadata.

The training loop writes scalars ``loss``, ``error`` (percent),
``learning_rate`` and ``images_per_second`` into ``<model_dir>/train`` and
``loss``/``error`` into ``<model_dir>/<evaluation>`` (``test``, ``validation``);
these are the names read here.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf


def read_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` of every scalar summary in ``logdir``, sorted by step.

    A step written twice (a run resumed from an earlier checkpoint) keeps its last value.
    """
    from tensorboard.backend.event_processing import event_accumulator
    acc = event_accumulator.EventAccumulator(logdir, size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    scalars = {}
    for tag in acc.Tags()["tensors"]:
        if acc.SummaryMetadata(tag).plugin_data.plugin_name != "scalars":
            continue
        by_step = {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)}
        scalars[tag] = sorted(by_step.items())
    return scalars


def read_config(model_dir: str) -> dict:
    """The run's ``config.json`` (its hparams), or ``{}``."""
    path = os.path.join(model_dir, "config.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)
