"""Statistics for ``bench.accuracy``: exact intervals for rates measured on few independent units.

Clopper-Pearson (binomial) and Garwood (Poisson) 95% intervals, computed exactly by bisection on
the distribution functions (no SciPy: the project does not depend on it). ``rate`` reports a
per-comparison rate together with the interval its *independent units* allow: many comparisons of
the same few people are not many independent trials, so the interval that matters is the one over
people (or pairs of people), and both are reported side by side.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

CONFIDENCE = 0.95


def _log_binom_pmf(i: int, n: int, p: float) -> float:
    return (
        math.lgamma(n + 1)
        - math.lgamma(i + 1)
        - math.lgamma(n - i + 1)
        + (i * math.log(p) if i else 0.0)
        + ((n - i) * math.log1p(-p) if n - i else 0.0)
    )


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if k < 0:
        return 0.0
    if k >= n or p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    return min(1.0, math.fsum(math.exp(_log_binom_pmf(i, n, p)) for i in range(k + 1)))


def poisson_cdf(k: int, mu: float) -> float:
    """P(X <= k) for X ~ Poisson(mu)."""
    if k < 0:
        return 0.0
    if mu <= 0.0:
        return 1.0
    return min(1.0, math.fsum(math.exp(i * math.log(mu) - mu - math.lgamma(i + 1)) for i in range(k + 1)))


def _solve(f: Callable[[float], float], lo: float, hi: float) -> float:
    """The root of a function decreasing from ``lo`` to ``hi`` (bisection, 1e-12)."""
    for _ in range(200):
        mid = (lo + hi) / 2
        if f(mid) > 0:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return (lo + hi) / 2


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact two-sided interval for a binomial proportion: k successes in n trials."""
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return (0.0, 1.0)
    tail = (1 - confidence) / 2
    lower = 0.0 if k == 0 else _solve(lambda p: tail - (1 - binom_cdf(k - 1, n, p)), 0.0, 1.0)
    upper = 1.0 if k == n else _solve(lambda p: binom_cdf(k, n, p) - tail, 0.0, 1.0)
    return (lower, upper)


def poisson_interval(k: int, exposure: float, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact (Garwood) two-sided interval for an event rate: k events in ``exposure`` units of time."""
    if k < 0 or not exposure > 0:
        raise ValueError(f"need k >= 0 and exposure > 0, got k={k}, exposure={exposure}")
    tail = (1 - confidence) / 2
    top = 10.0 * (k + 10)
    lower = 0.0 if k == 0 else _solve(lambda mu: tail - (1 - poisson_cdf(k - 1, mu)), 0.0, top)
    upper = _solve(lambda mu: poisson_cdf(k, mu) - tail, 0.0, top)
    return (lower / exposure, upper / exposure)


def proportion(k: int, n: int) -> dict[str, Any]:
    """k of n with its point estimate and Clopper-Pearson interval (None rates when n == 0)."""
    lo, hi = clopper_pearson(k, n)
    return {
        "k": k,
        "n": n,
        "rate": round(k / n, 5) if n else None,
        "ci95": [round(lo, 5), round(hi, 5)] if n else None,
    }


def unit_rate(outcomes: Mapping[Any, Sequence[bool]]) -> dict[str, Any]:
    """A per-comparison error rate and the intervals its units allow.

    ``outcomes`` maps each independent unit (a person, a pair of people) to the error flags of its
    comparisons. Reported: the rate over all comparisons (``comparisons``, its interval valid only
    if every comparison were independent, which they are not); the units whose comparisons were
    *mostly* errors (``units_mostly_wrong``: what a call usually decides for that person or pair,
    since votes need most samples to agree) and those with *any* error (``units_any_wrong``), each
    with its Clopper-Pearson interval over the number of units.
    """
    flags = [f for unit in outcomes.values() for f in unit]
    mostly = sum(1 for unit in outcomes.values() if unit and sum(unit) * 2 > len(unit))
    anywhere = sum(1 for unit in outcomes.values() if any(unit))
    units = sum(1 for unit in outcomes.values() if unit)
    return {
        "comparisons": proportion(sum(flags), len(flags)),
        "units": units,
        "units_mostly_wrong": proportion(mostly, units),
        "units_any_wrong": proportion(anywhere, units),
    }


def percentiles(values: Iterable[float], qs: Sequence[float] = (50, 95)) -> dict[str, float | None]:
    """Nearest-rank percentiles (an observed value each), ``max`` and ``n``."""
    data = sorted(values)
    out: dict[str, float | None] = {}
    for q in qs:
        out[f"p{q:g}"] = data[max(0, math.ceil(q / 100 * len(data)) - 1)] if data else None
    out["max"] = data[-1] if data else None
    out["n"] = len(data)
    return out


def events_per_hour(k: int, seconds: float) -> dict[str, Any]:
    """k events in ``seconds`` of media as a rate per hour with its Garwood interval."""
    hours = seconds / 3600
    lo, hi = poisson_interval(k, hours)
    return {
        "events": k,
        "hours": round(hours, 4),
        "per_hour": round(k / hours, 3),
        "ci95_per_hour": [round(lo, 3), round(hi, 3)],
    }
