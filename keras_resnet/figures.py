"""The paper's figures from runs read back (``keras_resnet.runs``): training curves in the layout of
Figures 4 and 6, and Figure 7's standard deviations of layer responses."""

from __future__ import annotations

from keras_resnet.runs import Run


def plot_curves(runs: list[Run], path: str, title: str,
                paper_ylim: tuple[float, float] | None = None) -> tuple[float, float]:
    """Figure 6 / Figure 4 layout: plain nets left, residual nets right; training error dashed,
    test (or validation) error solid, against iterations.

    ``paper_ylim``: the paper's error axis (Figure 6: 0-20 %, Figure 4: 20-60 %), used when every
    curve ends inside it (the first iterations' high errors are cut off there, as in the paper);
    otherwise the axis fits the curves, so that a short or failed run is never drawn off the chart.
    Returns the error axis drawn.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    styles = curve_styles(runs)
    for ax, residual in zip(axes, (False, True)):
        for run in sorted((r for r in runs if r.config.get("residual", True) == residual),
                          key=lambda r: (r.config.get("depth"), styles[r.model_dir][0])):
            label, colour_index = styles[run.model_dir]
            colour = plt.cm.tab10(colour_index % 10)
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
    ends = [points[-1][1] for r in runs for split in r.scalars for points in [r.scalars[split].get("error")] if points]
    if paper_ylim and ends and all(paper_ylim[0] <= e <= paper_ylim[1] for e in ends):
        axes[0].set_ylim(*paper_ylim)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return axes[0].get_ylim()


def curve_styles(runs: list[Run]) -> dict[str, tuple[str, int]]:
    """(legend label, colour index) of each run's curves, by ``model_dir``. As in the paper's figures,
    plain and residual nets of one depth share a colour; a run of another recipe (``ResNet-56 (decay
    all)``, or settings named by ``reporting.figure_labels``) gets a colour and label of its own."""
    from keras_resnet.reporting import figure_labels
    labels = figure_labels(runs)
    net = {r.model_dir: labels[r.model_dir].split("-", 1)[-1] for r in runs}  # "56 (decay all)", no kind.
    order = sorted({(r.config.get("depth") or 0, net[r.model_dir]) for r in runs})
    colour = {key: i for i, (_, key) in enumerate(order)}
    return {r.model_dir: (labels[r.model_dir], colour[net[r.model_dir]]) for r in runs}


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


def layer_response_std(model, images, batch_size: int = 250, per_channel: bool = True) -> list[tuple[str, float]]:
    """Standard deviation of each 3x3 layer's response (its BN output, before the ReLU) over ``images``.

    ``per_channel=True`` (Figure 7 as the paper describes it, "the standard deviations of layer
    responses"): each channel's std over the images and positions, averaged over the channels, so that
    the spread between channel means (set by BN's beta) does not enter it. ``False``: one std pooled
    over images, positions and channels. Empty for a model without 3x3 convolutions.
    """
    import keras
    import numpy as np

    names = response_layers(model)
    if not names:  # No 3x3 conv (not one of the paper's nets): nothing to draw.
        return []
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # As the model was built.
    probe = keras.Model(inputs, [model.get_layer(n).output for n in names])
    total, squares, count = [0.0] * len(names), [0.0] * len(names), [0] * len(names)
    axes = (0, 1, 2) if per_channel else None
    for start in range(0, len(images), batch_size):
        outputs = probe(images[start:start + batch_size], training=False)
        for i, out in enumerate(outputs):
            values = np.asarray(out, dtype=np.float64)
            total[i] = total[i] + values.sum(axis=axes)
            squares[i] = squares[i] + np.square(values).sum(axis=axes)
            count[i] += values.size // (values.shape[-1] if per_channel else 1)
    stds = [np.sqrt(np.maximum(q / n - (t / n) ** 2, 0)).mean() for t, q, n in zip(total, squares, count)]
    return list(zip(names, [float(v) for v in stds]))


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
        ax.set_ylabel("std (per channel, mean)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
