import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # What the recipes and tools run with (keras_resnet.cli).

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPUs, so that MirroredStrategy runs with 2 replicas in-process.
# Must happen before TF initialises its devices, hence here.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts with fresh layer names and the float32 policy."""
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def op_determinism():
    """TF's op determinism for one test, then off again: left on, it changes the rounding of every later
    test's kernels (a test of float closeness passed alone and failed after one that had set it)."""
    from tensorflow.python.framework import config as tf_config  # The only place disable_op_determinism is.

    tf.config.experimental.enable_op_determinism()
    yield
    tf_config.disable_op_determinism()


@pytest.fixture(scope="session")
def tiny_cifar(tmp_path_factory):
    """A tiny CIFAR-10 prepared through the real offline path: (data_dir, arrays written)."""
    from fake_data import write_cifar_archive
    from keras_resnet.data import prepare_cifar10

    root = tmp_path_factory.mktemp("cifar")
    archive = root / "cifar-10-binary.tar.gz"
    arrays = write_cifar_archive(archive)
    data_dir = str(root / "tfds")
    prepare_cifar10(str(archive), data_dir)
    return data_dir, arrays


@pytest.fixture(scope="session")
def finished_cifar_run(tiny_cifar, tmp_path_factory):
    """A finished depth-8 run of the CIFAR recipe on the tiny data (3 steps, batch 20, BN groups of 10):
    (data_dir, model_dir). Shared: a test that changes the run works on a copy."""
    import subprocess
    import sys

    data_dir, _ = tiny_cifar
    run = tmp_path_factory.mktemp("finished") / "resnet8"
    result = subprocess.run(
        [sys.executable, "-m", "recipes.cifar10", f"--data_dir={data_dir}", f"--model_dir={run}", "--depth=8",
         "--batch_size=20", "--bn_group_size=10", "--train_steps=3", "--eval_every=1000"],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), capture_output=True, text=True,
        timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""))
    assert result.returncode == 0, result.stderr[-2000:]
    return data_dir, str(run)


@pytest.fixture(scope="session")
def two_cpu_strategy():
    """One MirroredStrategy over the 2 logical CPUs for the whole session: TF's collective
    keys clash when several such strategies are created in one process."""
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture(scope="session")
def tiny_imagenet(tmp_path_factory):
    """A tiny ILSVRC 2012 (2 synsets x 2 training JPEGs, 3 validation JPEGs) prepared through
    TFDS's real imagenet2012 builder: the data_dir."""
    from fake_data import write_ilsvrc_tars
    from keras_resnet.data import imagenet

    root = tmp_path_factory.mktemp("imagenet")
    write_ilsvrc_tars(str(root / "manual"))
    imagenet.prepare_imagenet(str(root / "manual"), str(root / "tfds"))
    return str(root / "tfds")
