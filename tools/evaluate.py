"""Test loss and top-1 error of a saved CIFAR-10 model, in one command.

    python -m tools.evaluate --model=PATH.keras --data_dir=DIR [--split=test] \
        [--subset_mask=../shared/data/cifar10/test_exact_mask.npy]

Works for a classifier that normalises its own input (``keras_resnet.export.cifar10_classifier``,
raw 0-255 RGB in, probabilities out) and for a net as the recipes train it (``model.keras`` of a run:
images normalised with ``--normalization`` and the statistics of ``--train_split``; logits out).
A model ending in a softmax is read as probabilities, otherwise as logits. With ``--subset_mask``
(a boolean ``.npy`` over the split, in the order of the original archive) the error is also given on the
masked images and on the rest,
e.g. the 1,000 pixel-exact and 9,000 JPEG-decoded test images of this project's CIFAR-10 copy.
``--jpeg_quality=Q`` re-encodes every image as a JPEG first, to measure what such artifacts cost.
``--compare=OTHER.keras`` scores a second model on the same images and compares the two image by image
(McNemar's exact test, ``keras_resnet.evaluation.paired_comparison``): e.g. ResNet-110 against ResNet-56.
"""

from __future__ import annotations

import json
import os

from absl import flags

from keras_resnet import cli

_MODEL = flags.DEFINE_string("model", None, "A saved .keras model.", required=True)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory holding a prepared cifar10.")
_SPLIT = flags.DEFINE_string("split", "test", "TFDS split to evaluate on, e.g. test, train[45000:].")
_TRAIN_SPLIT = flags.DEFINE_string("train_split", "train", "Split whose statistics normalise the images "
                                   "(models without their own preprocessing only).")
_NORMALIZATION = flags.DEFINE_enum("normalization", "pixel_mean", ["pixel_mean", "channel_mean_std"],
                                   "Normalisation of models without their own preprocessing.")
_MASK = flags.DEFINE_string("subset_mask", None, "Boolean .npy over the split, in the archive's record order: "
                            "also report the error on the masked images and on the others.")
_BATCH = flags.DEFINE_integer("batch_size", 500, "Evaluation batch size.", lower_bound=1)
_JPEG = flags.DEFINE_integer("jpeg_quality", None, "Re-encode every image as a JPEG of this quality (1-100) "
                             "first: how much JPEG artifacts cost the model.", lower_bound=1, upper_bound=100)
_COMPARE = flags.DEFINE_string("compare", None, "A second saved .keras model: also score it on the same images "
                               "and compare the two image by image (McNemar's exact test).")
_JSON = flags.DEFINE_string("json", None, "Also write the results here as JSON.")


def evaluate_saved_model(model_path: str, data_dir: str | None, split: str = "test", train_split: str = "train",
                         normalization: str = "pixel_mean", subset_mask: str | None = None,
                         batch_size: int = 500, jpeg_quality: int | None = None, compare: str | None = None) -> dict:
    """``{"model", "model_sha256", "data" (what was evaluated: ``keras_resnet.data.data_identity``), "split",
    "images", "loss", "error", and per subset "<name>_images", "<name>_error"}``, errors in %; with
    ``compare`` (a second model) also ``"compare"``: its ``model``, ``model_sha256``, ``loss``, ``error``
    and ``keras_resnet.evaluation.paired_comparison`` of this model (a) against it (b)."""
    import numpy as np
    import tensorflow as tf

    import keras_resnet.layers  # noqa: F401  (registers the package's layers for loading)
    from keras_resnet import export, provenance
    from keras_resnet.data import cifar10_eval_dataset, data_identity, load_cifar10
    from keras_resnet.evaluation import paired_comparison

    for flag, path in (("model", model_path), ("compare", compare)):
        if path is not None and not os.path.isfile(path):
            raise ValueError(f"--{flag}={path} is not a file")
    data = load_cifar10(split, data_dir, train_split=train_split)
    identity = data_identity({split: data}, data_dir)  # As read, before any JPEG re-encoding.
    mask = None
    if subset_mask:
        mask = np.load(subset_mask)
        if mask.dtype != bool or mask.shape != (len(data),):
            raise ValueError(f"--subset_mask={subset_mask} must be a boolean array of {len(data)} entries (one per "
                             f"image of {split}), got {mask.dtype} {mask.shape}")
        mask = mask[data.record]  # The mask follows the archive's order; TFDS shuffled the records.
    if jpeg_quality:
        import dataclasses
        images = np.stack([tf.io.decode_jpeg(tf.io.encode_jpeg(image, quality=jpeg_quality)).numpy()
                           for image in data.images])
        data = dataclasses.replace(data, images=images)

    def score(path):  # (per-image correct, mean loss) of the model in ``path`` on ``data``.
        model = export.load_saved_model(path)  # A damaged file is one line naming it.
        if export.has_preprocessing(model):
            dataset = tf.data.Dataset.from_tensor_slices((data.images, data.labels)).batch(batch_size)
            dataset = dataset.map(lambda x, y: (tf.cast(x, tf.float32), y))
        else:
            dataset = cifar10_eval_dataset(data, batch_size, normalization)
        predict = tf.function(lambda x: tf.cast(model(x, training=False), tf.float32))
        predict_probs = predict if export.outputs_probabilities(model) else (lambda x: tf.nn.softmax(predict(x)))
        probs = np.concatenate([predict_probs(x).numpy() for x, _ in dataset])
        loss = -np.log(np.clip(probs[np.arange(len(data.labels)), data.labels], 1e-7, 1.0))
        return probs.argmax(-1) == data.labels, float(loss.mean())

    correct, loss = score(model_path)
    results = {"model": model_path, "model_sha256": provenance.file_sha256(model_path), "data": identity, "split": split,
               "jpeg_quality": jpeg_quality, "images": int(len(correct)), "loss": loss,
               "error": 100.0 * float(1.0 - correct.mean())}
    if compare is not None:
        other, other_loss = score(compare)
        results["compare"] = {"model": compare, "model_sha256": provenance.file_sha256(compare), "loss": other_loss,
                              "error": 100.0 * float(1.0 - other.mean()), **paired_comparison(correct, other)}
    if mask is not None:
        for name, part in (("masked", mask), ("unmasked", ~mask)):
            results[f"{name}_images"] = int(part.sum())
            results[f"{name}_error"] = 100.0 * float(1.0 - correct[part].mean()) if part.any() else None
    return results


def main(argv):
    del argv
    results = evaluate_saved_model(_MODEL.value, _DATA_DIR.value, _SPLIT.value, _TRAIN_SPLIT.value,
                                   _NORMALIZATION.value, _MASK.value, _BATCH.value, _JPEG.value, _COMPARE.value)
    jpeg = f", re-encoded as JPEG q{_JPEG.value}" if _JPEG.value else ""
    print(f"{results['split']} ({results['images']:,} images{jpeg}): loss {results['loss']:.4f}, "
          f"top-1 error {results['error']:.2f} %")
    for name in ("masked", "unmasked"):
        if f"{name}_images" in results:
            print(f"  {name} ({results[f'{name}_images']:,} images): top-1 error {results[f'{name}_error']:.2f} %")
    if "compare" in results:
        c = results["compare"]
        print(f"  against {c['model']}: top-1 error {c['error']:.2f} %; on the same images {c['only_a_wrong']:,} wrong "
              f"only here and {c['only_b_wrong']:,} only there: difference {c['difference']:+.2f} +- "
              f"{c['difference_se']:.2f} points (1 s.e.), McNemar's exact p = {c['p_value']:.2g} (the test set's "
              "sampling error only, not the spread between training runs)")
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    cli.run(main)
