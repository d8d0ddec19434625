"""docs/results/table6-64k/finish.sh, which ships ResNet-56 and ResNet-110 and writes issue 19's final
report once every run has finished: run with a fake python that records what it is asked to do."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "results" / "table6-64k" / "finish.sh"
RUNS = ("resnet110-seed0", "resnet56-seed0", "plain56-seed0", "plain20-seed0", "resnet20-seed1",
        "resnet56-decayall-seed0")


@pytest.fixture
def root(tmp_path):
    """A repository root with ResNet-20's 64k folder and every table6 run finished (stats.json and
    model.keras), and a fake python that logs its arguments."""
    (tmp_path / "docs" / "results" / "cifar10-resnet20-64k").mkdir(parents=True)
    for name in RUNS:
        run = tmp_path / "here" / name
        run.mkdir(parents=True)
        (run / "stats.json").write_text('{"complete": true, "step": 64000, "test_error": 8.04}')
        (run / "model.keras").write_text("")
    fake = tmp_path / "fake-python"
    fake.write_text(f'#!/bin/bash\necho "$*" >> {tmp_path / "calls"}\n')
    fake.chmod(0o755)
    return tmp_path


def _finish(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HERE": str(root / "here"), "DATA": str(root / "data"), "PY": str(root / "fake-python"),
           "OUT": str(root / "out")}
    return subprocess.run(["bash", str(SCRIPT)], cwd=root, env=env, capture_output=True, text=True, timeout=60)


def _calls(root: Path) -> list[str]:
    path = root / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_finish_ships_resnet56_and_resnet110_then_writes_the_report_with_resnet20s_64k_run(root):
    result = _finish(root)
    assert result.returncode == 0, result.stderr
    ship56, ship110, report = _calls(root)
    assert ship56.startswith("-m tools.ship_weights") and f"--model_dir={root}/here/resnet56-seed0 " in ship56
    assert ship110.startswith("-m tools.ship_weights") and f"--model_dir={root}/here/resnet110-seed0" in ship110
    assert report.startswith("-m tools.report") and f"--runs={root}/here,docs/results/cifar10-resnet20-64k" in report
    assert f"--out={root}/out" in report and f"--data_dir={root}/data" in report


@pytest.mark.parametrize("name", RUNS)
@pytest.mark.parametrize("file", ["stats.json", "model.keras"])
def test_finish_refuses_to_start_while_a_run_is_unfinished_or_not_copied(root, name, file):
    (root / "here" / name / file).unlink()
    result = _finish(root)
    assert result.returncode == 1 and _calls(root) == []
    assert f"here/{name}/{file} is missing" in result.stderr


def test_finish_asks_for_the_data_folder(root):
    env_without_data = {**os.environ, "HERE": str(root / "here"), "PY": str(root / "fake-python")}
    env_without_data.pop("DATA", None)
    result = subprocess.run(["bash", str(SCRIPT)], cwd=root, env=env_without_data, capture_output=True, text=True)
    assert result.returncode == 2 and _calls(root) == [] and "set DATA" in result.stderr


def _final_test_error(root: Path, name: str, error: float) -> None:
    (root / "here" / name / "stats.json").write_text(f'{{"complete": true, "step": 64000, "test_error": {error}}}')


@pytest.mark.parametrize("twin,shipped,verdict", [
    (7.54, "resnet56-decayall-seed0", 'the CIFAR default becomes weight_decay_on="all"'),  # 0.50 below: the margin.
    (6.94, "resnet56-decayall-seed0", 'the CIFAR default becomes weight_decay_on="all"'),
    (7.55, "resnet56-seed0", 'the default stays weight_decay_on="kernels"'),  # 0.49 below.
    (8.60, "resnet56-seed0", 'the default stays weight_decay_on="kernels"'),
])
def test_finish_ships_the_decay_all_twin_as_resnet56_only_when_it_ends_half_a_point_lower(root, twin, shipped, verdict):
    _final_test_error(root, "resnet56-seed0", 8.04)
    _final_test_error(root, "resnet56-decayall-seed0", twin)
    result = _finish(root)
    assert result.returncode == 0, result.stderr
    ship56 = _calls(root)[0]
    assert ship56.startswith("-m tools.ship_weights") and f"--model_dir={root}/here/{shipped} " in ship56
    assert verdict in result.stdout and f"{twin} %" in result.stdout


def test_finish_refuses_a_stats_file_without_a_test_error(root):
    (root / "here" / "resnet56-decayall-seed0" / "stats.json").write_text('{"complete": true}')
    result = _finish(root)
    assert result.returncode == 1 and _calls(root) == [] and "no test_error" in result.stderr
