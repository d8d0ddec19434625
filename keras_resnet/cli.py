"""Command-line plumbing shared by the recipes and tools (no flags are defined here).

Bad input raises ``ValueError`` anywhere below ``main``; ``run`` turns it into one line on
stderr and exit status 2, as it does for absl's own flag errors.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging

USAGE_EXIT = 2


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(USAGE_EXIT)


def parse_flags(argv):
    """absl parsing with its errors reduced to one line and exit status 2."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        fail(str(e).splitlines()[0])


def _import_tensorflow_quietly() -> None:
    """TF's native start-up lines (CUDA stubs, CPU features) are written to fd 2 before its
    logging is configured, and so is ``failed call to cuInit`` when it looks for GPUs on a
    machine without an NVIDIA driver: an error line when nothing is wrong. Both happen here
    with fd 2 pointed at /dev/null, so that errors stay one line; Python errors still show.
    Where an NVIDIA device exists but TF finds no GPU, one warning says so instead."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf
            gpus = tf.config.list_physical_devices("GPU")  # Physical only: logical devices stay configurable.
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    if not gpus and (os.path.exists("/dev/nvidia0") or os.path.exists("/proc/driver/nvidia")):
        print("warning: an NVIDIA device is present but TensorFlow found no usable GPU (driver or CUDA "
              "libraries?); running on the CPU", file=sys.stderr)


# Entry points import this module first: TF's native start-up noise is hidden from then on.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN kernels for x86 CPUs. This TF build leaves them off by default; measured here they
# train ResNet-20 2.1x faster in float32 (docs/performance.md). TF_ENABLE_ONEDNN_OPTS=0 turns them off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
_import_tensorflow_quietly()


def run(main, flags_parser=parse_flags) -> None:
    """``app.run`` whose bad-input errors (``ValueError``) exit with status 2 and one line."""
    def guarded(argv):
        from keras_resnet.data import DataNotPreparedError
        from keras_resnet.run_errors import CheckpointWriteError, NonFiniteLossError, WorkerLostError
        try:
            return main(argv)
        except (ValueError, DataNotPreparedError) as e:
            logging.flush()
            fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
        except (NonFiniteLossError, CheckpointWriteError, WorkerLostError) as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)

    app.run(guarded, flags_parser=flags_parser)
