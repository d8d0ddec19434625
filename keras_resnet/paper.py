"""The paper's published numbers, as data (He et al. 2015, arXiv:1512.03385).

Used by ``tools.model_table`` and the reproduction report to put our own
numbers beside the paper's. Errors are in percent.
"""

# Section 4.2 / Table 6: CIFAR-10 test error with augmentation, and parameters.
CIFAR_TABLE6 = {
    20: {"params": 0.27e6, "error": 8.75},
    32: {"params": 0.46e6, "error": 7.51},
    44: {"params": 0.66e6, "error": 7.17},
    56: {"params": 0.85e6, "error": 6.97},
    110: {"params": 1.7e6, "error": 6.43, "mean": 6.61, "std": 0.16},
    1202: {"params": 19.4e6, "error": 7.93},
}
CIFAR_SCHEDULE = {"batch_size": 128, "lr": 0.1, "boundaries": (32_000, 48_000), "train_steps": 64_000}

# Table 1: multiply-adds of the ImageNet nets.
IMAGENET_FLOPS = {18: 1.8e9, 34: 3.6e9, 50: 3.8e9, 101: 7.6e9, 152: 11.3e9}

# Table 2 (top-1, 10-crop), Table 3 (10-crop top-1/top-5), Table 4 (multi-scale top-1/top-5).
# Keys: (depth, residual, shortcut).
IMAGENET_TABLE2 = {
    (18, False, None): 27.94, (34, False, None): 28.54,
    (18, True, "A"): 27.88, (34, True, "A"): 25.03,
}
IMAGENET_TABLE3 = {
    (34, False, None): (28.54, 10.02),
    (34, True, "A"): (25.03, 7.76), (34, True, "B"): (24.52, 7.46), (34, True, "C"): (24.19, 7.40),
    (50, True, "B"): (22.85, 6.71), (101, True, "B"): (21.75, 6.05), (152, True, "B"): (21.43, 5.71),
}
IMAGENET_TABLE4 = {
    (34, True, "B"): (21.84, 5.71), (34, True, "C"): (21.53, 5.60),
    (50, True, "B"): (20.74, 5.25), (101, True, "B"): (19.87, 4.60), (152, True, "B"): (19.38, 4.49),
}
