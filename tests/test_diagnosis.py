"""Specification of ``keras_resnet.diagnosis`` and ``tools.diagnose_run``: one net of a CIFAR-10 run
scored as trained, in float32, with re-estimated BN statistics, and on its training images."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from keras_resnet import diagnosis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")


def final_test_error(run: str) -> float:
    with open(os.path.join(run, "stats.json")) as f:
        return json.load(f)["test_error"]


def test_a_finished_cifar_run_is_scored_from_its_final_net_as_the_run_scored_it(finished_cifar_run):
    data_dir, run = finished_cifar_run
    result = diagnosis.diagnose_cifar10_run(run, data_dir, batches=2)
    assert result["net"] == "model.keras" and result["split"] == "test"
    assert result["as_trained"] == pytest.approx(final_test_error(run))
    assert result["train_images"] == 100 and result["bn_batches"] == 2
    for key in ("float32", "bn_reestimated_augmented", "bn_reestimated_plain", "train_plain"):
        assert 0.0 <= result[key] <= 100.0


def test_a_checkpoint_is_loaded_with_the_weights_it_holds(finished_cifar_run):
    import numpy as np

    from keras_resnet.export import load_saved_model

    _, run = finished_cifar_run
    net, experiment, _, which = diagnosis.load_run_net(run, os.path.join(run, "checkpoints", "ckpt-3"))
    assert which == "ckpt-3" and experiment.depth == 8 and experiment.bn_group_size == 10
    images = np.random.default_rng(0).normal(0, 60, (4, 32, 32, 3)).astype(np.float32)
    final = load_saved_model(os.path.join(run, "model.keras"))  # The last checkpoint is the final net.
    np.testing.assert_allclose(net(images, training=False).numpy(), final(images, training=False).numpy(),
                               rtol=1e-5, atol=1e-5)


def test_without_a_final_net_the_newest_checkpoint_is_scored(finished_cifar_run, tmp_path):
    data_dir, run = finished_cifar_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("model.keras"))
    result = diagnosis.diagnose_cifar10_run(str(copy), data_dir, batches=1)
    assert result["net"] == "ckpt-3"
    assert result["as_trained"] == pytest.approx(final_test_error(run))


def test_a_checkpoint_of_another_net_is_refused_in_one_line(finished_cifar_run, tmp_path):
    _, run = finished_cifar_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "depth": 14}))
    with pytest.raises(ValueError, match=r"ckpt-3 does not hold the net .* describes \(resnet14\)"):
        diagnosis.load_run_net(str(copy), os.path.join(str(copy), "checkpoints", "ckpt-3"))


def test_diagnose_run_of_a_folder_that_is_no_run_exits_with_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tools.diagnose_run", f"--model_dir={tmp_path}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, env=ENV)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"error: --model_dir={tmp_path} is not a run (no config.json)"


def test_a_checkpoint_that_does_not_exist_is_refused_in_one_line(finished_cifar_run):
    _, run = finished_cifar_run
    missing = os.path.join(run, "checkpoints", "ckpt-99")
    with pytest.raises(ValueError, match=r"--checkpoint=.*ckpt-99 is not a checkpoint \(no .*ckpt-99.index\)"):
        diagnosis.load_run_net(run, missing)
