"""What produced a run: code, software, machine, runtime settings and data, one *segment* per start.

A full-schedule run here spans several sessions and sometimes several machines, so each start or
resume of ``training.train`` appends a segment to ``<model_dir>/provenance.json`` (the chief's;
another worker of a multi-worker job writes ``provenance-worker<N>.json`` beside it, on its own
machine's disk) and keeps its last step and end time current at every checkpoint. Each segment
records:

* ``code``: the distribution name and ``keras_resnet.__version__``; the git commit of the checkout
  the package was imported from and whether its tree had uncommitted changes, or
  ``"not a git checkout"`` (an installed wheel);
* ``software``: Python, TensorFlow, Keras, TensorFlow Datasets and NumPy versions;
* ``device``: the CPU (model name, family/model numbers, the ISA flags that decide bfloat16 speed,
  usable cores) and each GPU (name, memory, compute capability, driver; CUDA/cuDNN of the TF build);
* ``runtime``: strategy, replicas, workers, the precision actually trained in (what ``auto`` resolved
  to), XLA, oneDNN, TF32 and thread settings;
* ``data``: the dataset's identity as the task read it (for CIFAR-10 the md5 of every original
  ``.bin`` file rebuilt from the prepared records, and the archive it was prepared from).

MLPerf's logs record system, software and data with every result; these also record every resume,
and ``differences`` names what changed between segments (the report marks such runs loudly).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import socket
import subprocess
import sys
from typing import Any

from absl import logging

DISTRIBUTION = "keras-resnet-paper"
PROVENANCE_FILE = "provenance.json"
# What may not change within one run without a loud mark in the report (issue 25).
COMPARED = {
    "code": ("code", ("version", "git_commit", "git_dirty")),
    "library versions": ("software", ("tensorflow", "keras", "tensorflow_datasets", "numpy", "python")),
    "device class": ("device", ("class",)),
    "precision": ("runtime", ("precision",)),
    "data": ("data", ("identity",)),
}


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def segment_seconds(segment: dict) -> float:
    """Wall-clock seconds from a segment's start to its last recorded end (its last checkpoint, or
    its finish); 0 for a segment with no end recorded."""
    if not segment.get("start_time") or not segment.get("end_time"):
        return 0.0
    start, end = (datetime.datetime.fromisoformat(segment[k]) for k in ("start_time", "end_time"))
    return max(0.0, (end - start).total_seconds())


def _git(root: str, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def code_version(package_dir: str | None = None) -> dict:
    """The package's version, and the commit of the git checkout it was imported from.

    Only a checkout whose top level holds this very package counts: a wheel installed into a
    virtual environment that lies inside some repository is "not a git checkout".
    """
    import keras_resnet
    package_dir = os.path.realpath(package_dir or os.path.dirname(keras_resnet.__file__))
    root = os.path.dirname(package_dir)
    record = {"distribution": DISTRIBUTION, "version": keras_resnet.__version__,
              "git_commit": None, "git_dirty": None, "source": "not a git checkout"}
    if not os.path.exists(os.path.join(root, ".git")):  # A file in a worktree, a folder in a clone.
        return record
    commit = (_git(root, "rev-parse", "HEAD") or "").strip()
    status = _git(root, "status", "--porcelain", "--untracked-files=normal", "--", ".")
    changed = [line[3:] for line in (status or "").splitlines() if line.strip()]
    record.update(source="git checkout" if commit else "git checkout (git could not read it)",
                  git_commit=commit or None, git_dirty=bool(changed) if status is not None else None)
    if changed:
        record["changed_files"] = changed[:20] + ([f"... {len(changed) - 20} more"] if len(changed) > 20 else [])
    return record


def software_versions() -> dict:
    import keras
    import numpy
    import tensorflow as tf
    try:
        import tensorflow_datasets as tfds
        tfds_version = tfds.__version__
    except ImportError:
        tfds_version = None
    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "tensorflow_datasets": tfds_version, "numpy": numpy.__version__}


def cpu_record(cpuinfo: str | None = None) -> dict:
    """Model name, family/model numbers, the ISA flags that matter, cores (all and usable)."""
    from keras_resnet import hardware
    cpuinfo = hardware.read_cpuinfo() if cpuinfo is None else cpuinfo
    field = lambda name: hardware._field(cpuinfo or "", name)  # noqa: E731
    flags = (field("flags") or "").split()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # Not Linux.
        usable = os.cpu_count()
    return {"description": hardware.cpu_description(cpuinfo), "model_name": field("model name") or platform.processor(),
            "family": field("cpu family"), "model": field("model\t") or field("model "),
            "flags": [f for f in hardware.ISA_FLAGS + ("amx_tile",) if f in flags],
            "logical_cpus": os.cpu_count(), "usable_cpus": usable, "machine": platform.machine()}


def gpu_records() -> list[dict]:
    """Each visible GPU: TF's name and compute capability, memory and driver from ``nvidia-smi``."""
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return []
    smi = {}
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,name,memory.total,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20, check=True).stdout
        for line in out.splitlines():
            index, name, memory, driver = (p.strip() for p in line.split(","))
            smi[int(index)] = {"name": name, "memory": memory, "driver": driver}
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    build = tf.sysconfig.get_build_info()
    records = []
    for i, gpu in enumerate(gpus):
        details = tf.config.experimental.get_device_details(gpu)
        capability = details.get("compute_capability")
        records.append({"device": gpu.name, "name": details.get("device_name"),
                        "compute_capability": ".".join(map(str, capability)) if capability else None,
                        "memory": smi.get(i, {}).get("memory"), "driver": smi.get(i, {}).get("driver"),
                        "cuda_build": build.get("cuda_version"), "cudnn_build": build.get("cudnn_version")})
    return records


def device_record(cpuinfo: str | None = None, gpus: list[dict] | None = None) -> dict:
    """The CPU, the GPUs, the host name, and ``class``: what decides speed and numerics (the CPU's
    description, or the GPUs' names), compared between segments."""
    cpu = cpu_record(cpuinfo)
    gpus = gpu_records() if gpus is None else gpus
    device_class = (f"{len(gpus)} x {gpus[0]['name']}" if gpus else cpu["description"])
    return {"class": device_class, "cpu": cpu, "gpus": gpus, "host": socket.gethostname()}


def runtime_record(strategy, precision: str, jit_compile: bool) -> dict:
    """Strategy, replicas and workers, and the settings that change numerics or speed."""
    import tensorflow as tf
    resolver = getattr(strategy, "cluster_resolver", None)
    workers, task = 1, None
    if resolver is not None and resolver.task_type:
        spec = resolver.cluster_spec().as_dict()
        workers = sum(len(v) for k, v in spec.items() if k in ("chief", "worker"))
        task = f"{resolver.task_type}:{resolver.task_id}"
    name = type(strategy).__name__
    name = {"CollectiveAllReduceStrategy": "MultiWorkerMirroredStrategy"}.get(name, name)  # TF's public name.
    return {"strategy": name, "replicas": strategy.num_replicas_in_sync, "workers": workers,
            "task": task, "precision": {"none": "float32"}.get(precision, f"mixed {precision}"),
            "jit_compile": bool(jit_compile),
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset (TensorFlow's default)"),
            "tensor_float_32": bool(tf.config.experimental.tensor_float_32_execution_enabled()),
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads() or "default",
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads() or "default"}


def collect(strategy, precision: str, jit_compile: bool, data: dict | None, command: str | None = None) -> dict:
    """Every fact of a segment except its times and steps."""
    return {"code": code_version(), "software": software_versions(), "device": device_record(),
            "runtime": runtime_record(strategy, precision, jit_compile),
            "data": data or {"identity": "not recorded by the task"}, "command": command,
            "argv": " ".join([os.path.basename(sys.executable), *sys.argv])}


def file_name(worker: str | None) -> str:
    """``provenance.json`` for the chief; ``provenance-worker<N>.json`` for another worker."""
    return PROVENANCE_FILE if worker is None else f"provenance-{worker}.json"


def read(path: str) -> dict:
    """A provenance file (``{"segments": [...]}``); ``ValueError`` naming it when it is damaged."""
    try:
        with open(path) as f:
            record = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(record, dict) or not isinstance(record.get("segments"), list):
        raise ValueError(f"{path} holds no list of segments")
    return record


class RunProvenance:
    """This process's segment of a run's provenance file, kept current as the run goes on."""

    def __init__(self, path: str, facts: dict, first_step: int):
        self.path = path
        self.record = {"segments": []}
        if os.path.exists(path):
            try:
                self.record = read(path)
            except (ValueError, OSError) as e:  # Never lose it: keep the damaged file beside.
                aside = f"{path}.damaged-{datetime.datetime.now():%Y%m%dT%H%M%S}"
                os.replace(path, aside)
                logging.warning("%s; kept as %s, starting a new provenance record", e, aside)
                self.record = {"segments": [], "damaged_record_kept_as": os.path.basename(aside)}
        self.segment = {"start_time": now(), "end_time": None, "first_step": first_step, "last_step": first_step,
                        **facts}
        self.record["segments"].append(self.segment)
        self.write()

    def update(self, last_step: int, finished: bool = False) -> None:
        self.segment.update(last_step=int(last_step), end_time=now())
        if finished:
            self.segment["ended"] = "finished"
        self.write()

    def run_seconds(self) -> float:
        """Wall-clock seconds of the whole run up to now: every earlier segment from its start to its
        last recorded end, plus this one. Time between segments (a run waiting for the next session)
        is not counted; steps repeated after a hard kill count once, in the segment that kept them."""
        earlier = sum(segment_seconds(s) for s in self.record["segments"] if s is not self.segment)
        return earlier + segment_seconds({**self.segment, "end_time": now()})

    def write(self) -> None:
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            json.dump(self.record, f, indent=2, default=str)
        os.replace(tmp, self.path)


def _pick(segment: dict, section: str, keys: tuple[str, ...]) -> tuple:
    values = segment.get(section) or {}
    return tuple(json.dumps(values.get(k), sort_keys=True) for k in keys)


def differences(segments: list[dict]) -> list[str]:
    """What differs between the segments of one run, e.g. ``["device class", "precision"]``."""
    return [name for name, (section, keys) in COMPARED.items()
            if len({_pick(s, section, keys) for s in segments}) > 1]


def summary(segments: list[dict]) -> str:
    """One line: the code, libraries, machine, replicas, precision and data of a run, its segments,
    and a loud mark naming what differs between them."""
    if not segments:
        return "provenance unknown (no segment recorded)"
    s = segments[-1]
    code, soft, device, runtime, data = (s.get(k) or {} for k in ("code", "software", "device", "runtime", "data"))
    commit = code.get("git_commit")
    where = (f"{commit[:10]}{' +uncommitted changes' if code.get('git_dirty') is True else ''}" if commit
             else code.get("source", "unknown"))
    parts = [f"{code.get('distribution', 'keras-resnet')} {code.get('version', '?')} ({where})",
             f"TF {soft.get('tensorflow', '?')}, Keras {soft.get('keras', '?')}, TFDS {soft.get('tensorflow_datasets', '?')}",
             str(device.get("class", "device unknown")),
             f"{runtime.get('replicas', '?')} replica(s) x {runtime.get('workers', '?')} worker(s), "
             f"{runtime.get('precision', 'precision unknown')}",
             str(data.get("summary") or data.get("identity", "data unknown")),
             f"{len(segments)} segment{'s' if len(segments) != 1 else ''}"]
    rebuilt = [str(i + 1) for i, segment in enumerate(segments) if segment.get("reconstructed_from")]
    if rebuilt:  # Written afterwards (a run older than provenance.json), never by the run itself.
        parts.append(f"segment {', '.join(rebuilt)} reconstructed afterwards from "
                     f"{segments[int(rebuilt[0]) - 1]['reconstructed_from']}")
    line = "; ".join(parts)
    differ = differences(segments)
    if differ:
        shown = [f"{name}: {_by_iterations(segments, *_SHOWN[name])}" for name in differ if name in _SHOWN]
        line = f"**SEGMENTS DIFFER in {', '.join(differ)}** ({'; '.join(shown + ['see provenance.json'])}); " + line
    return line


# How a difference is shown in the summary line: the field that names it in each segment.
_SHOWN = {"code": ("code", "git_commit"), "device class": ("device", "class"), "precision": ("runtime", "precision")}


def _by_iterations(segments: list[dict], section: str, key: str) -> str:
    """Each run of consecutive segments with one value of ``section.key``, with the iterations they trained:
    e.g. ``"Intel Xeon ... for iterations 0-4,246, AMD EPYC ... for 4,246-17,530"``."""
    spans: list[list] = []
    for segment in segments:
        value = str((segment.get(section) or {}).get(key))
        value = value[:10] if key == "git_commit" else value
        first, last = segment.get("first_step"), segment.get("last_step")
        if spans and spans[-1][0] == value:
            spans[-1][2] = last
        else:
            spans.append([value, first, last])
    step = lambda s: f"{s:,}" if isinstance(s, int) else "?"  # noqa: E731
    return ", ".join(f"{value} for {'iterations ' if i == 0 else ''}{step(first)}-{step(last)}"
                     for i, (value, first, last) in enumerate(spans))


def markdown(segment: dict) -> str:
    """A segment as Markdown for TensorBoard's text dashboard."""
    lines = [f"**segment from step {segment.get('first_step')}**, started {segment.get('start_time')}", ""]
    for section in ("code", "software", "device", "runtime", "data"):
        value = segment.get(section)
        lines.append(f"- **{section}**: `{json.dumps(value, sort_keys=True, default=str)}`")
    if segment.get("command"):
        lines.append(f"- **command**: `{segment['command']}`")
    return "\n".join(lines)


def file_sha256(path: str) -> str:
    import hashlib
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_run(model_dir: str) -> dict[str, Any] | None:
    """The chief's provenance of a run directory, or ``None`` where it has none."""
    path = os.path.join(model_dir, PROVENANCE_FILE)
    return read(path) if os.path.exists(path) else None
