"""A plain PyTorch eager CIFAR ResNet-20 (option A), the peer in ``tools.perf.compare_pytorch``.

Runs ONLY in a separate virtual environment with torch (never a dependency of this package):

    python3 -m venv /tmp/torch && /tmp/torch/bin/pip install torch==2.13.0 numpy
    /tmp/torch/bin/python tools/perf/pytorch_resnet20.py --batch_size=128 --steps=10

The net is the paper's section 4.2 ResNet-20 written the way the well-known PyTorch CIFAR
reimplementations write it: NCHW, conv without bias -> BN -> ReLU, option-A shortcut
(stride-2 subsampling plus zero channels), SGD with momentum 0.9 and weight decay 1e-4,
cross-entropy, one synthetic batch. Prints one JSON line with the median step time.
"""

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.extra = planes - in_planes
        self.stride = stride

    def shortcut(self, x):
        if self.stride == 1 and self.extra == 0:
            return x
        return F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, 0, self.extra))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, n: int = 3, classes: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, planes = [], 16
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                blocks.append(BasicBlock(planes, width, stride if i == 0 else 1))
                planes = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--depth", type=int, default=20)
    args = parser.parse_args()
    if (args.depth - 2) % 6:
        parser.error(f"--depth must be 6n+2, got {args.depth}")
    torch.manual_seed(0)
    model = CifarResNet((args.depth - 2) // 6).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    images = torch.randn(args.batch_size, 3, 32, 32)
    labels = torch.randint(0, 10, (args.batch_size,))

    def step() -> float:
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        loss.item()
        return time.perf_counter() - start

    for _ in range(args.warmup):
        step()
    times = [step() for _ in range(args.steps)]
    median = statistics.median(times)
    print(json.dumps({"model": f"pytorch_resnet{args.depth}", "framework": f"torch {torch.__version__}",
                      "threads": torch.get_num_threads(), "batch_size": args.batch_size,
                      "train_step_seconds_median": median, "train_images_per_second": args.batch_size / median,
                      "timed_steps": args.steps}))


if __name__ == "__main__":
    main()
