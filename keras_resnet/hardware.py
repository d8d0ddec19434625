"""What the hardware computes natively: the CPU from /proc/cpuinfo (benchmark tables, a bfloat16
warning) and the fastest native training precision (``--mixed_precision=auto``)."""

from __future__ import annotations

# CPU features that decide the speed of float32 and bfloat16 training on x86.
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
NATIVE_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


def read_cpuinfo() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return None


def _field(cpuinfo: str, name: str) -> str | None:
    return next((l.split(":", 1)[1].strip() for l in cpuinfo.splitlines() if l.startswith(name)), None)


def cpu_description(cpuinfo: str | None = None) -> str:
    """``"<model name>[, CPU family F model M] (<isa flags>)"``, e.g. ``"AMD EPYC 7B13 (avx2)"``.

    The family and model numbers name the generation where a virtual machine hides the model
    number (``"AMD EPYC, CPU family 26 model 2 (...)"``: family 26 is AMD's Zen 5; 25 is Zen 3 or
    Zen 4 by model). bfloat16 arithmetic is native only with avx512_bf16 or amx_bf16; without them
    TF's CPU kernels emulate it and mixed_bfloat16 trains slower than float32.
    """
    cpuinfo = read_cpuinfo() if cpuinfo is None else cpuinfo
    if not cpuinfo:
        import platform
        return platform.processor() or "CPU"
    flags = (_field(cpuinfo, "flags") or "").split()
    name = _field(cpuinfo, "model name") or "CPU"
    family, model = _field(cpuinfo, "cpu family"), _field(cpuinfo, "model\t") or _field(cpuinfo, "model ")
    if family and model and model.isdigit():
        name += f", CPU family {family} model {model}"
    return f"{name} ({', '.join(f for f in ISA_FLAGS if f in flags) or 'no AVX2'})"


def emulated_bfloat16_warning(cpuinfo: str | None = None) -> str | None:
    """A one-line warning when this is an x86 CPU without bfloat16 instructions, else None.

    Measured on such a CPU (AVX2 only): mixed_bfloat16 trains ResNet-20 14x slower than
    float32, because bfloat16 convolution gradients fall back to emulation
    (docs/performance.md, section 4). Only the CPU is checked; callers skip it on GPUs.
    """
    cpuinfo = read_cpuinfo() if cpuinfo is None else cpuinfo
    flags = (_field(cpuinfo or "", "flags") or "").split()
    if "sse2" not in flags or any(f in flags for f in NATIVE_BFLOAT16_FLAGS):
        return None  # Not x86 (or unknown), or native bfloat16.
    return (f"mixed_precision=bfloat16 on {cpu_description(cpuinfo)}, which has no bfloat16 instructions "
            "(avx512_bf16/amx_bf16): TF emulates them and training is about 10x slower than float32 "
            "(docs/performance.md).")


def cpu_has_native_bfloat16(cpuinfo: str | None = None) -> bool:
    cpuinfo = read_cpuinfo() if cpuinfo is None else cpuinfo
    flags = (_field(cpuinfo or "", "flags") or "").split()
    return any(f in flags for f in NATIVE_BFLOAT16_FLAGS)


def training_precision(num_gpus: int | None = None, cpu_replicas: int = 0) -> tuple[str, str]:
    """``(native_precision of the devices a run trains on, those devices in words)``: the first GPU's,
    or the CPU's with ``num_gpus=0``, ``cpu_replicas > 1`` (the recipes' flags) or no GPU."""
    import tensorflow as tf

    on_cpu = num_gpus == 0 or cpu_replicas > 1  # As the recipes place their replicas.
    gpus = [] if on_cpu else tf.config.list_physical_devices("GPU")
    capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability") if gpus else None
    device = f"GPU of compute capability {capability}" if gpus else cpu_description()
    return native_precision(capability), device


def native_precision(gpu_compute_capability: tuple[int, int] | None = None, cpuinfo: str | None = None) -> str:
    """The fastest precision the hardware computes natively, as a recipe's ``--mixed_precision`` value.

    GPUs (pass the first GPU's compute capability): ``"bfloat16"`` from 8.0 (A100, H100: bf16
    tensor cores, no loss scaling needed), ``"float16"`` before (V100, T4: fp16 tensor cores, with
    loss scaling). CPUs: ``"bfloat16"`` with AVX512-BF16 or AMX (measured 1.5x float32 for ResNet-20
    on a Zen 4, docs/performance.md), else ``"none"`` (float32: emulated bfloat16 is about 10x slower).
    """
    if gpu_compute_capability is not None:
        return "bfloat16" if tuple(gpu_compute_capability) >= (8, 0) else "float16"
    return "bfloat16" if cpu_has_native_bfloat16(cpuinfo) else "none"
