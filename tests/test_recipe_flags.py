"""Every bad numeric (and enum, and unknown) flag of both recipes: exit status 2 and one line naming the flag and its value,
at parsing, before anything is created or written. A new flag is one row."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = os.path.join(ROOT, "tests", "flag_probe.py")

SHARED = [  # recipes/common.py: both recipes.
    ("--seed=-1", "flag --seed=-1: -1 is not a non-negative integer"),
    ("--num_gpus=-1", "flag --num_gpus=-1: -1 is not a non-negative integer"),
    ("--cpu_replicas=-1", "flag --cpu_replicas=-1: -1 is not a non-negative integer"),
    ("--log_every=0", "flag --log_every=0: 0 is not a positive integer"),
    ("--eval_every=0", "flag --eval_every=0: 0 is not a positive integer"),
    ("--checkpoint_every=0", "flag --checkpoint_every=0: 0 is not a positive integer"),
    ("--stop_after=0", "flag --stop_after=0: 0 is not a positive integer"),
    ("--train_steps=0", "flag --train_steps=0: 0 is not a positive integer"),
    ("--train_steps=-5", "flag --train_steps=-5: -5 is not a positive integer"),
    ("--batch_size=0", "flag --batch_size=0: 0 is not a positive integer"),  # Was a ZeroDivisionError.
    ("--batch_size=12.5", "flag --batch_size=12.5: invalid literal for int()"),
    ("--lr=0", "flag --lr=0.0: must be a positive number"),
    ("--lr=-0.1", "flag --lr=-0.1: must be a positive number"),
    ("--lr=nan", "flag --lr=nan: must be a positive number"),
    ("--bn_group_size=-1", "flag --bn_group_size=-1: -1 is not a non-negative integer"),
    ("--weight_decay_on=bn", "flag --weight_decay_on=bn: value should be one of <kernels|all>"),
    ("--mixed_precision=fp8", "flag --mixed_precision=fp8: value should be one of <none|float16|bfloat16|auto>"),
    ("--no_such_flag=1", "Unknown command line flag 'no_such_flag'"),
]
ROWS = {
    "cifar10": SHARED + [("--depth=2", "flag --depth=2: must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110"),
                         ("--depth=21", "flag --depth=21: must be 6n+2")],
    "imagenet": SHARED + [("--depth=19", "flag --depth=19: must be 18, 34, 50, 101 or 152"),
                          ("--eval_examples=0", "flag --eval_examples=0: 0 is not a positive integer"),
                          ("--final_eval_modes=center,best",
                           "flag --final_eval_modes=['center', 'best']: must be a comma-separated list of center, "
                           "ten_crop, multiscale, multiscale_noflip")],
}


@pytest.fixture(scope="module")
def outcomes():
    """{(recipe, flag): (exit status, stderr)} for every row, and for each recipe's defaults."""
    results = {}
    for recipe, rows in ROWS.items():
        argv = [[flag] for flag, _ in rows] + [[]]
        out = subprocess.run([sys.executable, PROBE, recipe, json.dumps(argv)], capture_output=True, text=True,
                             timeout=300, env=dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3"))
        assert out.returncode == 0, out.stderr[-2000:]
        for row, result in zip(argv, json.loads(out.stdout.strip().splitlines()[-1])):
            results[(recipe, row[0] if row else None)] = tuple(result)
    return results


@pytest.mark.parametrize("recipe,flag,message", [(r, f, m) for r, rows in ROWS.items() for f, m in rows])
def test_a_bad_numeric_flag_is_one_line_and_exit_status_2(outcomes, recipe, flag, message):
    code, err = outcomes[(recipe, flag)]
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0] == f"error: {message}" or lines[0].startswith(f"error: {message}"), lines[0]


@pytest.mark.parametrize("recipe", ROWS)
def test_the_defaults_of_each_recipe_parse(outcomes, recipe):
    assert outcomes[(recipe, None)] == (0, "")
