"""The CPU description of benchmark tables and the warning about emulated bfloat16."""

import pytest

from keras_resnet.hardware import cpu_description, emulated_bfloat16_warning

AVX2_ONLY = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse sse2 avx avx2 fma\n"
SAPPHIRE_RAPIDS = ("model name\t: Intel(R) Xeon(R) Platinum 8480+\n"
                   "flags\t\t: sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n")
ZEN5_VM = ("processor\t: 0\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\n"
           "flags\t\t: sse2 avx2 avx512f avx512_bf16\n")
ARM = "processor\t: 0\nFeatures\t: fp asimd bf16\nCPU implementer\t: 0x41\n"


def test_cpu_description_names_family_and_model_where_the_model_name_hides_the_generation():
    assert cpu_description(ZEN5_VM) == "AMD EPYC, CPU family 26 model 2 (avx2, avx512f, avx512_bf16)"


def test_cpu_description_lists_model_and_vector_extensions():
    assert cpu_description(AVX2_ONLY) == "AMD EPYC 7B13 (avx2)"
    assert cpu_description(SAPPHIRE_RAPIDS) == "Intel(R) Xeon(R) Platinum 8480+ (avx2, avx512f, avx512_bf16, amx_bf16)"


def test_bfloat16_warning_names_a_cpu_without_bfloat16_instructions():
    warning = emulated_bfloat16_warning(AVX2_ONLY)
    assert "AMD EPYC 7B13 (avx2)" in warning and "10x slower than float32" in warning and "\n" not in warning


def test_no_bfloat16_warning_with_native_bfloat16_or_off_x86():
    assert emulated_bfloat16_warning(SAPPHIRE_RAPIDS) is None
    assert emulated_bfloat16_warning(ARM) is None
    assert emulated_bfloat16_warning("") is None


def test_auto_precision_is_what_the_hardware_computes_natively():
    from keras_resnet.hardware import native_precision
    assert native_precision(cpuinfo=SAPPHIRE_RAPIDS) == "bfloat16"
    assert native_precision(cpuinfo=AVX2_ONLY) == "none"
    assert native_precision(cpuinfo=ARM) == "none"
    assert native_precision((8, 0), cpuinfo=AVX2_ONLY) == "bfloat16"  # A100/H100: the GPU decides.
    assert native_precision((9, 0)) == "bfloat16"
    assert native_precision((7, 0), cpuinfo=SAPPHIRE_RAPIDS) == "float16"  # V100.


def test_the_bfloat16_emulation_warning_depends_on_the_devices_trained_on_not_on_gpus_existing(monkeypatch):
    """A machine with GPUs that trains on its CPU (e.g. --num_gpus=0) still gets the warning."""
    import tensorflow as tf
    from keras_resnet import hardware, run_config, training
    warned = []
    monkeypatch.setattr(hardware, "emulated_bfloat16_warning", lambda: "emulated")
    monkeypatch.setattr(training.logging, "warning", lambda message, *args: warned.append(message))
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["/physical_device:GPU:0"])
    config = run_config.TrainConfig(mixed_precision="bfloat16")
    training._warn_if_bfloat16_is_emulated(config, tf.distribute.OneDeviceStrategy("/cpu:0"))
    assert warned == ["emulated"]


A100, V100 = {"compute_capability": (8, 0)}, {"compute_capability": (7, 0)}


@pytest.mark.parametrize("cpuinfo, gpu, num_gpus, expected", [
    (SAPPHIRE_RAPIDS, None, None, "bfloat16"),
    (AVX2_ONLY, None, None, "none"),  # Emulated bfloat16 would be about 10x slower than float32.
    (ZEN5_VM, None, None, "bfloat16"),
    (AVX2_ONLY, A100, None, "bfloat16"),
    (SAPPHIRE_RAPIDS, V100, None, "float16"),
    (SAPPHIRE_RAPIDS, V100, 0, "bfloat16"),  # --num_gpus=0 trains on the CPU: the CPU decides.
    (AVX2_ONLY, A100, 0, "none"),
])
def test_the_recipes_auto_precision_follows_the_devices_they_train_on(monkeypatch, cpuinfo, gpu, num_gpus, expected):
    import tensorflow as tf

    from keras_resnet import hardware

    monkeypatch.setattr(hardware, "read_cpuinfo", lambda: cpuinfo)
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"] if gpu and kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda device: gpu)
    assert hardware.training_precision(num_gpus)[0] == expected
