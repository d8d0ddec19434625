"""The paper's tables and figures, regenerated from the runs' TensorBoard logs (no retraining).

    python -m tools.report --runs=runs/table6 --out=docs/results [--data_dir=data/tfds]
    python -m tools.report --runs=runs/table6,docs/results/cifar10-resnet20-64k --out=docs/results/table6

``--runs`` is one folder of runs or several, comma-separated (or a folder of symbolic links to runs).
Writes ``report.md`` with Table 6 (and Tables 2-4 for ImageNet runs) beside the paper, Figure 6
(``figure6.png``: training error dashed, test error solid, plain left, ResNet right) and, when
``--data_dir`` has CIFAR-10 and the runs have a ``model.keras``, Figure 7 (``figure7.png``), and the depth
claims' test errors and each variant of the paper's recipe against its net's paper-recipe run compared image
by image (McNemar's test).
"""

from __future__ import annotations

import os

from absl import flags

from keras_resnet import cli
from keras_resnet import claims as claims_lib
from keras_resnet import figures, reporting, run_times
from keras_resnet import runs as runs_lib

_RUNS = flags.DEFINE_list("runs", None, "Folder(s) holding run folders (each with config.json), comma-separated.",
                          required=True)
_OUT = flags.DEFINE_string("out", None, "Output folder (default: the runs folder, when there is one).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir with cifar10, for Figure 7 and the paired tests.")
_FIG7_IMAGES = flags.DEFINE_integer("figure7_images", 1000, "Test images for Figure 7.")

# What an image-by-image p-value covers, said wherever one is reported.
PAIRED_SCOPE = ("McNemar's p covers the test set's sampling error only, not the spread between training runs: "
                "two seeds of one recipe differ too (the paper's ResNet-110: +-0.16 points over 5 runs), so a "
                "difference is the recipe's or the depth's only where it is also beyond that spread.")


def _held_out(run, data_dir: str, batch_size: int):
    """The run's own held-out split as (images, labels) batches, normalised as it was trained: with its own
    training split's statistics."""
    from keras_resnet import tasks
    from keras_resnet.data import cifar10_eval_dataset, load_cifar10

    experiment = tasks.CifarExperiment(depth=run.config.get("depth", 20), protocol=run.config.get("protocol", "test"))
    train_split, eval_split = experiment.splits
    held_out = load_cifar10(eval_split, data_dir, train_split=train_split)
    return cifar10_eval_dataset(held_out, batch_size, run.config.get("normalization", "pixel_mean"))


def paired_tests(runs, data_dir: str) -> tuple[list[str], list[str]]:
    """Test errors compared image by image (McNemar's test), each net scored on all of its held-out images:
    (the depth claims' pairs, ``claims.paired_claims``; each finished variant of the paper's recipe against
    the paper-recipe run of the same net, and each net trained with the other reading of what the paper leaves
    unstated against the recipe's reading, ``claims.reading_pairs``: ``claims.variant_comparisons``). One run
    per paper-recipe net: the one Figure 6 draws; only runs that kept their ``model.keras``."""
    import keras
    import numpy as np

    def has_model(run):
        return os.path.exists(os.path.join(run.model_dir, "model.keras"))

    key = lambda run: claims_lib.net_key(run.config)  # noqa: E731
    nets = {key(r): r for r in reporting.figure_runs([r for r in runs if claims_lib.at_paper_recipe(r)]) if has_model(r)}
    variants = [r for r in runs if r.config.get("dataset") == "cifar10" and runs_lib.is_finished(r)
                and not claims_lib.at_paper_recipe(r) and key(r) in nets and has_model(r)]
    scored = {}

    def correct(run):
        if run.model_dir not in scored:
            model = keras.models.load_model(os.path.join(run.model_dir, "model.keras"))
            verdicts = [np.argmax(model(x, training=False), axis=-1) == np.asarray(y)
                        for x, y in _held_out(run, data_dir, 500)]
            scored[run.model_dir] = (runs_lib.run_label(run.config, seed=True), np.concatenate(verdicts))
        return scored[run.model_dir]

    needed = sorted({k for _, a, b, _, _ in claims_lib.claim_pairs(nets) for k in (a, b)})
    depth = claims_lib.paired_claims({k: correct(nets[k]) for k in needed})
    others = [(r, nets[key(r)]) for r in variants] + [(nets[a], nets[b]) for a, b in claims_lib.reading_pairs(nets)]
    pairs = [(correct(a), reporting.differences(a.config, b.config), correct(b)) for a, b in others]
    return depth, claims_lib.variant_comparisons(pairs)


def figure7(runs, data_dir: str, images: int, path: str) -> tuple[list[str], list[str]]:
    """Figure 7 from the finished CIFAR runs' exported models; returns the runs used and the paper's
    claims about it checked on those at the paper's recipe (``keras_resnet.claims.response_claims``)."""
    import keras

    responses, used, by_net = {}, [], {}
    for run in runs:
        model_path = os.path.join(run.model_dir, "model.keras")
        if run.config.get("dataset") != "cifar10" or not os.path.exists(model_path):
            continue
        x = next(iter(_held_out(run, data_dir, images).take(1)))[0].numpy()
        label = runs_lib.run_label(run.config, seed=True)
        stds = [s for _, s in figures.layer_response_std(keras.models.load_model(model_path), x)]
        if not stds:
            continue
        responses[label] = stds
        used.append(run.model_dir)
        if claims_lib.at_paper_recipe(run):
            by_net.setdefault(claims_lib.net_key(run.config), []).append(stds)
    if responses:
        figures.plot_layer_responses(responses, path)
    return used, claims_lib.response_claims(by_net)


def _drawn_line(drawn) -> str:
    return ("One run per net, as the paper draws them (`reporting.figure_runs`: the lowest seed whose curves "
            "were logged on the data its errors are reported on): " +
            "; ".join(f"{runs_lib.run_label(r.config)}: seed {r.config.get('seed')} (`{r.model_dir}`)" for r in drawn) + ".")


def write_report(runs_roots: str | list[str], out: str, data_dir: str | None, fig7_images: int) -> str:
    """Writes ``out/report.md`` (and its figures) for the runs under ``runs_roots``; returns its path."""
    runs_roots = [runs_roots] if isinstance(runs_roots, str) else list(runs_roots)
    runs = runs_lib.find_runs(runs_roots)
    os.makedirs(out, exist_ok=True)
    table, notes = reporting.cifar_table(runs)
    lines = [f"# Reproduction report for {', '.join(f'`{root}`' for root in runs_roots)}", "",
             "Errors (%) at the final iteration of each run, never the best epoch. One row per configuration "
             "(every setting but the seed), finished runs only; the last column says how a row's recipe differs "
             "from the paper's. Runs shorter than the paper's schedule are marked SHORT and not compared with "
             "the paper; unfinished runs are listed below the table and never averaged or compared. \"ours - paper\" "
             "compares like with like: it is left out, with the reason, for a row whose recipe differs from the "
             "paper's in what it trains (BN group, LR, batch, augmentation, schedule, protocol) or that covers a "
             "subset of the test images; mixed-precision rows (bfloat16 compute, float32 weights) are compared, "
             "their precision named in the last column, and so are rows with the other reading of what the paper "
             "does not state (whether the weight decay applies to BN's gammas and betas too: the CIFAR-10 recipe "
             "decays every parameter since 2026-12-04, the kernels alone before), each named in its label and in "
             "the last column. The paper's claims compare nets of one reading with each other. A best of n runs is "
             "compared with the paper's best of 5 only when n >= 5.", "",
             "## CIFAR-10 (Table 6)", "", table if len(table.splitlines()) > 2 else "(no finished run yet)", ""]
    if notes:
        lines += ["Runs listed but not in the table:", ""] + [f"- {n}" for n in notes] + [""]
    claims = claims_lib.depth_claims(runs)
    if claims:
        lines += ["## The paper's claims about depth", "",
                  "Checked on the finished runs at the paper's recipe and schedule (training error: the mean of the "
                  "last 2,000 iterations' logged batches; test error: final, means over seeds).", ""] + claims + [""]
    paired, variants = paired_tests(runs, data_dir) if data_dir else ([], [])
    if claims and paired:
        lines += ["The same test errors compared image by image, one run per net (the one Figure 6 draws). "
                  f"{PAIRED_SCOPE}", ""]
        lines += paired + [""]
    if variants:
        lines += ["## Variants of the paper's recipe against it, image by image", "",
                  "Each finished run whose recipe differs from the paper's against the paper-recipe run of the same "
                  f"net (the one Figure 6 draws), on the same test images. {PAIRED_SCOPE}", ""] + variants + [""]
    imagenet, imagenet_notes = reporting.imagenet_table(runs)
    if imagenet or imagenet_notes:
        lines += ["## ImageNet (Tables 2-4)", "", imagenet or "(no finished run)", ""]
        lines += [f"- {n}" for n in imagenet_notes] + ([""] if imagenet_notes else [])
    cifar_runs = [r for r in runs if r.config.get("dataset") == "cifar10"]
    if cifar_runs:
        lines += ["## Time to accuracy", "",
                  "Iterations and hours of training (summed over the logged intervals, so pauses between "
                  "sessions do not count) until the test accuracy first reaches 90 % and 91 % "
                  "(DAWNBench style; evaluated every `eval_every` iterations); \"at median speed\": the same "
                  "iterations at the run's median logged images/s, leaving out intervals slowed by other work "
                  "on a shared machine or paused inside.", "",
                  run_times.time_to_accuracy_table(cifar_runs), ""]
    lines += ["## Training time", "",
              "Iterations trained and hours of training (summed over the logged intervals; at the run's median "
              "images/s: without the intervals slowed or paused by other work), and the segments (starts and "
              "resumes) it took; the machines of each run are in its provenance line below.", "",
              run_times.training_time_table(runs), ""]
    if cifar_runs:
        drawn = reporting.figure_runs(cifar_runs)
        figures.plot_curves(drawn, os.path.join(out, "figure6.png"), "CIFAR-10 (Figure 6 layout)", paper_ylim=(0, 20))
        lines += ["## Figure 6: training (dashed) and test (solid) error", "", "![Figure 6](figure6.png)", "",
                  _drawn_line(drawn), ""]
    imagenet_runs = [r for r in runs if r.config.get("dataset") == "imagenet2012"]
    if imagenet_runs:
        drawn = reporting.figure_runs(imagenet_runs)
        figures.plot_curves(drawn, os.path.join(out, "figure4.png"), "ImageNet (Figure 4 layout)", paper_ylim=(20, 60))
        lines += ["## Figure 4", "", "![Figure 4](figure4.png)", "", _drawn_line(drawn), ""]
    if data_dir:
        used, claims = figure7(runs, data_dir, fig7_images, os.path.join(out, "figure7.png"))
        if used:
            lines += ["## Figure 7: std of layer responses", "",
                      f"Standard deviation of each 3x3 layer's response (its BN output, before the ReLU) on the "
                      f"first {fig7_images} test images: each channel's std over the images and positions, "
                      "averaged over the channels (the spread of the channel means, set by BN's beta, is left "
                      "out). ![Figure 7](figure7.png)", ""]
            if claims:
                lines += ["The paper's claims about the responses (each net's stds averaged over its layers and "
                          "seeds; runs at the paper's recipe):", ""] + claims + [""]
    lines += ["## Commands", "", "As each run recorded it; where today's defaults would train another recipe, "
              "the command that repeats the run today follows it.", ""]
    for run in runs:
        today = reporting.command_today(run.config)
        lines.append(f"- `{run.model_dir}`: `{run.config.get('command', '(not recorded)')}`"
                     + (f"; today: `{today}`" if today else ""))
    lines += ["", "## Provenance", "",
              "What produced each run (its `provenance.json`: one segment per start or resume); a run whose "
              "segments differ in code, library versions, device class, precision or data is marked.", ""]
    for run in runs:
        lines.append(f"- `{run.model_dir}`: {run.provenance_line()}")
    path = os.path.join(out, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def main(argv):
    del argv
    if not _OUT.value and len(_RUNS.value) != 1:
        raise ValueError(f"--runs={','.join(_RUNS.value)} names {len(_RUNS.value)} folders: name the report's with --out")
    path = write_report(_RUNS.value, _OUT.value or _RUNS.value[0], _DATA_DIR.value, _FIG7_IMAGES.value)
    print(f"Wrote {path}")


if __name__ == "__main__":
    cli.run(main)
