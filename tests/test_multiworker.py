"""MultiWorkerMirroredStrategy with two local worker processes on 127.0.0.1."""

import glob
import json
import re
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

WORKER = os.path.join(os.path.dirname(__file__), "multiworker_worker.py")


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(model_dir, outs, steps):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i, out in enumerate(outs):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
                   CUDA_VISIBLE_DEVICES="")
        procs.append(subprocess.Popen([sys.executable, WORKER, str(model_dir), str(out), str(steps)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return procs


def run_workers(model_dir, outs, steps, timeout=300):
    procs = start_workers(model_dir, outs, steps)
    logs = [p.communicate(timeout=timeout)[0] for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    return logs


@pytest.mark.slow
def test_two_workers_end_with_identical_weights_and_bn_statistics(tmp_path):
    """... and, when the newest checkpoint is damaged, agree on the one to resume from."""
    outs = [tmp_path / "w0.npz", tmp_path / "w1.npz"]
    run_workers(tmp_path / "run", outs, steps=4)
    w0, w1 = (np.load(o) for o in outs)
    assert bool(w0["chief"]) and not bool(w1["chief"])
    assert int(w0["step"]) == int(w1["step"]) == 4
    names = [k for k in w0.files if k not in ("step", "chief")]
    assert any("moving_mean" in k for k in names)
    for name in names:  # BN statistics are averaged over the workers at the end.
        np.testing.assert_array_equal(w0[name], w1[name], err_msg=name)
    # Only the chief keeps checkpoints, the logs and the final model.
    assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")).endswith("ckpt-4")
    assert (tmp_path / "run" / "model.keras").exists()
    assert not (tmp_path / "run" / "scratch" / "worker1").exists()
    # Every worker records its own machine: the chief in provenance.json, the other beside it.
    for name, task in (("provenance.json", "worker:0"), ("provenance-worker1.json", "worker:1")):
        with open(tmp_path / "run" / name) as f:
            (segment,) = json.load(f)["segments"]
        runtime = segment["runtime"]
        assert (runtime["strategy"], runtime["workers"], runtime["replicas"], runtime["task"]) == (
            "MultiWorkerMirroredStrategy", 2, 2, task)
        assert segment["last_step"] == 4 and segment["device"]["cpu"]["model_name"]

    # Then the newest checkpoint is damaged (cut short, as an interrupted copy leaves it): rerun, both
    # workers agree on resuming from the one before and end identical. (In this test, not its own, to
    # spare the suite another two-process run from scratch.)
    ckpt_dir = tmp_path / "run" / "checkpoints"
    (data,) = glob.glob(str(ckpt_dir / "ckpt-4.data-*"))
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)
    logs = run_workers(tmp_path / "run", outs, steps=6)
    assert all("cannot be read" in log and "at step 2" in log for log in logs), logs[1][-3000:]
    assert (ckpt_dir / "damaged" / os.path.basename(data)).exists()
    w0, w1 = (np.load(o) for o in outs)
    assert int(w0["step"]) == int(w1["step"]) == 6
    for name in names:
        np.testing.assert_array_equal(w0[name], w1[name], err_msg=name)


@pytest.mark.slow
def test_when_one_worker_dies_the_other_stops_and_restarting_the_job_resumes(tmp_path):
    import time
    outs = [tmp_path / "w0.npz", tmp_path / "w1.npz"]
    procs = start_workers(tmp_path / "run", outs, steps=400)
    deadline = time.time() + 240
    while not tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")):
        assert time.time() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.2)
    procs[1].kill()  # One worker dies: the other one notices (heartbeats) and stops with one line.
    procs[1].communicate()
    survivor_log = procs[0].communicate(timeout=120)[0]
    assert procs[0].returncode == 1, survivor_log[-3000:]
    last_line = survivor_log.strip().splitlines()[-1]
    # TF names the lost task in some of its errors, not all: either form is one line with the step.
    assert re.match(r"error: (worker /job:worker/replica:0/task:1|a peer worker) stopped after step \d+; "
                    r"the last checkpoint \(\S+ckpt-\d+\) is kept", last_line), survivor_log[-3000:]
    assert "restart every worker with the same command to resume" in last_line
    latest = tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints"))
    step = int(latest.rsplit("-", 1)[1])
    assert step < 400
    logs = run_workers(tmp_path / "run", outs, steps=step + 2)
    assert f"at step {step}" in logs[0]
    w0, w1 = (np.load(o) for o in outs)
    assert int(w0["step"]) == int(w1["step"]) == step + 2
    for name in (k for k in w0.files if k not in ("step", "chief")):
        np.testing.assert_array_equal(w0[name], w1[name], err_msg=name)


@pytest.mark.slow
def test_the_cifar_recipe_command_trains_on_two_local_workers(tiny_cifar, tmp_path):
    """The recipe as a user runs it on two machines: the same command, TF_CONFIG naming both. It used
    to list logical devices before creating the strategy and crash with "Collective ops must be
    configured at program startup"."""
    data_dir, _ = tiny_cifar
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "recipes.cifar10", f"--data_dir={data_dir}", f"--model_dir={tmp_path / 'run'}",
         "--depth=8", "--batch_size=20", "--bn_group_size=10", "--train_steps=3", "--log_every=1"], cwd=root,
        env=dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3",
                 TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
        assert f"Finished {tmp_path / 'run'}" in log
    with open(tmp_path / "run" / "provenance.json") as f:
        runtime = json.load(f)["segments"][0]["runtime"]
    assert (runtime["strategy"], runtime["workers"], runtime["replicas"]) == ("MultiWorkerMirroredStrategy", 2, 2)
