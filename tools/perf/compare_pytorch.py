"""Our ResNet-20 against a plain PyTorch eager ResNet-20, measured alternately in one run.

    python -m tools.perf.compare_pytorch --torch_python=/tmp/torch/bin/python [--rounds=5] [--out=FILE]

``--torch_python`` is the interpreter of a separate virtual environment with torch installed
(torch is never a dependency of this package; see ``tools/perf/pytorch_resnet20.py``). Each round
runs ours (``tools.perf.benchmark --single``: the recipes' train step, float32, no XLA) and then
PyTorch, each in a fresh process on the same batch size; the table gives every round, the
medians over rounds and their ratio.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from absl import flags

from keras_resnet import cli
from keras_resnet.benchmarking import comparison_table

_TORCH_PYTHON = flags.DEFINE_string("torch_python", None, "Python of a venv that has torch.", required=True)
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Alternating rounds (ours, then PyTorch).")
_DEPTH = flags.DEFINE_integer("depth", 20, "CIFAR depth, 6n+2.")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Batch of both sides.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps per measurement (median).")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps first.")
_OUT = flags.DEFINE_string("out", None, "Write every measurement as JSON here.")

_TORCH_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pytorch_resnet20.py")


def _json_line(argv: list[str], what: str) -> dict:
    result = subprocess.run(argv, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode or not lines:
        raise RuntimeError(f"{what} failed: {(result.stderr.strip().splitlines() or ['no output'])[-1]}")
    return json.loads(lines[-1])


def main(argv):
    del argv
    if not (os.path.isfile(_TORCH_PYTHON.value) and os.access(_TORCH_PYTHON.value, os.X_OK)):
        raise ValueError(f"--torch_python={_TORCH_PYTHON.value} is not an executable Python interpreter")
    if subprocess.run([_TORCH_PYTHON.value, "-c", "import torch"], capture_output=True).returncode:
        raise ValueError(f"--torch_python={_TORCH_PYTHON.value} cannot import torch; "
                         "install it there: pip install torch==2.13.0 numpy")
    if _DEPTH.value < 8 or (_DEPTH.value - 2) % 6:
        raise ValueError(f"--depth must be 6n+2 (8, 14, 20, ...), got {_DEPTH.value}")
    common = [f"--steps={_STEPS.value}", f"--warmup={_WARMUP.value}"]
    ours, theirs = [], []
    for _ in range(_ROUNDS.value):
        ours.append(_json_line([sys.executable, "-m", "tools.perf.benchmark", "--jit_compile=off",
                                f"--single=cifar{_DEPTH.value}:none:{_BATCH.value}:0", *common], "ours"))
        theirs.append(_json_line([_TORCH_PYTHON.value, _TORCH_SCRIPT, f"--depth={_DEPTH.value}",
                                  f"--batch_size={_BATCH.value}", *common], "PyTorch"))
    print(f"ResNet-{_DEPTH.value}, batch {_BATCH.value}, float32, {ours[0]['device']}, {theirs[0]['framework']} "
          f"({theirs[0]['threads']} threads)")
    print(comparison_table(ours, theirs, "PyTorch"))
    if _OUT.value:
        from keras_resnet.benchmarking import write_record
        write_record(_OUT.value, "tools.perf.compare_pytorch", {"ours": ours, "pytorch": theirs})


if __name__ == "__main__":
    cli.run(main)
