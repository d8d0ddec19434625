"""The recipes as a user runs them: end to end, bad input, and signals (subprocesses)."""

import os
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def recipe(*args, **popen):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.Popen([sys.executable, "-m", "recipes.cifar10", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def run_recipe(*args, timeout=300):
    proc = recipe(*args)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def tiny_args(data_dir, model_dir, *extra):
    return [f"--data_dir={data_dir}", f"--model_dir={model_dir}", "--depth=8", "--batch_size=20",
            "--log_every=1", "--eval_every=1000", "--checkpoint_every=2", *extra]


def test_cifar_recipe_end_to_end(tiny_cifar, tmp_path):
    data_dir, _ = tiny_cifar
    code, out, err = run_recipe(*tiny_args(data_dir, tmp_path / "run", "--train_steps=3"))
    assert code == 0, err[-2000:]
    assert "Finished" in out and "test_error" in out
    assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")).endswith("ckpt-3")
    assert (tmp_path / "run" / "model.keras").exists() and (tmp_path / "run" / "stats.json").exists()
    assert "step 3/3" in err  # The progress line.
    with open(tmp_path / "run" / "config.json") as f:
        assert "python -m recipes.cifar10" in f.read()


@pytest.mark.parametrize("flag,message", [
    ("--depth=21", "depth must be 6n+2 (20, 32, 44, 56, 110, 1202, ...), got 21"),
    ("--shortcut=D", "shortcut must be one of 'A', 'B', 'C', got 'D'"),
    ("--mixed_precision=fp8", "mixed_precision"),
    ("--train_steps=0", "train_steps must be a positive integer, got 0"),
    ("--lr=-1", "lr must be a positive number, got -1.0"),
    ("--protocol=train", "protocol must be one of"),
    ("--batch_size=15 --cpu_replicas=2", "batch_size 15 is not divisible by the 2 replicas"),
    ("--no_such_flag=1", "no_such_flag"),
])
def test_bad_flag_exits_2_with_one_line_and_writes_nothing(tiny_cifar, tmp_path, flag, message):
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


def wait_for_checkpoint(model_dir, proc, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if tf.train.latest_checkpoint(str(model_dir / "checkpoints")):
            return
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.2)
    raise AssertionError("no checkpoint appeared")


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 128 + 15), (signal.SIGINT, 128 + 2)])
def test_signal_writes_a_checkpoint_and_rerun_resumes(tiny_cifar, tmp_path, sig, code):
    data_dir, _ = tiny_cifar
    args = tiny_args(data_dir, tmp_path / "run", "--train_steps=200", "--checkpoint_every=1000")
    proc = recipe(*args[:-1], "--checkpoint_every=2")
    wait_for_checkpoint(tmp_path / "run", proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    assert "Rerun the same command to resume" in err and "Traceback" not in err
    step = int(tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")).rsplit("-", 1)[1])
    assert 2 <= step < 200
    code, out, err = run_recipe(*args[:-1], "--checkpoint_every=2", f"--stop_after={step + 2}")
    assert code == 0, err[-2000:]
    assert f"Resumed from" in err and f"at step {step}" in err
    assert f"Stopped at step {step + 2}" in out


@pytest.mark.slow
def test_sigkill_during_training_resumes_from_the_last_complete_checkpoint(tiny_cifar, tmp_path):
    data_dir, _ = tiny_cifar
    args = tiny_args(data_dir, tmp_path / "run", "--train_steps=400", "--checkpoint_every=1")
    proc = recipe(*args[:-1], "--checkpoint_every=1")
    wait_for_checkpoint(tmp_path / "run", proc)
    time.sleep(3)  # Checkpoints are written every step: the kill likely lands in one.
    proc.kill()
    proc.communicate()
    latest = tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints"))
    tf.train.load_checkpoint(latest)  # The recorded checkpoint is complete and readable.
    step = int(latest.rsplit("-", 1)[1])
    code, out, err = run_recipe(*args[:-1], "--checkpoint_every=1", f"--stop_after={step + 1}")
    assert code == 0, err[-2000:]
    assert f"at step {step}" in err


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
