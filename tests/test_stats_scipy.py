"""analysis/stats.py against scipy.stats on generated data.

Expected values: scipy.stats.t.interval (CI of a mean), scipy.stats.ttest_ind(equal_var=False)
(Welch: t, df, p and its confidence_interval), scipy.stats.ttest_rel (paired: t, df, p, CI),
numpy's std(ddof=1).  compare_seeds: which test runs when the seeds match, when one side
lost a seed (a failed run), and the sign of the difference in both directions.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st
from scipy import stats as sps

from clbudget.analysis.stats import compare_seeds, paired_test, seed_stats, welch_test

values = st.lists(st.floats(0, 100, allow_nan=False), min_size=2, max_size=10)


def spread(a) -> bool:
    return float(np.std(a)) > 1e-6 * (1 + float(np.max(np.abs(a))))


@settings(max_examples=80, deadline=None, derandomize=True)
@given(values)
def test_seed_stats_is_the_student_t_interval(a):
    s = seed_stats(a)
    mean, std = float(np.mean(a)), float(np.std(a, ddof=1))
    assert s.n == len(a) and s.mean == pytest.approx(mean) and s.std == pytest.approx(std)
    if std > 0:
        lo, hi = sps.t.interval(0.95, len(a) - 1, loc=mean, scale=std / math.sqrt(len(a)))
        assert (s.ci_low, s.ci_high) == pytest.approx((lo, hi))


def test_seed_stats_by_hand_and_with_one_seed():
    # 1, 2, 3: mean 2, std 1 (ddof=1), half-width t(0.975, 2) / sqrt(3) = 4.302653 / 1.732051
    s = seed_stats([1.0, 2.0, 3.0])
    assert (s.mean, s.std) == (2.0, 1.0)
    assert s.half_width == pytest.approx(2.484138, abs=1e-6)
    one = seed_stats([0.7, None, float("nan")])
    assert one.n == 1 and one.mean == 0.7 and math.isnan(one.std) and math.isnan(one.ci_low)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(values, values)
def test_welch_matches_scipy(a, b):
    assume(spread(a) or spread(b))
    c = welch_test(a, b)
    r = sps.ttest_ind(a, b, equal_var=False)
    ci = r.confidence_interval(0.95)
    assert c.test == "Welch's t-test" and (c.n_a, c.n_b) == (len(a), len(b))
    assert c.diff == pytest.approx(np.mean(a) - np.mean(b), abs=1e-9)
    assert c.df == pytest.approx(r.df, rel=1e-6)
    assert c.p_value == pytest.approx(r.pvalue, rel=1e-6, abs=1e-12)
    assert (c.ci_low, c.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-6, abs=1e-9)
    assert c.significant == (r.pvalue < 0.05) or abs(r.pvalue - 0.05) < 1e-9


def test_welch_satterthwaite_by_hand():
    # a = 1,2,3: var 1, n 3 -> 1/3; b = 2,4,6,8: var 20/3, n 4 -> 5/3; se^2 = 2
    # df = 2^2 / ((1/3)^2/2 + (5/3)^2/3) = 4 / (1/18 + 25/27) = 4 / (53/54) = 216/53
    c = welch_test([1, 2, 3], [2, 4, 6, 8])
    assert c.diff == -3.0 and c.df == pytest.approx(216 / 53)
    half = sps.t.ppf(0.975, 216 / 53) * math.sqrt(2)
    assert (c.ci_low, c.ci_high) == pytest.approx((-3 - half, -3 + half))


@settings(max_examples=80, deadline=None, derandomize=True)
@given(st.integers(2, 10).flatmap(lambda n: st.tuples(
    st.lists(st.floats(0, 100), min_size=n, max_size=n),
    st.lists(st.floats(0, 100), min_size=n, max_size=n))))
def test_paired_matches_scipy_ttest_rel(ab):
    a, b = ab
    d = np.subtract(a, b)
    assume(spread(d))
    c = paired_test(a, b)
    r = sps.ttest_rel(a, b)
    ci = r.confidence_interval(0.95)
    assert c.test == "paired t-test" and c.df == len(a) - 1 == r.df
    assert c.diff == pytest.approx(float(np.mean(d)), abs=1e-9)
    assert c.p_value == pytest.approx(r.pvalue, rel=1e-6, abs=1e-12)
    assert (c.ci_low, c.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-6, abs=1e-9)


A = {0: 0.61, 1: 0.64, 2: 0.60, 3: 0.66}
B = {0: 0.50, 1: 0.55, 2: 0.49, 3: 0.56}


def test_compare_seeds_pairs_matching_seeds_in_both_directions():
    ab, ba = compare_seeds(A, B), compare_seeds(B, A)
    r = sps.ttest_rel([A[s] for s in range(4)], [B[s] for s in range(4)])
    assert ab.test == ba.test == "paired t-test"
    assert ab.diff == pytest.approx(0.1025) and ba.diff == pytest.approx(-0.1025)   # a - b
    assert ab.p_value == pytest.approx(r.pvalue) and ba.p_value == pytest.approx(r.pvalue)
    assert ab.significant and ba.significant          # A > B and B < A: both significant
    assert ab.ci_low > 0 and ba.ci_high < 0
    assert (ba.ci_low, ba.ci_high) == pytest.approx((-ab.ci_high, -ab.ci_low))


def test_compare_seeds_pairs_by_seed_not_by_insertion_order():
    shuffled = {3: B[3], 1: B[1], 0: B[0], 2: B[2]}
    assert compare_seeds(A, shuffled).p_value == pytest.approx(compare_seeds(A, B).p_value)


def test_a_failed_seed_on_one_side_falls_back_to_welch_over_what_ran():
    """Seeds differ (seed 3 of B failed and is absent): Welch's test over the values each
    side has, as documented ("otherwise Welch's t-test")."""
    b = {s: v for s, v in B.items() if s != 3}
    c = compare_seeds(A, b)
    r = sps.ttest_ind(list(A.values()), list(b.values()), equal_var=False)
    assert c.test == "Welch's t-test" and (c.n_a, c.n_b) == (4, 3)
    assert c.p_value == pytest.approx(r.pvalue) and c.df == pytest.approx(r.df)
    assert c.diff == pytest.approx(np.mean(list(A.values())) - np.mean(list(b.values())))


def test_a_failed_seed_recorded_as_none_pairs_only_the_common_seeds():
    b = {**B, 3: None}
    c = compare_seeds(A, b)
    r = sps.ttest_rel([A[s] for s in range(3)], [B[s] for s in range(3)])
    assert c.test == "paired t-test" and c.n_a == c.n_b == 3
    assert c.p_value == pytest.approx(r.pvalue)


def test_no_test_with_one_seed_and_no_false_significance():
    c = compare_seeds({0: 0.5}, {0: 0.4})
    assert not c.testable and not c.significant and c.test.startswith("none")
    close = compare_seeds({0: 0.50, 1: 0.52, 2: 0.48}, {0: 0.51, 1: 0.49, 2: 0.50})
    assert close.testable and not close.significant


def test_same_number_of_seeds_but_different_seeds_is_not_paired():
    """A's seed 3 failed and B ran seed 4 instead: four values each, but no pairing."""
    b = {0: B[0], 1: B[1], 2: B[2], 4: B[3]}
    a = {0: A[0], 1: A[1], 2: A[2], 3: A[3]}
    c = compare_seeds(a, b)
    r = sps.ttest_ind(list(a.values()), list(b.values()), equal_var=False)
    assert c.test == "Welch's t-test" and c.p_value == pytest.approx(r.pvalue)
