"""Which devices a run takes (keras_resnet.distribute.make_strategy), with GPUs stubbed: TF sees only
the GPUs asked for, each grows its memory as needed, and workers of a multi-worker job use NCCL."""

import json
import types

import pytest
import tensorflow as tf

from keras_resnet import distribute


@pytest.fixture
def machine(monkeypatch):
    """A machine with ``gpus`` GPUs; records what make_strategy asks of TF."""
    calls = {"visible": None, "growth": [], "strategy": None}

    def install(gpus: int, workers: int = 1):
        physical = [types.SimpleNamespace(name=f"/physical_device:GPU:{i}", device_type="GPU") for i in range(gpus)]
        monkeypatch.setattr(tf.config, "list_physical_devices",
                            lambda kind=None: list(physical) if kind == "GPU" else [])
        monkeypatch.setattr(tf.config, "set_visible_devices",
                            lambda devices, kind=None: calls.update(visible=[d.name for d in devices]))
        monkeypatch.setattr(tf.config.experimental, "set_memory_growth",
                            lambda device, on: calls["growth"].append((device.name, on)))
        visible = lambda: calls["visible"] or [d.name for d in physical]  # noqa: E731
        monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: [
            types.SimpleNamespace(name=f"/device:GPU:{i}") for i, _ in enumerate(visible())] if kind == "GPU" else [])
        for name in ("MirroredStrategy", "OneDeviceStrategy", "MultiWorkerMirroredStrategy"):
            monkeypatch.setattr(tf.distribute, name,
                                lambda *args, _name=name, **kwargs: calls.update(strategy=(_name, args, kwargs)))
        if workers > 1:
            cluster = {"worker": [f"localhost:{2000 + i}" for i in range(workers)]}
            monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
        else:
            monkeypatch.delenv("TF_CONFIG", raising=False)
        return calls
    return install


def test_num_gpus_hides_the_other_gpus_and_every_gpu_used_grows_its_memory(machine):
    calls = machine(4)
    distribute.make_strategy(2)
    assert calls["visible"] == ["/physical_device:GPU:0", "/physical_device:GPU:1"]
    assert calls["growth"] == [("/physical_device:GPU:0", True), ("/physical_device:GPU:1", True)]
    assert calls["strategy"] == ("MirroredStrategy", (["/device:GPU:0", "/device:GPU:1"],), {})


def test_by_default_every_gpu_is_used_and_grows_its_memory(machine):
    calls = machine(2)
    distribute.make_strategy()
    assert calls["visible"] is None and [g for g, _ in calls["growth"]] == ["/physical_device:GPU:0",
                                                                             "/physical_device:GPU:1"]
    assert calls["strategy"][0] == "MirroredStrategy"


def test_one_gpu_of_several_is_one_device(machine):
    calls = machine(2)
    distribute.make_strategy(1)
    assert calls["visible"] == ["/physical_device:GPU:0"]
    assert calls["strategy"] == ("OneDeviceStrategy", ("/device:GPU:0",), {})


def test_workers_with_gpus_use_nccl_and_their_num_gpus(machine):
    calls = machine(2, workers=2)
    distribute.make_strategy(1)
    assert calls["visible"] == ["/physical_device:GPU:0"]  # The BN-group check counted 2 workers x 1 GPU.
    name, _, kwargs = calls["strategy"]
    assert name == "MultiWorkerMirroredStrategy"
    assert kwargs["communication_options"].implementation == tf.distribute.experimental.CommunicationImplementation.NCCL
    assert distribute.planned_replicas(1) == 2


def test_workers_without_gpus_keep_tfs_ring(machine):
    calls = machine(0, workers=2)
    distribute.make_strategy()
    assert calls["strategy"][2]["communication_options"].implementation == \
        tf.distribute.experimental.CommunicationImplementation.AUTO


def test_more_gpus_than_there_are_is_refused(machine):
    machine(1)
    with pytest.raises(ValueError, match="num_gpus=2 but only 1 GPU"):
        distribute.make_strategy(2)
