"""The recipes as a user runs them: end to end, bad input, and signals (subprocesses)."""

import json
from pathlib import Path
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def recipe(*args, unset=(), **popen):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    for name in unset:
        env.pop(name, None)
    return subprocess.Popen([sys.executable, "-m", "recipes.cifar10", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def run_recipe(*args, timeout=300, unset=()):
    proc = recipe(*args, unset=unset)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def tiny_args(data_dir, model_dir, *extra):
    return [f"--data_dir={data_dir}", f"--model_dir={model_dir}", "--depth=8", "--batch_size=20",
            "--log_every=1", "--eval_every=1000", "--checkpoint_every=2", "--bn_group_size=10", *extra]


def test_cifar_recipe_end_to_end(tiny_cifar, tmp_path):
    data_dir, _ = tiny_cifar
    # Without TF_ENABLE_ONEDNN_OPTS in its environment (the tests' own process sets it), as a user starts it.
    code, out, err = run_recipe(*tiny_args(data_dir, tmp_path / "run", "--train_steps=3"),
                                unset=("TF_ENABLE_ONEDNN_OPTS",))
    assert code == 0, err[-2000:]
    assert "Finished" in out and "test_error" in out
    with open(tmp_path / "run" / "provenance.json") as f:
        runtime = json.load(f)["segments"][0]["runtime"]
    assert runtime["onednn"] == "1"  # The entry point switched oneDNN on.
    assert runtime["tensor_float_32"] is False  # float32 means float32 (TF's default is TF32 on).
    assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")).endswith("ckpt-3")
    assert (tmp_path / "run" / "model.keras").exists() and (tmp_path / "run" / "stats.json").exists()
    assert "step 3/3" in err  # The progress line.
    with open(tmp_path / "run" / "config.json") as f:
        config = json.load(f)
    assert "python -m recipes.cifar10" in config["command"] and config["bn_group_size"] == 10
    assert config["tf32"] is False
    assert config["weight_decay_on"] == "all"  # The CIFAR-10 recipe's default (docs/results/table6-64k).


def test_finished_run_exports_a_classifier_that_tools_evaluate_scores_like_the_run(tiny_cifar, tmp_path):
    """classifier.keras (raw RGB in, probabilities out) and model.keras (the trained net) give the
    run's own final test error through tools.evaluate, in a fresh process each."""
    data_dir, (_, _, test_x, _) = tiny_cifar
    run = tmp_path / "run"
    assert run_recipe(*tiny_args(data_dir, run, "--train_steps=3"))[0] == 0
    with open(run / "stats.json") as f:
        stats = json.load(f)
    logged = stats["test_error"]
    mask = tmp_path / "mask.npy"
    np.save(mask, np.arange(len(test_x)) < 10)
    for model in ("classifier.keras", "model.keras"):
        out = tmp_path / f"{model}.json"
        result = subprocess.run(
            [sys.executable, "-m", "tools.evaluate", f"--model={run / model}", f"--data_dir={data_dir}",
             f"--subset_mask={mask}", f"--json={out}"], cwd=ROOT, capture_output=True, text=True, timeout=300,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""))
        assert result.returncode == 0, result.stderr[-2000:]
        scores = json.loads(out.read_text())
        assert scores["images"] == len(test_x) and scores["error"] == pytest.approx(logged, abs=1e-4)
        assert scores["loss"] == pytest.approx(stats["test_loss"], rel=1e-4)  # Softmax once, logits or not.
        assert (scores["masked_images"], scores["unmasked_images"]) == (10, len(test_x) - 10)
        assert f"top-1 error {logged:.2f} %" in result.stdout


def test_rerunning_a_finished_run_keeps_its_stats_and_export_classifier_rewrites_the_classifier(tiny_cifar, tmp_path):
    data_dir, _ = tiny_cifar
    run = tmp_path / "run"
    assert run_recipe(*tiny_args(data_dir, run, "--train_steps=2"))[0] == 0
    before = (run / "stats.json").read_text()
    (run / "classifier.keras").unlink()  # As in runs from before the recipe wrote it.
    code, out, err = run_recipe(*tiny_args(data_dir, run, "--train_steps=2"))
    assert code == 0 and "is a finished run" in err
    assert (run / "stats.json").read_text() == before and not (run / "classifier.keras").exists()
    result = subprocess.run([sys.executable, "-m", "tools.export_classifier", f"--model_dir={run}",
                             f"--data_dir={data_dir}"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""))
    assert result.returncode == 0, result.stderr[-2000:]
    scored = subprocess.run([sys.executable, "-m", "tools.evaluate", f"--model={run / 'classifier.keras'}",
                             f"--data_dir={data_dir}"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""))
    assert f"top-1 error {json.loads(before)['test_error']:.2f} %" in scored.stdout, scored.stderr[-2000:]


def test_evaluate_refuses_a_mask_of_the_wrong_length(tiny_cifar, tmp_path):
    data_dir, _ = tiny_cifar
    np.save(tmp_path / "mask.npy", np.ones(7, bool))
    (tmp_path / "m.keras").write_text("not used")
    result = subprocess.run([sys.executable, "-m", "tools.evaluate", f"--model={tmp_path / 'm.keras'}",
                             f"--data_dir={data_dir}", f"--subset_mask={tmp_path / 'mask.npy'}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""))
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith("error: --subset_mask=")


def test_auto_precision_is_resolved_logged_and_recorded(tiny_cifar, tmp_path):
    from keras_resnet.hardware import native_precision
    data_dir, _ = tiny_cifar
    code, _, err = run_recipe(*tiny_args(data_dir, tmp_path / "run", "--train_steps=1", "--mixed_precision=auto"))
    assert code == 0, err[-2000:]
    expected = native_precision()  # No GPU in the tests: this CPU decides.
    with open(tmp_path / "run" / "config.json") as f:
        config = json.load(f)
    assert config["mixed_precision"] == expected and "--mixed_precision=auto" in config["command"]
    assert f"--mixed_precision=auto: {expected if expected != 'none' else 'float32'} on " in err


def test_cifar_recipe_normalises_bn_over_64_images_by_default(tiny_cifar, tmp_path):
    """Section 4.2: batch 128 on two GPUs, so BN saw 64 images; the default on one device too."""
    data_dir, _ = tiny_cifar
    code, _, err = run_recipe(f"--data_dir={data_dir}", f"--model_dir={tmp_path / 'run'}", "--depth=8",
                              "--train_steps=1", "--eval_every=1000")
    assert code == 0, err[-2000:]
    with open(tmp_path / "run" / "config.json") as f:
        config = json.load(f)
    assert config["bn_group_size"] == 64 and config["batch_size"] == 128
    import keras
    import keras_resnet.layers  # noqa: F401  (registers the layers for loading)
    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    assert {l.group_size for l in model.layers if isinstance(l, keras.layers.BatchNormalization)} == {64}


def test_the_papers_bn_batch_on_4_devices_spans_2_replicas_and_trains_as_one_device(tiny_cifar, tmp_path):
    """What a user with 4 GPUs types, on 4 logical CPUs: a batch of 20 (5 per replica) with BN groups of 10
    (the paper's 128 with 64 on 4 GPUs, scaled down) trains the same net as one device does."""
    import keras
    import numpy as np

    import keras_resnet.layers  # noqa: F401  (registers the layers for loading)

    data_dir, _ = tiny_cifar
    models = []
    for replicas in (1, 4):
        run = tmp_path / f"replicas{replicas}"
        code, _, err = run_recipe(*tiny_args(data_dir, run, "--train_steps=2", f"--cpu_replicas={replicas}",
                                             "--lr=0.1"))
        assert code == 0, err[-2000:]
        with open(run / "config.json") as f:
            assert json.load(f)["replicas"] == replicas
        models.append(keras.models.load_model(run / "model.keras"))
    for u, v in zip(*(m.weights for m in models)):  # BN moving statistics included.
        np.testing.assert_allclose(u.numpy(), v.numpy(), rtol=1e-4, atol=1e-5, err_msg=u.path)


@pytest.mark.parametrize("flag,message", [
    ("--batch_size=0", "flag --batch_size=0: 0 is not a positive integer"),  # Was a ZeroDivisionError traceback.
    ("--shortcut=D", "shortcut must be one of 'A', 'B', 'C', got 'D'"),
    ("--protocol=train", "protocol must be one of"),
    ("--batch_size=15 --cpu_replicas=2", "batch_size 15 is not divisible by the 2 replicas"),
    ("--bn_group_size=64", "bn_group_size 64 neither divides the per-replica batch of 20 (batch_size 20 over 1 "
                           "replica) nor spans a whole number of replicas"),
    ("--bn_group_size=30 --cpu_replicas=2", "bn_group_size 30 neither divides the per-replica batch of 10 "
                                            "(batch_size 20 over 2 replicas) nor spans"),
    ("--bn_group_size=20 --cpu_replicas=2 --jit_compile", "jit_compile cannot compile BN statistics shared across "
                                                          "replicas (bn_group_size 20 spans 2 replicas of 10)"),
])
def test_bad_flag_exits_2_with_one_line_and_writes_nothing(tiny_cifar, tmp_path, flag, message):
    """The whole process; every bad numeric flag's message is in test_recipe_flags.py (one process)."""
    data_dir, _ = tiny_cifar
    code, out, err = run_recipe(*tiny_args(data_dir, tmp_path / "run"), *flag.split())
    lines = [l for l in err.splitlines() if l.strip()]
    assert code == 2, err[-2000:]
    assert len(lines) == 1 and message in lines[0], err[-2000:]
    assert not (tmp_path / "run").exists()


def test_missing_data_names_the_preparation_command(tmp_path):
    code, _, err = run_recipe(f"--data_dir={tmp_path / 'empty'}", f"--model_dir={tmp_path / 'run'}")
    assert code == 2
    assert err.strip().startswith("error: cifar10 is not prepared") and "tools.prepare_cifar10 --archive=" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_model_dir_that_is_a_file_is_refused(tiny_cifar, tmp_path):
    data_dir, _ = tiny_cifar
    (tmp_path / "file").write_text("precious")
    code, _, err = run_recipe(*tiny_args(data_dir, tmp_path / "file"))
    assert code == 2 and "exists and is not a directory" in err
    assert (tmp_path / "file").read_text() == "precious"


def test_model_dir_of_another_configuration_is_refused_and_kept(tiny_cifar, tmp_path):
    data_dir, _ = tiny_cifar
    assert run_recipe(*tiny_args(data_dir, tmp_path / "run", "--train_steps=2"))[0] == 0
    before = sorted(os.listdir(tmp_path / "run"))
    code, _, err = run_recipe(*tiny_args(data_dir, tmp_path / "run", "--train_steps=2", "--plain"))
    assert code == 2 and "residual: True there vs False now" in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(os.listdir(tmp_path / "run")) == before


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [("TERM", 128 + 15), ("INT", 128 + 2)])
def test_a_signal_at_step_5_writes_checkpoint_5_and_the_rerun_resumes_there(tiny_cifar, tmp_path, sig, code):
    data_dir, _ = tiny_cifar
    args = tiny_args(data_dir, tmp_path / "run", "--train_steps=200", "--checkpoint_every=1000")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    stopped = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "signal_at_step.py"), sig, "5", *args],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert stopped.returncode == code, stopped.stderr[-2000:]
    assert "Interrupted at step 5;" in stopped.stderr and "Rerun the same command to resume" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")).endswith("ckpt-5")
    code, out, err = run_recipe(*args, "--stop_after=7")
    assert code == 0, err[-2000:]
    assert "Resumed from" in err and "at step 5" in err
    assert "Stopped at step 7" in out


@pytest.mark.slow
@pytest.mark.parametrize("point,leftover", [("shards_written", "ckpt-4_temp"), ("files_written", "ckpt-4.index")])
def test_sigkill_inside_a_checkpoint_write_resumes_from_the_previous_checkpoint(tiny_cifar, tmp_path, point, leftover):
    data_dir, _ = tiny_cifar
    run = tmp_path / "run"
    args = tiny_args(data_dir, run, "--train_steps=6")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    killed = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "checkpoint_killer.py"), point, "2", *args],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    checkpoints = run / "checkpoints"
    assert (checkpoints / leftover).exists()  # The kill did land inside the write of ckpt-4.
    assert tf.train.latest_checkpoint(str(checkpoints)).endswith("ckpt-2")
    code, out, err = run_recipe(*args)
    assert code == 0, err[-2000:]
    assert "at step 2" in err and "Finished" in out
    assert tf.train.latest_checkpoint(str(checkpoints)).endswith("ckpt-6")


def _file_size_limit(limit_bytes):
    """For the child: writes beyond ``limit_bytes`` per file fail (EFBIG), as on a full disk."""
    import resource

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return apply


@pytest.mark.slow
def test_a_failed_checkpoint_write_stops_in_one_line_and_keeps_the_last_checkpoint(tiny_cifar, tmp_path):
    data_dir, _ = tiny_cifar
    run = tmp_path / "run"
    args = tiny_args(data_dir, run, "--train_steps=6")
    code, out, err = run_recipe(*args, "--stop_after=2")
    assert code == 0, err[-2000:]
    written = tf.train.latest_checkpoint(str(run / "checkpoints"))
    before = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    proc = recipe(*args, preexec_fn=_file_size_limit(64 * 1024))  # Smaller than a checkpoint shard.
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err[-2000:]
    message = err.strip().splitlines()[-1]
    assert message.startswith("error: could not write the checkpoint of step 4") and "Traceback" not in err
    assert f"the last complete checkpoint ({written}) is kept" in message
    assert tf.train.latest_checkpoint(str(run / "checkpoints")) == written
    assert {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()} == before  # Nothing partial left.
    code, out, err = run_recipe(*args)  # Space is back: the same command resumes and finishes.
    assert code == 0, err[-2000:]
    assert "at step 2" in err and "Finished" in out


def test_imagenet_recipe_end_to_end_logs_top5_and_scores_every_test_protocol(tiny_imagenet, tmp_path):
    run = tmp_path / "run"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "-m", "recipes.imagenet", "--depth=18", f"--data_dir={tiny_imagenet}", f"--model_dir={run}",
         "--batch_size=2", "--bn_group_size=0", "--train_steps=2", "--eval_every=2", "--log_every=1",
         "--final_eval_modes=center,ten_crop,multiscale", "--noresize_antialias"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    from keras_resnet.runs import read_scalars
    validation = read_scalars(str(run / "validation"))
    assert {"loss", "error", "top5_error"} <= set(validation) and validation["error"][-1][0] == 2
    with open(run / "final_eval.json") as f:
        final = json.load(f)
    for mode in ("center", "ten_crop", "multiscale"):
        assert 0.0 <= final[f"{mode}_top5_error"] <= final[f"{mode}_top1_error"] <= 100.0
    with open(run / "config.json") as f:
        config = json.load(f)
    assert config["plateau_patience_steps"] == 1 and config["bn_group_size"] is None  # 50k of 600k, scaled.
    assert config["resize_antialias"] is False  # The cheaper resize, in training and all three evaluations.
    assert config["weight_decay_on"] == "kernels"  # ImageNet's default: the decay-all measurement is CIFAR-10's.


def test_validation_protocol_trains_on_the_first_90_percent_with_their_mean_and_evaluates_on_the_rest(
        tiny_cifar, tmp_path):
    """Section 4.2's 45k/5k protocol (90 % / 10 % of the training images; here 90 / 10)."""
    data_dir, (train_x, _, _, _) = tiny_cifar
    run = tmp_path / "run"
    code, _, err = run_recipe(*tiny_args(data_dir, run, "--train_steps=2", "--protocol=validation"))
    assert code == 0, err[-2000:]
    assert (run / "validation").is_dir() and not (run / "test").exists()
    with open(run / "stats.json") as f:
        assert "validation_error" in json.load(f)
    import tensorflow_datasets as tfds
    first_90 = tfds.as_numpy(tfds.load("cifar10", split="train[:90%]", data_dir=data_dir, batch_size=-1))["image"]
    assert len(first_90) == 90
    cached = next((Path(data_dir) / "cifar10").glob("*/keras_resnet/pixel_mean_train_90.npz"))
    with np.load(cached) as saved:
        np.testing.assert_allclose(saved["mean"], first_90.astype(np.float64).mean(axis=0), rtol=1e-6)
        assert not np.allclose(saved["mean"], train_x.astype(np.float64).mean(axis=0))


def test_evaluate_subset_mask_follows_the_archives_order_not_tfds(tiny_cifar, tmp_path):
    """TFDS shuffles records on preparation; a mask over the archive (test_exact_mask.npy) must
    pick the same images. A model that always answers class 0 is wrong exactly where label != 0."""
    import keras
    data_dir, (_, _, _, test_y) = tiny_cifar
    inputs = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(10, kernel_initializer="zeros",
                               bias_initializer=keras.initializers.Constant([1.0] + [0.0] * 9))
    keras.Model(inputs, keras.layers.Activation("softmax")(dense(pooled))).save(tmp_path / "zero.keras")
    mask = np.zeros(len(test_y), bool)
    mask[:10] = True  # The first 10 records of the archive.
    np.save(tmp_path / "mask.npy", mask)
    out = tmp_path / "scores.json"
    result = subprocess.run([sys.executable, "-m", "tools.evaluate", f"--model={tmp_path / 'zero.keras'}",
                             f"--data_dir={data_dir}", f"--subset_mask={tmp_path / 'mask.npy'}", f"--json={out}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""))
    assert result.returncode == 0, result.stderr[-2000:]
    scores = json.loads(out.read_text())
    assert scores["masked_error"] == pytest.approx(100.0 * np.mean(test_y[:10] != 0))
    assert scores["unmasked_error"] == pytest.approx(100.0 * np.mean(test_y[10:] != 0))
    jpeg = subprocess.run([sys.executable, "-m", "tools.evaluate", f"--model={tmp_path / 'zero.keras'}",
                           f"--data_dir={data_dir}", "--jpeg_quality=75"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""))
    assert jpeg.returncode == 0 and "re-encoded as JPEG q75" in jpeg.stdout, jpeg.stderr[-2000:]


def test_evaluate_compare_scores_a_second_model_on_the_same_images_image_by_image(tiny_cifar, tmp_path):
    """A model that always answers class 0 against one that always answers class 1: each is wrong alone
    exactly on the other's class."""
    import keras
    data_dir, (_, _, _, test_y) = tiny_cifar
    for answer in (0, 1):
        inputs = keras.Input((32, 32, 3))
        dense = keras.layers.Dense(10, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(
            np.eye(10)[answer]))(keras.layers.GlobalAveragePooling2D()(inputs))
        keras.Model(inputs, keras.layers.Activation("softmax")(dense)).save(tmp_path / f"always{answer}.keras")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-m", "tools.evaluate", f"--model={tmp_path / 'always0.keras'}",
                             f"--compare={tmp_path / 'always1.keras'}", f"--data_dir={data_dir}",
                             f"--json={tmp_path / 'c.json'}"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    compared = json.loads((tmp_path / "c.json").read_text())["compare"]
    assert compared["only_a_wrong"] == int(np.sum(test_y == 1)) and compared["only_b_wrong"] == int(np.sum(test_y == 0))
    assert compared["error"] == pytest.approx(100.0 * np.mean(test_y != 1)) and "McNemar" in result.stdout
    missing = subprocess.run([sys.executable, "-m", "tools.evaluate", f"--model={tmp_path / 'always0.keras'}",
                              f"--compare={tmp_path / 'none.keras'}", f"--data_dir={data_dir}"], cwd=ROOT,
                             capture_output=True, text=True, timeout=300, env=env)
    assert missing.returncode != 0 and f"--compare={tmp_path / 'none.keras'} is not a file" in missing.stderr


def test_a_subset_mask_adds_an_evaluation_of_those_images_alone(tiny_cifar, tmp_path):
    data_dir, (_, _, _, test_y) = tiny_cifar
    mask = np.zeros(len(test_y), bool)
    mask[::3] = True
    np.save(tmp_path / "mask.npy", mask)
    run = tmp_path / "run"
    code, _, err = run_recipe(*tiny_args(data_dir, run, "--train_steps=2", f"--eval_subset_mask={tmp_path / 'mask.npy'}"))
    assert code == 0, err[-2000:]
    with open(run / "stats.json") as f:
        stats = json.load(f)
    scored = subprocess.run([sys.executable, "-m", "tools.evaluate", f"--model={run / 'model.keras'}",
                             f"--data_dir={data_dir}", f"--subset_mask={tmp_path / 'mask.npy'}",
                             f"--json={tmp_path / 's.json'}"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""))
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert stats["test_subset_error"] == pytest.approx(json.loads((tmp_path / "s.json").read_text())["masked_error"])
    assert (run / "test_subset").is_dir()
    code, _, err = run_recipe(*tiny_args(data_dir, tmp_path / "other", f"--eval_subset_mask={tmp_path / 'none.npy'}"))
    assert code == 2 and "--eval_subset_mask=" in err and not (tmp_path / "other").exists()
