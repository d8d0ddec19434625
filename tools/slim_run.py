"""Copy a run's record without its bulk, for committing results: config, stats and scalar events.

    python -m tools.slim_run --src=runs/cifar10/resnet20-seed0 --dst=docs/results/x/resnet20-seed0

Copies ``config.json``, ``stats.json``, ``final_eval.json``, ``reevaluation.json`` and the
``provenance*.json`` records if present, and every TensorBoard event file of the run folder itself
(its HPARAMS session), ``train/``, ``test/``, ``validation/`` (and their ``*_subset/``) with only its
scalar, hparams and text (provenance) events
(wall times and steps kept, the step graph dropped: 8 MB for ResNet-110). Checkpoints and models are
left out. ``tools.report`` reads the copy as it reads the run.
"""

from __future__ import annotations

import os
import shutil

from absl import flags

from keras_resnet import cli

_SRC = flags.DEFINE_string("src", None, "The run's model_dir.", required=True)
_DST = flags.DEFINE_string("dst", None, "Where the slim copy goes (created).", required=True)

_KEPT_PLUGINS = ("scalars", "hparams", "text")  # "text": each segment's provenance summary.


def slim_copy(src: str, dst: str) -> list[str]:
    """Returns the files written."""
    import tensorflow as tf

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
    from keras_resnet.reporting import SPLITS

    for split in ("", *SPLITS):  # "": the model_dir's own events (the HPARAMS session).
        folder = os.path.join(src, split)
        if not os.path.isdir(folder):
            continue
        os.makedirs(os.path.join(dst, split), exist_ok=True)
        for name in sorted(os.listdir(folder)):
            if not name.startswith("events.out.tfevents"):
                continue
            out = os.path.join(dst, split, name)
            with tf.io.TFRecordWriter(out) as writer:
                for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
                    if event.HasField("summary"):
                        values = [v for v in event.summary.value if v.metadata.plugin_data.plugin_name in _KEPT_PLUGINS]
                        if not values:
                            continue
                        del event.summary.value[:]
                        event.summary.value.extend(values)
                    elif not event.HasField("file_version"):
                        continue  # Graphs, run metadata.
                    writer.write(event.SerializeToString())
            written.append(out)
    return written


def main(argv):
    del argv
    files = slim_copy(_SRC.value, _DST.value)
    print(f"Wrote {len(files)} files under {_DST.value}")


if __name__ == "__main__":
    cli.run(main)
