"""docs/results/table6-64k/read_decay_all.sh, which reads ResNet-20 or ResNet-110 with the decay on every
parameter against the shipped kernels-only net of its depth, by the rule fixed before the runs started, and
ships it or not: run with a fake python that records what it is asked to do."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "results" / "table6-64k" / "read_decay_all.sh"
SHIPPED = {20: 8.48, 110: 6.77}  # The kernels-only nets shipped when the rule was fixed.


@pytest.fixture
def root(tmp_path):
    """A repository root with both decay-all runs finished (stats.json and nets), a manifest shipping the
    kernels-only ResNet-20 and ResNet-110 (written as trained.record_in_manifest writes it) and a fake
    python that logs its arguments."""
    for depth in SHIPPED:
        run = tmp_path / "here" / f"resnet{depth}-decayall-seed0"
        run.mkdir(parents=True)
        for name in ("model.keras", "classifier.keras"):
            (run / name).write_text("")
    _final_test_error(tmp_path, 20, 8.40)
    _final_test_error(tmp_path, 110, 6.80)
    nets = [{"file": f"resnet{depth}-cifar10.weights.h5", "depth": depth, "residual": True, "dtype": "mixed_bfloat16",
             "test_error": error, "test_error_float32": error - 0.05, "weight_decay_on": "kernels"}
            for depth, error in SHIPPED.items()]
    nets.insert(1, {"file": "resnet56-cifar10.weights.h5", "depth": 56, "residual": True, "dtype": "mixed_bfloat16",
                    "test_error": 6.79, "test_error_float32": 6.86, "weight_decay_on": "all"})
    _manifest(tmp_path, nets)
    fake = tmp_path / "fake-python"
    fake.write_text(f'#!/bin/bash\necho "$*" >> {tmp_path / "calls"}\n')
    fake.chmod(0o755)
    return tmp_path


def _manifest(root: Path, nets: list[dict]) -> None:
    (root / "weights").mkdir(exist_ok=True)
    (root / "weights" / "cifar10.json").write_text(json.dumps({"nets": nets}, indent=1))


def _final_test_error(root: Path, depth: int, error: float) -> None:
    path = root / "here" / f"resnet{depth}-decayall-seed0" / "stats.json"
    path.write_text(f'{{"complete": true, "step": 64000, "test_error": {error}}}')


def _read(root: Path, *args: str, data: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HERE": str(root / "here"), "WEIGHTS_DIR": str(root / "weights"),
           "PY": str(root / "fake-python")}
    env.pop("DATA", None)
    if data:
        env["DATA"] = str(root / "data")
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=60)


def _calls(root: Path) -> list[str]:
    path = root / "calls"
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("depth,error,shipped,verdict", [
    (110, 6.27, True, "the gain holds at this depth"),  # 0.50 below: the margin.
    (110, 6.28, True, "the decay does not matter at this depth"),  # 0.49 below.
    (110, 7.26, True, "the decay does not matter at this depth"),  # 0.49 above.
    (110, 7.27, False, "is reopened"),  # 0.50 above.
    (20, 7.98, True, "the gain holds at this depth"),
    (20, 8.98, False, "is reopened"),
])
def test_the_decay_all_net_is_shipped_unless_it_ends_half_a_point_above_the_shipped_kernels_net(
        root, depth, error, shipped, verdict):
    _final_test_error(root, depth, error)
    result = _read(root, str(depth))
    assert result.returncode == 0, result.stderr
    assert verdict in result.stdout and f"{error} % against {SHIPPED[depth]} %" in result.stdout
    ships = [c for c in _calls(root) if c.startswith("-m tools.ship_weights")]
    assert ships == ([f"-m tools.ship_weights --model_dir={root}/here/resnet{depth}-decayall-seed0 "
                      f"--data_dir={root}/data --weights_dir={root}/weights"] if shipped else [])


@pytest.mark.parametrize("depth,kernels_net", [
    (110, "here/resnet110-seed0/classifier.keras"),
    (20, "docs/results/cifar10-resnet20-64k/resnet20-cifar10.keras"),
])
def test_the_two_nets_are_compared_image_by_image_before_anything_is_shipped(root, depth, kernels_net):
    result = _read(root, str(depth))
    assert result.returncode == 0, result.stderr
    compare = _calls(root)[0]
    assert compare.startswith(f"-m tools.evaluate --model={root}/here/resnet{depth}-decayall-seed0/classifier.keras")
    assert f"--compare={kernels_net if kernels_net.startswith('docs') else f'{root}/{kernels_net}'}" in compare
    assert f"--data_dir={root}/data" in compare


@pytest.mark.parametrize("depth", ["", "56", "32"])
def test_a_depth_without_a_queued_decay_all_run_is_refused_in_one_line(root, depth):
    result = _read(root, *([depth] if depth else []))
    assert result.returncode == 2 and _calls(root) == []
    assert result.stderr.strip().count("\n") == 0 and "give 20 or 110" in result.stderr


@pytest.mark.parametrize("file", ["stats.json", "model.keras", "classifier.keras"])
def test_an_unfinished_or_uncopied_run_is_refused(root, file):
    (root / "here" / "resnet110-decayall-seed0" / file).unlink()
    result = _read(root, "110")
    assert result.returncode == 1 and _calls(root) == []
    assert f"resnet110-decayall-seed0/{file} is missing" in result.stderr


def test_the_data_folder_is_asked_for(root):
    result = _read(root, "110", data=False)
    assert result.returncode == 2 and _calls(root) == [] and "set DATA" in result.stderr


def test_a_depth_whose_shipped_net_decays_every_parameter_already_is_not_read_again(root):
    manifest = json.loads((root / "weights" / "cifar10.json").read_text())
    manifest["nets"][-1]["weight_decay_on"] = "all"  # ResNet-110: its decay-all net shipped already.
    _manifest(root, manifest["nets"])
    result = _read(root, "110")
    assert result.returncode == 1 and _calls(root) == [] and "read already" in result.stderr


def test_the_reference_is_the_shipped_net_of_the_runs_own_depth(root):
    # ResNet-56's entry (6.79 %, decay all) lies between the others in the manifest: reading it for
    # ResNet-110 would refuse the run; ResNet-20's 8.48 % would ship a run 0.6 points worse than 6.77 %.
    _final_test_error(root, 110, 7.40)
    result = _read(root, "110")
    assert result.returncode == 0, result.stderr
    assert "7.4 % against 6.77 %" in result.stdout and "is reopened" in result.stdout
