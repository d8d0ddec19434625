"""The PyTorch comparison: its summary arithmetic, its refusal of an interpreter without torch,
and (only where torch happens to be installed) the PyTorch peer itself."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")


def test_summary_gives_each_round_and_the_ratio_of_medians():
    from keras_resnet.benchmarking import comparison_table
    ours = [{"train_images_per_second": v} for v in (300.0, 200.0, 250.0)]
    theirs = [{"train_images_per_second": v} for v in (100.0, 200.0, 125.0)]
    rows = comparison_table(ours, theirs, "PyTorch").splitlines()
    assert rows[2] == "| 1 | 300.0 | 100.0 | 3.00x |"
    assert rows[-1] == "| median | 250.0 | 125.0 | 2.00x |"


def test_an_interpreter_without_torch_is_refused_in_one_line():
    if subprocess.run([sys.executable, "-c", "import torch"], capture_output=True).returncode == 0:
        pytest.skip("this interpreter has torch")
    result = subprocess.run([sys.executable, "-m", "tools.perf.compare_pytorch", f"--torch_python={sys.executable}"],
                            cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: --torch_python={sys.executable} cannot import torch; install it there: pip install torch==2.13.0 numpy"]


def test_a_missing_interpreter_is_refused_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tools.perf.compare_pytorch", f"--torch_python={tmp_path}/python"],
                            cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "is not an executable Python interpreter" in result.stderr


def test_comparison_runs_both_sides_and_records_every_round(tmp_path):
    # A stand-in for the PyTorch venv: "imports torch" and reports as tools/perf/pytorch_resnet20.py does.
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\n[ \"$1\" = -c ] && exit 0\n"
                    "echo '{\"model\": \"pytorch_resnet20\", \"framework\": \"fake\", \"threads\": 2, "
                    "\"train_images_per_second\": 10.0}'\n")
    fake.chmod(0o755)
    out = tmp_path / "compare.json"
    result = subprocess.run([sys.executable, "-m", "tools.perf.compare_pytorch", f"--torch_python={fake}", "--rounds=2",
                             "--batch_size=2", "--steps=1", "--warmup=0", "--depth=8", f"--out={out}"],
                            cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(out.read_text())
    assert record["command"].startswith("python -m tools.perf.compare_pytorch --torch_python=")
    assert [r["model"] for r in record["results"]["ours"]] == ["cifar8", "cifar8"]
    assert [r["train_images_per_second"] for r in record["results"]["pytorch"]] == [10.0, 10.0]
    assert "| median |" in result.stdout


def test_the_pytorch_peer_reports_one_json_line():
    pytest.importorskip("torch")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "perf", "pytorch_resnet20.py"), "--batch_size=2",
                             "--steps=1", "--warmup=0"], capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["model"] == "pytorch_resnet20" and report["train_images_per_second"] > 0
