"""Damaged run directories: resume from the newest readable checkpoint (keras_resnet.checkpoints)."""

import glob
import json
import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_resnet import checkpoints, training
from training_helpers import tiny_config, tiny_task

CONFIG = dict(train_steps=8, checkpoint_every=2, log_every=2, eval_every=100)


def cut_short(prefix):
    """Truncates a checkpoint's data file to half, as an interrupted copy leaves it."""
    (data,) = glob.glob(prefix + ".data-*")
    with open(data, "rb") as f:
        payload = f.read()
    with open(data, "wb") as f:
        f.write(payload[: len(payload) // 2])
    return data, payload[: len(payload) // 2]


def stopped_run(model_dir, stop_after=6):
    """A run with checkpoints at steps 2, 4 and 6."""
    keras.utils.set_random_seed(1)
    training.train(tiny_config(**CONFIG), tiny_task(), str(model_dir), stop_after=stop_after)
    return os.path.join(str(model_dir), "checkpoints")


def test_a_newest_checkpoint_cut_short_resumes_from_the_one_before_and_ends_like_an_undamaged_run(
        tmp_path, caplog, op_determinism):
    keras.utils.set_random_seed(1)
    training.train(tiny_config(**CONFIG), tiny_task(), str(tmp_path / "whole"))
    ckpt_dir = stopped_run(tmp_path / "damaged")
    data, cut = cut_short(os.path.join(ckpt_dir, "ckpt-6"))
    with caplog.at_level(logging.WARNING):
        stats = training.train(tiny_config(**CONFIG), tiny_task(), str(tmp_path / "damaged"))
    assert stats["complete"] and stats["step"] == 8
    warning = next(r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage())
    assert f"checkpoint {ckpt_dir}/ckpt-6 cannot be read" in warning and "resuming from ckpt-4" in warning
    aside = os.path.join(ckpt_dir, "damaged", os.path.basename(data))
    with open(aside, "rb") as f:
        assert f.read() == cut  # Kept as it was: neither deleted nor overwritten by the new ckpt-6.
    assert tf.train.latest_checkpoint(ckpt_dir).endswith("ckpt-8")
    whole = keras.models.load_model(tmp_path / "whole" / "model.keras")
    resumed = keras.models.load_model(tmp_path / "damaged" / "model.keras")
    for a, b in zip(whole.weights, resumed.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_when_no_checkpoint_reads_the_run_stops_in_one_line_and_nothing_is_moved(tmp_path):
    ckpt_dir = stopped_run(tmp_path / "run")
    for step in (2, 4, 6):
        cut_short(os.path.join(ckpt_dir, f"ckpt-{step}"))
    before = sorted(os.listdir(ckpt_dir))
    with pytest.raises(checkpoints.NoReadableCheckpointError) as error:
        training.train(tiny_config(**CONFIG), tiny_task(), str(tmp_path / "run"))
    message = str(error.value)
    assert "\n" not in message and f"no checkpoint in {ckpt_dir} can be read (ckpt-6: " in message
    assert "ckpt-4: " in message and "ckpt-2: " in message and "nothing was moved or removed" in message
    assert sorted(os.listdir(ckpt_dir)) == before


@pytest.mark.parametrize("damage", ["index", "missing data"])
def test_a_damaged_index_or_a_missing_data_file_is_unreadable(tmp_path, damage):
    ckpt_dir = stopped_run(tmp_path / "run", stop_after=2)
    prefix = os.path.join(ckpt_dir, "ckpt-2")
    assert checkpoints.unreadable(prefix) is None
    if damage == "index":
        with open(prefix + ".index", "r+b") as f:
            f.seek(10)
            f.write(b"\xff" * 40)
    else:
        os.remove(glob.glob(prefix + ".data-*")[0])
    assert checkpoints.unreadable(prefix)


def test_a_damaged_state_file_is_rewritten_and_the_newest_checkpoint_resumed(tmp_path):
    ckpt_dir = stopped_run(tmp_path / "run")
    with open(os.path.join(ckpt_dir, "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "ckpt-6\n{{{')
    stats = training.train(tiny_config(**CONFIG), tiny_task(), str(tmp_path / "run"), stop_after=7)
    assert stats["step"] == 7 and tf.train.latest_checkpoint(ckpt_dir).endswith("ckpt-7")
    state = tf.train.get_checkpoint_state(ckpt_dir)  # Rewritten: the older checkpoints rotate out as usual.
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == ["ckpt-4", "ckpt-6", "ckpt-7"]
    assert not os.path.exists(os.path.join(ckpt_dir, "ckpt-2.index"))


def test_a_damaged_config_json_is_one_line_naming_the_file(tmp_path):
    stopped_run(tmp_path / "run", stop_after=2)
    path = tmp_path / "run" / "config.json"
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(ValueError) as error:
        training.train(tiny_config(**CONFIG), tiny_task(), str(tmp_path / "run"))
    assert str(error.value).startswith(f"{path} is damaged (") and "\n" not in str(error.value)
    assert "delete it and rerun the run's own command" in str(error.value)
    json.loads(text)  # The test damaged a valid file.


def test_a_damaged_keras_file_is_one_line_naming_it(tmp_path):
    from keras_resnet import cifar_resnet
    from keras_resnet.export import load_saved_model
    path = tmp_path / "net.keras"
    cifar_resnet(8).save(path)
    payload = path.read_bytes()
    path.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(ValueError) as error:
        load_saved_model(str(path))
    assert str(error.value).startswith(f"{path} cannot be loaded as a Keras model (") and "\n" not in str(error.value)


def test_a_slim_copy_with_its_checkpoint_resumes_elsewhere_and_ends_like_an_unbroken_run(tmp_path, op_determinism):
    from tools.slim_run import slim_copy

    keras.utils.set_random_seed(1)
    training.train(tiny_config(**CONFIG), tiny_task(), str(tmp_path / "whole"))
    stopped_run(tmp_path / "lost")
    slim_copy(str(tmp_path / "lost"), str(tmp_path / "carried"), with_checkpoint=True)
    carried = tmp_path / "carried" / "checkpoints"
    assert sorted(os.listdir(carried)) == ["checkpoint", "ckpt-6.data-00000-of-00001", "ckpt-6.index"]
    restored = tmp_path / "machine2" / "run"  # Moved again after the copy: nothing in it names where it was.
    os.makedirs(restored.parent)
    os.rename(tmp_path / "carried", restored)
    assert tf.train.latest_checkpoint(str(restored / "checkpoints")) == str(restored / "checkpoints" / "ckpt-6")
    stats = training.train(tiny_config(**CONFIG), tiny_task(), str(restored))
    assert stats["complete"] and stats["step"] == 8
    whole = keras.models.load_model(tmp_path / "whole" / "model.keras")
    resumed = keras.models.load_model(restored / "model.keras")
    for a, b in zip(whole.weights, resumed.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_a_refreshed_slim_copy_keeps_only_the_newest_checkpoint(tmp_path):
    from tools.slim_run import copy_newest_checkpoint

    ckpt_dir = stopped_run(tmp_path / "run", stop_after=4)
    copy_newest_checkpoint(ckpt_dir, str(tmp_path / "copy"))
    stopped_run(tmp_path / "run", stop_after=6)
    cut_short(os.path.join(ckpt_dir, "ckpt-6"))  # The newest does not read: the one before is carried.
    stopped_run(tmp_path / "run2", stop_after=6)
    copy_newest_checkpoint(ckpt_dir, str(tmp_path / "copy"))
    assert sorted(os.listdir(tmp_path / "copy")) == ["checkpoint", "ckpt-4.data-00000-of-00001", "ckpt-4.index"]
    copy_newest_checkpoint(os.path.join(str(tmp_path / "run2"), "checkpoints"), str(tmp_path / "copy"))
    assert sorted(os.listdir(tmp_path / "copy")) == ["checkpoint", "ckpt-6.data-00000-of-00001", "ckpt-6.index"]


def test_a_slim_copy_into_a_relative_folder_names_its_checkpoint_within_that_folder(tmp_path, monkeypatch):
    from tools.slim_run import copy_newest_checkpoint

    ckpt_dir = stopped_run(tmp_path / "run", stop_after=4)
    monkeypatch.chdir(tmp_path)
    copy_newest_checkpoint(ckpt_dir, os.path.join("results", "run", "checkpoints"))
    copy = tmp_path / "results" / "run" / "checkpoints"
    assert 'model_checkpoint_path: "ckpt-4"' in (copy / "checkpoint").read_text()
    assert tf.train.latest_checkpoint(str(copy)) == str(copy / "ckpt-4")
