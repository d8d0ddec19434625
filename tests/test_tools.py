"""The tools as a user runs them: bad input exits 2 with one line; good input works."""

import os
import subprocess
import sys

import pytest

from fake_data import write_cifar_archive

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tool(name, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-m", f"tools.{name}", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_prepare_cifar10_refuses_a_truncated_archive(tmp_path):
    archive = tmp_path / "cifar.tar.gz"
    write_cifar_archive(archive, truncate=True)
    result = tool("prepare_cifar10", f"--archive={archive}", f"--data_dir={tmp_path / 'tfds'}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: archive '{archive}': data_batch_3.bin has 61360 bytes, not a positive multiple of the "
        "3073-byte record size (truncated or corrupt)"]
    assert not (tmp_path / "tfds").exists()


def test_prepare_cifar10_logs_the_archive_checksum(tmp_path):
    archive = tmp_path / "cifar.tar.gz"
    write_cifar_archive(archive)
    result = tool("prepare_cifar10", f"--archive={archive}", f"--data_dir={tmp_path / 'tfds'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "sha256" in result.stderr and "'train': 100" in result.stdout.replace("Split(", "").replace(")", "")


@pytest.mark.parametrize("args,message", [
    (["--runs=/nonexistent/runs"], "error: --runs=/nonexistent/runs is not a directory"),
])
def test_report_bad_runs_folder(args, message):
    result = tool("report", *args)
    assert result.returncode == 2 and result.stderr.strip() == message


def test_model_table_bad_depth():
    result = tool("model_table", "--cifar_depths=21", "--imagenet_depths=")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: depth must be 6n+2 (20, 32, 44, 56, 110, 1202, ...), got 21"


def test_unknown_flag_is_one_line():
    result = tool("model_table", "--depth=3")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
