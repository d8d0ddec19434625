"""Parses rows of command-line flags as a recipe does, in one process: the table of bad flags.

    python tests/flag_probe.py cifar10 '[["--batch_size=0"], ...]'   ->  [[exit status, stderr], ...]

Each row goes through ``keras_resnet.cli.parse_flags``, the recipes' own parser (absl, its errors
reduced to one line and exit status 2), with the flags reset in between.
"""

import contextlib
import importlib
import io
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(recipe: str, rows: list[list[str]]) -> list:
    importlib.import_module(f"recipes.{recipe}")
    from absl import flags

    from keras_resnet import cli
    results = []
    for row in rows:
        flags.FLAGS.unparse_flags()
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                cli.parse_flags([recipe, *row])
                code = 0
            except SystemExit as e:
                code = e.code
        results.append([code, err.getvalue()])
    return results


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], json.loads(sys.argv[2]))))
