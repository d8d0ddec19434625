"""What a run is: its optimisation settings (``TrainConfig``), what a recipe supplies (``Task``),
and which recorded settings make two runs the same run, so that a ``model_dir`` is only ever resumed
with its own configuration.

Light on purpose: importing it loads neither TensorFlow nor Keras.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

PRECISIONS = {"none": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
# Keys that may change between a run and its resumption without mixing two experiments.
RUNTIME_KEYS = frozenset({"log_every", "eval_every", "checkpoint_every", "keep_checkpoints",
                          "data_dir", "model_dir", "num_gpus", "jit_compile", "eval_batch_size",
                          "command", "eval_subset_mask"})
CONFIG_FILE = "config.json"


class ConfigMismatchError(ValueError):
    """``model_dir`` holds a run with a different configuration."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping; defaults are the paper's CIFAR-10 recipe (section 4.2).

    Attributes:
        batch_size: Global batch over all replicas (128).
        train_steps: Iterations (64k).
        lr: Base learning rate (0.1).
        lr_boundaries: Steps where the rate is divided by 10 (32k, 48k), already
            scaled to ``train_steps``.
        lr_decay: Factor at each boundary or plateau (0.1).
        momentum: SGD momentum (0.9).
        warmup_lr: Warm-up rate for very deep nets (0.01 for ResNet-110), or ``None``.
        warmup_steps: Longest warm-up, a safety cap (4000, about 10 epochs; the
            paper's ended after about 400 iterations).
        warmup_error: Warm-up ends when the training error (mean of the last
            ``warmup_window`` steps' batches) is below this fraction (0.8).
        warmup_window: 391, one epoch of 50k images in batches of 128
            (``schedules.WarmUp`` says why).
        plateau_patience_steps: Iterations without an improvement of the
            ``plateau_metric`` error larger than ``plateau_threshold`` (in
            percentage points) before the rate is divided by 10, at most
            ``plateau_max_drops`` times (ImageNet, ``schedules.PlateauDecay``); 0 disables it.
        mixed_precision: ``"none"``, ``"float16"`` (GPUs, with loss scaling) or ``"bfloat16"``.
        jit_compile: Compile the train step with XLA.
        seed: Seeds the weights, the data order and the augmentation.
        log_every, eval_every, checkpoint_every: Intervals in steps.
        keep_checkpoints: How many checkpoints to keep.
    """

    batch_size: int = 128
    train_steps: int = 64_000
    lr: float = 0.1
    lr_boundaries: tuple[int, ...] = (32_000, 48_000)
    lr_decay: float = 0.1
    momentum: float = 0.9
    warmup_lr: float | None = None
    warmup_steps: int = 4000
    warmup_error: float = 0.8
    warmup_window: int = 391
    plateau_patience_steps: int = 0
    plateau_threshold: float = 0.5
    plateau_max_drops: int = 3
    plateau_metric: str = "validation"
    mixed_precision: str = "none"
    jit_compile: bool = False
    seed: int = 0
    log_every: int = 100
    eval_every: int = 2000
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3

    def __post_init__(self):
        if self.mixed_precision not in PRECISIONS:
            raise ValueError(f"mixed_precision must be one of {', '.join(PRECISIONS)}, got {self.mixed_precision!r}")
        for name in ("batch_size", "train_steps", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints",
                     "warmup_window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        for name in ("plateau_patience_steps", "plateau_max_drops"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if not (isinstance(self.plateau_threshold, (int, float)) and self.plateau_threshold >= 0):
            raise ValueError(f"plateau_threshold must be a number >= 0, got {self.plateau_threshold!r}")


@dataclasses.dataclass
class Task:
    """What a recipe supplies: the model and the data, as functions.

    Attributes:
        build_model: ``dtype -> keras.Model`` returning logits (no softmax);
            called under the strategy's scope.
        train_dataset: ``(input_context, start_step) -> tf.data.Dataset`` of
            per-replica ``(images, labels)`` batches, starting at ``start_step``.
        evaluations: ``name -> (model -> {"loss": float, "error": float, ...})``,
            e.g. ``{"test": ...}``; each writes its loss and every ``*error`` (as
            percent, e.g. ImageNet's ``top5_error``) to ``model_dir/<name>``.
        hparams: The run's configuration, logged and checked on resume.
        export: Optional ``(model, model_dir) -> None``, called once at the end of a
            finished run after ``model.keras`` is written (e.g. a ready-to-use classifier).
        data: The identity of the data read (``{"identity": ..., "summary": ...}``,
            e.g. ``keras_resnet.data.data_identity``), recorded in the run's provenance.
    """

    build_model: Callable[[Any], keras.Model]
    train_dataset: Callable[[tf.distribute.InputContext, int], tf.data.Dataset]
    evaluations: dict[str, Callable[[keras.Model], dict]]
    hparams: dict
    export: Callable[[keras.Model, str], None] | None = None
    data: dict | None = None


def what_is_trained(hparams: dict) -> dict:
    """The settings that change what a run computes: runtime keys left out, and so are the
    settings of a rule that is off (a run without warm-up or plateaus is the same run whatever
    their thresholds; this also lets runs written before such a setting existed resume)."""
    kept = {k: v for k, v in hparams.items() if k not in RUNTIME_KEYS}
    if not kept.get("plateau_patience_steps") and not kept.get("plateau_patience"):
        kept = {k: v for k, v in kept.items() if not k.startswith("plateau_")}
    if kept.get("warmup_lr") is None:
        kept = {k: v for k, v in kept.items() if not k.startswith("warmup_") or k == "warmup_lr"}
    for key, value in IMPLIED_WHEN_ABSENT.items():
        if key in kept and kept[key] == value:
            kept.pop(key)
    return kept


# Settings added after runs were recorded without them: the value every such run computed with, left out of
# what_is_trained when it has it (TF32 is off on CPUs; every run decayed the kernels only; every ImageNet run
# resized with antialiasing).
IMPLIED_WHEN_ABSENT = {"tf32": False, "weight_decay_on": "kernels", "resize_antialias": True}


def check_config(model_dir: str, hparams: dict) -> None:
    """Refuses a ``model_dir`` that holds a run of another configuration."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return
    try:
        with open(path) as f:
            saved = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is damaged ({getattr(e, 'msg', e)}, line {getattr(e, 'lineno', '?')}): repair it "
                         "from a copy, or delete it and rerun the run's own command (recorded in the run's "
                         "provenance.json and TensorBoard hparams) to write it again") from None
    if not isinstance(saved, dict):
        raise ValueError(f"{path} is damaged (not a JSON object): repair it from a copy, or delete it and rerun "
                         "the run's own command to write it again")
    ours, theirs = what_is_trained(jsonable(hparams)), what_is_trained(saved)
    differ = sorted(k for k in set(ours) | set(theirs) if theirs.get(k) != ours.get(k))
    if differ:
        def there(k):  # A setting added after the run was recorded: the value it trained with.
            if k not in saved and k in IMPLIED_WHEN_ABSENT:
                return f"{IMPLIED_WHEN_ABSENT[k]!r} there (not recorded: the value before the setting existed)"
            return f"{saved.get(k)!r} there"
        details = ", ".join(f"{k}: {there(k)} vs {hparams.get(k)!r} now" for k in differ)
        raise ConfigMismatchError(
            f"model_dir {model_dir!r} holds a run with a different configuration ({details}); "
            "to resume it, give the settings it started with (its provenance.json records its command), "
            "or use another --model_dir")


def jsonable(value):
    """``value`` as JSON reads it back (tuples become lists), to compare with a saved config."""
    return json.loads(json.dumps(value))


def write_json_atomic(path: str, payload: dict) -> None:
    """Writes ``payload`` so that ``path`` is either the old file or the whole new one."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def prepare_model_dir(model_dir: str, hparams: dict, chief: bool) -> None:
    """Refuses a ``model_dir`` of another run, then creates it and (the chief) records ``config.json``."""
    check_config(model_dir, hparams)
    os.makedirs(model_dir, exist_ok=True)
    if chief and not os.path.exists(os.path.join(model_dir, CONFIG_FILE)):
        write_json_atomic(os.path.join(model_dir, CONFIG_FILE), jsonable(hparams))
