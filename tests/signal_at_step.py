"""Runs ``recipes.cifar10`` and sends itself a signal while it logs step N: a signal that lands at a
known step, as a user's Ctrl-C or a scheduler's SIGTERM lands at some step.

    python tests/signal_at_step.py SIGNAL N [recipe flags...]    (SIGNAL: TERM or INT; needs --log_every=1)
"""

import os
import runpy
import signal
import sys

sig, at = signal.Signals["SIG" + sys.argv[1]], int(sys.argv[2])
sys.argv = ["recipes.cifar10", *sys.argv[3:]]
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_resnet import training  # noqa: E402

original_log = training._TrainingLoop.log


def log_then_signal(self, step):
    original_log(self, step)
    if step == at:
        os.kill(os.getpid(), sig)  # Handled now: the loop stops at the end of this step.


training._TrainingLoop.log = log_then_signal
runpy.run_module("recipes.cifar10", run_name="__main__", alter_sys=True)
