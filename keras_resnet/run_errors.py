"""What stops a training run, and how each stop keeps the run resumable.

* SIGINT/SIGTERM (``stop_on_signals``): the loop finishes the current step and writes a
  checkpoint, so a killed job (a pre-empted VM, a scheduler's time limit) resumes exactly.
* ``NonFiniteLossError``: the loss or the weights became NaN/Inf; nothing more is written.
* ``WorkerLostError``: a peer of a multi-worker job stopped (``reporting_lost_workers``).
* ``CheckpointWriteError``: a checkpoint or the final model could not be written
  (``reporting_write_errors``: a full disk, a quota, permissions).

Each error names the last complete checkpoint, which is kept, and rerunning the same command
resumes from it. The command-line tools turn them into one line and exit status 1.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
from typing import Callable

import tensorflow as tf
from absl import logging


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf; the last good checkpoint is kept."""


class WorkerLostError(RuntimeError):
    """Another worker of a multi-worker job stopped; the chief's last checkpoint is kept and
    restarting every worker with the same command resumes from it."""


class CheckpointWriteError(RuntimeError):
    """A checkpoint or the final model could not be written (a full disk, say); the last
    complete checkpoint is kept and rerunning the same command resumes from it."""


@contextlib.contextmanager
def stop_on_signals(flag: dict):
    """SIGINT/SIGTERM set ``flag['signal']``; the loop stops after the current step."""
    def handler(signum, frame):
        del frame
        flag["signal"] = signum
        logging.warning("Received %s: finishing the current step and writing a checkpoint.",
                        signal.Signals(signum).name)
    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # Not the main thread: leave signals alone.
        pass
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)



@contextlib.contextmanager
def reporting_lost_workers(current_step: Callable[[], int], manager: tf.train.CheckpointManager):
    """MultiWorkerMirroredStrategy: a peer that stops breaks the next collective (a train step,
    the BN sync of an evaluation or checkpoint) with ``UnavailableError``; turns it into
    ``WorkerLostError`` naming the lost task when TF does (it does in some of these errors, not all)."""
    try:
        yield
    except tf.errors.UnavailableError as e:
        task = re.search(r"/job:\w+/replica:\d+/task:\d+", e.message or str(e))
        lost = f"worker {task.group(0)}" if task else "a peer worker"
        raise WorkerLostError(
            f"{lost} stopped after step {current_step()}; the last checkpoint "
            f"({manager.latest_checkpoint or 'none'}) is kept: restart every worker with the same "
            "command to resume") from e


@contextlib.contextmanager
def reporting_write_errors(what: str, manager: tf.train.CheckpointManager, ckpt_dir: str | None = None,
                            step: int | None = None):
    """Turns a failed write (full disk, quota, permissions) into ``CheckpointWriteError``
    naming the checkpoint that is kept, after removing this write's partial files."""
    try:
        yield
    except tf.errors.UnavailableError:  # A lost peer, not a write error: reporting_lost_workers.
        raise
    except (tf.errors.OpError, OSError) as e:
        if ckpt_dir is not None:  # The shards of an unfinished write: never picked, but they hold space.
            for partial in tf.io.gfile.glob(os.path.join(ckpt_dir, f"ckpt-{step}_temp*")):
                tf.io.gfile.rmtree(partial)
        reason = (getattr(e, "message", None) or str(e)).strip().splitlines()[0]
        raise CheckpointWriteError(
            f"could not write {what} ({reason}); the last complete checkpoint "
            f"({manager.latest_checkpoint or 'none'}) is kept: free space, then rerun the same command to resume"
        ) from e
