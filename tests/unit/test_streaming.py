"""Exact statistics in bounded memory (livingdrug.clinical.streaming) against the in-memory
functions they replace: numpy.percentile, the Kaplan–Meier estimate of scipy.stats.ecdf
(Kaplan EL, Meier P 1958, J Am Stat Assoc 53:457; Greenwood log-log band) and
scipy.stats.logrank — with sorting ranges far smaller than the data, so that every path of
the out-of-core sort (histogram, ranges read back, bins split again, one value repeated more
often than a range holds) runs."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import CensoredData, logrank

from livingdrug.clinical import streaming as S
from livingdrug.clinical.probability import kaplan_meier
from livingdrug.io.results import Batches

LIMITS = (2, 64, 1 << 18)


def _scan(values: np.ndarray, *weights: np.ndarray, batch: int = 97):
    w = np.stack([np.asarray(x, dtype=float) for x in weights]) if weights else np.zeros((0, values.size))
    return lambda: ((values[i:i + batch], w[:, i:i + batch]) for i in range(0, values.size, batch))


def _samples(seed: int = 1, k: int = 12):
    rng = np.random.default_rng(seed)
    for trial in range(k):
        n = int(rng.integers(1, 800))
        d = np.round(rng.exponential(100.0, n), int(rng.integers(0, 4)))
        if trial % 3 == 0:
            d[rng.random(n) < 0.3] = 365.0  # administrative censoring: one value, many times
        yield d, rng.random(n) < 0.6


def test_keys_sort_like_the_floats():
    x = np.array([-np.inf, -1e300, -2.5, -1e-310, -0.0, 0.0, 1e-310, 1.0, 2.5, 1e300, np.inf])
    k = S._keys(x)
    assert np.all(np.diff(k.astype(object)) >= 0) and k[4] == k[5]  # −0.0 and +0.0 are one value
    assert np.array_equal(S._floats(k)[5:], x[5:]) and np.array_equal(S._floats(k)[:4], x[:4])


@pytest.mark.parametrize("limit", LIMITS)
def test_ascending_runs_are_the_distinct_values_with_counts_and_weight_sums(limit):
    rng = np.random.default_rng(3)
    x = np.concatenate([np.round(rng.normal(0, 50, 3000)), np.full(500, 7.0), -np.abs(rng.normal(size=40))])
    w = rng.random(x.size)
    blocks = list(S.ascending_runs(_scan(x, w), limit))
    v = np.concatenate([b[0] for b in blocks])
    c = np.concatenate([b[1] for b in blocks])
    s = np.concatenate([b[2][0] for b in blocks])
    u, inv, cu = np.unique(x, return_inverse=True, return_counts=True)
    assert np.array_equal(v, u) and np.array_equal(c, cu)
    assert np.allclose(s, np.bincount(inv, weights=w), rtol=1e-12)
    # no block holds more than `limit` distinct rows, except a single value repeated
    assert all(b[1].sum() <= limit or b[0].size == 1 for b in blocks)


@pytest.mark.parametrize("limit", LIMITS)
def test_percentiles_equal_numpy(limit):
    rng = np.random.default_rng(5)
    for d, _ in _samples(k=8):
        if rng.random() < 0.5:
            d = rng.normal(0, 1, d.size) - d  # negative values too
        q = [0, 3.3, 25, 50, 75, 99.9, 100]
        got, n = S.percentiles(_scan(d), q, limit=limit)
        assert n == d.size
        # the same two order statistics and interpolation; numpy itself rounds the last bit
        # differently with the length of q, so: equal to the rounding of a + (b − a)·γ
        assert got == pytest.approx(np.percentile(d, q), rel=0, abs=4e-16 * np.max(np.abs(d)))
    got, n = S.percentiles(_scan(np.zeros(0)), [50])
    assert n == 0 and np.isnan(got).all()


def test_order_statistics_and_bad_rank():
    x = np.array([5.0, 1.0, 3.0, 3.0, 9.0])
    assert list(S.order_statistics(_scan(x, batch=2), [4, 0, 2, 3], limit=1)) == [9.0, 1.0, 3.0, 5.0]
    with pytest.raises(ValueError, match="rank 5"):
        S.order_statistics(_scan(x), [5])


@pytest.mark.parametrize("limit", LIMITS)
def test_kaplan_meier_scan_is_bitwise_scipy_ecdf(limit):
    for d, e in _samples(k=10):
        km = S.kaplan_meier_scan(_scan(d, e), limit=limit, landmarks=[50.0, 182.625, 1e9, -1.0], points=10**6)
        ref = kaplan_meier(d, e)
        assert km.exact and km.n == ref.n and km.n_events == ref.n_events
        for a, b in ((km.time, ref.time), (km.survival, ref.survival), (km.low, ref.low), (km.high, ref.high)):
            assert np.array_equal(a, b)
        for a, b in ((km.median, ref.median), (km.median_low, ref.median_low), (km.median_high, ref.median_high)):
            assert a == b or (math.isnan(a) and math.isnan(b))
        for t, v in km.landmarks.items():
            j = int(np.searchsorted(ref.time, t, side="right")) - 1
            assert v == ((1.0, 1.0, 1.0) if j < 0 else (ref.survival[j], ref.low[j], ref.high[j]))
        cens = np.unique(d[~e])
        assert np.array_equal(km.censored, cens) and np.array_equal(km.censored_survival, ref.at(cens))


def test_kaplan_meier_curve_is_thinned_to_exact_points_within_the_bounds():
    rng = np.random.default_rng(11)
    d = rng.exponential(200.0, 50_000)
    e = rng.random(d.size) < 0.7
    ref = kaplan_meier(d, e)
    points = 200
    km = S.kaplan_meier_scan(_scan(d, e, batch=4096), limit=5000, points=points)
    assert not km.exact and km.time.size <= 2 * points + 1 and km.censored.size <= points
    assert km.time[-1] == d.max()
    # every point kept is a point of the exact curve
    assert np.array_equal(km.survival, ref.at(km.time))
    # the step plot of the points kept is within 1/points of Ŝ wherever it is more than one
    # time cell from a kept point
    grid = np.linspace(0.0, d.max(), 20_000)
    ix = np.searchsorted(km.time, grid, side="right") - 1
    drawn = np.where(ix < 0, 1.0, km.survival[np.maximum(ix, 0)])
    assert np.max(np.abs(drawn - ref.at(grid))) <= 1.0 / points + 1e-12
    assert km.median == ref.median and km.median_low == ref.median_low and km.median_high == ref.median_high


def test_kaplan_meier_scan_of_nothing():
    km = S.kaplan_meier_scan(_scan(np.zeros(0), np.zeros(0)), landmarks=[10.0])
    assert km.n == 0 and math.isnan(km.median) and km.landmarks == {10.0: None} and km.time.size == 0


@pytest.mark.parametrize("limit", (16, 1 << 18))
def test_logrank_scan_equals_scipy(limit):
    rng = np.random.default_rng(2)
    for d, e in _samples(seed=2, k=8):
        m = rng.random(d.size) < 0.5
        if m.all() or not m.any() or not e.any():
            continue
        x, y = _scan(d[m], e[m]), _scan(d[~m], e[~m])
        ref = logrank(CensoredData(uncensored=d[m & e], right=d[m & ~e]),
                      CensoredData(uncensored=d[~m & e], right=d[~m & ~e])).pvalue
        assert S.logrank_scan(x, y, limit=limit) == pytest.approx(float(ref), rel=1e-10, abs=1e-300)
    assert S.logrank_scan(_scan(np.ones(3), np.zeros(3)), _scan(np.ones(2), np.zeros(2))) is None


def test_at_risk_and_zip_aligned():
    d = np.array([1.0, 2.0, 2.0, 5.0])
    assert list(S.at_risk_scan(_scan(d, batch=3), [0.0, 2.0, 2.5, 6.0])) == [4, 3, 1, 0]
    a = [{"x": np.arange(0, 3)}, {"x": np.arange(3, 10)}]
    b = [{"x": np.arange(0, 5)}, {"x": np.arange(5, 6)}, {"x": np.arange(6, 10)}]
    pairs = list(S.zip_aligned(a, b))
    assert all(np.array_equal(p["x"], q["x"]) for p, q in pairs)
    assert np.array_equal(np.concatenate([p["x"] for p, _ in pairs]), np.arange(10))
    with pytest.raises(ValueError, match="different numbers"):
        list(S.zip_aligned([{"x": np.arange(3)}], [{"x": np.arange(2)}]))


def test_batches_reads_a_parquet_file_or_arrays_an_arm_at_a_time(tmp_path):
    n = 1000
    t = {"arm": np.where(np.arange(n) % 3 == 0, "A", "B").astype(object), "v": np.arange(n, dtype=float)}
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"arm": list(t["arm"]), "v": t["v"]}), path, row_group_size=128)
    for src in (path, t):
        for arm in ("A", "B"):
            got = list(Batches(src, rows=50).select("arm", arm)(["v"]))
            assert max(b["v"].size for b in got) <= 50
            assert np.array_equal(np.concatenate([b["v"] for b in got]), t["v"][t["arm"] == arm])
        assert "v" in Batches(src) and "w" not in Batches(src)
        with pytest.raises(KeyError, match="no column 'w'"):
            next(Batches(src)(["w"]))
