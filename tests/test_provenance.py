"""Run provenance: what produced a run, one segment per start or resume (keras_resnet.provenance)."""

import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from keras_resnet import provenance

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _recipe(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-m", "recipes.cifar10", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _cpuinfo_field(name):
    with open("/proc/cpuinfo") as f:
        return next(line.split(":", 1)[1].strip() for line in f if line.startswith(name))


@pytest.fixture(scope="module")
def resumed_run(tiny_cifar, tmp_path_factory):
    """A tiny recipe run stopped at step 2 and resumed to its end at step 4: its model_dir."""
    data_dir, _ = tiny_cifar
    run = tmp_path_factory.mktemp("provenance") / "run"
    args = [f"--data_dir={data_dir}", f"--model_dir={run}", "--depth=8", "--batch_size=20", "--bn_group_size=10",
            "--train_steps=4", "--checkpoint_every=1", "--log_every=1", "--mixed_precision=bfloat16"]
    for extra in (["--stop_after=2"], []):
        result = _recipe(*args, *extra)
        assert result.returncode == 0, result.stderr[-2000:]
    return run


def _segments(run):
    with open(run / "provenance.json") as f:
        return json.load(f)["segments"]


def test_a_stopped_and_resumed_run_has_two_segments_with_their_steps_and_times(resumed_run):
    first, second = _segments(resumed_run)
    assert (first["first_step"], first["last_step"], second["first_step"], second["last_step"]) == (0, 2, 2, 4)
    assert first["start_time"] <= first["end_time"] <= second["start_time"] <= second["end_time"]
    assert second.get("ended") == "finished" and "ended" not in first


def test_segments_record_the_package_version_and_the_commit_of_this_checkout(resumed_run):
    import keras_resnet
    code = _segments(resumed_run)[-1]["code"]
    assert code["distribution"] == "keras-resnet-paper" and code["version"] == keras_resnet.__version__
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("the tests do not run from a git checkout")
    assert code["source"] == "git checkout" and code["git_commit"] == head.stdout.strip()
    assert isinstance(code["git_dirty"], bool)


def test_segments_record_the_library_versions(resumed_run):
    import keras
    import tensorflow as tf
    import tensorflow_datasets as tfds
    assert _segments(resumed_run)[-1]["software"] == {
        "python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
        "tensorflow_datasets": tfds.__version__, "numpy": np.__version__}


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="reads /proc/cpuinfo")
def test_segments_record_the_cpu_model_family_and_bfloat16_flags(resumed_run):
    device = _segments(resumed_run)[-1]["device"]
    cpu = device["cpu"]
    assert cpu["model_name"] == _cpuinfo_field("model name")
    assert (cpu["family"], cpu["model"]) == (_cpuinfo_field("cpu family"), _cpuinfo_field("model\t"))
    flags = _cpuinfo_field("flags").split()
    assert {f: f in cpu["flags"] for f in ("avx2", "avx512f", "avx512_bf16")} == {
        f: f in flags for f in ("avx2", "avx512f", "avx512_bf16")}
    assert cpu["usable_cpus"] == len(os.sched_getaffinity(0)) and device["gpus"] == []
    assert device["class"] == cpu["description"]


def test_segments_record_strategy_replicas_precision_and_onednn(resumed_run):
    runtime = _segments(resumed_run)[-1]["runtime"]
    assert (runtime["strategy"], runtime["replicas"], runtime["workers"]) == ("OneDeviceStrategy", 1, 1)
    assert runtime["precision"] == "mixed bfloat16" and runtime["jit_compile"] is False
    assert runtime["onednn"] == "1"  # The entry points switch oneDNN on (keras_resnet.cli).


def test_segments_identify_the_data_read_by_the_md5_of_the_original_files(tiny_cifar, resumed_run):
    from fake_data import cifar_records
    data_dir, (train_x, train_y, test_x, test_y) = tiny_cifar
    data = _segments(resumed_run)[-1]["data"]
    per_file = len(train_y) // 5
    expected = {f"data_batch_{i + 1}.bin": hashlib.md5(cifar_records(
        train_x[i * per_file:(i + 1) * per_file], train_y[i * per_file:(i + 1) * per_file])).hexdigest()
        for i in range(5)}
    splits = data["identity"]["splits"]
    assert splits["train"]["bin_md5"] == expected and splits["train"]["official"] is False
    assert splits["test"]["bin_md5"] == {"test_batch.bin": hashlib.md5(cifar_records(test_x, test_y)).hexdigest()}
    assert data["identity"]["dataset"] == "cifar10" and data["identity"]["tfds_version"] == "3.0.2"
    assert "NOT the official" in data["summary"]
    archive = os.path.join(os.path.dirname(data_dir), "cifar-10-binary.tar.gz")
    with open(archive, "rb") as f:
        assert data["prepared_from"]["archive_sha256"] == hashlib.sha256(f.read()).hexdigest()
    assert data["prepared_from"]["bin_md5"] == {**expected, **splits["test"]["bin_md5"]}


def test_each_segment_is_a_tensorboard_text_summary_at_its_first_step(resumed_run):
    from tensorboard.backend.event_processing import event_accumulator
    acc = event_accumulator.EventAccumulator(str(resumed_run / "train"), size_guidance={"tensors": 0})
    acc.Reload()
    texts = {e.step: e.tensor_proto.string_val[0].decode() for e in acc.Tensors("provenance")}
    assert sorted(texts) == [0, 2]
    assert all(provenance.DISTRIBUTION in t and "cifar10" in t for t in texts.values())


def test_the_data_is_called_official_only_when_every_file_has_the_official_md5(tiny_cifar, monkeypatch):
    from keras_resnet.data import cifar10
    data_dir, _ = tiny_cifar
    splits = {s: cifar10.load_cifar10(s, data_dir) for s in ("train", "test")}
    ours = {**cifar10.archive_md5s(splits["train"], "train"), **cifar10.archive_md5s(splits["test"], "test")}
    monkeypatch.setattr(cifar10, "OFFICIAL_MD5", ours)
    assert cifar10.data_identity(splits, data_dir)["summary"].endswith("every .bin has the official md5")
    monkeypatch.setattr(cifar10, "OFFICIAL_MD5", {**ours, "test_batch.bin": "0" * 32})
    identity = cifar10.data_identity(splits, data_dir)
    assert identity["identity"]["splits"]["train"]["official"] and not identity["identity"]["splits"]["test"]["official"]
    assert identity["summary"].endswith("NOT the official CIFAR-10 files")


def test_part_of_a_split_is_identified_by_the_md5_of_its_records(tiny_cifar):
    from keras_resnet.data import cifar10
    data_dir, _ = tiny_cifar
    part = cifar10.load_cifar10("train[:90%]", data_dir)
    other = cifar10.load_cifar10("train[:80%]", data_dir)
    read = cifar10.data_identity({"train[:90%]": part}, data_dir)["identity"]["splits"]["train[:90%]"]
    assert read["official"] is None and read["images"] == len(part)
    assert read["records_md5"] != cifar10.data_identity(
        {"train[:90%]": other}, data_dir)["identity"]["splits"]["train[:90%]"]["records_md5"]


def test_prepare_records_the_archive_and_refuses_a_folder_prepared_from_other_files(tmp_path):
    from fake_data import write_cifar_archive
    from keras_resnet.data import cifar10
    first, second = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    write_cifar_archive(first, seed=0)
    write_cifar_archive(second, seed=1)
    data_dir = str(tmp_path / "tfds")
    cifar10.prepare_cifar10(str(first), data_dir)
    source = cifar10.read_source(data_dir)
    assert source["archive_sha256"] == cifar10.sha256(str(first)) and source["official_md5"] is False
    assert source["bin_md5"] == cifar10.md5_of_members(str(first))
    cifar10.prepare_cifar10(str(first), data_dir)  # The same files again: accepted.
    with pytest.raises(ValueError, match=r"was prepared from other files than .*b\.tar\.gz \(data_batch_1\.bin"):
        cifar10.prepare_cifar10(str(second), data_dir)
    assert cifar10.read_source(data_dir)["archive_sha256"] == source["archive_sha256"]  # Unchanged.


def _checkout(root, package="keras_resnet"):
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-qm", "x"]):
        subprocess.run(["git", "-C", str(root), *cmd], check=True, env=env)
    return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


def test_code_version_names_the_commit_and_whether_the_tree_has_uncommitted_changes(tmp_path):
    commit = _checkout(tmp_path)
    clean = provenance.code_version(str(tmp_path / "keras_resnet"))
    assert (clean["source"], clean["git_commit"], clean["git_dirty"]) == ("git checkout", commit, False)
    (tmp_path / "keras_resnet" / "__init__.py").write_text("x = 1\n")
    dirty = provenance.code_version(str(tmp_path / "keras_resnet"))
    assert dirty["git_dirty"] is True and dirty["changed_files"] == ["keras_resnet/__init__.py"]


def test_an_installed_copy_inside_a_repository_is_not_a_git_checkout(tmp_path):
    _checkout(tmp_path, package="venv/lib/site-packages/keras_resnet")
    code = provenance.code_version(str(tmp_path / "venv" / "lib" / "site-packages" / "keras_resnet"))
    assert (code["source"], code["git_commit"], code["git_dirty"]) == ("not a git checkout", None, None)


def _segment(**changes):
    segment = {"code": {"distribution": "keras-resnet-paper", "version": "1", "git_commit": "abc", "git_dirty": False},
               "software": {"tensorflow": "2.21.0", "keras": "3.15.1", "tensorflow_datasets": "4.9.10"},
               "device": {"class": "AMD EPYC, CPU family 25 model 17 (avx2, avx512f, avx512_bf16)"},
               "runtime": {"precision": "mixed bfloat16", "replicas": 1, "workers": 1},
               "data": {"identity": {"dataset": "cifar10"}, "summary": "cifar10 official"}}
    for key, value in changes.items():
        section, field = key.split("__")
        segment[section] = {**segment[section], field: value}
    return segment


@pytest.mark.parametrize("change,named", [
    ({"code__git_commit": "def"}, "code"),
    ({"software__tensorflow": "2.22.0"}, "library versions"),
    ({"device__class": "AMD EPYC, CPU family 26 model 2 (avx2, avx512f, avx512_bf16)"}, "device class"),
    ({"runtime__precision": "float32"}, "precision"),
    ({"data__identity": {"dataset": "cifar10", "jpeg": True}}, "data"),
])
def test_the_summary_line_marks_a_run_whose_segments_differ(change, named):
    line = provenance.summary([_segment(), _segment(**change)])
    assert line.startswith(f"**SEGMENTS DIFFER in {named}**") and "2 segments" in line


def test_a_differing_machine_is_named_with_the_iterations_each_one_trained():
    steps = [(0, 4_162), (4_162, 4_246), (4_246, 8_171), (8_171, 9_000)]
    machines = ["Intel Xeon", "Intel Xeon", "AMD EPYC", "Intel Xeon"]
    segments = [{**_segment(device__class=m), "first_step": a, "last_step": b} for m, (a, b) in zip(machines, steps)]
    line = provenance.summary(segments)
    assert line.startswith("**SEGMENTS DIFFER in device class** (device class: Intel Xeon for iterations 0-4,246, "
                           "AMD EPYC for 4,246-8,171, Intel Xeon for 8,171-9,000; see provenance.json); ")


@pytest.mark.parametrize("change,shown", [
    ({"code__git_commit": "def4567890abcdef"}, "code: abc for iterations 0-10, def4567890 for 10-20"),
    ({"runtime__precision": "float32"}, "precision: mixed bfloat16 for iterations 0-10, float32 for 10-20"),
    ({"software__tensorflow": "2.22.0"}, "(see provenance.json)"),
])
def test_a_differing_code_or_precision_is_shown_per_segment_and_other_differences_point_to_the_file(change, shown):
    segments = [{**_segment(), "first_step": 0, "last_step": 10}, {**_segment(**change), "first_step": 10, "last_step": 20}]
    assert shown in provenance.summary(segments)


def test_the_summary_line_of_consistent_segments_has_no_mark_and_names_the_facts():
    line = provenance.summary([_segment(), _segment(runtime__replicas=1)])
    assert "DIFFER" not in line
    for fact in ("keras-resnet-paper 1 (abc)", "TF 2.21.0", "family 25 model 17", "mixed bfloat16",
                 "cifar10 official", "2 segments"):
        assert fact in line


def test_the_summary_line_names_segments_reconstructed_afterwards():
    line = provenance.summary([{**_segment(), "reconstructed_from": "the session log"}, _segment()])
    assert line.endswith("2 segments; segment 1 reconstructed afterwards from the session log")
    assert "reconstructed" not in provenance.summary([_segment(), _segment()])


def test_the_report_says_when_a_run_has_no_provenance(tmp_path):
    from keras_resnet.runs import Run
    assert "not recorded" in Run(str(tmp_path), {}, {}, {}).provenance_line()
    reconstructed = Run(str(tmp_path), {}, {}, {}, {"segments": [_segment()], "reconstructed_from": "the notes"})
    assert reconstructed.provenance_line().startswith("reconstructed from the notes")


def test_a_damaged_provenance_file_is_kept_aside_and_a_new_record_started(tmp_path):
    path = tmp_path / "provenance.json"
    path.write_text('{"segments": [')
    record = provenance.RunProvenance(str(path), {"code": {}}, first_step=7)
    kept = [p for p in os.listdir(tmp_path) if p.startswith("provenance.json.damaged-")]
    assert len(kept) == 1 and (tmp_path / kept[0]).read_text() == '{"segments": ['
    saved = provenance.read(str(path))
    assert saved["damaged_record_kept_as"] == kept[0] and saved["segments"][0]["first_step"] == 7
    record.update(9)
    assert provenance.read(str(path))["segments"][0]["last_step"] == 9


def test_run_seconds_sum_each_segment_from_start_to_last_end_and_this_one_up_to_now(tmp_path):
    t0 = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
    at = lambda seconds: (t0 + datetime.timedelta(seconds=seconds)).isoformat()
    earlier = [{"start_time": at(0), "end_time": at(100)},  # 100 s, then 900 s waiting for the next session
               {"start_time": at(1000), "end_time": at(1200)},  # 200 s
               {"start_time": at(2000), "end_time": None}]  # killed before its first checkpoint: not counted
    path = tmp_path / "provenance.json"
    path.write_text(json.dumps({"segments": earlier}))
    record = provenance.RunProvenance(str(path), {}, first_step=7)
    started = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=50)
    record.segment["start_time"] = started.isoformat(timespec="seconds")
    record.update(8)
    assert 350 <= record.run_seconds() <= 352


def test_the_distribution_has_a_name_of_its_own_and_its_version_is_the_packages():
    """``keras-resnet`` on PyPI is another project; the one version source is keras_resnet.__version__
    (CI also builds the wheel and checks its metadata against it)."""
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)
    assert project["project"]["name"] == provenance.DISTRIBUTION != "keras-resnet"
    assert "version" in project["project"]["dynamic"] and "version" not in project["project"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "keras_resnet.__version__"}
