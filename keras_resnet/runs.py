"""Reading runs back: scalars from TensorBoard event files, and per-run metadata.

The training loop writes scalars ``loss``, ``error`` (percent),
``learning_rate`` and ``images_per_second`` into ``<model_dir>/train`` and
``loss``/``error`` into ``<model_dir>/<evaluation>`` (``test``, ``validation``);
these are the names read here. What is made of them: ``keras_resnet.reporting`` (tables
beside the paper's) and ``keras_resnet.figures``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Sequence

import tensorflow as tf


def read_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` of every scalar summary in ``logdir``, sorted by step.

    A step written twice (a run resumed from an earlier checkpoint) keeps its last value.
    """
    from tensorboard.backend.event_processing import event_accumulator
    for path in sorted(tf.io.gfile.glob(os.path.join(logdir, "events.out.tfevents.*"))):
        check_event_file(path)
    acc = event_accumulator.EventAccumulator(logdir, size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    scalars = {}
    for tag in acc.Tags()["tensors"]:
        if acc.SummaryMetadata(tag).plugin_data.plugin_name != "scalars":
            continue
        by_step = {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)}
        scalars[tag] = sorted(by_step.items())
    return scalars


# Training scalars logged as means over the iterations since the previous log (the others are taken at a step).
INTERVAL_MEANS = ("loss", "error")


def on_log_grid(points: list[tuple[int, float]], every: int) -> list[tuple[int, float]]:
    """A training curve as an uninterrupted run logs it, every ``every`` iterations.

    Each logged training loss or error is the mean over the iterations since the previous log. A run
    stopped between two logs (a session's end, a pre-empted job) logs once more at the step it stopped,
    then on the grid again after it resumes: a short, noisy interval that a figure draws as a spike.
    Each such point is merged into the next one in the same interval of the grid, weighted by its
    iterations, which gives the value an uninterrupted run logs there (resume is exact). Points further
    apart than ``every`` are left as they are.
    """
    out, total, length, previous = [], 0.0, 0, 0
    for i, (step, value) in enumerate(points):
        total, length, previous = total + value * (step - previous), length + step - previous, step
        following = points[i + 1][0] if i + 1 < len(points) else None
        if step % every and following is not None and following <= -(-step // every) * every:
            continue
        out.append((step, total / length if length > 0 else value))
        total, length = 0.0, 0
    return out


def check_event_file(path: str) -> None:
    """``ValueError`` (one line, naming the file) when a TensorBoard events file is damaged inside.

    TensorBoard silently stops reading at a damaged record, so a report would show a curve cut short
    without saying so. A file that merely ends in a truncated record (a run still writing it, or a
    copy cut at the end) is accepted: everything before the cut is read, as TensorBoard does."""
    try:
        for _ in tf.data.TFRecordDataset(path):
            pass
    except tf.errors.DataLossError as e:
        message = e.message or str(e)
        if "truncated record" in message:
            return
        reason = re.sub(r"\{\{.*?\}\}\s*", "", message).split(" [Op:")[0].strip()
        raise ValueError(f"{path} is damaged ({reason}): restore it from a copy, or move it out of the run "
                         "directory to report without it") from None


def read_config(model_dir: str) -> dict:
    """The run's ``config.json`` (its hparams), or ``{}``."""
    path = os.path.join(model_dir, "config.json")
    return _read_json(path) if os.path.exists(path) else {}


def read_cifar10_config(model_dir: str, purpose: str) -> dict:
    """A CIFAR-10 run's ``config.json``; one ``ValueError`` line when ``model_dir`` is no run or
    another dataset's (``purpose``: what only CIFAR-10 runs are for, e.g. ``"nets are shipped"``)."""
    path = os.path.join(model_dir, "config.json")
    if not os.path.isfile(path):
        raise ValueError(f"--model_dir={model_dir} is not a run (no config.json)")
    config = _read_json(path)
    if config.get("dataset") != "cifar10":
        raise ValueError(f"--model_dir={model_dir} is a {config.get('dataset')!r} run; only CIFAR-10 {purpose}")
    return config


def _read_json(path: str) -> dict:
    """A run's JSON file; ``ValueError`` naming it when it is damaged."""
    try:
        with open(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is damaged ({getattr(e, 'msg', e)}): restore it from a copy, or move the run "
                         "out of the folder to report without it") from None


# The event folders a run may have: training, the held-out split, and its masked subset
# (``--eval_subset_mask``, e.g. the 1,000 pixel-exact test images of this project's CIFAR-10 copy).
SPLITS = ("train", "test", "validation", "test_subset", "validation_subset")
REEVALUATION_FILE = "reevaluation.json"  # tools.evaluate --json of the run's final model, on other data.


@dataclasses.dataclass
class Run:
    """One training run read back from its ``model_dir``."""

    model_dir: str
    config: dict
    scalars: dict[str, dict[str, list[tuple[int, float]]]]  # split -> tag -> [(step, value)]
    stats: dict
    provenance: dict | None = None  # provenance.json: {"segments": [...]}, None where not recorded.
    reevaluation: dict | None = None  # reevaluation.json: tools.evaluate's JSON of the final model.

    def final_error(self, split: str) -> float | None:
        """The final error on ``split``: from ``reevaluation.json`` where the final model was
        evaluated again (on other data than the run's curves, e.g. a corrected test set), else the
        last logged value."""
        again = self.reevaluation or {}
        if again.get("split") == split and "error" in again:
            return again["error"]
        if split.endswith("_subset") and again.get("split") == split[:-len("_subset")] and "masked_error" in again:
            return again["masked_error"]
        return self.final(split)

    def reevaluation_note(self) -> str | None:
        """How a re-evaluated row differs from the run's own curves, or ``None``."""
        if not self.reevaluation:
            return None
        data = (self.reevaluation.get("data") or {}).get("summary", "the data named in reevaluation.json")
        return (f"final error from reevaluation.json: the final model tested again on {data} "
                "(the curves and time to accuracy are as logged during the run)")

    def provenance_line(self) -> str:
        """One line of what produced the run (``keras_resnet.provenance.summary``), loudly marked
        when its segments differ in code, libraries, device class, precision or data."""
        from keras_resnet import provenance
        if self.provenance is None:
            return "provenance not recorded (the run predates provenance.json)"
        line = provenance.summary(self.provenance["segments"])
        note = self.provenance.get("reconstructed_from")
        return f"reconstructed from {note}, never recorded by the run: {line}" if note else line

    @property
    def final_step(self) -> int:
        steps = [s for tags in self.scalars.values() for points in tags.values() for s, _ in points]
        return max(steps, default=0)

    def final(self, split: str, tag: str = "error") -> float | None:
        """The value at the last logged step: the paper reports the final iteration."""
        points = self.scalars.get(split, {}).get(tag)
        return points[-1][1] if points else None

    @property
    def eval_split(self) -> str:
        return next((s for s in ("test", "validation") if s in self.scalars), "test")


def find_runs(roots: str | Sequence[str]) -> list[Run]:
    """Every run under ``roots`` (one folder or several: folders holding a ``config.json``), sorted by path
    within each root, the roots in the order given.

    Symbolic links are followed, so a report can also gather runs from several places into one folder of links
    (``ln -s ../cifar10-resnet20-64k/resnet20-seed0 runs/``); a folder reached twice is read once.

    The training loss and error are read onto the run's logging grid (``on_log_grid``: a stop between
    two logs leaves no spike).

    Raises ``ValueError`` (one line) when a root is missing or none holds a run.
    """
    roots = [roots] if isinstance(roots, str) else list(roots)
    for root in roots:
        if not os.path.isdir(root):
            raise ValueError(f"--runs={root} is not a directory")
    runs, seen = [], set()
    for folder, files in ((folder, files) for root in roots
                          for folder, _, files in sorted(os.walk(root, followlinks=True))):
        if "config.json" not in files or os.path.realpath(folder) in seen:
            continue
        seen.add(os.path.realpath(folder))
        scalars = {split: read_scalars(os.path.join(folder, split))
                   for split in SPLITS if os.path.isdir(os.path.join(folder, split))}
        config = read_config(folder)
        every = config.get("log_every")
        for tag in INTERVAL_MEANS if every and "train" in scalars else ():
            if tag in scalars["train"]:
                scalars["train"][tag] = on_log_grid(scalars["train"][tag], every)
        stats = {}
        for name in ("stats.json", "final_eval.json"):
            if os.path.exists(os.path.join(folder, name)):
                stats.update(_read_json(os.path.join(folder, name)))
        from keras_resnet import provenance
        again = None
        if os.path.exists(os.path.join(folder, REEVALUATION_FILE)):
            again = _read_json(os.path.join(folder, REEVALUATION_FILE))
        runs.append(Run(folder, config, scalars, stats, provenance.read_run(folder), again))
    if not runs:
        raise ValueError(f"--runs={','.join(roots)} holds no run (no config.json below it)")
    return runs


def weight_decay_on(config: dict) -> str:
    """What a run's weight decay applied to (``"kernels"`` or ``"all"``); runs recorded before the setting
    existed decayed the kernels (``run_config.IMPLIED_WHEN_ABSENT``)."""
    from keras_resnet.run_config import IMPLIED_WHEN_ABSENT
    return config.get("weight_decay_on", IMPLIED_WHEN_ABSENT["weight_decay_on"])


def recipe_weight_decay_on(dataset: str | None) -> str:
    """What the dataset's recipe decays by default: ``"all"`` on CIFAR-10 (measured, docs/results/table6-64k),
    ``"kernels"`` on ImageNet (``tasks.CifarExperiment``, ``tasks.ImagenetExperiment``)."""
    from keras_resnet import tasks  # tasks imports this module (through export).
    return (tasks.CifarExperiment if dataset == "cifar10" else tasks.ImagenetExperiment).weight_decay_on


def run_label(config: dict, *details: str, seed: bool = False) -> str:
    """The net as tables and figures name it: ``ResNet-56``, ``plain-20``, ``ResNet-34 (B)`` (a shortcut
    other than the paper's for that dataset), ``ResNet-56 (decay kernels)`` (weight decay on other parameters
    than the dataset's recipe decays: ``decay kernels`` on CIFAR-10, ``decay all`` on ImageNet).
    ``seed=True`` names one run of it, then ``details``, in the same parentheses:
    ``run_label(c, seed=True)`` gives ``ResNet-56 (decay kernels, seed 0)``."""
    kind = "ResNet" if config.get("residual", True) else "plain"
    shortcut = config.get("shortcut")
    notes = [shortcut] if config.get("residual", True) and shortcut and not (
        config.get("dataset") == "cifar10" and shortcut == "A") else []
    if weight_decay_on(config) != recipe_weight_decay_on(config.get("dataset")):
        notes.append(f"decay {weight_decay_on(config)}")
    notes += ([f"seed {config.get('seed')}"] if seed else []) + list(details)
    return f"{kind}-{config.get('depth')}" + (f" ({', '.join(notes)})" if notes else "")


def is_finished(run: Run) -> bool:
    """Finished runs have ``stats.json`` with ``complete`` true; only they are compared."""
    return bool(run.stats.get("complete"))
