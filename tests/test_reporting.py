"""Specification of the report: tables and figures from event files written by the test."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import keras
from keras_resnet import cifar_resnet, reporting
from tools.report import write_report


def fake_run(root, name, depth, residual, seed, test_errors, train_steps=64_000, protocol="test"):
    """A run folder as the trainer writes it: config.json and train/test event files."""
    folder = os.path.join(root, name)
    os.makedirs(folder)
    config = {"dataset": "cifar10", "depth": depth, "residual": residual, "shortcut": "A", "seed": seed,
              "train_steps": train_steps, "protocol": protocol, "command": f"python -m recipes.cifar10 --depth={depth}"}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f)
    for split, values in (("train", [e + 5 for e in test_errors]), ("test", test_errors)):
        writer = tf.summary.create_file_writer(os.path.join(folder, split))
        with writer.as_default():
            for i, value in enumerate(values):
                tf.summary.scalar("error", value, step=(i + 1) * train_steps // len(values))
        writer.close()
    return folder


def test_table_reports_final_error_mean_std_best_and_delta(tmp_path):
    for seed, final in enumerate((7.0, 8.0, 9.0)):
        fake_run(tmp_path, f"r20-{seed}", 20, True, seed, [50.0, 3.0, final])  # 3.0 mid-run is NOT picked.
    table, notes = reporting.cifar_table(reporting.find_runs(str(tmp_path)))
    row = next(line for line in table.splitlines() if line.startswith("| ResNet-20"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "8.75"               # The paper's Table 6.
    assert cells[2] == "8.00 +- 1.00"       # Mean and sample std over seeds at the final iteration.
    assert cells[3] == "3" and cells[4] == "7.00"
    assert cells[5] == "-0.75"
    assert cells[6] == "64,000" and cells[7] == "paper (64k)"
    assert notes == []


def test_short_runs_are_marked_and_not_compared(tmp_path):
    fake_run(tmp_path, "p20", 20, False, 0, [60.0, 40.0], train_steps=2000)
    fake_run(tmp_path, "r20", 20, True, 0, [60.0, 30.0], train_steps=2000)
    table, _ = reporting.cifar_table(reporting.find_runs(str(tmp_path)))
    rows = [line for line in table.splitlines()[2:]]
    assert len(rows) == 2
    assert all("SHORT: 2,000 of 64,000" in r for r in rows)
    assert all(c.strip() == "-" for c in [r.strip("|").split("|")[5] for r in rows])
    assert rows[0].startswith("| plain-20 |") and "| - |" in rows[0]


def test_runs_without_scalars_are_listed_not_dropped(tmp_path):
    fake_run(tmp_path, "ok", 20, True, 0, [10.0])
    os.makedirs(tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text(json.dumps({"dataset": "cifar10", "depth": 56}))
    _, notes = reporting.cifar_table(reporting.find_runs(str(tmp_path)))
    assert len(notes) == 1 and "empty" in notes[0] and "missing scalars" in notes[0]


def test_report_writes_markdown_and_figure(tmp_path):
    runs = tmp_path / "runs"
    fake_run(runs, "p20", 20, False, 0, [60.0, 40.0], train_steps=2000)
    fake_run(runs, "r20", 20, True, 0, [60.0, 30.0], train_steps=2000)
    path = write_report(str(runs), str(tmp_path / "out"), None, 10)
    text = open(path).read()
    assert "| plain-20 |" in text and "| ResNet-20 |" in text
    assert "![Figure 6](figure6.png)" in text and "python -m recipes.cifar10 --depth=20" in text
    with open(tmp_path / "out" / "figure6.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("make,message", [
    (lambda p: None, "is not a directory"),
    (lambda p: os.makedirs(p), "holds no run"),
])
def test_bad_runs_folder_is_one_clear_error(tmp_path, make, message):
    make(tmp_path / "runs")
    with pytest.raises(ValueError, match=message):
        reporting.find_runs(str(tmp_path / "runs"))


def test_figure7_layers_are_the_bn_outputs_of_every_3x3_conv():
    names = reporting.response_layers(cifar_resnet(8, shortcut="B"))
    assert names == ["conv1_bn", "conv2_1_1_bn", "conv2_1_2_bn", "conv3_1_1_bn", "conv3_1_2_bn",
                     "conv4_1_1_bn", "conv4_1_2_bn"]


def test_figure7_response_std_matches_numpy():
    keras.utils.set_random_seed(0)
    model = cifar_resnet(8)
    images = np.random.default_rng(0).normal(size=(7, 32, 32, 3)).astype("float32")
    stds = dict(reporting.layer_response_std(model, images, batch_size=3))
    for name in ("conv1_bn", "conv3_1_2_bn"):
        out = keras.Model(model.inputs, model.get_layer(name).output)(images, training=False)
        assert stds[name] == pytest.approx(float(np.std(np.asarray(out, np.float64))), rel=1e-5)


def test_resumed_runs_keep_the_last_value_of_a_rewritten_step(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        tf.summary.scalar("loss", 1.0, step=5)
        tf.summary.scalar("loss", 2.0, step=5)
        tf.summary.scalar("loss", 3.0, step=6)
    writer.close()
    assert reporting.read_scalars(str(tmp_path))["loss"] == [(5, 2.0), (6, 3.0)]
