"""The benchmark tool runs every model for one step and emits a complete table and JSON (no timings asserted)."""

import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIELDS = {"model", "precision", "batch_size", "jit_compile", "device", "train_images_per_second",
          "inference_images_per_second", "train_step_seconds_median", "timed_steps", "peak_host_rss_mib",
          "peak_gpu_mib", "achieved_tflops", "fraction_of_peak", "train_images_per_second_mean", "round",
          "bn_group_size", "fused_batch_norm"}
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")


def test_benchmark_emits_table_and_json_for_ours_and_keras_applications(tmp_path):
    out = tmp_path / "bench.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "-m", "tools.perf.benchmark", "--models=cifar20,imagenet50", "--precision=none",
         "--batch_size=4", "--imagenet_batch_size=2", "--image_size=64", "--steps=1", "--warmup=1",
         "--matmul_size=256", f"--out={out}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    from keras_resnet.hardware import cpu_description
    record = json.loads(out.read_text())
    assert record["command"].startswith("python -m tools.perf.benchmark --models=cifar20,imagenet50")
    assert record["machine"]["cpu"] == cpu_description() and record["machine"]["TF_ENABLE_ONEDNN_OPTS"] == "1"
    results = record["results"]
    assert [r["model"] for r in results] == ["cifar20", "imagenet50", "keras_resnet50", "matmul"]
    matmul = results.pop()
    assert matmul["precision"] == "none" and matmul["tflops"] > 0  # This CPU's attainable rate.
    for r in results:
        assert set(r) == FIELDS
        assert r["train_images_per_second"] > 0 and r["peak_host_rss_mib"] > 0
        assert r["fraction_of_peak"] == r["achieved_tflops"] / matmul["tflops"]
    rows = [l for l in result.stdout.splitlines() if l.startswith("| ")]
    assert len(rows) == 2 + 3
    assert rows[-1].startswith("| keras_resnet50 |") and rows[-1].rstrip(" |").endswith("x")


def _measurement(model, train, rss, round_):
    return {"model": model, "precision": "none", "batch_size": 16, "jit_compile": False, "round": round_,
            "train_images_per_second": train, "inference_images_per_second": 2 * train,
            "train_step_seconds_median": 16 / train, "train_images_per_second_mean": train,
            "achieved_tflops": train / 100, "fraction_of_peak": None, "peak_host_rss_mib": rss,
            "peak_gpu_mib": None}


def test_rounds_are_summarised_by_median_speed_and_maximum_memory():
    from keras_resnet.benchmarking import over_rounds
    runs = [_measurement("imagenet50", t, m, i) for i, (t, m) in enumerate([(3.0, 10), (4.0, 30), (3.5, 20)])]
    runs.insert(1, _measurement("keras_resnet50", 3.0, 5, 0))
    ours, peer = over_rounds(runs)
    assert (ours["model"], ours["rounds"], peer["rounds"]) == ("imagenet50", 3, 1)
    assert ours["train_images_per_second"] == 3.5 and ours["inference_images_per_second"] == 7.0
    assert ours["peak_host_rss_mib"] == 30 and ours["fraction_of_peak"] is None and "round" not in ours
    assert ours["train_images_per_second_range"] == (3.0, 4.0) and "train_images_per_second_range" not in peer


def tiny_benchmark(tmp_path, *flags):
    """tools.perf.benchmark on ResNet-20 at 8x8 pixels, one step: (stdout, results recorded in --out)."""
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "tools.perf.benchmark", "--models=cifar20", "--precision=none", "--image_size=8",
         "--steps=1", "--warmup=1", "--matmul_size=256", f"--out={out}", *flags], cwd=ROOT, env=ENV, capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, json.loads(out.read_text())["results"]


@pytest.fixture(scope="module")
def two_rounds(tmp_path_factory):
    """(stdout, results) of a two-round tiny benchmark, shared by the tests of rounds."""
    return tiny_benchmark(tmp_path_factory.mktemp("rounds"), "--batch_size=2", "--rounds=2")


def test_benchmark_rounds_alternate_and_the_table_gives_one_row_per_configuration(two_rounds):
    stdout, results = two_rounds
    assert [(r["model"], r.get("round")) for r in results] == [("cifar20", 1), ("cifar20", 2), ("matmul", 1),
                                                                 ("matmul", 2)]
    assert "medians over 2 alternating rounds" in stdout
    rows = [l for l in stdout.splitlines() if l.startswith("| cifar20 |")]
    assert len(rows) == 1
    assert re.search(r"\| [\d.]+% \([\d.]+%-[\d.]+%\) \|", rows[0])  # Median share, lowest-highest round.


def test_each_round_is_compared_with_the_matmul_rate_measured_in_that_round(two_rounds):
    stdout, results = two_rounds
    nets, references = results[:2], {r["round"]: r["tflops"] for r in results[2:]}
    for net in nets:
        assert net["fraction_of_peak"] == net["achieved_tflops"] / references[net["round"]]
    assert [l.startswith(f"round {i}: attainable matmul rate") for i, l in enumerate(
        (l for l in stdout.splitlines() if "attainable matmul rate" in l), 1)] == [True, True]


def test_benchmark_measures_standard_and_grouped_and_fused_and_stock_keras_bn_side_by_side(tmp_path):
    stdout, results = tiny_benchmark(tmp_path, "--batch_size=4", "--bn_group_sizes=0,2", "--batch_norm=fused,keras")
    # Stock Keras BN cannot normalise groups: that pair is left out, not a crash.
    assert [(r.get("bn_group_size"), r.get("fused_batch_norm")) for r in results] == [
        (None, True), (None, False), (2, True), (None, None)]  # The last: matmul.
    rows = [l for l in stdout.splitlines() if l.startswith("| cifar20 |")]
    assert [(r.split("|")[4].strip(), r.split("|")[5].strip()) for r in rows] == [
        ("fused", "-"), ("Keras", "-"), ("fused", "2")]


def test_benchmark_rejects_a_bn_group_that_does_not_divide_the_batch():
    result = subprocess.run([sys.executable, "-m", "tools.perf.benchmark", "--models=cifar20", "--batch_size=128",
                             "--bn_group_sizes=0,48"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "bn_group_sizes: 48 does not divide --batch_size=128" in result.stderr


def test_benchmark_rejects_zero_rounds():
    result = subprocess.run([sys.executable, "-m", "tools.perf.benchmark", "--models=cifar20", "--rounds=0"],
                            cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "rounds must be a positive integer, got 0" in result.stderr


def test_benchmark_rejects_unknown_model():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-m", "tools.perf.benchmark", "--models=vgg16"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.strip().startswith("error: models must be among")


def test_benchmark_times_the_recipe_loop_against_the_bare_step(tiny_cifar, tmp_path):
    data_dir, _ = tiny_cifar
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "tools.perf.benchmark", "--models=cifar20", "--precision=none", "--batch_size=4",
         "--steps=2", "--warmup=1", f"--recipe_data_dir={data_dir}", f"--out={out}"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    overhead = json.loads(out.read_text())["results"][-1]
    assert overhead["model"] == "cifar20" and overhead["timed_steps"] == 2
    assert overhead["recipe_images_per_second"] > 0 and overhead["bare_images_per_second"] > 0
    assert abs(overhead["overhead"] - (1 - overhead["recipe_images_per_second"] / overhead["bare_images_per_second"])) < 1e-9
    assert any(l.startswith("| cifar20 | none | 4 |") and l.rstrip(" |").endswith("%") for l in result.stdout.splitlines())


def test_benchmark_rejects_a_missing_recipe_data_dir(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tools.perf.benchmark", "--models=cifar20",
                             f"--recipe_data_dir={tmp_path / 'nothing'}"], cwd=ROOT, env=ENV,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--recipe_data_dir=" in result.stderr and "not a directory" in result.stderr


def test_cpu_description_names_the_vector_extensions_of_this_cpu():
    from keras_resnet.hardware import cpu_description
    with open("/proc/cpuinfo") as f:
        flags = next(l for l in f if l.startswith("flags")).split(":", 1)[1].split()
    extensions = cpu_description().rsplit("(", 1)[1].rstrip(")").split(", ")
    assert extensions == [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags] or (
        extensions == ["no AVX2"] and "avx2" not in flags)


def test_conv_benchmark_times_three_kernels_in_both_dtypes(tmp_path):
    out = tmp_path / "conv.json"
    result = subprocess.run([sys.executable, "-m", "tools.perf.benchmark_conv", "--batch_size=2", "--repeats=1",
                             f"--out={out}"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads(out.read_text())["results"]
    assert [(r["size"], r["dtype"]) for r in results] == [
        (32, "float32"), (32, "bfloat16"), (16, "float32"), (16, "bfloat16"), (8, "float32"), (8, "bfloat16")]
    assert all(r[k] > 0 for r in results for k in ("forward_ms", "input_gradient_ms", "filter_gradient_ms"))
    assert "TF_ENABLE_ONEDNN_OPTS=1" in result.stdout


def test_profile_step_lists_the_op_types_of_the_train_step(tmp_path):
    out = tmp_path / "ops.json"
    result = subprocess.run(
        [sys.executable, "-m", "tools.perf.profile_step", "--model=cifar8", "--batch_size=2", "--image_size=8",
         "--steps=1", "--warmup=1", f"--logdir={tmp_path / 'trace'}", f"--out={out}"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    ops = {r["op_type"]: r for r in json.loads(out.read_text())["results"]["ops"]}
    assert any("Conv2DBackpropFilter" in op for op in ops) and any("FusedBatchNorm" in op for op in ops)
    assert all(r["ms_per_step"] >= 0 and r["count_per_step"] > 0 for r in ops.values())
    assert "Process" not in ops
    assert result.stdout.splitlines()[1].startswith("| op type | ms / step |")


def test_profile_step_by_name_gives_each_layers_gradient_kernel_its_own_row(tmp_path):
    out = tmp_path / "ops.json"
    result = subprocess.run(
        [sys.executable, "-m", "tools.perf.profile_step", "--model=cifar8", "--batch_size=2", "--image_size=8",
         "--steps=1", "--warmup=1", "--by=name", f"--out={out}"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    filters = [r for r in json.loads(out.read_text())["results"]["ops"] if r["op_type"].endswith("Conv2DBackpropFilter")]
    assert len(filters) == 7  # ResNet-8: the stem and 2 convolutions in each of 3 blocks, one row each.
    assert len({r["op"] for r in filters}) == 7 and all(r["count_per_step"] == 1 for r in filters)
    assert result.stdout.splitlines()[1].startswith("| op (type) | ms / step |")


def test_profile_step_rejects_an_unknown_model():
    result = subprocess.run([sys.executable, "-m", "tools.perf.profile_step", "--model=vgg16"], cwd=ROOT, env=ENV,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "model must be cifar<depth> or imagenet50, got 'vgg16'" in result.stderr


def test_gpu_smoke_runs_every_configuration_and_reports_speed_loss_and_errors(tmp_path):
    out = tmp_path / "smoke.json"
    result = subprocess.run([sys.executable, "-m", "tools.perf.gpu_smoke", "--allow_cpu", "--steps=2", "--batch_size=4",
                             "--precisions=none,bfloat16", "--xla=off", f"--out={out}"], cwd=ROOT, env=ENV,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "on the CPU (--allow_cpu: no GPU visible)" in result.stdout
    results = json.loads(out.read_text())["results"]
    assert [(r["precision"], r["xla"]) for r in results] == [("none", "off"), ("bfloat16", "off")]
    assert all("error" not in r and r["images_per_second"] > 0 and r["loss"] > 0 for r in results)


def test_gpu_smoke_without_a_gpu_says_so_in_one_line():
    result = subprocess.run([sys.executable, "-m", "tools.perf.gpu_smoke"], cwd=ROOT, env=ENV, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: no GPU is visible (nvidia-smi, CUDA_VISIBLE_DEVICES?); --allow_cpu runs the same checks on the CPU"]
