"""Specification of the sweep: its plan, skipping finished runs and resuming unfinished ones."""

import os
import subprocess
import sys

import pytest

from tools.sweep import plan

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_plan_covers_depths_variants_and_seeds_in_table_order(tmp_path):
    runs = plan("cifar10", ["20", "56"], ["plain", "residual"], 2, str(tmp_path), ["--train_steps=100"])
    names = [os.path.basename(d) for d, _ in runs]
    assert names == ["plain20-seed0", "plain20-seed1", "resnet20-seed0", "resnet20-seed1",
                     "plain56-seed0", "plain56-seed1", "resnet56-seed0", "resnet56-seed1"]
    assert "--plain" in runs[0][1] and "--plain" not in runs[2][1]
    assert runs[0][1][-1] == "--train_steps=100"


def test_plan_rejects_unknown_variant(tmp_path):
    with pytest.raises(ValueError, match="variants must be plain and/or residual, got 'preact'"):
        plan("cifar10", ["20"], ["preact"], 1, str(tmp_path), [])


def sweep(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-m", "tools.sweep", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_sweep_resumes_unfinished_runs_and_skips_finished_ones(tiny_cifar, tmp_path):
    data_dir, _ = tiny_cifar
    common = ["--recipe=cifar10", "--depths=8", "--variants=plain,residual", "--seeds=1", f"--root={tmp_path}",
              f"--data_dir={data_dir}", "--train_steps=2", "--batch_size=20", "--bn_group_size=10",
              "--checkpoint_every=1"]
    first = sweep(*common, "--stop_after=1")  # Both runs stop unfinished at step 1.
    assert first.returncode == 1, first.stderr[-2000:]  # Unfinished runs count as failures of this sweep.
    assert not (tmp_path / "plain8-seed0" / "stats.json").exists()
    second = sweep(*common)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "Resumed from" in second.stderr and "at step 1" in second.stderr
    assert (tmp_path / "resnet8-seed0" / "stats.json").exists()
    third = sweep(*common, "--dry_run")
    assert third.stdout.count("skip:") == 2 and "would run" not in third.stdout


def test_parallel_runs_take_the_gpus_of_the_sweeps_own_mask(tmp_path, monkeypatch):
    from tools.sweep import run_sweep
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    runs = [(str(tmp_path / name), [sys.executable, "-c",
                                    f"import os; open({str(tmp_path / name)!r}, 'w').write(os.environ['CUDA_VISIBLE_DEVICES'])"])
            for name in ("a", "b")]
    run_sweep(runs, parallel=2)
    assert {(tmp_path / "a").read_text(), (tmp_path / "b").read_text()} == {"3", "5"}
    with pytest.raises(ValueError, match="3 runs in parallel, one per GPU, but CUDA_VISIBLE_DEVICES=3,5 allows 2"):
        run_sweep(runs, parallel=3)
