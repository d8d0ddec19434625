"""The reproduction report's tables from runs read back (``keras_resnet.runs``): Table 6 and
Tables 2-4 beside our runs (one row per configuration, how each recipe differs from the paper's) and
the runs Figures 4 and 6 draw. The paper's claims checked on them: ``keras_resnet.claims``; time to
accuracy and training time: ``keras_resnet.run_times``; figures: ``keras_resnet.figures``.
"""

from __future__ import annotations

import json
import os

from keras_resnet.run_config import IMPLIED_WHEN_ABSENT
from keras_resnet.runs import Run, is_finished, recipe_weight_decay_on, run_label, weight_decay_on


def summarize(values: list[float]) -> dict:
    """Mean, sample std (0 for one value), n and best (lowest) of per-seed errors."""
    n = len(values)
    mean = sum(values) / n
    std = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5 if n > 1 else 0.0
    return {"mean": mean, "std": std, "n": n, "best": min(values)}


# Not part of what a row compares: the seed varies within a row, the rest is bookkeeping.
_NOT_COMPARED = frozenset({"seed", "command", "eval_subset_mask"})  # Not what is trained.
# Identify the net rather than the recipe: never reported as deviations.
_IDENTITY = ("dataset", "depth", "residual")


def _row_config(config: dict) -> dict:
    from keras_resnet.run_config import what_is_trained
    config = json.loads(json.dumps(config))  # Tuples as lists, as config.json holds them.
    return {k: v for k, v in what_is_trained(config).items() if k not in _NOT_COMPARED}


def paper_recipe(config: dict) -> dict:
    """The configuration with which the recipes reproduce the paper, for the net of ``config``."""
    from keras_resnet import tasks
    depth, residual = config.get("depth"), config.get("residual", True)
    if config.get("dataset") == "cifar10":
        experiment = tasks.CifarExperiment(depth=depth, residual=residual)
        train = tasks.cifar_train_config(depth)
    else:
        experiment = tasks.ImagenetExperiment(depth=depth, residual=residual,
                                              shortcut="A" if depth in (18, 34) else "B")
        train = tasks.imagenet_train_config()
    return _row_config(tasks.experiment_hparams(config.get("dataset"), experiment, train))


def deviations(config: dict) -> list[str]:
    """How ``config`` differs from the paper's recipe, as ``key=ours (paper: theirs)``.

    The number of replicas is not a deviation: the loss, the weight decay and (with
    ``bn_group_size``) the BN statistics are those of the paper's batch on any number.
    A key missing from an older run's config counts as different (its value is unknown).
    """
    ours, paper = _row_config(config), paper_recipe(config)
    keys = sorted(k for k in set(ours) | set(paper)
                  if k not in _IDENTITY and k != "replicas" and ours.get(k, "?") != paper.get(k))
    if config.get("dataset") == "imagenet2012" and "shortcut" in keys and config.get("depth") == 34:
        keys.remove("shortcut")  # Tables 3 and 4 report ResNet-34 with A, B and C.
    return [f"{k}={_setting(ours, k)} (paper: " + ("not stated; recipe: " if k in UNSTATED_BY_PAPER else "")
            + f"{paper.get(k, IMPLIED_WHEN_ABSENT.get(k))})" for k in keys]


def command_today(config: dict) -> str | None:
    """The run's recorded command as today's code needs it to train the same recipe: with
    ``--weight_decay_on`` added where the run's value is no longer its recipe's default (the CIFAR-10 recipe
    decays every parameter since 2026-12-04, the kernels alone before); ``None`` where the recorded command
    still trains it."""
    command = config.get("command")
    if not command or "--weight_decay_on" in command:
        return None
    decay = weight_decay_on(config)
    return None if decay == recipe_weight_decay_on(config.get("dataset")) else f"{command} --weight_decay_on={decay}"


def differences(config: dict, other: dict) -> list[str]:
    """How run ``config`` differs from run ``other`` in what it trains (the seed aside), as
    ``key=ours (other: theirs)``."""
    ours, theirs = _row_config(config), _row_config(other)
    return [f"{k}={_setting(ours, k)} (other: {_setting(theirs, k)})" for k in _differing_keys([ours, theirs])]


def _setting(config: dict, key: str):
    """A setting of a ``_row_config``; one it leaves out has its implied value, else "not recorded"."""
    return config.get(key, IMPLIED_WHEN_ABSENT.get(key, "not recorded"))


def _differing_keys(configs: list[dict]) -> list[str]:
    """The settings whose values are not the same in all of ``configs`` (``_row_config`` dicts)."""
    return sorted(k for k in {k for c in configs for k in c}
                  if len({json.dumps(_setting(c, k)) for c in configs}) > 1)


def _group(runs: list[Run]) -> dict[tuple, list[Run]]:
    """Runs grouped by their whole configuration except the seed."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        key = tuple(sorted((k, json.dumps(v)) for k, v in _row_config(run.config).items()))
        groups.setdefault(key, []).append(run)
    return groups


def figure_runs(runs: list[Run]) -> list[Run]:
    """The runs whose curves Figures 4 and 6 draw: one per net, as the paper draws them.

    Of the runs of one configuration (every trained setting but the seed), finished or not, the one
    with the lowest seed among those whose curves were logged on the data their errors are reported on;
    a run with ``reevaluation.json`` (its final model tested again on other data, e.g. a corrected test
    set) is drawn only when its configuration has no other run.
    """
    chosen = []
    for members in _group(runs).values():
        pool = [r for r in members if not r.reevaluation] or members
        chosen.append(min(pool, key=lambda r: (r.config.get("seed") or 0, r.model_dir)))
    return sorted(chosen, key=lambda r: r.model_dir)


def figure_labels(runs: list[Run]) -> dict[str, str]:
    """Each drawn run's name in a figure's legend, by ``model_dir``: its ``run_label``, and where runs
    share one (they differ in a setting the label does not name, e.g. the LR), the settings they
    differ in: ``ResNet-20 (lr=0.2)``."""
    by_label: dict[str, list[Run]] = {}
    for run in runs:
        by_label.setdefault(run_label(run.config), []).append(run)
    labels = {}
    for label, members in by_label.items():
        configs = [_row_config(r.config) for r in members]
        keys = _differing_keys(configs) if len(members) > 1 else []
        for run, config in zip(members, configs):
            details = [f"{k}={_setting(config, k)}" for k in keys]
            labels[run.model_dir] = (run_label(run.config, *details) if details
                                     else run_label(run.config, seed=len(members) > 1))
    return labels


def _unfinished_notes(runs: list[Run]) -> list[str]:
    notes = []
    for run in runs:
        steps = run.config.get("train_steps")
        error = run.final(run.eval_split)
        points = run.scalars.get(run.eval_split, {}).get("error")
        measured = f", {run.eval_split} error {error:.2f} at step {points[-1][0]:,}" if error is not None else ""
        name = run_label(run.config, f"`{run.model_dir}`", seed=True)
        notes.append(f"{name}: unfinished at "
                     f"step {run.final_step:,}{f' of {steps:,}' if steps else ''}{measured}; not averaged, "
                     "not compared")
    return notes


def _paper_cells(depth: int, s: dict, not_comparable: str | None) -> tuple[str, str]:
    """(paper column, ours - paper column). ResNet-110's paper figure is the best of 5 runs and
    6.61 +- 0.16 their mean: our mean is compared with that mean, and our best with that best only
    when we have at least 5 runs too. ``not_comparable``: why the difference is left out, if it is."""
    from keras_resnet.paper import CIFAR_TABLE6
    paper = CIFAR_TABLE6.get(depth)
    if paper is None:
        return "-", "-"
    if "mean" in paper:
        text = f"{paper['mean']:.2f} +- {paper['std']:.2f} (mean); {paper['error']:.2f} (best of 5)"
        if not_comparable:
            return text, f"- ({not_comparable})"
        best = (f"best {s['best'] - paper['error']:+.2f}" if s["n"] >= 5
                else f"best not compared (best of {s['n']}, paper best of 5)")
        return text, f"mean {s['mean'] - paper['mean']:+.2f}; {best}"
    return f"{paper['error']:.2f}", (f"- ({not_comparable})" if not_comparable
                                     else f"{s['mean'] - paper['error']:+.2f}")


# Settings the paper does not state: the recipe's value is a reading of it, the other value another reading.
UNSTATED_BY_PAPER = ("weight_decay_on",)
# Differences from the paper's recipe that leave a row comparable with Table 6 (the report says so): the
# precision of the arithmetic, and the other reading of what the paper leaves unstated.
COMPARABLE_DEVIATIONS = ("mixed_precision=",) + tuple(f"{k}=" for k in UNSTATED_BY_PAPER)


def _why_not_comparable(config: dict, steps: int) -> str | None:
    """Why a row's error is not compared with the paper's (like with like only), or ``None``."""
    from keras_resnet.paper import CIFAR_SCHEDULE
    if not config.get("residual", True):
        return "plain nets are drawn in Figure 6, with no number in Table 6"
    if config.get("shortcut") != "A":
        return "no such row in Table 6"
    if steps < CIFAR_SCHEDULE["train_steps"]:
        return "shorter schedule"
    if config.get("protocol", "test") != "test":
        return "validation protocol"
    recipe = [d.split(" (")[0] for d in deviations(config) if not d.startswith(COMPARABLE_DEVIATIONS)]
    return f"recipe differs: {', '.join(recipe)}" if recipe else None


def cifar_table(runs: list[Run]) -> tuple[str, list[str]]:
    """Table 6 beside our runs: (Markdown table, notes on runs left out of it).

    One row per configuration (all settings but the seed), finished runs only, with mean +-
    std, n and best over seeds of the error at the final iteration. A row is compared with
    the paper only at the paper's schedule on the test protocol; every row names how its
    recipe differs from the paper's."""
    from keras_resnet.paper import CIFAR_SCHEDULE

    notes, finished = [], []
    for run in runs:
        if run.config.get("dataset") != "cifar10":
            continue
        if run.final(run.eval_split) is None:
            notes.append(f"{run.model_dir}: no {run.eval_split} error logged yet (missing scalars)")
        elif not is_finished(run):
            notes += _unfinished_notes([run])
        else:
            finished.append(run)
    rows = ["| net | paper error | ours: mean +- std | n | best | ours - paper | iterations run "
            "| differs from the paper's recipe |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    groups = _group(finished)
    order = sorted(groups, key=lambda k: (groups[k][0].config.get("residual", True), groups[k][0].config.get("depth"),
                                          str(deviations(groups[k][0].config))))  # Plain nets first.
    for key in order:
        members = groups[key]
        config = members[0].config
        s = summarize([r.final_error(r.eval_split) for r in members])
        steps = config.get("train_steps") or 0
        not_comparable = _why_not_comparable(config, steps)
        paper, delta = _paper_cells(config.get("depth"), s, not_comparable)
        if not config.get("residual", True):
            paper = "Figure 6 only"
        elif config.get("shortcut") != "A":
            paper = "-"
        differs = deviations(config) + sorted({r.reevaluation_note() for r in members if r.reevaluation})
        if steps < CIFAR_SCHEDULE["train_steps"]:
            differs = [f"SHORT: {steps:,} of 64,000 iterations, not compared"] + [
                d for d in differs if not d.startswith(("train_steps=", "lr_boundaries="))]
        done = sorted({r.final_step for r in members})
        rows.append(f"| {run_label(config)} | {paper} | {s['mean']:.2f} +- {s['std']:.2f} | {s['n']} | "
                    f"{s['best']:.2f} | {delta} | {', '.join(f'{d:,}' for d in done)} | "
                    f"{'; '.join(differs) or 'none'} |")
        subset = [r.final_error(f"{r.eval_split}_subset") for r in members]
        if all(v is not None for v in subset):  # --eval_subset_mask: e.g. the pixel-exact test images.
            s, mask = summarize(subset), os.path.basename(config.get("eval_subset_mask") or "the subset mask")
            paper, delta = _paper_cells(config.get("depth"), s, not_comparable or "a subset of the test images")
            if not config.get("residual", True) or config.get("shortcut") != "A":
                paper = "-"
            rows.append(f"| {run_label(config)}, `{members[0].eval_split}_subset` images only | {paper} | "
                        f"{s['mean']:.2f} +- {s['std']:.2f} | {s['n']} | {s['best']:.2f} | {delta} | "
                        f"{', '.join(f'{d:,}' for d in done)} | "
                        f"{'; '.join(differs + [f'only the images of {mask}'])} |")
    return "\n".join(rows), notes


STRIDES = {"1x1": "1x1 (paper)", "3x3": "3x3 (v1.5)"}


def imagenet_table(runs: list[Run]) -> tuple[str, list[str]]:
    """Tables 2-4 beside our finished ImageNet runs (10-crop and multi-scale top-1/top-5),
    with the bottleneck stride placement (the paper's numbers are the 1x1 variant). The 18-layer
    nets appear only in Table 2 (10-crop top-1; their top-5 is shown as "-")."""
    from keras_resnet.paper import IMAGENET_TABLE2, IMAGENET_TABLE3, IMAGENET_TABLE4

    runs = [r for r in runs if r.config.get("dataset") == "imagenet2012"]
    rows = ["| net | stride on | paper 10-crop top-1/top-5 | ours 10-crop | paper multi-scale | ours multi-scale "
            "| iterations | differs from the paper's recipe |",
            "| --- | --- | --- | --- | --- | --- | ---: | --- |"]
    for run in (r for r in runs if is_finished(r)):
        c = run.config
        key = (c.get("depth"), c.get("residual", True), c.get("shortcut") if c.get("residual", True) else None)
        pick = lambda mode: (f"{run.stats[f'{mode}_top1_error']:.2f}/{run.stats[f'{mode}_top5_error']:.2f}"
                             if f"{mode}_top1_error" in run.stats else "-")
        paper_variant = c.get("stride_on", "1x1") == "1x1"
        p3 = IMAGENET_TABLE3.get(key) if paper_variant else None
        if p3 is None and paper_variant and key in IMAGENET_TABLE2:  # The 18-layer nets: Table 2, top-1 only.
            p3 = (IMAGENET_TABLE2[key], "-")
        p4 = IMAGENET_TABLE4.get(key) if paper_variant else None
        stride = STRIDES.get(c.get("stride_on", "1x1"), c.get("stride_on")) if c.get("depth", 0) >= 50 else "-"
        rows.append(f"| {run_label(c)} | {stride} | {'/'.join(map(str, p3)) if p3 else '-'} | {pick('ten_crop')} | "
                    f"{'/'.join(map(str, p4)) if p4 else '-'} | {pick('multiscale')} | {run.final_step:,} | "
                    f"{'; '.join(deviations(c)) or 'none'} |")
    notes = _unfinished_notes([r for r in runs if not is_finished(r)])
    return ("\n".join(rows) if len(rows) > 2 else ""), notes
