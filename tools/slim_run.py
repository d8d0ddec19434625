"""Copy a run's record without its bulk, for committing results: config, stats and scalar events.

    python -m tools.slim_run --src=runs/cifar10/resnet20-seed0 --dst=docs/results/x/resnet20-seed0

Copies ``config.json``, ``stats.json``, ``final_eval.json``, ``reevaluation.json`` and the
``provenance*.json`` records if present, and every TensorBoard event file of ``train/``, ``test/``,
``validation/`` (and their ``*_subset/``) with only its scalar and text (provenance) events (wall
times and steps kept, the step graph dropped: 8 MB for ResNet-110). The run's HPARAMS record is
written afresh from its ``config.json`` (``keras_resnet.tensorboard_hparams``: today's columns, the
trial ID ``<dst parent>/<name>``), replacing whatever hparams events the run's own version wrote.
Models are left out, and checkpoints too unless ``--with_checkpoint``. ``tools.report`` reads the
copy as it reads the run.

``--with_checkpoint`` also copies the run's newest checkpoint that reads cleanly (ResNet-110: 14 MB),
replacing any older one in the copy, so that the copy is a run folder a recipe resumes from exactly:
a run that outlives its machine is carried across in the repository and resumed with

    cp -r docs/results/x/resnet110-seed0 $RUNS/ && python -m recipes.cifar10 ... --model_dir=$RUNS/resnet110-seed0
"""

from __future__ import annotations

import json
import os
import shutil

from absl import flags

from keras_resnet import cli

_SRC = flags.DEFINE_string("src", None, "The run's model_dir.", required=True)
_DST = flags.DEFINE_string("dst", None, "Where the slim copy goes (created).", required=True)

_WITH_CHECKPOINT = flags.DEFINE_bool(
    "with_checkpoint", False, "Also copy the newest readable checkpoint (replacing older ones in --dst), so that "
    "the copy resumes.")

_KEPT_PLUGINS = ("scalars", "text")  # "text": each segment's provenance summary.


def slim_copy(src: str, dst: str, with_checkpoint: bool = False) -> list[str]:
    """Returns the files written."""
    if not os.path.isfile(os.path.join(src, "config.json")):
        raise ValueError(f"--src={src} is not a run folder (no config.json)")
    written = []
    os.makedirs(dst, exist_ok=True)
    records = ["config.json", "stats.json", "final_eval.json", "reevaluation.json"]
    records += sorted(n for n in os.listdir(src) if n.startswith("provenance") and n.endswith(".json"))
    for name in records:
        if os.path.exists(os.path.join(src, name)):
            shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
            written.append(os.path.join(dst, name))
    from keras_resnet import tensorboard_hparams
    from keras_resnet.runs import SPLITS

    for split in SPLITS:
        folder = os.path.join(src, split)
        if not os.path.isdir(folder):
            continue
        os.makedirs(os.path.join(dst, split), exist_ok=True)
        for name in sorted(os.listdir(folder)):
            if name.startswith("events.out.tfevents"):
                written += _slim_events(os.path.join(folder, name), os.path.join(dst, split, name))
    for name in os.listdir(dst):  # The HPARAMS record of an earlier copy, or of the run's own version.
        if name.startswith("events.out.tfevents"):
            os.remove(os.path.join(dst, name))
    with open(os.path.join(src, "config.json")) as f:
        tensorboard_hparams.write(dst, json.load(f))
    written += [os.path.join(dst, n) for n in os.listdir(dst) if n.startswith("events.out.tfevents")]
    if with_checkpoint:
        written += copy_newest_checkpoint(os.path.join(src, "checkpoints"), os.path.join(dst, "checkpoints"))
    return written


def _slim_events(src: str, dst: str) -> list[str]:
    """Copies the events of ``src`` that ``_KEPT_PLUGINS`` name to ``dst``; nothing if none."""
    import tensorflow as tf

    events = []
    for event in tf.compat.v1.train.summary_iterator(src):
        if event.HasField("summary"):
            values = [v for v in event.summary.value if v.metadata.plugin_data.plugin_name in _KEPT_PLUGINS]
            if not values:
                continue
            del event.summary.value[:]
            event.summary.value.extend(values)
        elif not event.HasField("file_version"):
            continue  # Graphs, run metadata.
        events.append(event)
    if all(e.HasField("file_version") for e in events):
        if os.path.exists(dst):
            os.remove(dst)  # An earlier copy of this file, from before its hparams were left out.
        return []
    with tf.io.TFRecordWriter(dst) as writer:
        for event in events:
            writer.write(event.SerializeToString())
    return [dst]


def copy_newest_checkpoint(src: str, dst: str) -> list[str]:
    """Copies the newest checkpoint in ``src`` that reads cleanly to ``dst``, removes the other
    checkpoints there, and writes TF's state file naming it alone; returns the files written."""
    import tensorflow as tf

    from keras_resnet import checkpoints

    newest = next((p for p in checkpoints.checkpoints_newest_first(src) if checkpoints.unreadable(p) is None), None)
    if newest is None:
        raise ValueError(f"no readable checkpoint in {src}")
    name = os.path.basename(newest)
    os.makedirs(dst, exist_ok=True)
    for old in checkpoints.checkpoints_newest_first(dst):
        if os.path.basename(old) != name:
            for f in os.listdir(dst):
                if f.startswith(os.path.basename(old) + "."):
                    os.remove(os.path.join(dst, f))
    written = []
    for f in sorted(os.listdir(src)):
        if f.startswith(name + "."):
            shutil.copyfile(os.path.join(src, f), os.path.join(dst, f))
            written.append(os.path.join(dst, f))
    when = os.path.getmtime(newest + ".index")
    # Paths relative to dst, as the copy moves between machines. dst made absolute: under a relative
    # folder TF would write the name relative to that folder's path from the working directory.
    tf.compat.v1.train.update_checkpoint_state(
        os.path.abspath(dst), name, all_model_checkpoint_paths=[name], all_model_checkpoint_timestamps=[when],
        last_preserved_timestamp=when - 1.0)
    return written + [os.path.join(dst, "checkpoint")]


def main(argv):
    del argv
    files = slim_copy(_SRC.value, _DST.value, _WITH_CHECKPOINT.value)
    print(f"Wrote {len(files)} files under {_DST.value}")


if __name__ == "__main__":
    cli.run(main)
