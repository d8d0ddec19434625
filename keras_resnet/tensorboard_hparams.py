"""A run's row in TensorBoard's HPARAMS tab: the experiment's columns, and the run's values.

Every run writes, at its ``model_dir``, the same experiment config (the hparams plugin's
``hparams_config``: which columns, their titles, types and check-box values, which metrics) and its
own session (its values, its trial ID). So ``tensorboard --logdir`` over a sweep, or over
``docs/results``, shows the columns a reader compares first and the metrics a reader reads first,
whichever run's copy of the config TensorBoard happens to load.

How TensorBoard 2.21 lays the tab out (``plugins/hparams/backend_context.py``,
``_sort_and_reduce_to_hparams_limit``, and the dashboard's ``_computeHParams``): hyperparameter
columns that "differ" first, each group by name; the first five ticked. Metrics in the given order,
the first five ticked. So the columns with ``compared=True`` are marked as differing: depth, residual,
shortcut, precision, BN group, seed and schedule come first (by name: BN group, depth, precision,
residual, seed ticked; shortcut and training steps next), then the rest of the trained settings.
Runtime settings (log, evaluation and checkpoint intervals, the command line, paths) are left out:
they stay in ``config.json`` and ``provenance.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os

CONFIG_SUFFIX = ".hparams"  # Event files that hold only a run's HPARAMS record (tools.slim_run rewrites them).


@dataclasses.dataclass(frozen=True)
class Column:
    """One hyperparameter column.

    Attributes:
        key: The run's configuration key (``config.json``).
        title: The column's heading.
        kind: ``float`` (any number), ``bool`` or ``str``.
        choices: The values offered as check boxes (strings); a run's value outside them is still
            shown while every box is ticked.
        compared: Among the columns a reader compares runs by (shown first).
        about: What it is, and where the paper sets it.
    """

    key: str
    title: str
    kind: type
    choices: tuple[str, ...] = ()
    compared: bool = False
    about: str = ""


COLUMNS: tuple[Column, ...] = (
    # What Table 6 and Figure 6 compare.
    Column("depth", "depth", float, compared=True, about="Weighted layers: 6n+2 on CIFAR (section 4.2), 18-152 on "
           "ImageNet (Table 1)."),
    Column("residual", "residual", bool, compared=True, about="Residual (true) or its plain twin (false), section 4.1."),
    Column("shortcut", "shortcut", str, ("A", "B", "C"), compared=True, about="Projection shortcuts: A zero-padding, "
           "B projections where the shape changes, C all projections (section 4.1, Table 3)."),
    Column("mixed_precision", "precision", str, ("none", "float16", "bfloat16"), compared=True,
           about="Mixed precision of the compute (none: float32)."),
    Column("bn_group_size", "BN group", float, compared=True, about="Images per batch-norm statistics group (CIFAR "
           "64: the paper's 128 over two GPUs; ImageNet 32: Goyal et al. 2017). Blank: each replica's whole batch."),
    Column("seed", "seed", float, compared=True, about="Seeds the weights, the data order and the augmentation."),
    Column("train_steps", "training steps", float, compared=True, about="Iterations (CIFAR: 64k, section 4.2; "
           "ImageNet: up to 600k, section 3.4)."),
    # The rest of what was trained, data first.
    Column("dataset", "dataset", str, ("cifar10", "imagenet2012")),
    Column("protocol", "protocol", str, ("test", "validation"), about="CIFAR: test (50k train / 10k test) or "
           "validation (45k / 5k held out), section 4.2."),
    Column("augment", "augment", bool, about="Pad 4, random 32x32 crop, horizontal flip (section 4.2)."),
    Column("normalization", "normalization", str, ("pixel_mean", "channel_mean_std"),
           about="Per-pixel mean subtracted (section 4.2), or per-channel standardisation."),
    Column("eval_mode", "evaluation", str, ("center", "ten_crop", "multiscale", "multiscale_noflip"),
           about="ImageNet evaluation during training (section 3.4)."),
    Column("shuffle_buffer", "shuffle buffer", float, about="ImageNet examples shuffled together."),
    Column("resize_antialias", "antialiased resize", bool, about="ImageNet resizing with antialiasing, or plain "
           "bilinear (cheaper; the paper does not say)."),
    Column("stride_on", "stride on", str, ("1x1", "3x3"), about="Bottleneck downsampling on the first 1x1 (the "
           "paper) or on the 3x3 (v1.5)."),
    Column("zero_init_residual", "zero-init gamma", bool, about="Last BN gamma of each residual branch starts at 0 "
           "(Goyal et al. 2017; not the paper)."),
    Column("weight_decay_on", "decay on", str, ("kernels", "all"), about="Weight decay 0.0001 on conv and fc kernels, "
           "or on every parameter."),
    Column("batch_size", "batch", float, about="Global mini-batch (CIFAR 128, ImageNet 256)."),
    Column("lr", "learning rate", float, about="0.1 (sections 3.4, 4.2)."),
    Column("lr_boundaries", "LR drops at", str, about="Steps where the rate is divided by 10 (CIFAR: 32k, 48k)."),
    Column("lr_decay", "LR factor", float),
    Column("momentum", "momentum", float, about="0.9 (sections 3.4, 4.2)."),
    Column("warmup_lr", "warm-up LR", float, about="0.01 for ResNet-110 until the training error is below 80% "
           "(section 4.2). Blank: no warm-up."),
    Column("warmup_steps", "warm-up cap", float),
    Column("warmup_error", "warm-up ends below", float),
    Column("warmup_window", "warm-up window", float),
    Column("plateau_patience_steps", "plateau patience", float, about="ImageNet: LR /10 when the error plateaus "
           "(section 3.4); 0: fixed drops."),
    Column("plateau_threshold", "plateau threshold", float),
    Column("plateau_max_drops", "plateau drops", float),
    Column("plateau_metric", "plateau metric", str, ("validation", "test")),
    Column("replicas", "replicas", float, about="Devices the batch was split over."),
    Column("tf32", "TF32", bool, about="TensorFloat-32 matmuls on Ampere and newer GPUs (off: float32 is float32)."),
)

# (folder, tag, title): the scalars written under model_dir/<folder>/, in the order a reader reads them.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("test", "error", "test error (%)"),
    ("train", "error", "training error (%)"),
    ("test", "loss", "test loss"),
    ("train", "loss", "training loss"),
    ("validation", "error", "validation error (%)"),
    ("validation", "top5_error", "validation top-5 error (%)"),
    ("validation", "loss", "validation loss"),
    ("test_subset", "error", "test-subset error (%)"),
    ("validation_subset", "error", "validation-subset error (%)"),
)


def trial_id(model_dir: str) -> str:
    """The run's folder, then its parent: ``resnet110-seed0 (table6-64k)``. Readable where the table
    cuts it short, and distinct for runs of one name in two experiments (TensorBoard takes sessions
    of one trial ID for repeats of one trial and averages their metrics)."""
    parent, name = os.path.split(os.path.abspath(model_dir).rstrip(os.sep))
    parent = os.path.basename(parent)
    return f"{name} ({parent})" if parent else name


def session_values(hparams: dict) -> dict[str, bool | float | str]:
    """The run's values as TensorBoard stores them: the known columns' keys and any other key a task
    adds, runtime settings left out (``run_config.RUNTIME_KEYS``), ``None`` left blank, lists as JSON."""
    from keras_resnet.run_config import RUNTIME_KEYS

    values = {}
    for key, value in hparams.items():
        if key in RUNTIME_KEYS or value is None:
            continue
        values[key] = value if isinstance(value, (bool, int, float, str)) else json.dumps(value)
    return values


def columns_for(hparams: dict) -> list[Column]:
    """Every column of ``COLUMNS`` (so that every run of a sweep writes the same config), then the
    run's other keys, typed by their values (a custom task's own hyperparameters)."""
    known = {c.key for c in COLUMNS}
    extra = [Column(k, k, bool if isinstance(v, bool) else float if isinstance(v, (int, float)) else str)
             for k, v in session_values(hparams).items() if k not in known]
    return [*COLUMNS, *extra]


def summaries(hparams: dict, model_dir: str) -> list:
    """The experiment config and the run's session, as ``Summary`` protos."""
    from tensorboard.plugins.hparams import api_pb2
    from tensorboard.plugins.hparams import summary as hparams_summary
    from tensorboard.plugins.hparams import summary_v2 as hp

    types = {float: api_pb2.DATA_TYPE_FLOAT64, bool: api_pb2.DATA_TYPE_BOOL, str: api_pb2.DATA_TYPE_STRING}
    infos = []
    for column in columns_for(hparams):
        info = api_pb2.HParamInfo(name=column.key, display_name=column.title, description=column.about,
                                  type=types[column.kind], differs=column.compared)
        if column.kind is bool:
            info.domain_discrete.extend([False, True])
        elif column.kind is str:
            info.domain_discrete.extend(list(column.choices))
        infos.append(info)
    metrics = [api_pb2.MetricInfo(
        name=api_pb2.MetricName(group=folder, tag=tag), display_name=title,
        dataset_type=api_pb2.DATASET_TRAINING if folder == "train" else api_pb2.DATASET_VALIDATION)
        for folder, tag, title in METRICS]
    return [hparams_summary.experiment_pb(infos, metrics, time_created_secs=0.0),
            hp.hparams_pb(session_values(hparams), trial_id=trial_id(model_dir))]


def write(model_dir: str, hparams: dict, step: int = 0) -> None:
    """Writes the run's HPARAMS record as an event file of its own at ``model_dir``."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(model_dir, filename_suffix=CONFIG_SUFFIX)
    with writer.as_default():
        for summary in summaries(hparams, model_dir):
            tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=step)
    writer.close()

