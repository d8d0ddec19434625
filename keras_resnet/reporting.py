"""Reading runs back: scalars from TensorBoard event files, and per-run metadata.

The training loop writes scalars ``loss``, ``error`` (percent),
``learning_rate`` and ``images_per_second`` into ``<model_dir>/train`` and
``loss``/``error`` into ``<model_dir>/<evaluation>`` (``test``, ``validation``);
these are the names read here.
"""

from __future__ import annotations

import dataclasses
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


@dataclasses.dataclass
class Run:
    """One training run read back from its ``model_dir``."""

    model_dir: str
    config: dict
    scalars: dict[str, dict[str, list[tuple[int, float]]]]  # split -> tag -> [(step, value)]
    stats: dict

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


def find_runs(root: str) -> list[Run]:
    """Every run under ``root`` (folders holding a ``config.json``), sorted by path.

    Raises ``ValueError`` (one line) when ``root`` is missing or holds no run.
    """
    if not os.path.isdir(root):
        raise ValueError(f"--runs={root} is not a directory")
    runs = []
    for folder, _, files in sorted(os.walk(root)):
        if "config.json" not in files:
            continue
        scalars = {split: read_scalars(os.path.join(folder, split))
                   for split in ("train", "test", "validation") if os.path.isdir(os.path.join(folder, split))}
        stats = {}
        for name in ("stats.json", "final_eval.json"):
            if os.path.exists(os.path.join(folder, name)):
                with open(os.path.join(folder, name)) as f:
                    stats.update(json.load(f))
        runs.append(Run(folder, read_config(folder), scalars, stats))
    if not runs:
        raise ValueError(f"--runs={root} holds no run (no config.json below it)")
    return runs


def run_label(config: dict) -> str:
    kind = "ResNet" if config.get("residual", True) else "plain"
    shortcut = config.get("shortcut")
    suffix = f" ({shortcut})" if config.get("residual", True) and shortcut and not (
        config.get("dataset") == "cifar10" and shortcut == "A") else ""
    return f"{kind}-{config.get('depth')}{suffix}"


def summarize(values: list[float]) -> dict:
    """Mean, sample std (0 for one value), n and best (lowest) of per-seed errors."""
    n = len(values)
    mean = sum(values) / n
    std = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5 if n > 1 else 0.0
    return {"mean": mean, "std": std, "n": n, "best": min(values)}


def cifar_table(runs: list[Run]) -> tuple[str, list[str]]:
    """Table 6 beside our runs: (Markdown table, notes on runs left out of it)."""
    from keras_resnet.paper import CIFAR_SCHEDULE, CIFAR_TABLE6

    groups: dict[tuple, list[Run]] = {}
    notes = []
    for run in runs:
        if run.config.get("dataset") != "cifar10":
            continue
        if run.final(run.eval_split) is None:
            notes.append(f"{run.model_dir}: no {run.eval_split} error logged yet (missing scalars)")
            continue
        key = (not run.config.get("residual", True), run.config.get("depth"), run.config.get("shortcut"),
               run.config.get("train_steps"), run.config.get("protocol", "test"))
        groups.setdefault(key, []).append(run)
    rows = ["| net | paper error | ours: mean +- std | n | best | ours - paper | iterations run | schedule |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for key in sorted(groups, key=lambda k: (not k[0], k[1], str(k[2]), k[3] or 0)):  # Plain nets first.
        plain, depth, shortcut, steps, protocol = key
        members = groups[key]
        s = summarize([r.final(r.eval_split) for r in members])
        paper = None if plain or shortcut != "A" else CIFAR_TABLE6.get(depth, {}).get("error")
        full = (steps or 0) >= CIFAR_SCHEDULE["train_steps"]
        done = sorted({r.final_step for r in members})
        schedule = "paper (64k)" if full else f"SHORT: {steps:,} of 64,000, not comparable"
        if protocol != "test":
            schedule += f"; {protocol} split"
        delta = f"{s['mean'] - paper:+.2f}" if paper is not None and full else "-"
        rows.append(f"| {run_label(members[0].config)} | {paper if paper is not None else '-'} | "
                    f"{s['mean']:.2f} +- {s['std']:.2f} | {s['n']} | {s['best']:.2f} | {delta} | "
                    f"{', '.join(f'{d:,}' for d in done)} | {schedule} |")
    return "\n".join(rows), notes


def imagenet_table(runs: list[Run]) -> str:
    """Tables 2-4 beside our ImageNet runs (10-crop and multi-scale top-1/top-5)."""
    from keras_resnet.paper import IMAGENET_TABLE3, IMAGENET_TABLE4

    rows = ["| net | paper 10-crop top-1/top-5 | ours 10-crop | paper multi-scale | ours multi-scale | iterations |",
            "| --- | --- | --- | --- | --- | ---: |"]
    for run in runs:
        c = run.config
        if c.get("dataset") != "imagenet2012":
            continue
        key = (c.get("depth"), c.get("residual", True), c.get("shortcut") if c.get("residual", True) else None)
        pick = lambda mode: (f"{run.stats[f'{mode}_top1_error']:.2f}/{run.stats[f'{mode}_top5_error']:.2f}"
                             if f"{mode}_top1_error" in run.stats else "-")
        p3 = IMAGENET_TABLE3.get(key)
        p4 = IMAGENET_TABLE4.get(key)
        rows.append(f"| {run_label(c)} | {'/'.join(map(str, p3)) if p3 else '-'} | {pick('ten_crop')} | "
                    f"{'/'.join(map(str, p4)) if p4 else '-'} | {pick('multiscale')} | {run.final_step:,} |")
    return "\n".join(rows) if len(rows) > 2 else ""


def plot_curves(runs: list[Run], path: str, title: str) -> None:
    """Figure 6 / Figure 4 layout: plain nets left, residual nets right; training error dashed,
    test (or validation) error solid, against iterations."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    depths = sorted({r.config.get("depth") for r in runs})
    colours = {d: plt.cm.viridis(i / max(1, len(depths) - 1)) for i, d in enumerate(depths)}
    for ax, residual in zip(axes, (False, True)):
        for run in sorted((r for r in runs if r.config.get("residual", True) == residual),
                          key=lambda r: r.config.get("depth")):
            colour = colours[run.config.get("depth")]
            label = run_label(run.config)
            for split, style in (("train", "--"), (run.eval_split, "-")):
                points = run.scalars.get(split, {}).get("error", [])
                if points:
                    ax.plot(*zip(*points), style, color=colour, linewidth=1.2,
                            label=f"{label} {'train' if split == 'train' else split}")
        ax.set_title("plain" if not residual else "ResNet")
        ax.set_xlabel("iterations")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    axes[0].set_ylabel("error (%)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def response_layers(model) -> list[str]:
    """Names of the BN layers after every 3x3 conv, in depth order: the "responses" of Figure 7
    (section 4.2: "the outputs of each 3x3 layer, after BN and before other nonlinearity")."""
    import keras
    names = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and tuple(layer.kernel_size) == (3, 3):
            bn = layer.name[: -len("_conv")] + "_bn"
            names.append(bn)
    return names


def layer_response_std(model, images, batch_size: int = 250) -> list[tuple[str, float]]:
    """Standard deviation of each 3x3 layer's BN output over ``images`` (all positions and channels)."""
    import keras
    import numpy as np

    names = response_layers(model)
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    total = np.zeros(len(names))
    squares = np.zeros(len(names))
    count = np.zeros(len(names))
    for start in range(0, len(images), batch_size):
        outputs = probe(images[start:start + batch_size], training=False)
        for i, out in enumerate(outputs):
            values = np.asarray(out, dtype=np.float64)
            total[i] += values.sum()
            squares[i] += np.square(values).sum()
            count[i] += values.size
    mean = total / count
    return list(zip(names, np.sqrt(np.maximum(squares / count - mean**2, 0)).tolist()))


def plot_layer_responses(responses: dict[str, list[float]], path: str) -> None:
    """Figure 7: std of layer responses, in the original order (top) and sorted (bottom)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(8, 6))
    for label, stds in responses.items():
        style = "--" if label.startswith("plain") else "-"
        axes[0].plot(range(1, len(stds) + 1), stds, style, label=label)
        axes[1].plot(range(1, len(stds) + 1), sorted(stds, reverse=True), style, label=label)
    axes[0].set_title("original order")
    axes[1].set_title("sorted by magnitude")
    for ax in axes:
        ax.set_xlabel("layer index")
        ax.set_ylabel("std")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
