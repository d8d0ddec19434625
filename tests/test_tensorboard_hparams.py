"""The HPARAMS tab's columns as data: every trained setting a recipe records has one, with the choices
the library accepts."""

import dataclasses

from keras_resnet import blocks, run_config, tasks, tensorboard_hparams
from keras_resnet.data import cifar10, imagenet


def _recorded_keys(dataset: str, experiment, config) -> set:
    """What a recipe records in config.json: the experiment, the schedule, the replicas and TF32."""
    return set(tasks.experiment_hparams(dataset, experiment, config)) | {"replicas", "tf32"}


def test_every_trained_setting_a_recipe_records_is_a_known_column():
    columns = {c.key for c in tensorboard_hparams.COLUMNS}
    for recorded in (_recorded_keys("cifar10", tasks.CifarExperiment(), tasks.cifar_train_config(110)),
                     _recorded_keys("imagenet2012", tasks.ImagenetExperiment(), tasks.imagenet_train_config())):
        assert recorded - run_config.RUNTIME_KEYS <= columns, recorded - run_config.RUNTIME_KEYS - columns


def test_a_custom_tasks_own_hyperparameters_are_columns_after_the_known_ones():
    columns = tensorboard_hparams.columns_for({"depth": 8, "mixup_alpha": 0.2, "optimizer": "adam",
                                               "log_every": 10})
    assert [(c.key, c.kind) for c in columns[len(tensorboard_hparams.COLUMNS):]] == [
        ("mixup_alpha", float), ("optimizer", str)]


def test_the_check_boxes_offer_exactly_the_values_the_library_accepts():
    choices = {c.key: c.choices for c in tensorboard_hparams.COLUMNS if c.choices}
    assert choices == {
        "shortcut": blocks.SHORTCUTS,
        "stride_on": blocks.STRIDE_PLACEMENTS,
        "weight_decay_on": blocks.DECAYED,
        "mixed_precision": tuple(run_config.PRECISIONS),
        "normalization": cifar10.NORMALIZATIONS,
        "eval_mode": imagenet.EVAL_MODES,
        "protocol": tasks.PROTOCOLS,
        "dataset": ("cifar10", "imagenet2012"),
        "plateau_metric": ("validation", "test"),
    }


def test_a_column_is_typed_as_the_recipes_record_it():
    config = dataclasses.asdict(tasks.CifarExperiment()) | dataclasses.asdict(tasks.cifar_train_config(110))
    kinds = {c.key: c.kind for c in tensorboard_hparams.COLUMNS}
    for key, value in tensorboard_hparams.session_values(config).items():
        expected = bool if isinstance(value, bool) else float if isinstance(value, (int, float)) else str
        assert kinds[key] is expected, key
