"""Choosing a ``tf.distribute`` strategy, and keeping BN statistics in step across replicas."""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf


def _num_workers() -> int:
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return sum(len(v) for k, v in cluster.items() if k in ("chief", "worker"))


def use_gpus(num_gpus: int | None = None) -> list:
    """Makes the first ``num_gpus`` physical GPUs (default: all) the only ones TF sees, each allocating
    memory as it needs it, and returns them. Call before TF's runtime starts (before any strategy or
    op): the GPUs left out stay free for other processes, and two runs on separate GPUs do not each
    reserve most of every GPU, as TF does by default."""
    gpus = tf.config.list_physical_devices("GPU")
    if num_gpus is not None:
        if num_gpus > len(gpus):
            raise ValueError(f"num_gpus={num_gpus} but only {len(gpus)} GPU(s) are visible")
        if num_gpus < len(gpus):
            tf.config.set_visible_devices(gpus[:num_gpus], "GPU")
        gpus = gpus[:num_gpus]
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    return gpus


def planned_replicas(num_gpus: int | None = None) -> int:
    """How many replicas ``make_strategy(num_gpus)`` will have, without creating it.

    Counts physical GPUs only: listing logical devices would start TF's runtime, after which
    ``MultiWorkerMirroredStrategy`` can no longer be created ("Collective ops must be configured
    at program startup")."""
    gpus = len(tf.config.list_physical_devices("GPU"))
    if num_gpus is not None:
        if num_gpus > gpus:
            raise ValueError(f"num_gpus={num_gpus} but only {gpus} GPU(s) are visible")
        gpus = num_gpus
    return max(1, _num_workers()) * max(1, gpus)


def make_strategy(num_gpus: int | None = None) -> tf.distribute.Strategy:
    """The strategy for this process, following TF's conventions.

    * ``TF_CONFIG`` naming more than one worker: ``MultiWorkerMirroredStrategy``
      (every worker runs the same command; the chief writes logs and models).
    * several GPUs (the first ``num_gpus`` of the visible ones, default all; the others are hidden
      and every GPU used grows its memory as needed, ``use_gpus``): ``MirroredStrategy``; the paper's
      CIFAR runs used two GPUs. Workers of a multi-worker job use ``num_gpus`` each too, and NCCL.
    * otherwise one device: ``OneDeviceStrategy`` on the GPU, or the CPU.
    """
    physical = use_gpus(num_gpus)
    if _num_workers() > 1:  # NCCL between GPUs (as MirroredStrategy uses); TF's ring over gRPC otherwise.
        implementation = (tf.distribute.experimental.CommunicationImplementation.NCCL if physical
                          else tf.distribute.experimental.CommunicationImplementation.AUTO)
        return tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(implementation=implementation))
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy(gpus)
    return tf.distribute.OneDeviceStrategy(gpus[0] if gpus else "/cpu:0")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Only the chief writes summaries, the exported model and the config."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict())


def batch_norm_statistics(model: keras.Model) -> list:
    return [w for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
            for w in (layer.moving_mean, layer.moving_variance)]


def sync_batch_norm_statistics(model: keras.Model, strategy: tf.distribute.Strategy) -> None:
    """Averages BN moving statistics over all replicas (and workers).

    Each replica updates its own copy from its own share of the batch (64
    images per GPU in the paper); the copies drift apart. Evaluation,
    checkpoints and exports use their mean. Must be called by every worker.
    """
    stats = batch_norm_statistics(model)
    if strategy.num_replicas_in_sync == 1 or not stats:
        return

    @tf.function
    def averaged():
        def replica_fn():
            ctx = tf.distribute.get_replica_context()
            return ctx.all_reduce(tf.distribute.ReduceOp.MEAN, [tf.identity(v.value) for v in stats])
        return strategy.run(replica_fn)

    for variable, mean in zip(stats, averaged()):
        variable.assign(strategy.experimental_local_results(mean)[0])
