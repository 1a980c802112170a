"""The numbers the experiments report: mean ± std over seeds, per-epoch curves averaged over seeds, and THE
rule for when a comparison can carry a verdict (:func:`why_inconclusive`, worded by :func:`verdict`)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

__all__ = [
    "mean_std",
    "aggregate",
    "CHANCE_BAND",
    "chance_error",
    "chance_loss",
    "why_inconclusive",
    "verdict",
]

# A value within 10% of what an untrained net scores (90% error or a loss of ln 10 for ten classes: a
# value of at least 0.81 or 2.07) is at chance level: two such nets learned nothing to compare.
CHANCE_BAND = 0.1


def mean_std(values: Sequence[float]) -> dict:
    """Mean and sample standard deviation (0 for a single value), with the values kept."""
    vals = [float(v) for v in values]
    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return {"mean": statistics.fmean(vals), "std": std, "n": len(vals), "values": vals}


def chance_error(classes: int) -> float:
    """The error rate of a net that guesses: 1 − 1/classes."""
    return 1.0 - 1.0 / classes


def chance_loss(classes: int) -> float:
    """The cross-entropy of a net that outputs the uniform distribution: ln(classes)."""
    return math.log(classes)


def at_chance(a: float, b: float, chance: float) -> str | None:
    """Why two values (errors or losses, where guessing gives ``chance``) cannot be compared, or None: both
    within :data:`CHANCE_BAND` of chance."""
    if min(a, b) >= (1 - CHANCE_BAND) * chance:
        return f"at chance level: {a:.4g} and {b:.4g}, where guessing gives {chance:.4g}"
    return None


def within_noise(difference: float, standard_error: float) -> bool:
    """A difference under two standard errors (of that difference) is within the noise."""
    return abs(difference) < 2 * standard_error


def why_inconclusive(
    pairs: Sequence[tuple[dict, dict]], chance: float, claims_a_difference: bool = True
) -> str | None:
    """Why comparing the means of each pair of :func:`mean_std` dicts cannot carry a verdict, or None when
    every pair can. A pair cannot when both values are at chance level (within :data:`CHANCE_BAND` of
    ``chance``), when a side has one seed (the seed noise is not measured), or, for a claim that the two
    differ, when the difference is under two standard errors of the difference (within the seed noise; for
    a claim of *no* difference, ``claims_a_difference=False``, that is the claim's outcome)."""
    for a, b in pairs:
        if reason := at_chance(a["mean"], b["mean"], chance):
            return reason
    if any(s.get("n", 1) < 2 for pair in pairs for s in pair):
        return "one seed does not measure the seed noise: run with --seeds 2 or more"
    for a, b in pairs if claims_a_difference else ():
        se = math.sqrt(a["std"] ** 2 / a["n"] + b["std"] ** 2 / b["n"])
        if within_noise(a["mean"] - b["mean"], se):
            return (
                f"{a['mean']:.4g} vs {b['mean']:.4g} is within the seed noise (under two standard errors, "
                f"{2 * se:.2g})"
            )
    return None


def verdict(holds: bool | None, reason: str | None, yes: str = "yes", no: str = "NO") -> str:
    """The one wording of a verdict: ``yes`` / ``no``, or "inconclusive (reason)" when the numbers cannot
    carry it (``reason`` from :func:`why_inconclusive`)."""
    if reason:
        return f"inconclusive ({reason})"
    return yes if holds else no


def aggregate(histories: Sequence[dict], last: int = 1) -> dict:
    """Per-epoch mean curves over seeds, and mean ± std of the final errors (mean of the ``last`` epochs).
    ``histories`` are :func:`cnnzoo.experiments.training.curves` dicts, one per seed."""
    import numpy as np

    out: dict = {"seeds": len(histories), "params": histories[0]["params"]}
    for key in ("train_loss", "train_error", "test_loss", "test_error"):
        curves = np.array([h[key] for h in histories], dtype=float)  # (seeds, epochs)
        out[f"{key}_curve"] = curves.mean(0).tolist()
        out[f"final_{key}"] = mean_std(curves[:, -last:].mean(1))
    out["seconds_per_epoch"] = float(np.mean([np.mean(h["epoch_seconds"]) for h in histories]))
    out["histories"] = list(histories)
    return out
