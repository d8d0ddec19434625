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


def test_report_of_several_folders_needs_out(tmp_path):
    roots = [tmp_path / "table6", tmp_path / "resnet20"]
    for root in roots:
        root.mkdir()
    result = tool("report", f"--runs={roots[0]},{roots[1]}")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: --runs={roots[0]},{roots[1]} names 2 folders: name the report's with --out"
    assert not any(os.listdir(root) for root in roots)


def test_model_table_bad_depth():
    result = tool("model_table", "--cifar_depths=21", "--imagenet_depths=")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: depth must be 6n+2 (20, 32, 44, 56, 110, 1202, ...), got 21"


def test_unknown_flag_is_one_line():
    result = tool("model_table", "--depth=3")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_start_up_on_a_cpu_machine_prints_no_cuda_errors():
    """What a user sees: no 'failed call to cuInit' (or any native error line) when nothing is wrong."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES")}
    result = subprocess.run([sys.executable, "-m", "tools.model_table", "--cifar_depths=8", "--imagenet_depths=18"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "cuInit" not in result.stderr and not any(l.startswith("E0000") for l in result.stderr.splitlines())
    assert "| CIFAR ResNet-8 (A) |" in result.stdout


def _plugins(path) -> set:
    import tensorflow as tf
    return {v.metadata.plugin_data.plugin_name for e in tf.compat.v1.train.summary_iterator(str(path))
            for v in e.summary.value}


def _session(path):
    """The HPARAMS session start info in the event file at ``path``."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import metadata

    for event in tf.compat.v1.train.summary_iterator(str(path)):
        for value in event.summary.value:
            if value.tag == metadata.SESSION_START_INFO_TAG:
                return metadata.parse_session_start_info_plugin_data(value.metadata.plugin_data.content)
    return None


def _run_with_old_hparams(run):
    """A run recorded by an earlier version: hparams in train/ and at the root, with the command."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    (run / "train").mkdir(parents=True)
    (run / "config.json").write_text('{"dataset": "cifar10", "depth": 20, "command": "python -m recipes.cifar10"}')
    (run / "provenance.json").write_text('{"segments": []}')
    writer = tf.summary.create_file_writer(str(run / "train"))
    with writer.as_default():
        hp.hparams({"depth": 20})
        tf.summary.text("provenance", "segment from step 0", step=0)
        tf.summary.scalar("error", 50.0, step=1)
        tf.summary.trace_on(graph=True)
        tf.function(lambda x: x * 2)(tf.constant(1.0))
        tf.summary.trace_export("step", step=1)
        tf.summary.scalar("error", 40.0, step=2)
    writer.close()
    root_writer = tf.summary.create_file_writer(str(run))
    with root_writer.as_default():
        hp.hparams({"depth": 20, "command": "python -m recipes.cifar10"})
    root_writer.close()


def test_slim_run_keeps_scalars_text_and_wall_times_and_drops_the_graph(tmp_path):
    import tensorflow as tf

    from keras_resnet.runs import read_scalars

    run = tmp_path / "run"
    _run_with_old_hparams(run)
    result = tool("slim_run", f"--src={run}", f"--dst={tmp_path / 'slim'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert read_scalars(str(tmp_path / "slim" / "train")) == read_scalars(str(run / "train"))
    (original,), (slim,) = ([list(tf.compat.v1.train.summary_iterator(str(p))) for p in sorted((d / "train").iterdir())]
                            for d in (run, tmp_path / "slim"))
    assert _plugins(next((run / "train").iterdir())) == {"scalars", "hparams", "text", "graph_run_metadata_graph"}
    assert _plugins(next((tmp_path / "slim" / "train").iterdir())) == {"scalars", "text"}  # Provenance kept.
    assert (tmp_path / "slim" / "provenance.json").read_text() == '{"segments": []}'
    kept = ("scalars", "text")
    assert [e.wall_time for e in slim if e.summary.value] == [
        e.wall_time for e in original if e.summary.value and e.summary.value[0].metadata.plugin_data.plugin_name in kept]


def test_slim_run_writes_the_hparams_record_afresh_from_config_json_at_the_copy_root(tmp_path):
    run = tmp_path / "run"
    _run_with_old_hparams(run)
    result = tool("slim_run", f"--src={run}", f"--dst={tmp_path / 'results' / 'resnet20-seed0'}")
    assert result.returncode == 0, result.stderr[-2000:]
    (root_events,) = [p for p in (tmp_path / "results" / "resnet20-seed0").iterdir() if p.name.startswith("events")]
    session = _session(root_events)
    assert session.group_name == "resnet20-seed0 (results)"
    assert {k: v.WhichOneof("kind") for k, v in session.hparams.items()} == {
        "dataset": "string_value", "depth": "number_value"}  # The command is a runtime setting: left out.
    assert _plugins(root_events) == {"hparams"}


def test_slim_run_into_an_earlier_copy_leaves_one_hparams_record(tmp_path):
    from tools.slim_run import slim_copy

    run = tmp_path / "run"
    _run_with_old_hparams(run)
    for _ in range(2):
        slim_copy(str(run), str(tmp_path / "slim"))
    assert len([p for p in (tmp_path / "slim").iterdir() if p.name.startswith("events")]) == 1


def test_model_table_prints_our_exact_counts_beside_the_papers():
    from tools.model_table import model_table
    rows = model_table([20, 110], [50]).splitlines()
    assert rows[2:] == [
        "| CIFAR ResNet-20 (A) | 269,722 | 0.27M | 40.6M | - |",
        "| CIFAR ResNet-110 (A) | 1,727,962 | 1.70M | 252.9M | - |",
        "| ResNet-50 (B) | 25,557,032 | - | 3.86e9 | 3.8e9 |",
        "| ResNet-50 (B, v1.5) | 25,557,032 | - | 4.09e9 | - |",
    ]


def test_input_benchmark_times_both_pipelines_and_records_json(tmp_path):
    data_dir = tmp_path / "tfds"
    archive = tmp_path / "cifar.tar.gz"
    write_cifar_archive(archive)
    assert tool("prepare_cifar10", f"--archive={archive}", f"--data_dir={data_dir}").returncode == 0
    out = tmp_path / "input.json"
    result = tool("perf.benchmark_input", f"--data_dir={data_dir}", "--batches=2", "--imagenet_batches=1", "--repeats=2",
                  f"--out={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    import json
    recorded = json.loads(out.read_text())
    imagenet = "ImageNet train (generated 500x375 JPEGs, batch 32)"
    assert [r["pipeline"] for r in recorded["results"]] == [
        "CIFAR-10 train (real data, batch 128)", f"{imagenet}, antialiased resize", f"{imagenet}, plain bilinear resize",
        f"{imagenet}, antialiased resize, 1 thread", f"{imagenet}, plain bilinear resize, 1 thread"]
    assert all(len(r["images_per_second"]) == 2 and r["images_per_second_median"] > 0 for r in recorded["results"])
    assert recorded["machine"]["cpu"] and "--batches=2" in recorded["command"]
    assert result.stdout.startswith("| pipeline | images/s (median) | runs |")


def test_input_benchmark_times_each_repeat_on_a_fresh_iterator():
    """A pipeline kept open between its repeats fills its prefetch buffers while the other one is timed
    (the first version measured 488,756 images/s that way); a fresh iterator per repeat cannot."""
    probe = """
import tensorflow as tf
from tools.perf.benchmark_input import alternated
class Counted:
    def __init__(self): self.iterators = 0
    def __iter__(self):
        self.iterators += 1
        return iter(tf.data.Dataset.range(1000).batch(4).prefetch(8))
pipelines = {"a": Counted(), "b": Counted()}
rates = alternated(pipelines, batches=3, batch_size=4, repeats=3)
print(pipelines["a"].iterators, pipelines["b"].iterators, len(rates["a"]), len(rates["b"]))
"""
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["3", "3", "3", "3"]


def test_resume_cost_skips_records_through_the_training_order_and_scales_to_imagenet():
    result = tool("perf.resume_cost", "--records=40", "--record_kb=1", "--files=4", "--shuffle_buffer=16")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "skipped 39 records of 1 kB" in result.stdout and "records/s" in result.stdout
    assert "a mid-epoch resume of full ImageNet on one worker (640,583 records" in result.stdout
