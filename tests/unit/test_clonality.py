"""Clonality metrics against closed forms (Shannon 1948, Simpson 1949, Pielou 1966) and the
clone-composition figure.

Hand-worked example used below: sizes (50, 30, 20) → p = (0.5, 0.3, 0.2);
Σp² = 0.25 + 0.09 + 0.04 = 0.38; Gini–Simpson 0.62;
H = −(0.5 ln 0.5 + 0.3 ln 0.3 + 0.2 ln 0.2) = 0.346574 + 0.361192 + 0.321888 = 1.029653 nats;
Pielou J = H / ln 3 = 0.937231; Simpson's unbiased form
Σn(n−1)/(N(N−1)) = (2450 + 870 + 380)/9900 = 3700/9900 = 0.373737.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from livingdrug.clinical import clonality as cl
from livingdrug.models import car_t

HAND = np.array([50.0, 30.0, 20.0])


@pytest.mark.parametrize("k", [1, 2, 5, 37])
def test_equal_clones(k):
    n = np.full(k, 12.0)
    assert cl.shannon(n) == pytest.approx(math.log(k), abs=1e-14)
    assert cl.simpson(n) == pytest.approx(1.0 / k, rel=1e-14)
    assert cl.gini_simpson(n) == pytest.approx(1.0 - 1.0 / k, abs=1e-14)
    assert cl.largest_share(n) == pytest.approx(1.0 / k, rel=1e-14)
    if k > 1:
        assert cl.evenness(n) == pytest.approx(1.0, rel=1e-14)
    else:
        assert math.isnan(cl.evenness(n))  # evenness of one clone is undefined


def test_one_clone_among_empty_ones():
    n = np.array([0.0, 7.0, 0.0])
    assert cl.shannon(n) == 0.0 and not np.signbit(cl.shannon(n))
    assert cl.simpson(n) == 1.0
    assert cl.richness(n) == 1
    assert cl.largest_share(n) == 1.0
    np.testing.assert_array_equal(cl.shares(n), [0.0, 1.0, 0.0])


def test_hand_worked_example():
    assert cl.shannon(HAND) == pytest.approx(1.0296530140645737, rel=1e-12)
    assert cl.simpson(HAND) == pytest.approx(0.38, rel=1e-12)
    assert cl.gini_simpson(HAND) == pytest.approx(0.62, rel=1e-12)
    assert cl.evenness(HAND) == pytest.approx(1.0296530140645737 / math.log(3), rel=1e-12)
    assert cl.simpson(HAND, unbiased=True) == pytest.approx(3700 / 9900, rel=1e-12)
    assert cl.largest_share(HAND) == 0.5
    assert cl.largest_share(HAND, total=400.0) == 0.125  # share of all CAR-T, bulk included
    # scale invariance: cells or fractions give the same indices
    assert cl.shannon(HAND * 1e6) == pytest.approx(cl.shannon(HAND), rel=1e-12)


def test_batches_and_all_zero_rows_are_nan_without_warnings():
    n = np.stack([HAND, np.zeros(3), np.array([0.0, 0.0, 4.0])])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = cl.shares(n)
        h, lam, top, j = cl.shannon(n), cl.simpson(n), cl.largest_share(n), cl.evenness(n)
        lam_u = cl.simpson(n, unbiased=True)
    assert np.all(np.isnan(p[1])) and np.allclose(p[0], [0.5, 0.3, 0.2])
    assert h.shape == (3,) and math.isnan(h[1]) and h[2] == 0.0
    assert math.isnan(lam[1]) and lam[2] == 1.0
    assert math.isnan(top[1]) and math.isnan(j[1]) and math.isnan(j[2])
    assert math.isnan(lam_u[1]) and lam_u[2] == pytest.approx(12 / 12)


def test_clone_sizes_from_a_trajectory():
    net = car_t.build(tracked_clones=2, advantaged_clone=True)
    names = net.species_names
    rng = np.random.default_rng(3)
    y = rng.uniform(0.0, 10.0, size=(4, 6, len(names)))
    sizes = cl.clone_sizes(y, names, net.meta["clones"])
    assert sizes.shape == (4, 6, 3)
    assert cl.clone_names(net.meta["clones"]) == ["c1", "c2", "adv"]
    i = [names.index(s) for s in ("C_S_c2", "C_E_c2", "C_M_c2", "C_X_c2")]
    np.testing.assert_allclose(sizes[..., 1], y[..., i].sum(axis=-1))
    with_bulk = cl.clone_sizes(y, names, net.meta["clones"], include_bulk=True)
    assert with_bulk.shape == (4, 6, 4)
    np.testing.assert_allclose(with_bulk[..., 0], y[..., :4].sum(axis=-1))
    with pytest.raises(ValueError, match="species_names lists"):
        cl.clone_sizes(y[..., :-1], names, net.meta["clones"])
    with pytest.raises(KeyError, match="clone 'x'"):
        cl.clone_sizes(y, names, {"x": ["nope"]})


def test_dominance_times_and_share_at_peak():
    t = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    # clone 1 overtakes: its shares are 0.2, 0.5, 0.9, 0.95, 0.8 (clone 0 at most 0.8);
    # the total peaks at t = 3
    sizes = np.array([[8.0, 2.0], [5.0, 5.0], [2.0, 18.0], [2.0, 38.0], [2.0, 8.0]])
    d = cl.dominance(t, sizes, threshold=0.9)
    assert d.t_dominant == 2.0 and d.dominant_clone == 1
    assert d.t_peak == 3.0 and d.peak_clone == 1 and d.share_at_peak == pytest.approx(0.95)
    assert d.dominates_at_peak() is True
    # relative to a larger total (untracked bulk) it never reaches 90 %
    d2 = cl.dominance(t, sizes, threshold=0.9, total=2 * sizes.sum(axis=1))
    assert math.isnan(d2.t_dominant) and d2.dominant_clone == -1
    assert d2.share_at_peak == pytest.approx(0.475) and d2.dominates_at_peak() is False
    # batched: leading axes give arrays; an all-zero patient gives NaN / -1
    batch = np.stack([sizes, np.zeros_like(sizes)])
    db = cl.dominance(t, batch)
    np.testing.assert_array_equal(db.dominant_clone, [1, -1])
    assert db.share_at_peak[0] == pytest.approx(0.95) and math.isnan(db.share_at_peak[1])
    np.testing.assert_array_equal(db.dominates_at_peak(), [True, False])
    with pytest.raises(ValueError, match="threshold"):
        cl.dominance(t, sizes, threshold=1.5)
    with pytest.raises(ValueError, match="len\\(t\\)"):
        cl.dominance(t[:3], sizes)


def test_integration_site_sampling_is_multinomial():
    """Read counts ~ Multinomial(R, p): mean R·p, variance R·p(1 − p); fixed seed, 5 SE."""
    sizes = np.array([600.0, 300.0, 100.0, 0.0])
    reads, reps = 2000, 4000
    counts = cl.sample_integration_sites(np.broadcast_to(sizes, (reps, 4)), reads, 2024)
    assert counts.dtype == np.int64 and np.all(counts.sum(axis=1) == reads)
    assert np.all(counts[:, 3] == 0)  # a clone with no cells yields no reads
    p = sizes / sizes.sum()
    mean, var = reads * p, reads * p * (1 - p)
    se = np.sqrt(var / reps)
    assert np.all(np.abs(counts.mean(axis=0) - mean) <= 5 * se + 1e-12)
    # the sampled Simpson index (unbiased form) estimates the true Σp² = 0.46
    lam = cl.simpson(counts, unbiased=True)
    assert abs(lam.mean() - 0.46) < 5 * lam.std(ddof=1) / math.sqrt(reps)
    # same seed, same reads; no cells → no reads; bad read depth → clear error
    again = cl.sample_integration_sites(np.broadcast_to(sizes, (reps, 4)), reads, 2024)
    np.testing.assert_array_equal(counts, again)
    np.testing.assert_array_equal(cl.sample_integration_sites(np.zeros(3), 10, 1), [0, 0, 0])
    with pytest.raises(ValueError, match="reads = -1"):
        cl.sample_integration_sites(sizes, -1, 1)


def test_clone_composition_figure():
    from livingdrug.report.figures import clone_composition_figure

    t = np.linspace(0.0, 30.0, 31)
    a = np.exp(0.3 * t)
    b = np.full_like(t, 50.0)
    sizes = np.stack([a, b], axis=1)
    sizes[0] = 0.0  # no CAR-T cells yet: left blank
    fig = clone_composition_figure(t, sizes, ["adv", "c1"], total=sizes.sum(axis=1) + 100.0)
    ax = fig.axes[0]
    assert len(ax.collections) == 3  # two clones + "other CAR-T"
    assert ax.get_ylim() == (0.0, 1.0)
    assert [x.get_text() for x in ax.get_legend().get_texts()] == ["adv", "c1", "other CAR-T"]
    # the top of the stack is 1 wherever there are cells
    top = ax.collections[-1].get_paths()[0].vertices[:, 1]
    assert np.nanmax(top) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one column per named clone"):
        clone_composition_figure(t, sizes, ["only one name"])
