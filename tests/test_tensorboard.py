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

from keras_resnet import run_config, training
from training_helpers import tiny_config, tiny_task


def _post(port: int, route: str, body: dict) -> dict:
    request = urllib.request.Request(f"http://localhost:{port}/data/plugin/hparams/{route}",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "X-XSRF-Protected": "1"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Three tiny runs, ``sweep/lr0.05``, ``sweep/lr0.1`` and ``other/lr0.1`` (a run of the same name in
    another experiment), and ``tensorboard --logdir`` over them on a free port; yields (root, port)."""
    root = tmp_path_factory.mktemp("tensorboard") / "runs"
    for model_dir in ("sweep/lr0.05", "sweep/lr0.1", "other/lr0.1"):
        lr = float(model_dir.rsplit("lr", 1)[1])
        config = tiny_config(train_steps=3, lr=lr, eval_every=3)
        task = tiny_task(hparams={"dataset": "toy", "depth": 8, "lr": lr, "lr_boundaries": [2], "warmup_lr": None,
                                  "shortcut": "A", "log_every": 2, "command": "python -m recipes.cifar10"})
        training.train(config, task, str(root / model_dir))
    tensorboard_bin = shutil.which("tensorboard", path=os.path.dirname(sys.executable)) or "tensorboard"
    proc = subprocess.Popen([tensorboard_bin, f"--logdir={root}", "--port=0", "--reload_interval=1",
                             "--host=localhost"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    port = _port(proc)
    _wait_for_groups(port, 3)
    yield root, port
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


def test_every_run_of_a_sweep_is_one_hparams_row_with_test_and_train_error_as_metrics(sweep):
    root, port = sweep
    groups = _wait_for_groups(port, 3)
    for group in groups:
        run = group["sessions"][0]["name"]
        values = {(v["name"].get("group", ""), v["name"]["tag"]): v["value"] for v in group["metricValues"]}
        stats = json.loads((root / run / "stats.json").read_text())
        assert values[("test", "error")] == pytest.approx(stats["test_error"], rel=1e-6)
        assert values[("train", "error")] == pytest.approx(stats["train_error"], rel=1e-6)
        assert group["hparams"]["lr"] == float(os.path.basename(run)[2:])
        # Lists are hparams too, shown as JSON; None is left blank: a sweep over boundaries or warm-up stays readable.
        assert group["hparams"]["lr_boundaries"] == "[2]" and "warmup_lr" not in group["hparams"]


def test_each_runs_trial_id_is_its_folder_then_its_parent_so_runs_of_one_name_stay_apart(sweep):
    _, port = sweep
    names = sorted(g["name"] for g in _wait_for_groups(port, 3))
    assert names == ["lr0.05 (sweep)", "lr0.1 (other)", "lr0.1 (sweep)"]


def test_the_columns_a_reader_compares_come_first_and_runtime_settings_are_not_columns(sweep):
    from keras_resnet.tensorboard_hparams import COLUMNS

    _, port = sweep
    infos = _post(port, "experiment", {"experimentName": ""})["hparamInfos"]
    compared = [c for c in COLUMNS if c.compared]
    # TensorBoard puts the columns marked as differing first, by name, and ticks the first five.
    assert [h["displayName"] for h in infos[:len(compared)]] == sorted(c.title for c in compared)
    assert [h["displayName"] for h in infos[:5]] == ["BN group", "depth", "precision", "residual", "seed"]
    names = [h["name"] for h in infos]
    assert not set(names) & run_config.RUNTIME_KEYS
    assert "lr" in names and "dataset" in names


def test_the_metrics_read_first_are_test_and_training_error_then_loss(sweep):
    _, port = sweep
    metrics = _post(port, "experiment", {"experimentName": ""})["metricInfos"]
    assert [m["displayName"] for m in metrics[:4]] == ["test error (%)", "training error (%)", "test loss",
                                                       "training loss"]
