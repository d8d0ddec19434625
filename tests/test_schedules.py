"""Specification of the ImageNet plateau rule (section 3.4: /10 "when the error plateaus")."""

import json
import math

import numpy as np
import pytest

from keras_resnet import run_config, train_step, training
from keras_resnet.runs import read_scalars
from keras_resnet.schedules import PaperSchedule, PlateauDecay
from keras_resnet.tasks import IMAGENET_PLATEAU, IMAGENET_STEPS, experiment_hparams, imagenet_train_config
from keras_resnet.tasks import ImagenetExperiment
from training_helpers import tiny_config, tiny_task


def _plateau(patience=10, threshold=0.5, max_drops=3):
    schedule = PaperSchedule(0.1)
    return schedule, PlateauDecay(schedule, patience, threshold, max_drops)


def test_plateau_drops_when_the_gain_over_the_patience_window_is_below_the_threshold():
    schedule, plateau = _plateau()
    assert [plateau.update(s, e) for s, e in [(5, 50.0), (10, 40.0), (15, 39.9), (20, 39.8)]] == [
        False, False, False, True]  # At 20: best 39.8 vs 40.0 at step 10, a gain of 0.2 < 0.5.
    assert float(schedule(20)) == pytest.approx(0.01)


def test_plateau_gain_is_between_best_errors_so_far_so_a_noisy_high_evaluation_is_no_progress():
    _, plateau = _plateau(patience=10, threshold=0.5)
    # At 22 the error is 40.0, below the noisy 45.0 of step 12, but the best so far (30.0 since step 6) has
    # not moved in 10 steps: a plateau. Compared with the raw 45.0 it would look like a gain of 5 points.
    assert [plateau.update(s, e) for s, e in [(1, 50.0), (6, 30.0), (12, 45.0), (22, 40.0)]] == [
        False, False, False, True]


def test_plateau_gain_of_exactly_the_threshold_is_progress():
    _, plateau = _plateau(patience=10, threshold=0.5)
    assert [plateau.update(s, e) for s, e in [(1, 40.0), (11, 39.5)]] == [False, False]


def test_plateau_waits_a_full_window_before_judging():
    _, plateau = _plateau(patience=10)
    assert not any(plateau.update(s, 50.0) for s in (1, 2, 5, 9))  # Nothing measured 10 steps earlier yet.
    assert plateau.update(11, 50.0)


def test_plateau_keeps_the_rate_while_the_error_falls_faster_than_the_threshold():
    _, plateau = _plateau(patience=10, threshold=0.5)
    assert not any(plateau.update(s, 60.0 - 0.1 * s) for s in range(5, 200, 5))  # 1 point per 10 steps.


def test_plateau_drops_at_most_max_drops_times_and_a_window_apart():
    schedule, plateau = _plateau(patience=10, max_drops=2)
    drops = [s for s in range(1, 100) if plateau.update(s, 50.0)]
    assert drops == [11, 21]
    assert float(schedule(100)) == pytest.approx(0.001)


FLOORS = (38.0, 27.0, 25.0, 24.8)  # A ResNet-like validation error at LR 0.1, 0.01, 0.001, 1e-4.
TIME_CONSTANTS = (40_000, 8_000, 8_000, 8_000)


def _drops_on_a_synthetic_error_curve(eval_every: int, noise: float) -> tuple[list[int], float]:
    """The ImageNet schedule (IMAGENET_PLATEAU) fed an error curve that falls exponentially
    towards the floor of its current rate and jumps to the next floor after each drop."""
    config = imagenet_train_config()
    schedule = PaperSchedule(config.lr)
    plateau = PlateauDecay(schedule, config.plateau_patience_steps, config.plateau_threshold,
                           config.plateau_max_drops)
    level, start_step, start_error, drops = 0, 0, 90.0, []
    for step in range(eval_every, IMAGENET_STEPS + 1, eval_every):
        clean = FLOORS[level] + (start_error - FLOORS[level]) * math.exp(-(step - start_step) / TIME_CONSTANTS[level])
        measured = clean + (np.random.default_rng(step).normal(0.0, noise) if noise else 0.0)
        if plateau.update(step, measured):
            drops.append(step)
            level, start_step, start_error = level + 1, step, clean
    return drops, float(schedule(IMAGENET_STEPS))


def test_imagenet_schedule_drops_three_times_in_60e4_iterations_whatever_the_evaluation_interval():
    by_interval = {every: _drops_on_a_synthetic_error_curve(every, noise=0.0) for every in (1000, 2000, 5000)}
    for every, (drops, final_lr) in by_interval.items():
        assert len(drops) == 3 and final_lr == pytest.approx(1e-4), (every, drops)
        assert drops[0] > 150_000  # Not while the error still falls by more than 0.5 points per 50k.
    # Up to the interval itself per drop: the error is only known where it is measured.
    reference = by_interval[1000][0]
    for every, (drops, _) in by_interval.items():
        assert all(abs(a - b) <= every * (k + 1) for k, (a, b) in enumerate(zip(drops, reference))), (every, drops)


@pytest.mark.parametrize("eval_every", [2000, 5000])
def test_imagenet_schedule_is_robust_to_the_noise_of_the_validation_error(eval_every):
    # 0.2 points: the binomial std of a 30% top-1 error measured on 50,000 images.
    drops, final_lr = _drops_on_a_synthetic_error_curve(eval_every, noise=0.2)
    assert len(drops) == 3 and final_lr == pytest.approx(1e-4)
    assert drops[0] > 150_000 and all(b - a >= IMAGENET_PLATEAU["patience_steps"] for a, b in zip(drops, drops[1:]))


def test_imagenet_patience_is_in_iterations_and_scales_with_the_run_length():
    assert imagenet_train_config().plateau_patience_steps == 50_000
    assert imagenet_train_config(60_000).plateau_patience_steps == 5_000
    assert imagenet_train_config(plateau=False).plateau_patience_steps == 0
    assert imagenet_train_config(eval_every=2000).plateau_patience_steps == 50_000


def test_a_resume_that_would_change_the_plateau_rule_is_refused(tmp_path):
    experiment = ImagenetExperiment(depth=18)
    saved = experiment_hparams("imagenet2012", experiment, imagenet_train_config())
    (tmp_path / run_config.CONFIG_FILE).write_text(json.dumps(saved))
    changed = imagenet_train_config(plateau_threshold=0.1)
    with pytest.raises(run_config.ConfigMismatchError, match="plateau_threshold: 0.5 there vs 0.1 now"):
        run_config.check_config(str(tmp_path), experiment_hparams("imagenet2012", experiment, changed))
    other_interval = imagenet_train_config(eval_every=1000)  # A runtime setting: allowed.
    run_config.check_config(str(tmp_path), experiment_hparams("imagenet2012", experiment, other_interval))


def _flat_error_task():
    task = tiny_task()
    task.evaluations = {"validation": lambda model: {"loss": 1.0, "error": 0.5}}
    return task


def test_training_divides_the_rate_on_plateaus_and_resumes_the_plateau_state(tmp_path):
    config = tiny_config(train_steps=8, lr=0.1, lr_boundaries=(), eval_every=1, log_every=1,
                         checkpoint_every=1, plateau_patience_steps=2, plateau_max_drops=2)
    training.train(config, _flat_error_task(), str(tmp_path / "whole"))
    lrs = [round(v, 6) for _, v in read_scalars(str(tmp_path / "whole" / "train"))["learning_rate"]]
    assert lrs == [0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 0.001]  # Drops after steps 3 and 5, then no more.
    training.train(config, _flat_error_task(), str(tmp_path / "split"), stop_after=4)
    training.train(config, _flat_error_task(), str(tmp_path / "split"))
    resumed = [round(v, 6) for _, v in read_scalars(str(tmp_path / "split" / "train"))["learning_rate"]]
    assert resumed == lrs


def test_train_config_rejects_bad_plateau_settings():
    with pytest.raises(ValueError, match="plateau_patience_steps must be an integer >= 0, got -1"):
        run_config.TrainConfig(plateau_patience_steps=-1)
    with pytest.raises(ValueError, match="plateau_threshold must be a number >= 0, got -0.5"):
        run_config.TrainConfig(plateau_threshold=-0.5)


@pytest.mark.parametrize("train_steps", [IMAGENET_STEPS, 60_000])
def test_the_imagenet_steps_schedule_divides_by_10_every_30_epochs_of_120(train_steps):
    # --lr_schedule=steps: fb.resnet.torch's fixed schedule, 0.1 / 10 at epochs 30, 60 and 90 of 120 (scaled).
    config = imagenet_train_config(train_steps, plateau=False)
    epoch = train_steps // 120
    assert config.lr_boundaries == (30 * epoch, 60 * epoch, 90 * epoch) and config.plateau_patience_steps == 0
    _, schedule = train_step.make_optimizer(config)
    lrs = [float(schedule(e * epoch)) for e in (0, 29, 30, 59, 60, 89, 90, 119)]
    np.testing.assert_allclose(lrs, [0.1, 0.1, 0.01, 0.01, 1e-3, 1e-3, 1e-4, 1e-4], rtol=1e-6)
