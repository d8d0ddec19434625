"""How long runs read back (``keras_resnet.runs``) trained: time to accuracy (DAWNBench style) and
training time, summed over the logged intervals of every session and at each run's median speed, so
that pauses between sessions and intervals slowed by other work on a shared machine can be told apart.
"""

from __future__ import annotations

import statistics

from keras_resnet.runs import Run, is_finished, run_label


def time_to_error(run: Run, error: float, split: str | None = None) -> tuple[int, float] | None:
    """(iteration, seconds of training) at which the held-out error first falls to ``error``
    percent or below (DAWNBench's time to accuracy), or ``None`` if it never does.

    The seconds are summed over the training log intervals (iterations x batch / the
    images/s logged for them), so time between sessions of a resumed run is not counted;
    evaluations and checkpoints inside the intervals are.
    """
    points = run.scalars.get(split or run.eval_split, {}).get("error", [])
    step = next((s for s, e in points if e <= error), None)
    return None if step is None else (step, training_seconds(run, step))


def training_seconds(run: Run, step: int | None = None) -> float:
    """Seconds of training up to iteration ``step`` (default: all logged), summed over the training log
    intervals (iterations x batch / the images/s logged for them): time between the sessions of a
    resumed run is not counted; evaluations and checkpoints inside the intervals are."""
    batch = run.config.get("batch_size", 128)
    seconds, previous = 0.0, 0
    for s, ips in run.scalars.get("train", {}).get("images_per_second", []):
        if step is not None and s > step:
            break
        if ips > 0:
            seconds += (s - previous) * batch / ips
        previous = s
    return seconds


def median_speed_seconds(run: Run, step: int) -> float | None:
    """Seconds to train ``step`` iterations at the run's median logged images/s: what the logged time
    would be without the intervals slowed by other work on the machine or paused inside (a stopped
    process, a suspended machine), which a shared machine's long runs have."""
    rates = [ips for _, ips in run.scalars.get("train", {}).get("images_per_second", []) if ips > 0]
    if not rates:
        return None
    median = statistics.median(rates)
    return step * run.config.get("batch_size", 128) / median


def time_to_accuracy_table(runs: list[Run], accuracies=(90.0, 91.0)) -> str:
    """Iterations and training time until the held-out accuracy (and that of its masked subset,
    if evaluated) first reaches each of ``accuracies``: the logged time and the time at the run's
    median speed (``median_speed_seconds``)."""
    header = " | ".join(f"{a:g} %: iteration | {a:g} %: time | {a:g} %: at median speed" for a in accuracies)
    rows = [f"| run | evaluated on | {header} |", "| --- | --- |" + " ---: | ---: | ---: |" * len(accuracies)]
    for run in runs:
        for split in (s for s in (run.eval_split, f"{run.eval_split}_subset") if s in run.scalars):
            cells = []
            for accuracy in accuracies:
                hit = time_to_error(run, 100.0 - accuracy, split)
                steady = median_speed_seconds(run, hit[0]) if hit else None
                cells += ([f"{hit[0]:,}", f"{hit[1] / 3600:.2f} h", f"{steady / 3600:.2f} h" if steady else "-"]
                          if hit else ["not reached", "-", "-"])
            where = f"{split}, as logged (the final error is from reevaluation.json)" if run.reevaluation else split
            rows.append(f"| {run_label(run.config, seed=True)} | {where} | {' | '.join(cells)} |")
    return "\n".join(rows)


def time_left_seconds(run: Run, recent: int = 50) -> float | None:
    """Seconds an unfinished run still needs to reach its ``train_steps``, at the median images/s of its
    last ``recent`` logged intervals (its speed on the machine it runs on now, which may not be the one it
    started on); ``None`` when it cannot tell (no speed logged, no ``train_steps``)."""
    points = run.scalars.get("train", {}).get("images_per_second", [])
    rates = [ips for _, ips in points[-recent:] if ips > 0]
    steps = run.config.get("train_steps")
    if not rates or not steps:
        return None
    median = statistics.median(rates)
    return max(steps - points[-1][0], 0) * run.config.get("batch_size", 128) / median


def training_time_table(runs: list[Run]) -> str:
    """Each run's iterations, training time (``training_seconds``) and the same at its median speed
    (``median_speed_seconds``), its median images/s, the sessions it took (its provenance segments) and,
    for an unfinished run, the time it still needs (``time_left_seconds``); the machines are in the
    provenance lines."""
    rows = ["| run | iterations | training time | at median speed | median images/s | segments | left at recent speed |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for run in runs:
        step = max((s for s, _ in run.scalars.get("train", {}).get("images_per_second", [])), default=0)
        steady = median_speed_seconds(run, step)
        speed = f"{step * run.config.get('batch_size', 128) / steady:,.0f}" if steady else "-"
        segments = len(run.provenance["segments"]) if run.provenance else "-"
        rows.append(f"| {run_label(run.config, seed=True)} | {step:,} | "
                    f"{training_seconds(run) / 3600:.2f} h | {f'{steady / 3600:.2f} h' if steady else '-'} | {speed} | "
                    f"{segments} | {_left(run)} |")
    return "\n".join(rows)


def _left(run: Run) -> str:
    if is_finished(run):
        return "finished"
    left = time_left_seconds(run)
    return f"{left / 3600:.2f} h" if left is not None else "-"
