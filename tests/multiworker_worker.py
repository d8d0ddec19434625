"""One worker of the multi-worker test: trains the tiny task under TF_CONFIG and dumps its weights.

    TF_CONFIG=... python tests/multiworker_worker.py MODEL_DIR OUT.npz STEPS
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path[:0] = [os.path.dirname(__file__), os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]

import numpy as np  # noqa: E402
from absl import logging  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_resnet import cifar_resnet, distribute, training  # noqa: E402
from training_helpers import tiny_config, tiny_task  # noqa: E402


def main(model_dir, out, steps):
    logging.set_verbosity(logging.INFO)  # So the test can read "Resumed from ... at step k".
    strategy = distribute.make_strategy()
    assert isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy), type(strategy)
    built = []

    def build_model(dtype):
        built.append(cifar_resnet(8, num_classes=4, classifier_activation=None, dtype=dtype))
        return built[-1]

    try:
        stats = training.train(tiny_config(train_steps=steps, checkpoint_every=2),
                               tiny_task(build_model=build_model), model_dir, strategy)
    except training.WorkerLostError as e:
        print(f"error: {e}", file=sys.stderr)  # As the recipes print it (keras_resnet.cli).
        sys.exit(1)
    model = built[-1]
    np.savez(out, step=stats["step"], chief=distribute.is_chief(strategy),
             **{w.path: w.numpy() for w in model.weights})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
