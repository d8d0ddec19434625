"""The paper's claims checked on our finished CIFAR-10 runs at its recipe and schedule (section 4.2):
degradation of deeper plain nets, residual nets below their plain twins, deeper residual nets better
(Table 6, Figure 6), and smaller layer responses for residual and deeper nets (Figure 7). Each claim is
one Markdown line of the report (``tools.report``) that says whether it holds, with the numbers; the
test-error claims also image by image (``paired_claims``), and variants of the recipe against it
(``variant_comparisons``).
"""

from __future__ import annotations

import numpy as np

from keras_resnet.reporting import COMPARABLE_DEVIATIONS, deviations
from keras_resnet.runs import Run, is_finished, recipe_weight_decay_on, run_label, weight_decay_on

# A net as the claims name it: (residual: bool, depth: int, what its weight decay applied to: str), ``net_key``.
# Claims compare nets of one reading of the recipe only (the paper does not say what it decays); a key of
# (residual, depth) alone is one of the recipe's own reading.
Net = tuple


def net_key(config: dict) -> Net:
    """The net a CIFAR-10 run trains, as the claims group runs: ``(residual, depth, weight_decay_on)``."""
    return (config.get("residual", True), config.get("depth"), weight_decay_on(config))


def net_name(key: Net) -> str:
    """``ResNet-56``, ``plain-20``, or ``ResNet-56 (decay kernels)`` for the other reading than the recipe's."""
    decay = key[2] if key[2:] else recipe_weight_decay_on("cifar10")
    return run_label({"dataset": "cifar10", "residual": key[0], "depth": key[1], "weight_decay_on": decay})


def _families(keys) -> list[tuple]:
    """The readings of the recipe among ``keys`` (their elements after depth), the recipe's own first."""
    own = (recipe_weight_decay_on("cifar10"),)
    return sorted({tuple(k[2:]) for k in keys}, key=lambda f: (f not in ((), own), f))


def final_training_error(run: Run, window: int = 2000) -> float | None:
    """Mean of the training error logged over the last ``window`` iterations (batches as trained, with
    augmentation: the paper's dashed curves); one logged interval alone is noisy."""
    points = run.scalars.get("train", {}).get("error", [])
    if not points:
        return None
    last = points[-1][0]
    values = [e for s, e in points if s > last - window]
    return sum(values) / len(values)


def _test_set_error_se(error: float, images: int = 10_000) -> float:
    """Binomial standard error (percentage points) of a test error measured on ``images`` images."""
    p = error / 100.0
    return 100.0 * (p * (1.0 - p) / images) ** 0.5


def at_paper_recipe(run: Run) -> bool:
    """A finished CIFAR-10 run of the paper's recipe and schedule (any precision): the runs the
    paper's claims are checked on."""
    config = run.config
    return (config.get("dataset") == "cifar10" and is_finished(run)  # deviations() covers protocol and shortcut.
            and not [d for d in deviations(config) if not d.startswith(COMPARABLE_DEVIATIONS)])


def depth_claims(runs: list[Run]) -> list[str]:
    """The paper's claims about depth (section 4.2, Table 6, Figure 6), checked on the finished
    CIFAR-10 runs that follow the paper's recipe and schedule (mixed precision allowed), one
    Markdown line each: the deeper plain net has higher training and test error (degradation); the
    residual net has lower training error than its plain twin; the deeper residual net has lower test
    error. Errors are means over seeds; each test-error difference is given with its sampling error on
    the test set (binomial, one run per net), so a difference within it is not read as a win."""
    nets: dict[Net, list[Run]] = {}
    for run in runs:
        if (at_paper_recipe(run) and final_training_error(run) is not None
                and run.final_error(run.eval_split) is not None):
            nets.setdefault(net_key(run.config), []).append(run)
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    test = {k: mean([r.final_error(r.eval_split) for r in v]) for k, v in nets.items()}
    train = {k: mean([final_training_error(r) for r in v]) for k, v in nets.items()}
    n = {k: len(v) for k, v in nets.items()}
    name = net_name

    def compare(deeper, shallower, what, values, expect_lower):
        ours, theirs = values[deeper], values[shallower]
        holds = ours < theirs if expect_lower else ours > theirs
        verdict = "as the paper" if holds else "**not as the paper**"
        text = f"{what} {ours:.2f} vs {theirs:.2f} % ({verdict}"
        if values is test:
            se = (_test_set_error_se(ours) ** 2 / n[deeper] + _test_set_error_se(theirs) ** 2 / n[shallower]) ** 0.5
            text += f"; difference {ours - theirs:+.2f} +- {se:.2f} points (1 s.e.), " \
                    f"{'beyond' if abs(ours - theirs) > 2 * se else 'within'} two standard errors"
        return text + ")"

    lines = []
    for claim, a, b, lower, with_training in claim_pairs(nets):
        parts = ([compare(a, b, "training error", train, lower)] if with_training else []) + \
            [compare(a, b, "test error", test, lower)]
        lines.append(f"- {claim}: {name(a)} against {name(b)}: {'; '.join(parts)}.")
    return lines


def claim_pairs(nets) -> list[tuple[str, Net, Net, bool, bool]]:
    """The pairs of nets the paper's depth claims compare, among ``nets`` (``Net`` keys), as
    ``(claim, a, b, a_should_be_lower, training_error_too)``: each plain net against the next shallower
    one (degradation: higher), each residual net against its plain twin (lower) and each residual net
    against the next shallower one (Table 6: lower test error); within one reading of the recipe each."""
    keys, pairs = set(nets), []
    for family in _families(keys):
        net = lambda residual, depth: (residual, depth) + family  # noqa: E731
        plain = sorted(k[1] for k in keys if not k[0] and tuple(k[2:]) == family)
        residual = sorted(k[1] for k in keys if k[0] and tuple(k[2:]) == family)
        pairs += ([("Degradation (Figure 6, left)", net(False, deep), net(False, shallow), False, True)
                   for shallow, deep in zip(plain, plain[1:])]
                  + [("Residual against plain (Figure 6)", net(True, d), net(False, d), True, True)
                     for d in residual if net(False, d) in keys]
                  + [("Deeper residual nets are better (Table 6)", net(True, deep), net(True, shallow), True, False)
                     for shallow, deep in zip(residual, residual[1:])])
    return pairs


def reading_pairs(nets) -> list[tuple[Net, Net]]:
    """Each net of another reading of the recipe than its own (``Net`` keys with a third element) paired
    with the same net of the recipe's reading, where both are among ``nets``: ``(other, recipe's)``."""
    own = recipe_weight_decay_on("cifar10")
    return [(k, (k[0], k[1], own)) for k in sorted(nets, key=str) if k[2:] and k[2] != own
            and (k[0], k[1], own) in nets]


def paired_claims(correct: dict[Net, tuple[str, np.ndarray]]) -> list[str]:
    """The depth claims' test-error comparisons made image by image, one Markdown line each.

    ``correct``: (residual, depth) -> (the run's label, one boolean per held-out image: whether its net
    classifies it correctly, images in the same order for every net). Each pair of ``claim_pairs`` is
    compared with ``evaluation.paired_comparison`` (McNemar's exact test on the images only one net gets
    wrong): sharper than two binomial errors, and still the test set's sampling error only, not the spread
    between training runs."""
    from keras_resnet.evaluation import paired_comparison

    lines = []
    for claim, a, b, lower, _ in claim_pairs(correct):
        (label_a, correct_a), (label_b, correct_b) = correct[a], correct[b]
        if np.shape(correct_a) != np.shape(correct_b):
            continue  # Other held-out images: nothing to pair.
        c = paired_comparison(correct_a, correct_b)
        holds = c["error_a"] < c["error_b"] if lower else c["error_a"] > c["error_b"]
        lines.append(
            f"- {claim}, image by image: {label_a} against {label_b} on the same {c['images']:,} test images: "
            f"{c['error_a']:.2f} vs {c['error_b']:.2f} % ({'as the paper' if holds else '**not as the paper**'}); "
            f"{_paired_text(c)}.")
    return lines


def _paired_text(c: dict) -> str:
    return (f"{c['only_a_wrong']:,} images wrong only for the first, {c['only_b_wrong']:,} only for the second: "
            f"difference {c['difference']:+.2f} +- {c['difference_se']:.2f} points (1 s.e.), McNemar's exact "
            f"p = {c['p_value']:.2g} ({'beyond' if c['p_value'] < 0.05 else 'within'} the test set's sampling error "
            "at 5 %)")


def variant_comparisons(pairs: list[tuple[tuple[str, np.ndarray], list[str], tuple[str, np.ndarray]]]) -> list[str]:
    """Each variant of the paper's recipe against the paper-recipe run of the same net, image by image, one
    Markdown line each. ``pairs``: ((variant's label, its per-image verdicts), how its recipe differs from
    the other run's (``reporting.differences``), (the paper-recipe run's label, its verdicts))."""
    from keras_resnet.evaluation import paired_comparison

    lines = []
    for (label_a, correct_a), how, (label_b, correct_b) in pairs:
        if np.shape(correct_a) != np.shape(correct_b):
            continue  # Other held-out images: nothing to pair.
        c = paired_comparison(correct_a, correct_b)
        lines.append(f"- {label_a} ({'; '.join(how) or 'no difference recorded'}) against {label_b} on the same "
                     f"{c['images']:,} test images: {c['error_a']:.2f} vs {c['error_b']:.2f} %; {_paired_text(c)}.")
    return lines


def response_claims(responses: dict[tuple[bool, int], list[list[float]]]) -> list[str]:
    """The paper's claims about Figure 7, one Markdown line each: residual nets respond less than their
    plain twins, and deeper residual nets less than shallower ones (within one reading of the recipe).
    ``responses``: ``Net`` -> one list of per-layer response stds per seed; compared by their mean over
    layers and seeds."""
    level = {k: sum(sum(stds) / len(stds) for stds in v) / len(v) for k, v in responses.items() if v}
    verdict = lambda a, b: "as the paper" if level[a] < level[b] else "**not as the paper**"  # noqa: E731
    lines = []
    for family in _families(level):
        net = lambda residual, depth: (residual, depth) + family  # noqa: E731
        residual = sorted(k[1] for k in level if k[0] and tuple(k[2:]) == family)
        lines += [f"- Residual nets respond less than plain nets (Figure 7): {net_name(net(True, d))} "
                  f"{level[net(True, d)]:.3f} vs {net_name(net(False, d))} {level[net(False, d)]:.3f} "
                  f"({verdict(net(True, d), net(False, d))})" for d in residual if net(False, d) in level]
        lines += [f"- Deeper residual nets respond less (Figure 7): {net_name(net(True, b))} {level[net(True, b)]:.3f} "
                  f"vs {net_name(net(True, a))} {level[net(True, a)]:.3f} ({verdict(net(True, b), net(True, a))})"
                  for a, b in zip(residual, residual[1:])]
    return lines
