"""A sweep as TensorBoard shows it: one HPARAMS row per run, with its final errors as metrics.

A real TensorBoard server reads the runs' logs; the test asks its hparams plugin over HTTP.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from keras_resnet import training
from training_helpers import tiny_config, tiny_task


def _post(port: int, route: str, body: dict) -> dict:
    request = urllib.request.Request(f"http://localhost:{port}/data/plugin/hparams/{route}",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "X-XSRF-Protected": "1"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture
def tensorboard(tmp_path):
    """Starts ``tensorboard --logdir=<tmp>/runs`` on a free port; yields (root, port)."""
    root = tmp_path / "runs"
    root.mkdir()
    tensorboard_bin = shutil.which("tensorboard", path=os.path.dirname(sys.executable)) or "tensorboard"
    proc = subprocess.Popen([tensorboard_bin, f"--logdir={root}", "--port=0", "--reload_interval=1",
                             "--host=localhost"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    yield root, proc
    proc.kill()
    proc.wait()


def _port(proc) -> int:
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stdout.readline()
        found = re.search(r"http://localhost:(\d+)/", line)
        if found:
            return int(found.group(1))
    raise AssertionError("tensorboard did not start")


def _session_groups(port: int) -> list:
    return _post(port, "session_groups", {"experimentName": "", "allowedStatuses": [
        "STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"], "colParams": [], "startIndex": 0,
        "sliceSize": 10}).get("sessionGroups", [])


WANTED = {("test", "error"), ("test", "loss"), ("train", "error"), ("train", "loss")}


def _wait_for_groups(port: int, count: int) -> list:
    """The session groups once TensorBoard has loaded ``count`` runs with their train and test metrics
    (it reloads the logdir every second, one folder after another; no fixed sleep)."""
    deadline = time.time() + 60
    while time.time() < deadline:
        groups = _session_groups(port)
        if len(groups) == count and all(
                WANTED <= {(v["name"].get("group", ""), v["name"]["tag"]) for v in g["metricValues"]} for g in groups):
            return groups
        time.sleep(0.2)
    raise AssertionError(f"TensorBoard showed {len(groups)} runs after 60 s, expected {count}")


def test_every_run_of_a_sweep_is_one_hparams_row_with_test_and_train_error_as_metrics(tensorboard):
    root, proc = tensorboard
    for lr in (0.05, 0.1):
        config = tiny_config(train_steps=3, lr=lr, eval_every=3)
        task = tiny_task(hparams={"dataset": "toy", "depth": 8, "lr": lr, "lr_boundaries": [2], "warmup_lr": None})
        training.train(config, task, str(root / f"lr{lr}"))
    port = _port(proc)
    groups = _wait_for_groups(port, 2)
    experiment = _post(port, "experiment", {"experimentName": ""})
    metrics = {(m["name"].get("group", ""), m["name"]["tag"]) for m in experiment["metricInfos"]}
    assert WANTED <= metrics
    assert {h["name"] for h in experiment["hparamInfos"]} >= {"lr", "depth", "replicas", "lr_boundaries", "warmup_lr"}
    for group in groups:
        run = group["sessions"][0]["name"]
        values = {(v["name"].get("group", ""), v["name"]["tag"]): v["value"] for v in group["metricValues"]}
        stats = json.loads((root / os.path.basename(run) / "stats.json").read_text())
        assert values[("test", "error")] == pytest.approx(stats["test_error"], rel=1e-6)
        assert values[("train", "error")] == pytest.approx(stats["train_error"], rel=1e-6)
        assert group["hparams"]["lr"] == float(os.path.basename(run)[2:])
        # Lists and None are hparams too, shown as JSON: a sweep over boundaries or warm-up stays readable.
        assert group["hparams"]["lr_boundaries"] == "[2]" and group["hparams"]["warmup_lr"] == "null"
