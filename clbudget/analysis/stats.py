"""Statistics over seeds: mean, std, 95% confidence intervals, and two-method tests.

Pure functions of numbers.  Conventions, the same for every figure clbudget reports:
- std is the sample standard deviation (ddof=1);
- the 95% CI of a mean is mean +- t(0.975, n-1) * std / sqrt(n) (Student t, scipy.stats.t);
- with one seed, std and the CI are undefined: NaN, reported as "n/a (1 seed)", never 0.
Two methods at one budget are compared with
- a **paired t-test** on per-seed differences when both ran the same seeds (n >= 2): a seed
  fixes the class order sample, initialisation and batch order, so the pairing removes that
  shared variance;
- otherwise **Welch's t-test** (unequal variances, Welch-Satterthwaite degrees of freedom).
"Significant" means the 95% CI of the difference excludes 0, which for both tests is the same
as a two-sided p < 0.05.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95
NAN = float("nan")


def _clean(values) -> np.ndarray:
    a = np.asarray([v for v in values if v is not None], dtype=float)
    return a[np.isfinite(a)]


@dataclass(frozen=True)
class SeedStats:
    n: int
    mean: float
    std: float       # ddof=1; NaN for n < 2
    ci_low: float    # NaN for n < 2
    ci_high: float

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2

    def to_dict(self) -> dict:
        return asdict(self)


def t_quantile(df: float, confidence: float = CONFIDENCE) -> float:
    """Two-sided Student t critical value, e.g. t(0.975, 2) = 4.3027 for a 95% CI over 3 seeds."""
    return float(sps.t.ppf(0.5 + confidence / 2, df))


def seed_stats(values, confidence: float = CONFIDENCE) -> SeedStats:
    """Mean, sample std (ddof=1) and Student-t CI of the mean; None/NaN values are dropped."""
    a = _clean(values)
    n = len(a)
    if n == 0:
        return SeedStats(0, NAN, NAN, NAN, NAN)
    mean = float(a.mean())
    if n == 1:
        return SeedStats(1, mean, NAN, NAN, NAN)
    std = float(a.std(ddof=1))
    half = t_quantile(n - 1, confidence) * std / math.sqrt(n)
    return SeedStats(n, mean, std, mean - half, mean + half)


def _two_sided_p(t: float, df: float) -> float:
    return float(2 * sps.t.sf(abs(t), df))


@dataclass(frozen=True)
class Comparison:
    """a - b at one budget.  `test` says which test produced the CI and p."""
    test: str            # "paired t-test", "Welch's t-test", or "none (fewer than 2 seeds)"
    diff: float          # mean(a) - mean(b) (mean of paired differences when paired)
    ci_low: float
    ci_high: float
    p_value: float
    df: float
    n_a: int
    n_b: int

    @property
    def testable(self) -> bool:
        return math.isfinite(self.ci_low) and math.isfinite(self.ci_high)

    @property
    def significant(self) -> bool:
        return self.testable and (self.ci_low > 0 or self.ci_high < 0)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(testable=self.testable, significant=self.significant)
        return d


def welch_test(a, b, confidence: float = CONFIDENCE) -> Comparison:
    """Welch's t-test of mean(a) - mean(b); CI with Welch-Satterthwaite df."""
    a, b = _clean(a), _clean(b)
    na, nb = len(a), len(b)
    diff = float(a.mean() - b.mean()) if na and nb else NAN
    if na < 2 or nb < 2:
        return Comparison("none (fewer than 2 seeds)", diff, NAN, NAN, NAN, NAN, na, nb)
    va, vb = a.var(ddof=1) / na, b.var(ddof=1) / nb
    se = math.sqrt(va + vb)
    if se == 0:  # both constant: the difference is exact
        p = 1.0 if diff == 0 else 0.0
        return Comparison("Welch's t-test", diff, diff, diff, p, NAN, na, nb)
    df = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
    half = t_quantile(df, confidence) * se
    p = _two_sided_p(diff / se, df)  # = scipy.stats.ttest_ind(a, b, equal_var=False).pvalue
    return Comparison("Welch's t-test", diff, diff - half, diff + half, p, float(df), na, nb)


def paired_test(a, b, confidence: float = CONFIDENCE) -> Comparison:
    """Paired t-test of a[i] - b[i] (same seeds, same order)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired test needs as many values in a as in b, "
                         f"got {a.size} and {b.size}")
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    n = len(d)
    if n < 2:
        return Comparison("none (fewer than 2 seeds)", float(d.mean()) if n else NAN,
                          NAN, NAN, NAN, NAN, n, n)
    s = seed_stats(d, confidence)
    if s.std == 0:
        p = 1.0 if s.mean == 0 else 0.0
        return Comparison("paired t-test", s.mean, s.mean, s.mean, p, n - 1, n, n)
    p = _two_sided_p(s.mean / (s.std / math.sqrt(n)), n - 1)  # = scipy ttest_rel's p
    return Comparison("paired t-test", s.mean, s.ci_low, s.ci_high, p, n - 1, n, n)


def compare_seeds(a: dict, b: dict, confidence: float = CONFIDENCE) -> Comparison:
    """Compare per-seed values {seed: value} of two methods: paired when the seeds match."""
    if set(a) == set(b) and len(a) >= 2:
        seeds = sorted(a)
        value = lambda v: NAN if v is None else v
        return paired_test([value(a[s]) for s in seeds], [value(b[s]) for s in seeds], confidence)
    return welch_test(list(a.values()), list(b.values()), confidence)
