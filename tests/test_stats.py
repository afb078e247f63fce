"""Student-t quantiles without scipy, t-intervals and paired differences, checked by hand."""

import math

import pytest

from regdakit import stats

# Two-sided 95 % quantiles as printed in t tables (3 decimals).
TABLE = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         20: 2.086, 30: 2.042, 60: 2.000, 120: 1.980}  # fmt: skip


def test_t_quantiles_match_the_printed_table():
    for df, t in TABLE.items():
        assert stats.t_quantile(df) == pytest.approx(t, abs=6e-4), df
    assert stats.t_quantile(1) == pytest.approx(math.tan(0.475 * math.pi), rel=1e-12)  # Cauchy: exact
    assert stats.t_quantile(2) == pytest.approx(math.sqrt(2 * 0.95**2 / (1 - 0.95**2)), rel=1e-12)  # closed form
    assert stats.t_quantile(4, confidence=0.9) == pytest.approx(2.132, abs=6e-4)
    assert stats.t_quantile(100000) == pytest.approx(1.959964, abs=1e-4)  # the normal limit


def test_t_quantiles_agree_with_scipy_where_it_is_installed():
    scipy_stats = pytest.importorskip("scipy.stats")
    for df in (*range(1, 41), 75, 200):
        assert stats.t_quantile(df) == pytest.approx(scipy_stats.t.ppf(0.975, df), rel=1e-9), df
        assert stats.t_two_sided(1.7, df) == pytest.approx(1 - 2 * scipy_stats.t.sf(1.7, df), rel=1e-9), df


def test_t_errors_name_the_argument():
    with pytest.raises(ValueError, match="degrees of freedom must be an int >= 1, got 0"):
        stats.t_quantile(0)
    with pytest.raises(ValueError, match="degrees of freedom"):
        stats.t_quantile(2.5)
    with pytest.raises(ValueError, match="confidence must be in"):
        stats.t_quantile(3, confidence=1.0)


def test_summary_by_hand():
    # 1..5: mean 3, sd sqrt(2.5), half-width t(4) * sd / sqrt(5) = 2.7764451 * 0.7071068 = 1.9632432.
    s = stats.summary([1.0, 2.0, 3.0, 4.0, 5.0], digits=None)
    assert s["n"] == 5 and s["mean"] == 3.0 and s["sd"] == pytest.approx(math.sqrt(2.5))
    assert s["ci95"] == pytest.approx([3 - 1.9632432, 3 + 1.9632432], abs=1e-7)
    assert stats.summary([0.5, None, float("nan")]) == {"n": 1, "mean": 0.5, "values": [0.5]}  # no interval
    assert stats.summary([]) == {"n": 0}
    assert stats.summary([0.123456, 0.2])["values"] == [0.1235, 0.2]
    with pytest.raises(ValueError, match="finite"):
        stats.summary([1.0, math.inf])


def test_paired_differences_by_hand():
    d = stats.paired_differences({1: 10.0, 2: 12.0, 3: 11.0, 5: None}, {1: 8.0, 2: 9.0, 3: 10.0, 4: 5.0, 5: 1.0})
    # Differences 2, 3, 1: mean 2, sd 1, half-width t(2) / sqrt(3) = 4.3026527 / 1.7320508 = 2.4841377.
    assert d["seeds"] == [1, 2, 3] and d["unpaired"] == [4, 5] and d["values"] == [2.0, 3.0, 1.0]
    assert d["mean"] == 2.0 and d["sd"] == 1.0 and d["ci95"] == [-0.4841, 4.4841]
    with pytest.raises(ValueError, match="no seed with a value on both sides"):
        stats.paired_differences({1: 1.0}, {2: 1.0})


def test_format_interval_by_hand():
    d = stats.paired_differences({1: 10.0, 2: 12.0, 3: 11.0}, {1: 8.0, 2: 9.0, 3: 10.0})  # 2 [-0.4841, 4.4841]
    assert stats.format_interval(d) == "2.0 [-0.5, 4.5]"
    assert stats.format_interval(d, 2, signed=True) == "+2.00 [-0.48, +4.48]"
    # A width aligns every number, so a column of rows lines up whatever the signs.
    assert stats.format_interval(d, signed=True, width=5) == " +2.0 [ -0.5,  +4.5]"
    assert stats.format_interval(d, show_n=True) == "2.0 [-0.5, 4.5] (n=3)"
    assert stats.format_interval(stats.summary([7.25])) == "7.2"  # one seed: no interval (round half to even)
    assert stats.format_interval(stats.summary([None])) == "not run"
