"""Specification of the training loop on tiny tasks (CPU)."""

import dataclasses
import datetime
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import keras
from keras_resnet import cifar_resnet, run_config, training
from keras_resnet.runs import on_log_grid, read_scalars
from keras_resnet.schedules import PaperSchedule, WarmUp, scale_boundaries
from keras_resnet.tasks import CifarExperiment, cifar_train_config, experiment_hparams
from training_helpers import dense_model, tiny_config, tiny_task


def test_paper_schedule_divides_by_10_at_32k_and_48k():
    schedule = PaperSchedule(0.1, (32_000, 48_000))
    assert [round(float(schedule(s)), 6) for s in (0, 31_999, 32_000, 47_999, 48_000, 63_999)] == [
        0.1, 0.1, 0.01, 0.01, 0.001, 0.001]


def test_short_runs_scale_the_boundaries():
    assert scale_boundaries((32_000, 48_000), 64_000, 6_400) == (3_200, 4_800)
    assert cifar_train_config(20, 2_000).lr_boundaries == (1_000, 1_500)
    assert scale_boundaries((32_000, 48_000), 64_000, 5)[1] == 4  # 3.75: the nearest iteration.


def test_resnet_110_and_deeper_warm_up_at_0_01():
    assert cifar_train_config(110).warmup_lr == 0.01
    assert cifar_train_config(56).warmup_lr is None


def test_warmup_schedule_returns_to_0_1_when_warmup_ends():
    schedule = PaperSchedule(0.1, (32_000,), warmup_lr=0.01, warmup_steps=400)
    assert float(schedule(0)) == pytest.approx(0.01) and float(schedule(399)) == pytest.approx(0.01)
    assert float(schedule(400)) == pytest.approx(0.1)
    schedule.end_warmup(37)
    assert float(schedule(36)) == pytest.approx(0.01) and float(schedule(37)) == pytest.approx(0.1)


def test_a_warmup_that_ended_never_ends_later():
    schedule = PaperSchedule(0.1, warmup_lr=0.01, warmup_steps=400)
    schedule.end_warmup(37)
    schedule.end_warmup(300)
    assert int(schedule.warmup_end.numpy()) == 37 and float(schedule(100)) == pytest.approx(0.1)


def test_the_schedule_round_trips_through_its_config():
    schedule = PaperSchedule(0.1, (32_000, 48_000), warmup_lr=0.01, warmup_steps=400)
    again = PaperSchedule.from_config(schedule.get_config())
    assert [float(again(s)) for s in (399, 400, 32_000)] == [float(schedule(s)) for s in (399, 400, 32_000)]


def test_warmup_needs_the_error_strictly_below_80_percent():
    warmup = WarmUp(PaperSchedule(0.1, warmup_lr=0.01, warmup_steps=4000), error=0.8, window=1)
    assert warmup.update(5, 0.8) is None and warmup.active(5)
    assert warmup.update(6, 0.79) == pytest.approx(0.79) and not warmup.active(6)


def test_warmup_window_is_one_epoch_of_iterations():
    assert cifar_train_config(110).warmup_window == 391  # 50,000 images in batches of 128.
    assert cifar_train_config(110, train_examples=45_000).warmup_window == 352  # The validation protocol.
    assert cifar_train_config(110, 6_400).warmup_window == 391  # Shorter schedules: still an epoch.


def test_warmup_ends_only_when_the_mean_error_of_the_whole_window_is_below_80_percent():
    warmup = WarmUp(PaperSchedule(0.1, warmup_lr=0.01, warmup_steps=4000), error=0.8, window=391)
    ends = [warmup.update(step, 0.85) for step in range(1, 386)]
    ends += [warmup.update(step, 0.10) for step in range(386, 392)]  # A lucky stretch of 6 batches.
    assert not any(e is not None for e in ends) and warmup.active(391)
    # The error really falls: the window mean follows (bounded, so that a broken window fails, not hangs).
    step = next((s for s in range(392, 800) if warmup.update(s, 0.70) is not None), None)
    assert step is not None and 392 < step and not warmup.active(step)


def test_resumed_warmup_keeps_its_window_of_batch_errors(tmp_path):
    config = tiny_config(train_steps=6, lr=0.1, lr_boundaries=(), warmup_lr=0.01, warmup_steps=400,
                         warmup_error=0.95, warmup_window=4, log_every=1, checkpoint_every=1)
    training.train(config, tiny_task(), str(tmp_path / "whole"))
    training.train(config, tiny_task(), str(tmp_path / "split"), stop_after=2)
    training.train(config, tiny_task(), str(tmp_path / "split"))
    lrs = {run: [round(v, 6) for _, v in read_scalars(str(tmp_path / run / "train"))["learning_rate"]]
           for run in ("whole", "split")}
    assert lrs["whole"] == [0.01] * 4 + [0.1] * 2  # The window of 4 fills at step 4.
    assert lrs["split"] == lrs["whole"]


def test_training_warmup_ends_on_low_error_and_lr_returns_to_0_1(tmp_path):
    # With a 95% threshold the error of an untrained 4-class net (~75%) ends the warm-up at once;
    # seeded, because an unlucky initialisation can be wrong on 31 of the first 32 images.
    keras.utils.set_random_seed(0)
    config = tiny_config(train_steps=6, lr=0.1, lr_boundaries=(), warmup_lr=0.01, warmup_steps=400,
                         warmup_error=0.95, warmup_window=2, log_every=1)
    training.train(config, tiny_task(), str(tmp_path))
    lrs = [round(v, 6) for _, v in read_scalars(str(tmp_path / "train"))["learning_rate"]]
    assert lrs[:2] == [0.01, 0.01] and lrs[2:] == [0.1] * 4


def test_training_writes_checkpoints_events_model_and_stats(tmp_path):
    stats = training.train(tiny_config(), tiny_task(), str(tmp_path))
    assert stats["step"] == 6 and stats["complete"]
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-6")
    train = read_scalars(str(tmp_path / "train"))
    assert {"loss", "error", "learning_rate", "images_per_second"} <= set(train)
    assert [s for s, _ in train["loss"]] == [2, 4, 6]
    test = read_scalars(str(tmp_path / "test"))
    assert [s for s, _ in test["error"]] == [3, 6]
    assert test["error"][-1][1] == pytest.approx(stats["test_error"])
    assert 0 <= stats["test_error"] <= 100
    with open(tmp_path / "stats.json") as f:
        assert json.load(f)["step"] == 6
    model = keras.models.load_model(tmp_path / "model.keras")
    assert model.output_shape == (None, 4)


def test_hparams_and_graph_are_logged(tmp_path):
    training.train(tiny_config(train_steps=2), tiny_task(), str(tmp_path))
    from tensorboard.backend.event_processing import event_accumulator
    session = event_accumulator.EventAccumulator(str(tmp_path))
    session.Reload()
    assert session.SummaryMetadata("_hparams_/session_start_info").plugin_data.plugin_name == "hparams"
    train = event_accumulator.EventAccumulator(str(tmp_path / "train"))
    train.Reload()
    assert train.SummaryMetadata("train_step").plugin_data.plugin_name == "graph_run_metadata_graph"


def test_the_optimizer_is_sgd_with_the_papers_momentum_of_0_9():
    from keras_resnet.train_step import make_optimizer
    optimizer, _ = make_optimizer(cifar_train_config(20))
    w = keras.Variable(1.0)
    for _ in range(2):  # v = 0.9 v - lr g; w += v, with lr 0.1 and g 1: w = 0.9, then 0.71.
        optimizer.apply_gradients([(tf.constant(1.0), w)])
    assert float(w.numpy()) == pytest.approx(0.71) and not optimizer.nesterov


def test_the_logged_training_loss_and_error_are_per_image_over_the_batch(tmp_path):
    def zero_logits(dtype):  # Every class at probability 1/4: the cross-entropy is ln 4 per image,
        inputs = keras.Input((32, 32, 3))  # and the prediction is class 0 (the first of equal logits).
        pooled = keras.layers.GlobalAveragePooling2D()(inputs)
        return keras.Model(inputs, keras.layers.Dense(4, kernel_initializer="zeros")(pooled))

    task = tiny_task(build_model=zero_logits)
    labels = next(iter(task.train_dataset(None, 0)))[1].numpy()
    training.train(tiny_config(train_steps=1, log_every=1, eval_every=1), task, str(tmp_path))
    logged = read_scalars(str(tmp_path / "train"))
    assert logged["loss"][0] == (1, pytest.approx(np.log(4), rel=1e-5))
    assert logged["error"][0] == (1, pytest.approx(100.0 * np.mean(labels != 0)))


def test_loss_falls_on_a_learnable_task(tmp_path):
    # BN over batches of 16 from 64 images: one logged interval can spike after the loss has fallen
    # (CI once logged 1.27 at step 30 after 0.71 at step 5, unseeded). So the LR falls tenfold for the
    # last third, as the paper's schedule ends, and the last three logs are taken by their median.
    keras.utils.set_random_seed(0)
    stats = training.train(tiny_config(train_steps=30, lr=0.05, lr_boundaries=(20,), log_every=5, eval_every=30),
                           tiny_task(), str(tmp_path))
    losses = [v for _, v in read_scalars(str(tmp_path / "train"))["loss"]]
    assert np.median(losses[-3:]) < 0.5 * losses[0]
    assert stats["test_error"] < 50


def test_resume_continues_at_the_next_step_with_the_right_lr(tmp_path):
    config = tiny_config(train_steps=6, lr_boundaries=(4,), log_every=1)
    first = training.train(config, tiny_task(), str(tmp_path), stop_after=3)
    assert first["step"] == 3 and not first["complete"]
    assert not (tmp_path / "model.keras").exists()
    training.train(config, tiny_task(), str(tmp_path))
    scalars = read_scalars(str(tmp_path / "train"))
    assert [s for s, _ in scalars["loss"]] == [1, 2, 3, 4, 5, 6]
    # Every step trained and logged once: the resumed run did not start again from step 1.
    logged = [e.step for path in sorted(glob.glob(str(tmp_path / "train" / "events.out.tfevents.*")))
              for e in tf.compat.v1.train.summary_iterator(path) if any(v.tag == "loss" for v in e.summary.value)]
    assert sorted(logged) == [1, 2, 3, 4, 5, 6]
    assert [round(v, 6) for _, v in scalars["learning_rate"]] == [0.05] * 4 + [0.005] * 2


def test_stats_of_a_resumed_run_count_the_wall_time_of_every_segment(tmp_path):
    config = tiny_config(train_steps=4)
    training.train(config, tiny_task(), str(tmp_path), stop_after=2)
    # As if the first segment had trained for a whole session: it started 1,000 s before its last checkpoint.
    record = json.loads((tmp_path / "provenance.json").read_text())
    first = record["segments"][0]
    first["start_time"] = (datetime.datetime.fromisoformat(first["end_time"])
                           - datetime.timedelta(seconds=1000)).isoformat()
    (tmp_path / "provenance.json").write_text(json.dumps(record))
    stats = training.train(config, tiny_task(), str(tmp_path))
    assert stats["complete"] and stats["segments"] == 2
    assert stats["wall_seconds"] < 1000 <= stats["run_wall_seconds"] <= 1000 + stats["wall_seconds"] + 2
    assert json.loads((tmp_path / "stats.json").read_text())["run_wall_seconds"] == stats["run_wall_seconds"]


def test_stats_of_a_run_trained_in_one_go_have_one_segment_and_its_wall_time(tmp_path):
    stats = training.train(tiny_config(train_steps=2), tiny_task(), str(tmp_path))
    assert stats["segments"] == 1
    assert stats["run_wall_seconds"] == pytest.approx(stats["wall_seconds"], abs=2)


def test_interrupted_and_resumed_run_equals_uninterrupted_run(tmp_path, op_determinism):
    config = tiny_config(train_steps=6, log_every=1)
    keras.utils.set_random_seed(1)
    training.train(config, tiny_task(), str(tmp_path / "whole"))
    keras.utils.set_random_seed(1)
    training.train(config, tiny_task(), str(tmp_path / "parts"), stop_after=2)
    keras.utils.set_random_seed(99)  # The resumed run must not depend on the process's seed.
    training.train(config, tiny_task(), str(tmp_path / "parts"))
    whole = keras.models.load_model(tmp_path / "whole" / "model.keras")
    parts = keras.models.load_model(tmp_path / "parts" / "model.keras")
    for a, b in zip(whole.weights, parts.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    loss = lambda run: [v for _, v in read_scalars(str(tmp_path / run / "train"))["loss"]]
    assert loss("whole") == loss("parts")


def test_a_run_stopped_between_two_logs_reads_back_as_the_uninterrupted_runs_curve(tmp_path, op_determinism):
    config = tiny_config(train_steps=6, log_every=3)
    keras.utils.set_random_seed(1)
    training.train(config, tiny_task(), str(tmp_path / "whole"))
    keras.utils.set_random_seed(1)
    training.train(config, tiny_task(), str(tmp_path / "parts"), stop_after=2)  # Logs at 2: off the grid.
    training.train(config, tiny_task(), str(tmp_path / "parts"))
    whole, parts = (read_scalars(str(tmp_path / run / "train")) for run in ("whole", "parts"))
    assert [s for s, _ in parts["loss"]] == [2, 3, 6] and [s for s, _ in whole["loss"]] == [3, 6]
    for tag in ("loss", "error"):
        steps, values = zip(*on_log_grid(parts[tag], 3))
        assert steps == (3, 6)
        np.testing.assert_allclose(values, [v for _, v in whole[tag]], rtol=1e-6)


def test_a_run_written_before_the_plateau_and_warmup_settings_changed_still_resumes(tmp_path):
    """config.json of a CIFAR ResNet-20 run from before these settings existed or changed."""
    now = experiment_hparams("cifar10", CifarExperiment(depth=20), cifar_train_config(20))
    before = {k: v for k, v in now.items() if not k.startswith("plateau_")}
    before.update(plateau_patience=0, warmup_window=10, warmup_steps=400)  # Off, so they never mattered.
    (tmp_path / run_config.CONFIG_FILE).write_text(json.dumps(before))
    run_config.check_config(str(tmp_path), now)
    before.update(plateau_patience=3)  # An ImageNet-style rule that was on: the old rule, refused.
    (tmp_path / run_config.CONFIG_FILE).write_text(json.dumps(before))
    with pytest.raises(run_config.ConfigMismatchError, match="plateau_patience: 3 there vs None now"):
        run_config.check_config(str(tmp_path), now)


def test_a_different_configuration_in_model_dir_is_refused(tmp_path):
    training.train(tiny_config(train_steps=2), tiny_task(), str(tmp_path))
    before = sorted(os.listdir(tmp_path))
    other = tiny_task(hparams={"dataset": "toy", "depth": 14, "batch_size": 16, "seed": 0})
    with pytest.raises(run_config.ConfigMismatchError, match="depth: 8 there vs 14 now"):
        training.train(tiny_config(train_steps=2), other, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == before


def test_batch_size_must_divide_across_replicas(tmp_path, two_cpu_strategy):
    strategy = two_cpu_strategy
    with pytest.raises(ValueError, match="batch_size 15 is not divisible by the 2 replicas"):
        training.train(tiny_config(batch_size=15), tiny_task(batch_size=15), str(tmp_path), strategy)
    assert not os.listdir(tmp_path)


def test_two_replicas_follow_one_replica_exactly_without_bn(tmp_path, two_cpu_strategy):
    """Loss divided by the global batch and weight decay divided among replicas:
    two replicas compute the same update as one device."""
    config = tiny_config(train_steps=5, lr=0.1, lr_boundaries=())
    one = training.train(config, tiny_task(build_model=dense_model), str(tmp_path / "one"))
    two = training.train(config, tiny_task(build_model=dense_model), str(tmp_path / "two"),
                         two_cpu_strategy)
    a = keras.models.load_model(tmp_path / "one" / "model.keras")
    b = keras.models.load_model(tmp_path / "two" / "model.keras")
    for u, v in zip(a.weights, b.weights):
        np.testing.assert_allclose(u.numpy(), v.numpy(), rtol=1e-5, atol=1e-6)
    assert one["train_loss"] == pytest.approx(two["train_loss"], rel=1e-5)


def test_two_replicas_train_a_resnet_and_average_bn_statistics(tmp_path, two_cpu_strategy):
    built = []

    def build_model(dtype):
        built.append(cifar_resnet(8, num_classes=4, classifier_activation=None, dtype=dtype))
        return built[-1]

    stats = training.train(tiny_config(train_steps=3), tiny_task(build_model=build_model), str(tmp_path),
                           two_cpu_strategy)
    assert stats["step"] == 3
    moving = built[-1].get_layer("conv2_1_1_bn").moving_mean.value
    first, second = (v.numpy() for v in two_cpu_strategy.experimental_local_results(moving))
    assert np.any(first != 0)
    np.testing.assert_array_equal(first, second)
    with open(tmp_path / "config.json") as f:
        assert json.load(f)["replicas"] == 2


# Groups across replicas: the BN gradient is autodiff's through the combined statistics, the one device's
# the fused kernel's, and BN's gradient cancels (dy - mean(dy) - ...), so they round apart by up to 2x the
# tight tolerance (with op determinism on); taking the all-reduce out misses by 4,500x the loose one.
@pytest.mark.parametrize("group,rtol,atol", [(8, 1e-4, 1e-5), (16, 1e-3, 1e-4)],
                         ids=["groups_within_a_replica", "groups_spanning_two_replicas"])
def test_bn_groups_make_two_replicas_of_8_train_as_one_replica_of_16(tmp_path, two_cpu_strategy, group, rtol, atol):
    """The paper's BN batch on any number of devices: one replica of 16 images and two of 8 compute
    the same loss, weights and moving statistics, with BN groups of 8 (each replica's own) and of 16
    (two replicas of 8 normalise their 16 images together, as on 4 GPUs with the paper's 64)."""
    def build_model(dtype):
        keras.utils.set_random_seed(0)
        return cifar_resnet(8, num_classes=4, classifier_activation=None, bn_group_size=group, dtype=dtype)

    config = tiny_config(train_steps=2, lr=0.1, lr_boundaries=())
    one = training.train(config, tiny_task(build_model=build_model), str(tmp_path / "one"))
    two = training.train(config, tiny_task(build_model=build_model), str(tmp_path / "two"), two_cpu_strategy)
    a = keras.models.load_model(tmp_path / "one" / "model.keras")
    b = keras.models.load_model(tmp_path / "two" / "model.keras")
    assert one["train_loss"] == pytest.approx(two["train_loss"], rel=1e-5)
    for u, v in zip(a.weights, b.weights):  # BN moving statistics included.
        np.testing.assert_allclose(u.numpy(), v.numpy(), rtol=rtol, atol=atol, err_msg=u.path)


def test_a_checkpoint_holds_the_bn_statistics_averaged_over_replicas(tmp_path, two_cpu_strategy):
    """A checkpoint between evaluations (step 2 of 4) already holds the mean of the replicas' moving
    statistics, as one replica of 16 with BN groups of 8 computes them, not replica 0's own copy."""
    def build_model(dtype):
        keras.utils.set_random_seed(0)
        return cifar_resnet(8, num_classes=4, classifier_activation=None, bn_group_size=8, dtype=dtype)

    config = tiny_config(train_steps=4, lr=0.1, lr_boundaries=(), checkpoint_every=2, eval_every=100, log_every=100)
    training.train(config, tiny_task(build_model=build_model), str(tmp_path / "one"), stop_after=2)
    training.train(config, tiny_task(build_model=build_model), str(tmp_path / "two"), two_cpu_strategy, stop_after=2)
    one, two = (tf.train.load_checkpoint(str(tmp_path / run / "checkpoints" / "ckpt-2")) for run in ("one", "two"))
    names = [n for n in one.get_variable_to_shape_map() if "moving_" in n and "OPTIMIZER" not in n]
    assert len(names) == 2 * 7  # Mean and variance of the 7 BN layers of ResNet-8.
    for name in names:
        np.testing.assert_allclose(two.get_tensor(name), one.get_tensor(name), rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("precision,compute", [("bfloat16", "bfloat16"), ("float16", "float16")])
def test_mixed_precision_runs_with_float32_variables(tmp_path, precision, compute):
    stats = training.train(tiny_config(train_steps=2, mixed_precision=precision), tiny_task(), str(tmp_path))
    assert np.isfinite(stats["train_loss"])
    model = keras.models.load_model(tmp_path / "model.keras")
    assert model.get_layer("conv1_conv").compute_dtype == compute
    assert all(w.dtype == "float32" for w in model.weights)
    assert keras.mixed_precision.global_policy().name == "float32"


def test_bfloat16_on_a_cpu_without_bfloat16_instructions_logs_a_warning(tmp_path, monkeypatch):
    from absl import logging as absl_logging
    from keras_resnet import hardware
    warnings = []
    monkeypatch.setattr(hardware, "emulated_bfloat16_warning", lambda: "bf16 is emulated here")
    monkeypatch.setattr(absl_logging, "warning", lambda msg, *args: warnings.append(msg % args if args else msg))
    training.train(tiny_config(train_steps=1, mixed_precision="bfloat16"), tiny_task(), str(tmp_path / "bf16"))
    training.train(tiny_config(train_steps=1), tiny_task(), str(tmp_path / "fp32"))
    assert warnings.count("bf16 is emulated here") == 1


def test_float16_gradient_overflow_is_skipped_by_loss_scaling_without_stopping(tmp_path):
    def overflowing_model(dtype):
        # Raw pixels (about +-100) into one Dense layer: at the initial loss scale 2**15 the
        # float16 kernel gradient (~1e6) overflows, while the loss itself stays finite.
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(dtype=dtype),
                                 keras.layers.Dense(4, dtype=dtype)])

    config = tiny_config(train_steps=12, lr=1e-5, log_every=12, eval_every=12, checkpoint_every=12,
                         mixed_precision="float16")
    task = tiny_task(build_model=overflowing_model)
    initial = overflowing_model("mixed_float16").get_weights()
    stats = training.train(config, task, str(tmp_path))
    assert stats["complete"] and np.isfinite(stats["train_loss"])
    assert stats["loss_scale"] < 2.0**15  # Overflowing steps were skipped, halving the scale.
    trained = keras.models.load_model(tmp_path / "model.keras").get_weights()
    assert all(np.all(np.isfinite(w)) for w in trained)
    assert not np.allclose(trained[0], initial[0])  # The steps after the overflow did update.
    scales = read_scalars(str(tmp_path / "train"))["loss_scale"]
    assert scales and scales[-1][1] == stats["loss_scale"]


def test_float16_overflow_on_one_replica_skips_the_step_on_all_and_keeps_the_schedule(tmp_path, two_cpu_strategy):
    """Two replicas, only the second one's step-1 gradients overflow: nobody applies step 1,
    the loss scale halves once, and the optimizer's step count (the LR schedule) stays global."""
    def model(dtype):
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(dtype=dtype),
                                 keras.layers.Dense(4, dtype=dtype)])

    def train_dataset(ctx, start_step):
        # One input pipeline feeds the replicas in turn: (replica 0, replica 1) per step.
        rng = np.random.default_rng(0)
        batches = [rng.normal(0, 0.01, (8, 32, 32, 3)).astype("float32") for _ in range(8)]
        batches[1] *= 1e6  # Step 1, replica 1: float16 gradients overflow at any loss scale.
        labels = np.zeros((8,), "int32")
        return tf.data.Dataset.from_tensor_slices((np.stack(batches), np.stack([labels] * 8))).skip(2 * start_step)

    task = run_config.Task(build_model=model, train_dataset=train_dataset, evaluations={},
                         hparams={"dataset": "toy-overflow"})
    initial = model("mixed_float16").get_weights()
    config = tiny_config(train_steps=1, lr=0.1, lr_boundaries=(), mixed_precision="float16",
                         log_every=1, checkpoint_every=1)
    stats = training.train(config, task, str(tmp_path), two_cpu_strategy)
    assert stats["loss_scale"] == 2.0**14  # Halved once, the same on both replicas.
    after_skip = keras.models.load_model(tmp_path / "model.keras").get_weights()
    for a, b in zip(after_skip, initial):
        np.testing.assert_array_equal(a, b)  # Step 1 applied nowhere.
    stats = training.train(dataclasses.replace(config, train_steps=3), task, str(tmp_path), two_cpu_strategy)
    assert stats["complete"] and stats["loss_scale"] == 2.0**14
    reader = tf.train.load_checkpoint(str(tmp_path / "checkpoints"))
    # The SGD inside the loss-scale optimizer counts the steps that the LR schedule sees.
    assert reader.get_tensor("optimizer/inner_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 3
    assert not np.allclose(keras.models.load_model(tmp_path / "model.keras").get_weights()[0], initial[0])


def test_a_failed_final_model_write_names_the_checkpoint_that_is_kept(tmp_path):
    (tmp_path / "model.keras").mkdir()  # model.save cannot write a file where a folder is.
    with pytest.raises(training.CheckpointWriteError, match=r"could not write the final model .*ckpt-6\) is kept"):
        training.train(tiny_config(), tiny_task(), str(tmp_path))
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-6")
    assert not (tmp_path / "stats.json").exists()


def test_a_peer_lost_outside_a_train_step_is_reported_as_a_lost_worker(tmp_path, monkeypatch):
    # Multi-worker: a stopped peer can first break the BN sync of a checkpoint, not a train step.
    calls = []

    def sync(model, strategy):
        calls.append(1)
        if len(calls) == 2:
            raise tf.errors.UnavailableError(None, None, "recvmsg:Connection reset by peer")

    monkeypatch.setattr(training.distribute, "sync_batch_norm_statistics", sync)
    config = tiny_config(train_steps=8, checkpoint_every=2, log_every=4)
    with pytest.raises(training.WorkerLostError,
                       match=r"^a peer worker stopped after step \d; the last checkpoint \(.*ckpt-2\) is kept"):
        training.train(config, tiny_task(), str(tmp_path))
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-2")


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    # The first checkpoint after the bad step (4) comes before any log (8): the checkpoint itself must refuse.
    config = tiny_config(train_steps=8, checkpoint_every=2, log_every=8, eval_every=100)
    with pytest.raises(training.NonFiniteLossError, match="loss or gradients became NaN/Inf at step 3"):
        training.train(config, tiny_task(nan_at_step=3), str(tmp_path))
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-2")
    reader = tf.train.load_checkpoint(str(tmp_path / "checkpoints" / "ckpt-2"))
    weights = [n for n in reader.get_variable_to_shape_map() if n.startswith("model/")]
    assert weights
    for name in weights:
        assert np.all(np.isfinite(reader.get_tensor(name))), name


def test_train_config_rejects_bad_values():
    with pytest.raises(ValueError, match="mixed_precision must be one of none, float16, bfloat16, got 'fp8'"):
        run_config.TrainConfig(mixed_precision="fp8")
    with pytest.raises(ValueError, match="train_steps must be a positive integer, got 0"):
        run_config.TrainConfig(train_steps=0)
    with pytest.raises(ValueError, match="lr must be a positive number, got -0.1"):
        run_config.TrainConfig(lr=-0.1)


def test_synced_bn_statistics_are_the_mean_of_the_replicas_values(two_cpu_strategy):
    from keras_resnet import distribute
    strategy = two_cpu_strategy
    with strategy.scope():
        model = cifar_resnet(8, num_classes=4)
    layer = model.get_layer("conv2_1_1_bn")

    @tf.function
    def diverge():
        def replica_fn():
            replica = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.float32)
            layer.moving_mean.assign(tf.fill(layer.moving_mean.shape, 1.0 + 2.0 * replica))  # 1 and 3.
            layer.moving_variance.assign(tf.fill(layer.moving_variance.shape, 4.0 * (replica + 1.0)))  # 4 and 8.
        strategy.run(replica_fn)

    diverge()
    local = lambda v: [x.numpy() for x in strategy.experimental_local_results(v.value)]
    assert [a[0] for a in local(layer.moving_mean)] == [1.0, 3.0]  # The copies really differ first.
    distribute.sync_batch_norm_statistics(model, strategy)
    for copy in local(layer.moving_mean):
        np.testing.assert_array_equal(copy, np.full(copy.shape, 2.0, np.float32))
    for copy in local(layer.moving_variance):
        np.testing.assert_array_equal(copy, np.full(copy.shape, 6.0, np.float32))


def test_a_run_recorded_before_the_tf32_setting_resumes_with_tf32_off_but_not_on(tmp_path):
    saved = {"dataset": "toy", "depth": 8}  # config.json of a run from before --tf32 existed.
    (tmp_path / run_config.CONFIG_FILE).write_text(json.dumps(saved))
    run_config.check_config(str(tmp_path), {**saved, "tf32": False})
    with pytest.raises(run_config.ConfigMismatchError, match=r"tf32: False there \(not recorded: the value before the setting existed\) vs True now"):
        run_config.check_config(str(tmp_path), {**saved, "tf32": True})


def test_an_imagenet_run_recorded_before_resize_antialias_existed_resumes_antialiased_but_not_plain(tmp_path):
    saved = {"dataset": "imagenet2012", "depth": 50}  # config.json of a run from before the setting existed.
    (tmp_path / run_config.CONFIG_FILE).write_text(json.dumps(saved))
    run_config.check_config(str(tmp_path), {**saved, "resize_antialias": True})
    with pytest.raises(run_config.ConfigMismatchError, match=r"resize_antialias: True there \(not recorded: .*\) vs False now"):
        run_config.check_config(str(tmp_path), {**saved, "resize_antialias": False})


def test_a_run_recorded_before_weight_decay_on_existed_resumes_with_kernels_but_not_all(tmp_path):
    saved = {"dataset": "toy", "depth": 8}
    (tmp_path / run_config.CONFIG_FILE).write_text(json.dumps(saved))
    run_config.check_config(str(tmp_path), {**saved, "weight_decay_on": "kernels"})
    with pytest.raises(run_config.ConfigMismatchError, match=r"weight_decay_on: 'kernels' there \(not recorded: .*\) vs 'all' now"):
        run_config.check_config(str(tmp_path), {**saved, "weight_decay_on": "all"})


def test_a_cifar_run_from_before_the_decay_all_default_is_refused_with_how_to_resume_it(tmp_path):
    saved = experiment_hparams("cifar10", CifarExperiment(depth=20, weight_decay_on="kernels"), cifar_train_config(20))
    (tmp_path / run_config.CONFIG_FILE).write_text(json.dumps(run_config.jsonable(saved)))
    now = experiment_hparams("cifar10", CifarExperiment(depth=20), cifar_train_config(20))  # No flag given.
    with pytest.raises(run_config.ConfigMismatchError,
                       match=r"weight_decay_on: 'kernels' there vs 'all' now\); to resume it, give the settings"):
        run_config.check_config(str(tmp_path), now)
    run_config.check_config(str(tmp_path), {**now, "weight_decay_on": "kernels"})  # --weight_decay_on=kernels.


def test_a_cifar_run_config_without_weight_decay_on_is_the_kernels_only_experiment_it_trained():
    assert CifarExperiment().weight_decay_on == "all"  # The recipe's default since 2026-12-04...
    assert CifarExperiment.from_run_config({"depth": 56}).weight_decay_on == "kernels"  # ...not what older runs did.
    assert CifarExperiment.from_run_config({"depth": 56, "weight_decay_on": "all"}).weight_decay_on == "all"


def test_xla_on_two_replicas_trains_like_without_it(tmp_path, two_cpu_strategy):
    """--jit_compile compiles each replica's forward and backward pass only; the update (a cross-replica
    merge_call in Keras's optimizer) stays outside the compiled function, where MirroredStrategy allows it."""
    def build_model(dtype):
        keras.utils.set_random_seed(0)
        return cifar_resnet(8, num_classes=4, classifier_activation=None, bn_group_size=8, dtype=dtype)

    stats = {}
    for jit in (False, True):
        config = tiny_config(train_steps=2, lr=0.1, lr_boundaries=(), jit_compile=jit)
        stats[jit] = training.train(config, tiny_task(build_model=build_model), str(tmp_path / f"jit{jit}"),
                                    two_cpu_strategy)
    assert stats[True]["complete"]
    assert stats[True]["train_loss"] == pytest.approx(stats[False]["train_loss"], rel=1e-3)
