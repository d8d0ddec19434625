"""Where a train step's time goes: TF profiler op times, summed by op type (or per op with ``--by=name``).

    python -m tools.perf.profile_step [--model=cifar20] [--precision=none] [--batch_size=128] \
        [--steps=5] [--warmup=3] [--fused_batch_norm=true] [--bn_group_size=0] [--by=type|name] \
        [--logdir=DIR] [--out=FILE]

Runs the recipes' train step (``benchmarking.synthetic_train_step``) under
``tf.profiler.experimental`` for ``--steps`` steps and prints a Markdown table of the
time of each TF op type per step, summed over all threads (so it can exceed the wall time
when ops run in parallel), largest first, with the share of the total and the count per step;
``--by=name`` gives one row per op (per layer and pass), e.g. to compare a layer between precisions.
``--fused_batch_norm=false`` builds stock Keras BN, to see what the fused layer saves;
``--bn_group_size=64`` profiles ghost BN over groups of 64 images (the CIFAR recipe's default).
The trace stays in ``--logdir`` for TensorBoard's profile plugin.
"""

from __future__ import annotations

import collections
import glob
import re
import tempfile
import time

from absl import flags

from keras_resnet import cli

_MODEL = flags.DEFINE_string("model", "cifar20", "cifar<6n+2> or imagenet50.")
_PRECISION = flags.DEFINE_enum("precision", "none", ["none", "bfloat16", "float16"], "Mixed precision.")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Global batch size.")
_STEPS = flags.DEFINE_integer("steps", 5, "Profiled steps.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Unprofiled steps first (tracing, warm caches).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Override the input size (tests use small images).")
_FUSED_BN = flags.DEFINE_bool("fused_batch_norm", True, "FusedBatchNormalization (true) or Keras BN.")
_GROUP = flags.DEFINE_integer("bn_group_size", 0, "BN statistics over groups of this many images (0: whole batch).",
                               lower_bound=0)
_LOGDIR = flags.DEFINE_string("logdir", None, "Keep the trace here (default: a temporary folder).")
_OUT = flags.DEFINE_string("out", None, "Write the rows as JSON here.")
_TOP = flags.DEFINE_integer("top", 20, "Rows to print.")
_BY = flags.DEFINE_enum("by", "type", ["type", "name"], "Sum the times by op type, or list every op by name "
                        "(e.g. to compare one layer's gradient kernel between precisions).")


def op_times(xplane_path: str, steps: int, by: str = "type") -> list[dict]:
    """``[{op_type, ms_per_step, count_per_step}]`` from a profiler XSpace, largest first.

    Host events named ``"<op name>:<op type>"`` are TF op executions; the enclosing
    ``"Process"`` events of the executor are not ops and are left out. ``by="name"`` gives one
    row per op instead of per type, with its name in ``op``.
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(xplane_path, "rb") as f:
        space.ParseFromString(f.read())
    picos, counts = collections.Counter(), collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or "::" in name:  # "ExecutorState::Process" etc.
                    continue
                op_type = name.rsplit(":", 1)[1]
                if not re.fullmatch(r"[A-Za-z_]\w*", op_type):
                    continue
                key = op_type if by == "type" else name
                picos[key] += event.duration_ps
                counts[key] += 1

    def row(key: str) -> dict:
        name = {} if by == "type" else {"op": key.rsplit(":", 1)[0]}
        return {**name, "op_type": key.rsplit(":", 1)[-1], "ms_per_step": picos[key] / 1e9 / steps,
                "count_per_step": counts[key] / steps}

    return [row(key) for key, _ in picos.most_common()]


def table(rows: list[dict], top: int) -> str:
    total = sum(r["ms_per_step"] for r in rows) or 1.0
    by_name = bool(rows) and "op" in rows[0]
    lines = [f"| {'op (type)' if by_name else 'op type'} | ms / step | share | count / step |",
             "| --- | ---: | ---: | ---: |"]
    for r in rows[:top]:
        label = f"{r['op']} ({r['op_type']})" if by_name else r["op_type"]
        lines.append(f"| {label} | {r['ms_per_step']:.2f} | {r['ms_per_step'] / total:.1%} | "
                     f"{r['count_per_step']:g} |")
    lines.append(f"| all {len(rows)} rows | {total:.2f} | 100.0% | |")
    return "\n".join(lines)


def main(argv):
    del argv
    import tensorflow as tf

    from keras_resnet import benchmarking

    if not re.fullmatch(r"cifar\d+|imagenet50", _MODEL.value):
        raise ValueError(f"model must be cifar<depth> or imagenet50, got {_MODEL.value!r}")
    for name in ("steps", "batch_size"):
        if flags.FLAGS[name].value < 1:
            raise ValueError(f"{name} must be a positive integer, got {flags.FLAGS[name].value}")
    model = benchmarking.build(_MODEL.value, _PRECISION.value, _IMAGE_SIZE.value, _FUSED_BN.value,
                               _GROUP.value or None)
    step, _ = benchmarking.synthetic_train_step(model, _PRECISION.value, _BATCH.value)

    def run(n):
        for _ in range(n):
            float(tf.reduce_sum(step()[0]))  # Wait for the device.

    run(_WARMUP.value)
    logdir = _LOGDIR.value or tempfile.mkdtemp(prefix="profile_step_")
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    run(_STEPS.value)
    wall_ms = (time.perf_counter() - start) / _STEPS.value * 1000
    tf.profiler.experimental.stop()
    paths = sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))
    rows = op_times(paths[-1], _STEPS.value, _BY.value)
    bn = "FusedBatchNormalization" if _FUSED_BN.value else "keras BatchNormalization"
    bn += f" over groups of {_GROUP.value}" if _GROUP.value else ""
    print(f"{_MODEL.value}, batch {_BATCH.value}, precision {_PRECISION.value}, {bn}: "
          f"{wall_ms:.1f} ms per step (wall, while profiling); trace in {logdir}")
    print(table(rows, _TOP.value))
    if _OUT.value:
        benchmarking.write_record(_OUT.value, "tools.perf.profile_step", {"wall_ms_per_step": wall_ms, "ops": rows})


if __name__ == "__main__":
    cli.run(main)
