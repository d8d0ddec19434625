"""Which checkpoint a run resumes from: the newest one that reads cleanly.

TF writes a checkpoint completely before it records it, so a kill mid-write leaves the previous one
as the latest. What atomic writes cannot prevent is damage afterwards: a run directory copied between
machines and cut short, a damaged disk. ``resume`` then warns, names the file and the reason, and
resumes from the newest checkpoint that reads and matches the model. The damaged files are never
deleted or overwritten: the chief moves them into ``<checkpoints>/damaged/`` (left in place, the
resumed run would write a new checkpoint of the same step over them) and records the remaining ones
in TF's ``checkpoint`` state file. If no checkpoint reads, nothing is moved and the run stops with
one line listing what was tried.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Callable

import tensorflow as tf
from absl import logging

DAMAGED_DIR = "damaged"
_NUMBERED = re.compile(r"^(ckpt-(\d+))\.(index|data-\d+-of-\d+)$")


class NoReadableCheckpointError(ValueError):
    """Checkpoints exist but none of them can be read; nothing was moved or removed."""


def checkpoints_newest_first(directory: str) -> list[str]:
    """The checkpoint prefixes (``<directory>/ckpt-N``) that have files in ``directory``, newest first."""
    if not tf.io.gfile.isdir(directory):
        return []
    steps = {}
    for name in tf.io.gfile.listdir(directory):
        match = _NUMBERED.match(name)
        if match:
            steps[int(match.group(2))] = os.path.join(directory, match.group(1))
    return [steps[s] for s in sorted(steps, reverse=True)]


def unreadable(prefix: str) -> str | None:
    """Why the checkpoint ``prefix`` cannot be read (a missing or short data file, a damaged index),
    or ``None`` when every tensor in it reads."""
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as e:  # noqa: BLE001 (TF raises OpError, ValueError, IndexError, ... for damaged files)
        return _reason(e)
    return None


def _reason(error: Exception) -> str:
    text = (getattr(error, "message", None) or str(error) or type(error).__name__).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:200]}"


def resume(directory: str, restore: Callable[[str], None], chief: bool) -> str | None:
    """Restores the newest checkpoint of ``directory`` that reads and that ``restore`` accepts
    (it raises when the checkpoint's objects do not match the model); returns its prefix, or ``None``
    when there is none. Newer damaged checkpoints are reported, and moved aside by the chief.

    Raises:
        NoReadableCheckpointError: there are checkpoints, and none of them can be restored.
    """
    recorded = _recorded(directory)
    candidates = checkpoints_newest_first(directory) if recorded is None else recorded
    damaged = []
    for prefix in candidates:
        reason = unreadable(prefix)
        if reason is None:
            try:
                restore(prefix)
            except Exception as e:  # noqa: BLE001 (AssertionError for unmatched objects, OpError, ...)
                reason = f"does not match the model ({_reason(e)})"
        if reason is None:
            if damaged or recorded is None:
                kept = [c for c in reversed(candidates) if c not in dict(damaged)]
                _set_aside(directory, damaged, prefix, kept, chief)
            return prefix
        damaged.append((prefix, reason))
    if damaged:
        tried = "; ".join(f"{os.path.basename(p)}: {r}" for p, r in damaged)
        raise NoReadableCheckpointError(f"no checkpoint in {directory} can be read ({tried}); nothing was moved "
                                        "or removed: restore them from a copy, or use another --model_dir")
    return None


def _recorded(directory: str) -> list[str] | None:
    """The checkpoints TF's state file records (complete ones: TF records a checkpoint only after
    writing it), newest first; ``None`` when the state file is missing or damaged (TF then ignores it
    and would never rotate the older checkpoints: it is rewritten from the files)."""
    if not tf.io.gfile.exists(os.path.join(directory, "checkpoint")):
        return None
    state = tf.train.get_checkpoint_state(directory)
    if state is None:
        logging.warning("TF's checkpoint state file in %s cannot be read; rewriting it from the checkpoints there",
                        directory)
        return None
    paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
    prefixes = {os.path.join(directory, os.path.basename(p)) for p in paths if p}
    step = lambda prefix: int(prefix.rsplit("-", 1)[1]) if prefix.rsplit("-", 1)[-1].isdigit() else -1  # noqa: E731
    return sorted(prefixes, key=step, reverse=True)


def _set_aside(directory: str, damaged: list[tuple[str, str]], chosen: str, kept: list[str], chief: bool) -> None:
    aside = os.path.join(directory, DAMAGED_DIR)
    for prefix, reason in damaged:
        where = f"moved to {aside}/" if chief else f"the chief moves it to {aside}/"
        logging.warning("checkpoint %s cannot be read (%s); resuming from %s instead; %s",
                        prefix, reason, os.path.basename(chosen), where)
        if not chief:
            continue
        tf.io.gfile.makedirs(aside)
        for name in tf.io.gfile.listdir(directory):
            if name.startswith(os.path.basename(prefix) + "."):
                shutil.move(os.path.join(directory, name), os.path.join(aside, name))
    if chief:  # TF's state file must not name a checkpoint that is gone, and must be readable.
        # With their times, so that CheckpointManager rotates them out as usual (without, it keeps them forever).
        times = [os.path.getmtime(prefix + ".index") for prefix in kept]
        tf.compat.v1.train.update_checkpoint_state(
            directory, chosen, all_model_checkpoint_paths=kept, all_model_checkpoint_timestamps=times,
            last_preserved_timestamp=min(times, default=0.0) - 1.0)
