"""The benchmark tool runs every model for one step and emits a complete table and JSON (no timings asserted)."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIELDS = {"model", "precision", "batch_size", "jit_compile", "device", "train_images_per_second",
          "inference_images_per_second", "train_step_seconds_median", "timed_steps", "peak_host_rss_mib",
          "peak_gpu_mib", "achieved_tflops", "fraction_of_peak"}


def test_benchmark_emits_table_and_json_for_ours_and_keras_applications(tmp_path):
    out = tmp_path / "bench.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "-m", "tools.benchmark", "--models=cifar20,imagenet50", "--precision=none",
         "--batch_size=4", "--imagenet_batch_size=2", "--image_size=64", "--steps=1", "--warmup=1",
         f"--out={out}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads(out.read_text())
    assert [r["model"] for r in results] == ["cifar20", "imagenet50", "keras_resnet50"]
    for r in results:
        assert set(r) == FIELDS
        assert r["train_images_per_second"] > 0 and r["peak_host_rss_mib"] > 0
    rows = [l for l in result.stdout.splitlines() if l.startswith("| ")]
    assert len(rows) == 2 + 3
    assert rows[-1].startswith("| keras_resnet50 |") and rows[-1].rstrip(" |").endswith("x")


def test_benchmark_rejects_unknown_model():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-m", "tools.benchmark", "--models=vgg16"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.strip().startswith("error: models must be among")
