"""Specification of the report: tables and figures from event files written by the test."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import keras
from keras_resnet import cifar_resnet, claims, figures, reporting, run_times
from keras_resnet import runs as runs_lib
from tools.report import write_report


def recipe_config(depth, residual=True, train_steps=64_000, seed=0, **changes):
    """config.json as the CIFAR recipe writes it (its defaults reproduce the paper)."""
    from keras_resnet.tasks import CifarExperiment, cifar_train_config, experiment_hparams
    config = experiment_hparams("cifar10", CifarExperiment(depth=depth, residual=residual),
                                cifar_train_config(depth, train_steps, seed=seed))
    config.update({"replicas": 1, "command": f"python -m recipes.cifar10 --depth={depth}", **changes})
    return json.loads(json.dumps(config))


def fake_run(root, name, depth, residual, seed, test_errors, train_steps=64_000, finished=True, wall=None,
             reached=None, **changes):
    """A run folder as the trainer writes it: config.json, train/test event files up to step ``reached``
    (default ``train_steps``) and, once finished, stats.json. ``wall``: seconds per logged interval
    (images/s is derived from it)."""
    folder = os.path.join(root, name)
    os.makedirs(folder)
    config = recipe_config(depth, residual, train_steps, seed, **changes)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f)
    steps = [(i + 1) * (reached or train_steps) // len(test_errors) for i in range(len(test_errors))]
    for split, values in (("train", [e + 5 for e in test_errors]), ("test", test_errors)):
        writer = tf.summary.create_file_writer(os.path.join(folder, split))
        with writer.as_default():
            for i, (step, value) in enumerate(zip(steps, values)):
                tf.summary.scalar("error", value, step=step)
                if split == "train" and wall:
                    previous = steps[i - 1] if i else 0
                    tf.summary.scalar("images_per_second", (step - previous) * 128 / wall, step=step)
        writer.close()
    if finished:
        with open(os.path.join(folder, "stats.json"), "w") as f:
            json.dump({"complete": True, "step": train_steps, "test_error": test_errors[-1]}, f)
    return folder


def table_rows(root):
    table, notes = reporting.cifar_table(runs_lib.find_runs(str(root)))
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]], notes


def test_table_reports_final_error_mean_std_best_and_delta(tmp_path):
    for seed, final in enumerate((7.0, 8.0, 9.0)):
        fake_run(tmp_path, f"r20-{seed}", 20, True, seed, [50.0, 3.0, final])  # 3.0 mid-run is NOT picked.
    (cells,), notes = table_rows(tmp_path)
    assert cells[0] == "ResNet-20" and cells[1] == "8.75"  # The paper's Table 6.
    assert cells[2] == "8.00 +- 1.00"       # Mean and sample std over seeds at the final iteration.
    assert cells[3] == "3" and cells[4] == "7.00"
    assert cells[5] == "-0.75"
    assert cells[6] == "64,000" and cells[7] == "none"
    assert notes == []


def test_short_runs_are_marked_and_not_compared(tmp_path):
    fake_run(tmp_path, "p20", 20, False, 0, [60.0, 40.0], train_steps=2000)
    fake_run(tmp_path, "r20", 20, True, 0, [60.0, 30.0], train_steps=2000)
    rows, _ = table_rows(tmp_path)
    assert [r[0] for r in rows] == ["plain-20", "ResNet-20"]
    assert all(r[7].startswith("SHORT: 2,000 of 64,000") and r[5].startswith("- (") for r in rows)
    assert rows[1][5] == "- (shorter schedule)"
    assert rows[0][1] == "Figure 6 only"


def test_plain_rows_name_figure_6_and_other_shortcuts_no_paper_row(tmp_path):
    fake_run(tmp_path, "p56", 56, False, 0, [60.0, 13.0])
    fake_run(tmp_path, "r20b", 20, True, 0, [60.0, 8.0], shortcut="B")
    plain, option_b = table_rows(tmp_path)[0]
    assert plain[:2] == ["plain-56", "Figure 6 only"]
    assert plain[5] == "- (plain nets are drawn in Figure 6, with no number in Table 6)"
    assert option_b[:2] == ["ResNet-20 (B)", "-"] and option_b[5] == "- (no such row in Table 6)"


def test_an_unfinished_run_is_listed_at_its_step_never_averaged_or_compared(tmp_path):
    fake_run(tmp_path, "done", 20, True, 0, [50.0, 9.0])
    fake_run(tmp_path, "running", 20, True, 1, [50.0, 30.0], finished=False, reached=20_000)
    (row,), notes = table_rows(tmp_path)
    assert row[2] == "9.00 +- 0.00" and row[3] == "1"
    assert len(notes) == 1 and "seed 1" in notes[0]
    assert "unfinished at step 20,000 of 64,000, test error 30.00 at step 20,000" in notes[0]


def test_runs_of_different_configurations_are_separate_rows_that_say_how_they_differ(tmp_path):
    fake_run(tmp_path, "paper", 20, True, 0, [50.0, 8.0])
    fake_run(tmp_path, "bf16", 20, True, 0, [50.0, 9.0], mixed_precision="bfloat16")
    fake_run(tmp_path, "ungrouped", 20, True, 0, [50.0, 10.0], bn_group_size=None)
    fake_run(tmp_path, "two-gpus", 20, True, 1, [50.0, 8.5], replicas=2)
    rows, _ = table_rows(tmp_path)
    by_difference = {r[7]: r for r in rows}
    assert set(by_difference) == {"none", "mixed_precision=bfloat16 (paper: none)",
                                  "bn_group_size=None (paper: 64)"}
    assert sum(r[7] == "none" for r in rows) == 2  # 1 and 2 replicas: separate rows, both the paper's recipe.
    assert all(r[3] == "1" for r in rows)


def test_a_run_that_decays_other_parameters_than_its_recipe_is_a_row_and_a_label_of_its_own(tmp_path):
    fake_run(tmp_path, "kernels", 56, True, 0, [50.0, 8.0], weight_decay_on="kernels")
    fake_run(tmp_path, "all", 56, True, 0, [50.0, 7.0])  # The CIFAR-10 recipe decays every parameter.
    rows, _ = table_rows(tmp_path)
    assert sorted(r[0] for r in rows) == ["ResNet-56", "ResNet-56 (decay kernels)"]
    row = {r[0]: r for r in rows}["ResNet-56 (decay kernels)"]
    assert row[7] == "weight_decay_on=kernels (paper: not stated; recipe: all)"
    assert row[5] == "+1.03"  # The other reading of what the paper leaves unstated is still compared with it.
    older = recipe_config(56)
    del older["weight_decay_on"]  # A run from before the setting existed decayed the kernels.
    assert runs_lib.run_label(older) == "ResNet-56 (decay kernels)"
    assert runs_lib.run_label({"depth": 34, "shortcut": "B", "dataset": "imagenet2012",
                               "weight_decay_on": "all"}) == "ResNet-34 (B, decay all)"  # ImageNet's: kernels.
    assert runs_lib.run_label({"depth": 34, "shortcut": "B", "dataset": "imagenet2012"}) == "ResNet-34 (B)"


def test_the_report_gives_the_command_that_repeats_a_kernels_only_cifar_run_with_todays_defaults(tmp_path):
    older = recipe_config(110, command="python -m recipes.cifar10 --depth=110")
    del older["weight_decay_on"]  # Recorded before the setting existed: it decayed the kernels.
    assert reporting.command_today(older) == "python -m recipes.cifar10 --depth=110 --weight_decay_on=kernels"
    assert reporting.command_today(recipe_config(56)) is None  # Today's default: the command still trains it.
    assert reporting.command_today({**older, "command": "python -m recipes.cifar10 --weight_decay_on=kernels"}) is None
    assert reporting.command_today({"dataset": "imagenet2012", "command": "python -m recipes.imagenet"}) is None
    fake_run(tmp_path / "runs", "r110", 110, True, 0, [50.0, 7.0], weight_decay_on="kernels")
    text = open(write_report(str(tmp_path / "runs"), str(tmp_path / "out"), None, 4)).read()
    assert "--depth=110`; today: `python -m recipes.cifar10 --depth=110 --weight_decay_on=kernels`" in text


def test_a_runs_seed_joins_its_label_notes_in_one_pair_of_parentheses(tmp_path):
    fake_run(tmp_path, "kernels", 56, True, 0, [50.0, 7.0], weight_decay_on="kernels")
    fake_run(tmp_path, "plain", 20, False, 1, [50.0, 9.0])
    runs = runs_lib.find_runs([str(tmp_path)])
    for table in (run_times.time_to_accuracy_table(runs), run_times.training_time_table(runs)):
        assert "| ResNet-56 (decay kernels, seed 0) |" in table
        assert "| plain-20 (seed 1) |" in table
    fake_run(tmp_path, "unfinished", 56, True, 2, [50.0, 20.0], finished=False, reached=8_000,
             weight_decay_on="kernels")
    notes = reporting._unfinished_notes([r for r in runs_lib.find_runs([str(tmp_path)]) if not runs_lib.is_finished(r)])
    assert notes[0].startswith(f"ResNet-56 (decay kernels, seed 2, `{tmp_path / 'unfinished'}`): unfinished at step 8,000")


def test_resnet110_mean_is_compared_with_the_papers_mean_and_best_with_its_best(tmp_path):
    for seed, final in enumerate((6.5, 6.7, 6.9)):
        fake_run(tmp_path, f"r110-{seed}", 110, True, seed, [50.0, final])
    (row,), _ = table_rows(tmp_path)
    assert row[1] == "6.61 +- 0.16 (mean); 6.43 (best of 5)"
    assert row[5] == "mean +0.09; best not compared (best of 3, paper best of 5)"  # Best of 3 vs best of 5: unlike.
    for seed, final in ((3, 6.6), (4, 6.8)):
        fake_run(tmp_path, f"r110-{seed}", 110, True, seed, [50.0, final])
    (row,), _ = table_rows(tmp_path)
    assert row[5] == "mean +0.09; best +0.07"


def test_time_to_accuracy_is_the_first_evaluation_at_or_under_the_error_and_the_summed_training_time(tmp_path):
    fake_run(tmp_path, "r20", 20, True, 0, [50.0, 9.5, 10.5, 8.9], wall=3600.0)
    run, = runs_lib.find_runs(str(tmp_path))
    assert run_times.time_to_error(run, 10.0) == (32_000, pytest.approx(2 * 3600.0))
    assert run_times.time_to_error(run, 9.0) == (64_000, pytest.approx(4 * 3600.0))
    assert run_times.time_to_error(run, 5.0) is None


def test_runs_without_scalars_are_listed_not_dropped(tmp_path):
    fake_run(tmp_path, "ok", 20, True, 0, [10.0])
    os.makedirs(tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text(json.dumps({"dataset": "cifar10", "depth": 56}))
    _, notes = reporting.cifar_table(runs_lib.find_runs(str(tmp_path)))
    assert len(notes) == 1 and "empty" in notes[0] and "missing scalars" in notes[0]


def test_report_writes_markdown_and_figure(tmp_path):
    runs = tmp_path / "runs"
    fake_run(runs, "p20", 20, False, 0, [60.0, 40.0], train_steps=2000)
    fake_run(runs, "r20", 20, True, 0, [60.0, 30.0], train_steps=2000)
    path = write_report(str(runs), str(tmp_path / "out"), None, 10)
    text = open(path).read()
    assert "| plain-20 |" in text and "| ResNet-20 |" in text
    assert "![Figure 6](figure6.png)" in text and "python -m recipes.cifar10 --depth=20" in text
    assert "## Time to accuracy" in text and "## The paper's claims" not in text  # Short runs: no claims.
    with open(tmp_path / "out" / "figure6.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_report_of_unfinished_runs_only_says_there_is_no_finished_run_yet(tmp_path):
    runs = tmp_path / "runs"
    fake_run(runs, "r56", 56, True, 0, [60.0, 14.0], finished=False, reached=24_000)
    text = open(write_report(str(runs), str(tmp_path / "out"), None, 10)).read()
    assert "(no finished run yet)" in text and "| ResNet-56 |" not in text and "unfinished at step 24,000" in text


def test_runs_gathered_as_symbolic_links_are_found_once_each(tmp_path):
    fake_run(tmp_path / "elsewhere", "r20", 20, True, 0, [10.0])
    fake_run(tmp_path / "runs", "r56", 56, True, 0, [9.0])
    os.symlink(tmp_path / "elsewhere" / "r20", tmp_path / "runs" / "r20")
    os.symlink(tmp_path / "runs" / "r56", tmp_path / "runs" / "r56-again")
    runs = runs_lib.find_runs(str(tmp_path / "runs"))
    assert sorted(run.config["depth"] for run in runs) == [20, 56]


def test_figure6_uses_the_papers_error_axis_only_when_every_curve_ends_inside_it(tmp_path):
    fake_run(tmp_path / "runs", "r20", 20, True, 0, [60.0, 9.0])  # Training curve ends at 14 %.
    runs = runs_lib.find_runs(str(tmp_path / "runs"))
    assert figures.plot_curves(runs, str(tmp_path / "a.png"), "", paper_ylim=(0, 20)) == (0, 20)
    fake_run(tmp_path / "runs", "p110", 110, False, 0, [80.0, 61.0])  # Plain-110 ends above 60 %.
    runs = runs_lib.find_runs(str(tmp_path / "runs"))
    low, high = figures.plot_curves(runs, str(tmp_path / "b.png"), "", paper_ylim=(0, 20))
    assert high > 66.0  # Its training curve (66 %) stays on the chart.


def test_figure6_gives_each_net_of_a_panel_its_own_label_and_colour_and_twins_of_one_depth_one_colour(tmp_path):
    fake_run(tmp_path, "r56", 56, True, 0, [50.0, 8.0])
    fake_run(tmp_path, "r56-kernels", 56, True, 0, [50.0, 7.5], weight_decay_on="kernels")
    fake_run(tmp_path, "r20", 20, True, 0, [50.0, 9.0])
    fake_run(tmp_path, "r20-lr", 20, True, 0, [50.0, 9.5], lr=0.2)
    fake_run(tmp_path, "p56", 56, False, 0, [50.0, 12.0])
    styles = {os.path.basename(d): style for d, style in figures.curve_styles(runs_lib.find_runs(str(tmp_path))).items()}
    assert {name: label for name, (label, _) in styles.items()} == {
        "r56": "ResNet-56", "r56-kernels": "ResNet-56 (decay kernels)", "r20": "ResNet-20 (lr=0.1)",
        "r20-lr": "ResNet-20 (lr=0.2)", "p56": "plain-56"}
    residual_colours = [styles[name][1] for name in ("r56", "r56-kernels", "r20", "r20-lr")]
    assert len(set(residual_colours)) == 4
    assert styles["p56"][1] == styles["r56"][1]


def test_figure_labels_name_the_seed_of_runs_that_differ_in_nothing_else(tmp_path):
    fake_run(tmp_path, "s0", 20, True, 0, [50.0, 9.0])
    fake_run(tmp_path, "s1", 20, True, 1, [50.0, 9.1])
    labels = reporting.figure_labels(runs_lib.find_runs(str(tmp_path)))
    assert sorted(labels.values()) == ["ResNet-20 (seed 0)", "ResNet-20 (seed 1)"]


def _reevaluated(folder, error=8.48):
    with open(os.path.join(folder, runs_lib.REEVALUATION_FILE), "w") as f:
        json.dump({"split": "test", "error": error, "data": {"summary": "cifar10, every .bin has the official md5"}}, f)


def test_figures_draw_one_run_per_net_the_lowest_seed_logged_on_the_reported_data(tmp_path):
    _reevaluated(fake_run(tmp_path, "r20-s0", 20, True, 0, [50.0, 17.0]))  # Curves logged on other data.
    fake_run(tmp_path, "r20-s2", 20, True, 2, [50.0, 9.0])
    fake_run(tmp_path, "r20-s1", 20, True, 1, [50.0, 12.0], finished=False, reached=32_000)
    fake_run(tmp_path, "r56-s3", 56, True, 3, [50.0, 7.0])
    _reevaluated(fake_run(tmp_path, "r110-s0", 110, True, 0, [50.0, 17.0]))  # Its net's only run.
    fake_run(tmp_path, "r20-lr", 20, True, 0, [50.0, 9.0], lr=0.2)  # Another configuration.
    drawn = reporting.figure_runs(runs_lib.find_runs(str(tmp_path)))
    assert sorted(os.path.basename(r.model_dir) for r in drawn) == ["r110-s0", "r20-lr", "r20-s1", "r56-s3"]


def test_the_report_names_the_runs_drawn_and_the_curves_logged_on_other_data(tmp_path):
    runs = tmp_path / "runs"
    _reevaluated(fake_run(runs, "r20-s0", 20, True, 0, [50.0, 17.0]))
    fake_run(runs, "r20-s1", 20, True, 1, [50.0, 9.0])
    text = open(write_report(str(runs), str(tmp_path / "out"), None, 10)).read()
    assert f"ResNet-20: seed 1 (`{runs / 'r20-s1'}`)" in text and "seed 0 (`" not in text
    assert "| ResNet-20 (seed 0) | test, as logged (the final error is from reevaluation.json) |" in text
    assert "| ResNet-20 (seed 1) | test |" in text


def test_unfinished_runs_say_at_which_step_their_last_error_was_measured(tmp_path):
    fake_run(tmp_path, "r110", 110, True, 0, [50.0, 14.17], finished=False, reached=8_000)
    writer = tf.summary.create_file_writer(str(tmp_path / "r110" / "train"))
    with writer.as_default():
        tf.summary.scalar("error", 9.7, step=8_400)  # Trained on past the last evaluation.
    writer.close()
    _, notes = reporting.cifar_table(runs_lib.find_runs(str(tmp_path)))
    assert "unfinished at step 8,400 of 64,000, test error 14.17 at step 8,000" in notes[0]


def test_depth_claims_name_degradation_and_deeper_residual_nets_with_their_sampling_error(tmp_path):
    # fake_run logs training error = test error + 5 at each evaluation step.
    fake_run(tmp_path, "p20", 20, False, 0, [50.0, 9.0])
    fake_run(tmp_path, "p56", 56, False, 0, [50.0, 12.0])
    fake_run(tmp_path, "r20", 20, True, 0, [50.0, 8.5])
    fake_run(tmp_path, "r56", 56, True, 0, [50.0, 8.4])
    lines = claims.depth_claims(runs_lib.find_runs(str(tmp_path)))
    assert lines[0] == ("- Degradation (Figure 6, left): plain-56 against plain-20: training error 17.00 vs 14.00 % "
                        "(as the paper); test error 12.00 vs 9.00 % (as the paper; difference +3.00 +- 0.43 points "
                        "(1 s.e.), beyond two standard errors).")
    assert lines[1].startswith("- Residual against plain (Figure 6): ResNet-20 against plain-20: training error "
                               "13.50 vs 14.00 % (as the paper)")
    assert lines[3] == ("- Deeper residual nets are better (Table 6): ResNet-56 against ResNet-20: test error 8.40 vs "
                        "8.50 % (as the paper; difference -0.10 +- 0.39 points (1 s.e.), within two standard errors).")


def test_a_test_error_difference_between_one_and_two_standard_errors_is_read_as_within(tmp_path):
    fake_run(tmp_path, "r20", 20, True, 0, [50.0, 8.5])
    fake_run(tmp_path, "r56", 56, True, 0, [50.0, 8.0])  # -0.50 points; 1 s.e. of the difference: 0.39.
    (line,) = claims.depth_claims(runs_lib.find_runs(str(tmp_path)))
    assert line.endswith("difference -0.50 +- 0.39 points (1 s.e.), within two standard errors).")


def test_depth_claims_compare_nets_of_one_weight_decay_reading_only(tmp_path):
    for name, residual, depth, error, decay in (("p20", False, 20, 9.0, "kernels"), ("p56", False, 56, 12.0, "kernels"),
                                                ("r56k", True, 56, 8.0, "kernels"), ("r56", True, 56, 6.8, "all")):
        fake_run(tmp_path, name, depth, residual, 0, [50.0, error], weight_decay_on=decay)
    lines = claims.depth_claims(runs_lib.find_runs(str(tmp_path)))
    assert [line.split(":")[1].strip() for line in lines] == [
        "plain-56 (decay kernels) against plain-20 (decay kernels)",
        "ResNet-56 (decay kernels) against plain-56 (decay kernels)"]  # ResNet-56 (decay all) has no pair.
    keys = {claims.net_key(r.config) for r in runs_lib.find_runs(str(tmp_path))}
    assert claims.reading_pairs(keys) == [((True, 56, "kernels"), (True, 56, "all"))]


def test_response_claims_compare_nets_of_one_weight_decay_reading_only():
    lines = claims.response_claims({(True, 20, "all"): [[0.5]], (False, 20, "kernels"): [[0.9]],
                                    (True, 20, "kernels"): [[0.6]], (True, 56, "kernels"): [[0.4]]})
    assert [line.split(":")[1].strip() for line in lines] == [
        "ResNet-20 (decay kernels) 0.600 vs plain-20 (decay kernels) 0.900 (as the paper)",
        "ResNet-56 (decay kernels) 0.400 vs ResNet-20 (decay kernels) 0.600 (as the paper)"]


def test_depth_claims_say_when_a_claim_does_not_hold_and_skip_short_or_unfinished_runs(tmp_path):
    fake_run(tmp_path, "p20", 20, False, 0, [50.0, 12.0])
    fake_run(tmp_path, "p56", 56, False, 0, [50.0, 9.0])
    fake_run(tmp_path, "p110", 110, False, 0, [50.0, 60.0], train_steps=6_400)  # Short schedule.
    fake_run(tmp_path, "p32", 32, False, 0, [50.0, 30.0], finished=False)
    os.makedirs(tmp_path / "p44")  # Finished, but its event files are lost: left out, not a crash.
    (tmp_path / "p44" / "config.json").write_text((tmp_path / "p20" / "config.json").read_text().replace(
        '"depth": 20', '"depth": 44'))
    (tmp_path / "p44" / "stats.json").write_text(json.dumps({"complete": True}))
    line, = claims.depth_claims(runs_lib.find_runs(str(tmp_path)))
    assert "plain-56 against plain-20: training error 14.00 vs 17.00 % (**not as the paper**)" in line


@pytest.mark.parametrize("make,message", [
    (lambda p: None, "is not a directory"),
    (lambda p: os.makedirs(p), "holds no run"),
])
def test_bad_runs_folder_is_one_clear_error(tmp_path, make, message):
    make(tmp_path / "runs")
    with pytest.raises(ValueError, match=message):
        runs_lib.find_runs(str(tmp_path / "runs"))


def test_a_report_gathers_the_runs_of_several_folders_each_named_as_given(tmp_path):
    fake_run(tmp_path / "table6", "r56", 56, True, 0, [7.0])
    fake_run(tmp_path / "table6", "p20", 20, False, 0, [9.0])
    fake_run(tmp_path / "resnet20-64k", "r20", 20, True, 0, [8.5])
    roots = [str(tmp_path / "table6"), str(tmp_path / "resnet20-64k")]
    assert [os.path.basename(r.model_dir) for r in runs_lib.find_runs(roots)] == ["p20", "r56", "r20"]
    text = open(write_report(roots, str(tmp_path / "out"), None, 10)).read()
    assert text.startswith(f"# Reproduction report for `{roots[0]}`, `{roots[1]}`")
    assert all(f"| {net} |" in text for net in ("plain-20", "ResNet-20", "ResNet-56"))
    assert f"`{os.path.join(roots[1], 'r20')}`" in text


def test_a_missing_folder_among_several_is_named(tmp_path):
    fake_run(tmp_path / "runs", "r20", 20, True, 0, [8.5])
    with pytest.raises(ValueError, match="^--runs=/nonexistent is not a directory$"):
        runs_lib.find_runs([str(tmp_path / "runs"), "/nonexistent"])


def test_a_stop_between_two_logs_is_merged_into_the_next_log_weighted_by_iterations():
    logged = [(100, 10.0), (200, 9.0), (224, 12.0), (250, 6.0), (300, 10.0), (400, 8.0)]
    assert runs_lib.on_log_grid(logged, 100) == [
        (100, 10.0), (200, 9.0), (300, pytest.approx((24 * 12.0 + 26 * 6.0 + 50 * 10.0) / 100)), (400, 8.0)]


def test_points_further_apart_than_the_log_interval_and_the_last_point_stay_as_logged():
    logged = [(150, 10.0), (350, 9.0), (460, 8.0), (500, 7.0), (533, 6.0)]
    assert runs_lib.on_log_grid(logged, 100) == [(150, 10.0), (350, 9.0), (500, pytest.approx((110 * 8.0 + 40 * 7.0) / 150)), (533, 6.0)]


def test_runs_are_read_with_their_training_curves_on_the_log_grid_and_other_scalars_as_logged(tmp_path):
    folder = fake_run(tmp_path, "r20", 20, True, 0, [10.0])
    with tf.summary.create_file_writer(os.path.join(folder, "train")).as_default():
        for step, value in ((100, 20.0), (130, 40.0), (200, 30.0)):
            for tag in ("error", "loss", "learning_rate"):
                tf.summary.scalar(tag, value, step=step)
    run, = runs_lib.find_runs(str(tmp_path))
    train = run.scalars["train"]
    assert train["error"][:2] == [(100, 20.0), (200, pytest.approx(33.0))] and train["loss"] == train["error"][:2]
    assert train["learning_rate"] == [(100, 20.0), (130, 40.0), (200, 30.0)]
    assert run.scalars["test"]["error"] == [(64_000, 10.0)]


def test_training_time_sums_the_logged_intervals_and_also_gives_the_time_at_median_speed(tmp_path):
    folder = fake_run(tmp_path, "r20", 20, True, 0, [30.0, 20.0, 10.0], wall=3600)  # 3 intervals of 1 h...
    with tf.summary.create_file_writer(os.path.join(folder, "train")).as_default():
        tf.summary.scalar("images_per_second", 21_333 * 128 / 7200, step=42_666)  # ...the second one slowed to 2 h.
    (cells,) = [[c.strip() for c in line.strip("|").split("|")]
                for line in run_times.training_time_table(runs_lib.find_runs(str(tmp_path))).splitlines()[2:]]
    assert cells == ["ResNet-20 (seed 0)", "64,000", "4.00 h", "3.00 h", f"{21_333 * 128 / 3600:,.0f}", "-", "finished"]


def test_an_unfinished_run_needs_its_iterations_left_at_the_median_speed_of_its_recent_intervals(tmp_path):
    # 120 intervals of 500 iterations, 60 s each, up to 60,000...
    folder = fake_run(tmp_path, "r110", 110, True, 0, [30.0] * 120, finished=False, reached=60_000, wall=60)
    with tf.summary.create_file_writer(os.path.join(folder, "train")).as_default():
        for step in range(500, 35_001, 500):  # ...of which the first 70 ran on a machine half as fast,
            tf.summary.scalar("images_per_second", 500 * 128 / 120, step=step)
        tf.summary.scalar("images_per_second", 500 * 128 / 6000, step=60_500)  # and the last one was paused.
    run, = runs_lib.find_runs(str(tmp_path))
    # The last 50 intervals: 49 at 60 s per 500 iterations, one paused: 3,500 left at 60 s per 500.
    assert run_times.time_left_seconds(run) == pytest.approx(3_500 / 500 * 60)
    last = run_times.training_time_table([run]).splitlines()[-1]
    assert last.endswith(f"| {3_500 / 500 * 60 / 3600:.2f} h |")


def test_figure7_layers_are_the_bn_outputs_of_every_3x3_conv():
    names = figures.response_layers(cifar_resnet(8, shortcut="B"))
    assert names == ["conv1_bn", "conv2_1_1_bn", "conv2_1_2_bn", "conv3_1_1_bn", "conv3_1_2_bn",
                     "conv4_1_1_bn", "conv4_1_2_bn"]


def test_figure7_response_std_is_per_channel_then_averaged_and_pooled_on_request():
    keras.utils.set_random_seed(0)
    model = cifar_resnet(8)
    bn = model.get_layer("conv3_1_2_bn")  # Channel means far apart: the two measures must differ.
    bn.beta.assign(np.linspace(-3.0, 3.0, bn.beta.shape[0]).astype("float32"))
    images = np.random.default_rng(0).normal(size=(7, 32, 32, 3)).astype("float32")
    per_channel = dict(figures.layer_response_std(model, images, batch_size=3))
    pooled = dict(figures.layer_response_std(model, images, batch_size=3, per_channel=False))
    for name in ("conv1_bn", "conv3_1_2_bn"):
        out = np.asarray(keras.Model(model.inputs[0], model.get_layer(name).output)(images, training=False), np.float64)
        assert per_channel[name] == pytest.approx(float(out.std(axis=(0, 1, 2)).mean()), rel=1e-5)
        assert pooled[name] == pytest.approx(float(out.std()), rel=1e-5)
    assert pooled["conv3_1_2_bn"] > 1.5 * per_channel["conv3_1_2_bn"]


def test_resumed_runs_keep_the_last_value_of_a_rewritten_step(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        tf.summary.scalar("loss", 1.0, step=5)
        tf.summary.scalar("loss", 2.0, step=5)
        tf.summary.scalar("loss", 3.0, step=6)
    writer.close()
    assert runs_lib.read_scalars(str(tmp_path))["loss"] == [(5, 2.0), (6, 3.0)]


def imagenet_run(root, name, depth, stride_on, top1, finished=True, **experiment):
    from keras_resnet.tasks import ImagenetExperiment, experiment_hparams, imagenet_train_config
    folder = os.path.join(root, name)
    os.makedirs(os.path.join(folder, "validation"))
    config = experiment_hparams("imagenet2012", ImagenetExperiment(depth=depth, stride_on=stride_on, **experiment),
                                imagenet_train_config())
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({**json.loads(json.dumps(config)), "replicas": 8}, f)
    writer = tf.summary.create_file_writer(os.path.join(folder, "validation"))
    with writer.as_default():
        tf.summary.scalar("error", top1 + 2, step=600_000)
    writer.close()
    if finished:
        with open(os.path.join(folder, "final_eval.json"), "w") as f:
            json.dump({"complete": True, "ten_crop_top1_error": top1, "ten_crop_top5_error": 7.0,
                       "multiscale_top1_error": top1 - 2, "multiscale_top5_error": 5.5}, f)


def test_the_cifar_claims_are_never_checked_on_imagenet_runs(tmp_path):
    imagenet_run(tmp_path, "r50", 50, "1x1", 23.0)  # Finished, at the paper's ImageNet recipe.
    run, = runs_lib.find_runs(str(tmp_path))
    assert runs_lib.is_finished(run) and reporting.deviations(run.config) == []
    assert not claims.at_paper_recipe(run)


def test_imagenet_rows_name_the_stride_placement_and_compare_only_the_papers(tmp_path):
    imagenet_run(tmp_path, "paper", 50, "1x1", 23.0)
    imagenet_run(tmp_path, "v15", 50, "3x3", 22.5)
    imagenet_run(tmp_path, "running", 50, "1x1", 40.0, finished=False)
    table, notes = reporting.imagenet_table(runs_lib.find_runs(str(tmp_path)))
    rows = {r[1]: r for r in ([c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:])}
    assert set(rows) == {"1x1 (paper)", "3x3 (v1.5)"}
    assert rows["1x1 (paper)"][2] == "22.85/6.71" and rows["1x1 (paper)"][7] == "none"
    assert rows["3x3 (v1.5)"][2] == "-" and rows["3x3 (v1.5)"][7] == "stride_on=3x3 (paper: 1x1)"
    assert len(notes) == 1 and "unfinished" in notes[0]


def test_an_imagenet_run_whose_bn_saw_another_batch_than_32_is_flagged(tmp_path):
    # Goyal et al. 2017 (the same group): 8 GPUs of 32, BN over each GPU's 32 images.
    imagenet_run(tmp_path, "paper", 50, "1x1", 23.0)
    imagenet_run(tmp_path, "whole", 50, "1x1", 23.5, bn_group_size=None)
    table, _ = reporting.imagenet_table(runs_lib.find_runs(str(tmp_path)))
    differences = sorted(c.strip() for c in (line.strip("|").split("|")[7] for line in table.splitlines()[2:]))
    assert differences == ["bn_group_size=None (paper: 32)", "none"]


def test_figure7_reads_each_runs_own_split_and_normalisation(tmp_path, monkeypatch):
    import keras_resnet.data as data
    from tools.report import figure7

    calls = []
    monkeypatch.setattr(data, "load_cifar10", lambda split, data_dir, train_split: calls.append(
        ("load", split, train_split)) or "held-out")
    monkeypatch.setattr(data, "cifar10_eval_dataset", lambda held_out, n, normalization: calls.append(
        ("normalise", normalization)) or tf.data.Dataset.from_tensors((np.zeros((2, 32, 32, 3), "float32"), [0, 0])))
    folder = fake_run(tmp_path, "val", 8, True, 0, [50.0], protocol="validation", normalization="channel_mean_std")
    cifar_resnet(8, classifier_activation=None).save(os.path.join(folder, "model.keras"))
    used, claims = figure7(runs_lib.find_runs(str(tmp_path)), "unused", 2, str(tmp_path / "figure7.png"))
    assert used == [folder] and claims == []  # Not the paper's recipe (45k/5k protocol): no claim from it.
    assert calls == [("load", "train[90%:]", "train[:90%]"), ("normalise", "channel_mean_std")]


def test_figure7_names_each_net_by_its_label_and_seed(tmp_path, monkeypatch):
    import keras_resnet.data as data
    from tools.report import figure7

    monkeypatch.setattr(data, "load_cifar10", lambda split, data_dir, train_split: "held-out")
    monkeypatch.setattr(data, "cifar10_eval_dataset", lambda held_out, n, normalization:
                        tf.data.Dataset.from_tensors((np.zeros((2, 32, 32, 3), "float32"), [0, 0])))
    drawn = {}
    monkeypatch.setattr(figures, "plot_layer_responses", lambda responses, path: drawn.update(responses))
    folder = fake_run(tmp_path, "kernels", 8, True, 3, [50.0], weight_decay_on="kernels")
    cifar_resnet(8, classifier_activation=None, weight_decay_on="kernels").save(os.path.join(folder, "model.keras"))
    figure7(runs_lib.find_runs(str(tmp_path)), "unused", 2, str(tmp_path / "figure7.png"))
    assert list(drawn) == ["ResNet-8 (decay kernels, seed 3)"]


def test_the_report_checks_figure7s_claims_on_finished_paper_recipe_nets(tmp_path, monkeypatch):
    import keras_resnet.data as data

    monkeypatch.setattr(data, "load_cifar10", lambda split, data_dir, train_split: "held-out")
    images = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype("float32")
    monkeypatch.setattr(data, "cifar10_eval_dataset",
                        lambda held_out, n, normalization: tf.data.Dataset.from_tensors((images, [0, 0, 0, 0])))
    runs = tmp_path / "runs"
    for name, residual in (("plain20", False), ("resnet20", True)):
        folder = fake_run(runs, name, 20, residual, 0, [50.0, 9.0])
        cifar_resnet(20, residual=residual, classifier_activation=None).save(os.path.join(folder, "model.keras"))
    text = open(write_report(str(runs), str(tmp_path / "out"), "unused", 4)).read()
    assert "![Figure 7](figure7.png)" in text
    assert "- Residual nets respond less than plain nets (Figure 7): ResNet-20" in text


def test_paired_claims_compare_each_claims_nets_image_by_image_in_the_claims_direction():
    truth = np.array([True] * 80 + [False] * 20)
    plain56 = truth.copy()
    plain56[:10] = False  # Wrong on 10 more images than plain-20: degradation, as the paper.
    resnet20 = truth.copy()
    resnet20[80:83] = True  # Right on 3 images plain-20 gets wrong.
    lines = claims.paired_claims({(False, 20): ("plain-20 (seed 0)", truth), (False, 56): ("plain-56 (seed 0)", plain56),
                                  (True, 20): ("ResNet-20 (seed 1)", resnet20)})
    assert lines == [
        "- Degradation (Figure 6, left), image by image: plain-56 (seed 0) against plain-20 (seed 0) on the same 100 "
        "test images: 30.00 vs 20.00 % (as the paper); 10 images wrong only for the first, 0 only for the second: "
        "difference +10.00 +- 3.00 points (1 s.e.), McNemar's exact p = 0.002 (beyond the test set's sampling error "
        "at 5 %).",
        "- Residual against plain (Figure 6), image by image: ResNet-20 (seed 1) against plain-20 (seed 0) on the same "
        "100 test images: 17.00 vs 20.00 % (as the paper); 0 images wrong only for the first, 3 only for the second: "
        "difference -3.00 +- 1.71 points (1 s.e.), McNemar's exact p = 0.25 (within the test set's sampling error "
        "at 5 %)."]


def _always(answer, folder):
    """Saves as the run's model.keras a net that answers class ``answer`` for every image."""
    import keras
    inputs = keras.Input((32, 32, 3))
    logits = keras.layers.Dense(10, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(
        np.eye(10)[answer]))(keras.layers.GlobalAveragePooling2D()(inputs))
    keras.Model(inputs, logits).save(os.path.join(folder, "model.keras"))


@pytest.fixture
def four_test_images(monkeypatch):
    """Every run's held-out split: four images labelled [0, 0, 0, 1]."""
    import keras_resnet.data as data
    monkeypatch.setattr(data, "load_cifar10", lambda split, data_dir, train_split: "held-out")
    monkeypatch.setattr(data, "cifar10_eval_dataset", lambda held_out, n, normalization: tf.data.Dataset.from_tensors(
        (np.zeros((4, 32, 32, 3), "float32"), [0, 0, 0, 1])))


def test_the_report_compares_the_claims_nets_image_by_image_when_it_has_their_data(tmp_path, four_test_images):
    """ResNet-20 always answers 0, plain-20 always 1: ResNet-20 alone is wrong on one image, plain-20 alone
    on three."""
    runs = tmp_path / "runs"
    for name, residual, answer in (("plain20", False, 1), ("resnet20", True, 0)):
        _always(answer, fake_run(runs, name, 20, residual, 0, [50.0, 9.0]))
    text = open(write_report(str(runs), str(tmp_path / "out"), "unused", 4)).read()
    assert ("- Residual against plain (Figure 6), image by image: ResNet-20 (seed 0) against plain-20 (seed 0) on the "
            "same 4 test images: 25.00 vs 75.00 % (as the paper); 1 images wrong only for the first, 3 only") in text
    assert "image by image" not in open(write_report(str(runs), str(tmp_path / "nodata"), None, 4)).read()


def test_the_report_compares_each_variant_of_the_recipe_with_the_paper_recipe_run_of_its_net(tmp_path, four_test_images):
    runs = tmp_path / "runs"
    _always(0, fake_run(runs, "resnet20", 20, True, 0, [50.0, 9.0]))
    _always(1, fake_run(runs, "resnet20-kernels", 20, True, 0, [50.0, 9.0], weight_decay_on="kernels"))
    _always(1, fake_run(runs, "resnet32-kernels", 32, True, 0, [50.0, 9.0], weight_decay_on="kernels"))  # No twin.
    text = open(write_report(str(runs), str(tmp_path / "out"), "unused", 4)).read()
    section = text.split("## Variants of the paper's recipe against it, image by image")[1].split("##")[0]
    assert [line for line in section.splitlines() if line.startswith("- ")] == [
        "- ResNet-20 (decay kernels, seed 0) (weight_decay_on=kernels (other: all)) against ResNet-20 (seed 0) on the "
        "same 4 test images: 75.00 vs 25.00 %; 3 images wrong only for the first, 1 only for the second: difference "
        "+50.00 +- 43.30 points (1 s.e.), McNemar's exact p = 0.62 (within the test set's sampling error at 5 %)."]


def test_the_reports_image_by_image_sections_say_their_p_values_leave_out_the_spread_between_seeds(
        tmp_path, four_test_images):
    runs = tmp_path / "runs"
    for name, residual, answer, decay in (("plain20", False, 1, "all"), ("resnet20", True, 0, "all"),
                                          ("resnet20-kernels", True, 1, "kernels")):
        _always(answer, fake_run(runs, name, 20, residual, 0, [50.0, 9.0], weight_decay_on=decay))
    text = open(write_report(str(runs), str(tmp_path / "out"), "unused", 4)).read()
    depth = text.split("compared image by image")[1].split("##")[0]
    variants = text.split("## Variants of the paper's recipe against it, image by image")[1].split("##")[0]
    for section in (depth, variants):
        assert "not the spread between training runs" in section


def test_response_claims_compare_residual_with_plain_and_deeper_with_shallower():
    lines = claims.response_claims({
        (False, 20): [[1.0, 3.0]], (True, 20): [[1.0, 1.0], [1.0, 2.0]],  # Two seeds: 1.0 and 1.5, mean 1.25.
        (True, 56): [[1.5, 1.5]],
    })
    assert lines == [
        "- Residual nets respond less than plain nets (Figure 7): ResNet-20 1.250 vs plain-20 2.000 (as the paper)",
        "- Deeper residual nets respond less (Figure 7): ResNet-56 1.500 vs ResNet-20 1.250 (**not as the paper**)"]


def test_time_to_accuracy_has_a_row_for_the_masked_subset_when_it_was_evaluated(tmp_path):
    folder = fake_run(tmp_path, "r20", 20, True, 0, [50.0, 15.0], wall=60.0)
    writer = tf.summary.create_file_writer(os.path.join(folder, "test_subset"))
    with writer.as_default():
        tf.summary.scalar("error", 12.0, step=32_000)
        tf.summary.scalar("error", 8.5, step=64_000)
    writer.close()
    rows = run_times.time_to_accuracy_table(runs_lib.find_runs(str(tmp_path))).splitlines()[2:]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    assert [c[1] for c in cells] == ["test", "test_subset"]
    assert cells[0][2] == "not reached" and cells[1][2:8] == ["64,000", "0.03 h", "0.03 h", "64,000", "0.03 h", "0.03 h"]


def test_time_at_median_speed_leaves_out_a_paused_interval(tmp_path):
    folder = fake_run(tmp_path, "r20", 20, True, 0, [50.0, 40.0, 20.0, 9.5])  # Evaluated every 16,000.
    writer = tf.summary.create_file_writer(os.path.join(folder, "train"))
    with writer.as_default():
        for step, ips in ((16_000, 512.0), (32_000, 512.0), (48_000, 2.0), (64_000, 512.0)):  # 48k: paused.
            tf.summary.scalar("images_per_second", ips, step=step)
    writer.close()
    run, = runs_lib.find_runs(str(tmp_path))
    assert run_times.time_to_error(run, 10.0)[1] == pytest.approx(3 * 4000.0 + 16_000 * 128 / 2.0)
    assert run_times.median_speed_seconds(run, 64_000) == pytest.approx(64_000 * 128 / 512.0)
    row = run_times.time_to_accuracy_table([run]).splitlines()[2]
    assert "| 64,000 | 287.78 h | 4.44 h |" in row


def test_a_run_evaluated_on_a_subset_gets_a_second_table6_row_for_those_images(tmp_path):
    folder = fake_run(tmp_path, "r20", 20, True, 0, [50.0, 16.5],
                      eval_subset_mask="/data/cifar10/test_exact_mask.npy")
    writer = tf.summary.create_file_writer(os.path.join(folder, "test_subset"))
    with writer.as_default():
        tf.summary.scalar("error", 12.0, step=32_000)
        tf.summary.scalar("error", 8.5, step=64_000)
    writer.close()
    (full, subset), _ = table_rows(tmp_path)
    assert full[:3] == ["ResNet-20", "8.75", "16.50 +- 0.00"] and full[7] == "none"
    assert subset[:3] == ["ResNet-20, `test_subset` images only", "8.75", "8.50 +- 0.00"]
    assert subset[5] == "- (a subset of the test images)" and subset[7] == "only the images of test_exact_mask.npy"


def test_a_reevaluated_final_model_gives_the_rows_error_and_says_on_what_data(tmp_path):
    folder = fake_run(tmp_path, "r20", 20, True, 0, [50.0, 17.14])  # Logged on damaged test images.
    with open(os.path.join(folder, runs_lib.REEVALUATION_FILE), "w") as f:
        json.dump({"split": "test", "error": 8.48, "masked_error": 7.7,
                   "data": {"summary": "cifar10, every .bin has the official md5"}}, f)
    (cells, subset), _ = table_rows(tmp_path)
    assert cells[2] == "8.48 +- 0.00" and cells[5] == "-0.27" and subset[2] == "7.70 +- 0.00"
    assert "reevaluation.json" in cells[7] and "every .bin has the official md5" in cells[7]
    assert runs_lib.find_runs(str(tmp_path))[0].final("test") == pytest.approx(17.14)  # The curve stays as logged.


def test_the_report_has_a_provenance_line_per_run(tmp_path):
    runs = tmp_path / "runs"
    fake_run(runs, "r20", 20, True, 0, [60.0, 30.0], train_steps=2000)
    text = open(write_report(str(runs), str(tmp_path / "out"), None, 10)).read()
    assert "## Provenance" in text and f"`{runs / 'r20'}`: provenance not recorded" in text


def test_ours_minus_paper_compares_like_with_like_only(tmp_path):
    """A recipe that trains something else is shown without the difference, saying why; a
    mixed-precision run of the paper's recipe is compared (the report says so)."""
    fake_run(tmp_path, "bf16", 20, True, 0, [50.0, 9.0], mixed_precision="bfloat16")
    fake_run(tmp_path, "ungrouped", 20, True, 0, [50.0, 10.0], bn_group_size=None)
    fake_run(tmp_path, "lr", 20, True, 0, [50.0, 11.0], lr=0.2)
    rows, _ = table_rows(tmp_path)
    delta = {r[2]: r[5] for r in rows}
    assert delta["9.00 +- 0.00"] == "+0.25"
    assert delta["10.00 +- 0.00"] == "- (recipe differs: bn_group_size=None)"
    assert delta["11.00 +- 0.00"] == "- (recipe differs: lr=0.2)"


def _event_file(folder, split="test"):
    import glob as _glob
    (path,) = _glob.glob(os.path.join(folder, split, "events.out.tfevents.*"))
    return path


def test_an_events_file_damaged_inside_is_one_error_naming_it(tmp_path):
    path = _event_file(fake_run(tmp_path, "r20", 20, True, 0, [50.0, 20.0, 8.0]))
    payload = bytearray(open(path, "rb").read())
    payload[len(payload) // 2] ^= 0xFF  # One flipped byte: its record's checksum fails.
    open(path, "wb").write(bytes(payload))
    with pytest.raises(ValueError, match=rf"^{path} is damaged \(corrupted record at \d+\): restore it"):
        runs_lib.find_runs(str(tmp_path))


def test_an_events_file_cut_at_the_end_is_read_up_to_the_cut(tmp_path):
    """As a run still writing it leaves it: TensorBoard reads what is complete, and so does the report."""
    path = _event_file(fake_run(tmp_path, "r20", 20, True, 0, [50.0, 20.0, 8.0]))
    payload = open(path, "rb").read()
    open(path, "wb").write(payload[:-5])
    (run,) = runs_lib.find_runs(str(tmp_path))
    assert [e for _, e in run.scalars["test"]["error"]] == [50.0, 20.0]


def test_a_damaged_config_json_in_a_report_is_one_error_naming_it(tmp_path):
    folder = fake_run(tmp_path, "r20", 20, True, 0, [50.0, 8.0])
    with open(os.path.join(folder, "config.json"), "w") as f:
        f.write('{"depth": 2')
    with pytest.raises(ValueError, match=rf"^{os.path.join(folder, 'config.json')} is damaged"):
        runs_lib.find_runs(str(tmp_path))


def test_the_18_layer_imagenet_nets_are_compared_with_table_2(tmp_path):
    imagenet_run(tmp_path, "r18", 18, "1x1", 28.0, shortcut="A")
    imagenet_run(tmp_path, "p18", 18, "1x1", 28.5, residual=False, shortcut="A")
    table, _ = reporting.imagenet_table(runs_lib.find_runs(str(tmp_path)))
    rows = {r[0]: r for r in ([c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:])}
    assert rows["ResNet-18 (A)"][2] == "27.88/-" and rows["plain-18"][2] == "27.94/-"
