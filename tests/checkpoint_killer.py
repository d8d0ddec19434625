"""Runs ``recipes.cifar10`` and SIGKILLs itself at a chosen point inside its Nth checkpoint write.

    python tests/checkpoint_killer.py POINT N [recipe flags...]

POINT ``shards_written``: the data and index shards are in ``ckpt-K_temp/`` and not yet merged
into ``ckpt-K.*``. POINT ``files_written``: ``ckpt-K.index`` and ``ckpt-K.data-*`` are complete but
the ``checkpoint`` state file does not name them yet. A real SIGKILL, at a chosen moment.
"""

import os
import runpy
import signal
import sys

point, nth = sys.argv[1], int(sys.argv[2])
sys.argv = ["recipes.cifar10", *sys.argv[3:]]
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_resnet import cli  # noqa: E402,F401  (imports TensorFlow quietly)
from tensorflow.python.checkpoint import checkpoint_management, functional_saver  # noqa: E402

TARGETS = {"shards_written": (functional_saver.gen_io_ops, "merge_v2_checkpoints"),
           "files_written": (checkpoint_management, "update_checkpoint_state_internal")}
module, name = TARGETS[point]
original, original_save = getattr(module, name), checkpoint_management.CheckpointManager.save
saves = [0]


def counting_save(self, *args, **kwargs):
    saves[0] += 1
    return original_save(self, *args, **kwargs)


def killing(*args, **kwargs):
    if saves[0] == nth:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(*args, **kwargs)


checkpoint_management.CheckpointManager.save = counting_save
setattr(module, name, killing)
runpy.run_module("recipes.cifar10", run_name="__main__", alter_sys=True)
