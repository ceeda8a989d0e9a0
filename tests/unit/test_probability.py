"""Ensemble statistics: Wilson intervals, Kaplan–Meier, extinction times, endpoints, summary."""

from __future__ import annotations

import math

import numpy as np
import pytest

from livingdrug.clinical.probability import (
    describe,
    ensemble_summary,
    extinction,
    kaplan_meier,
    proportion,
    replicate_endpoints,
)

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson EB 1927 score interval, written out independently of scipy."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    # Newcombe RG 1998, Stat Med 17:857, Table I, method 3 (Wilson score without correction)
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_interval_matches_newcombe_1998(k: int, n: int, low: float, high: float) -> None:
    p = proportion(k, n)
    assert p.estimate == pytest.approx(k / n)
    assert round(p.low, 4) == pytest.approx(low, abs=1e-12)
    assert round(p.high, 4) == pytest.approx(high, abs=1e-12)
    lo, hi = wilson(k, n)
    assert p.low == pytest.approx(lo, rel=1e-9, abs=1e-12) and p.high == pytest.approx(hi, rel=1e-9)
    assert p.method == "Wilson score" and p.as_dict()["trials"] == n


def test_wilson_hand_computed_7_of_20() -> None:
    # p = 0.35, z² = 3.8415: centre (0.35 + 0.09604)/1.19207 = 0.37417, half 0.19298
    p = proportion(7, 20)
    assert p.low == pytest.approx(0.18119, abs=5e-5) and p.high == pytest.approx(0.56715, abs=5e-5)
    wider = proportion(7, 20, confidence=0.99)
    assert wider.low < p.low and wider.high > p.high


def test_proportion_edge_cases() -> None:
    empty = proportion(0, 0)
    assert math.isnan(empty.estimate) and empty.as_dict()["estimate"] is None
    all_ = proportion(50, 50)
    assert all_.high == pytest.approx(1.0) and all_.low < 1.0
    with pytest.raises(ValueError, match="successes"):
        proportion(3, 2)
    with pytest.raises(ValueError, match="confidence"):
        proportion(1, 2, confidence=1.5)


def test_kaplan_meier_counts_are_the_definitions_with_ties() -> None:
    """Numbers at risk and events by binary search equal their definitions, #{d ≥ t} and
    #{observed d = t}, on data with many ties between events and censorings."""
    rng = np.random.default_rng(3)
    d = rng.integers(0, 40, 2000).astype(float)
    o = rng.random(2000) < 0.6
    km = kaplan_meier(d, o)
    assert km.at_risk.tolist() == [int((d >= t).sum()) for t in km.time]
    assert km.events.tolist() == [int(((d == t) & o).sum()) for t in km.time]
    assert km.events.sum() == o.sum()


def test_kaplan_meier_hand_computed() -> None:
    # times 1 2 2+ 3 4+ 5 (+ = censored); at risk 6, 5, 3, 1 at the event times 1, 2, 3, 5
    km = kaplan_meier([1, 2, 2, 3, 4, 5], [True, True, False, True, False, True])
    assert km.time.tolist() == [1, 2, 3, 4, 5]
    expected = [5 / 6, 4 / 6, 4 / 6 * 2 / 3, 4 / 6 * 2 / 3, 0.0]
    assert km.survival == pytest.approx(expected)
    assert km.at_risk.tolist() == [6, 5, 3, 2, 1] and km.events.tolist() == [1, 1, 1, 0, 1]
    assert km.n == 6 and km.n_events == 4
    # Greenwood on the log-log scale at t = 3 (Kalbfleisch & Prentice 1980)
    s = expected[2]
    greenwood = 1 / (6 * 5) + 1 / (5 * 4) + 1 / (3 * 2)
    se = math.sqrt(greenwood) / abs(math.log(s))
    lo, hi = s ** math.exp(Z95 * se), s ** math.exp(-Z95 * se)
    assert (lo, hi) == pytest.approx((0.06618, 0.78489), abs=5e-5)
    assert km.low[2] == pytest.approx(lo, rel=1e-9) and km.high[2] == pytest.approx(hi, rel=1e-9)
    assert km.low[4] == 0.0 and km.high[4] == 0.0  # S = 0: Greenwood variance 0
    assert km.median == 3.0  # first time S <= 0.5
    # Brookmeyer–Crowley: lower = first time the lower band <= 0.5, upper = the upper band
    assert km.median_low == float(km.time[np.flatnonzero(km.low <= 0.5)[0]])
    assert km.median_high == float(km.time[np.flatnonzero(km.high <= 0.5)[0]])
    assert km.median_low <= km.median <= km.median_high
    assert km.at([0.5, 1.0, 2.5, 10.0]) == pytest.approx([1.0, 5 / 6, 4 / 6, 0.0])


def test_kaplan_meier_without_events_and_without_data() -> None:
    km = kaplan_meier([10.0, 10.0, 10.0], [False, False, False])
    assert km.survival.tolist() == [1.0] and km.low.tolist() == [1.0] and km.high.tolist() == [1.0]
    assert math.isnan(km.median) and km.as_dict()["median"] is None
    empty = kaplan_meier([], [])
    assert empty.n == 0 and math.isnan(empty.median)
    with pytest.raises(ValueError, match="same length"):
        kaplan_meier([1.0, 2.0], [True])


def test_extinction_is_for_good() -> None:
    t = np.arange(6.0)
    x = np.array(
        [
            [5, 2, 0, 0, 0, 0],  # cured at t = 2
            [5, 0, 0, 1, 0, 0],  # came back at t = 3: cured for good from t = 4
            [5, 3, 1, 0, 0, 1],  # present at the end: not cured
            [0, 0, 0, 0, 0, 0],  # never present: cured from the start
            [5, 0, np.nan, np.nan, np.nan, np.nan],  # failed simulation: not cured
        ],
        dtype=float,
    )
    cured, ttc = extinction(t, x, t_dose=1.0)
    assert cured.tolist() == [True, True, False, True, False]
    assert ttc[0] == 1.0 and ttc[1] == 3.0 and ttc[3] == -1.0
    assert math.isnan(ttc[2]) and math.isnan(ttc[4])


def test_replicate_endpoints_response_and_exposure() -> None:
    t = np.arange(0.0, 41.0)
    blasts = np.where(t < 10, 50.0, np.where(t < 30, 1.0, 20.0))[None, :].repeat(2, axis=0)
    blasts[1, 30:] = 1.0  # second replicate never relapses
    mrd = blasts / 100.0
    mrd[:, 12:30] = 1e-5
    mrd[1, 30:] = 1e-5
    neg = np.zeros_like(blasts)
    neg[0, 30:] = 0.9
    tumour = np.where(blasts > 2, 1e6, 0.0)
    cart = np.exp(-((t - 9.0) ** 2) / 20.0)[None, :].repeat(2, axis=0)
    e = replicate_endpoints(t, tumour_total=tumour, blasts_pct=blasts, mrd=mrd, antigen_neg_fraction=neg, cart=cart, cart_unit="cell/uL")
    assert e["remission"].tolist() == [True, True]
    assert e["time_to_remission"].tolist() == [10.0, 10.0]
    assert e["mrd_negative"].tolist() == [True, True] and e["time_to_mrd_negative"][0] == 12.0
    assert e["relapse"].tolist() == [True, False]
    assert e["relapse_time"][0] == 30.0 and e["relapse_type"].tolist() == ["CD19-", "none"]
    assert e["cured"].tolist() == [False, True] and e["time_to_cure"][1] == 10.0
    assert e["tmax"].tolist() == [9.0, 9.0] and e["cmax"][0] == pytest.approx(1.0)
    assert "bcell_aplasia_duration" not in e


def test_ensemble_summary_counts_failures_and_censors_at_the_end() -> None:
    n = 10
    cols = {
        "cured": np.array([True] * 3 + [False] * 7),
        "time_to_cure": np.array([5.0, 6.0, 7.0] + [np.nan] * 7),
        "remission": np.array([True] * 8 + [False] * 2),
        "mrd_negative": np.array([True] * 6 + [False] * 4),
        "relapse": np.array([False] * 3 + [True] * 3 + [False] * 4),
        "relapse_time": np.array([np.nan] * 3 + [40.0, 50.0, 60.0] + [np.nan] * 4),
        "relapse_type": np.array(["none"] * 3 + ["CD19-", "CD19+", "CD19-"] + ["none"] * 4, dtype=object),
    }
    ok = np.ones(n, dtype=bool)
    ok[-1] = False  # one failed replicate
    s = ensemble_summary(cols, ok=ok, follow_up=100.0)
    assert s["replicates"] == 10 and s["ok"] == 9 and s["failed"] == 1
    p = s["probabilities"]
    assert p["cure"]["successes"] == 3 and p["cure"]["trials"] == 9
    assert p["cure"]["low"] == pytest.approx(wilson(3, 9)[0])
    assert p["relapse_given_remission"]["trials"] == 8 and p["relapse_given_remission"]["successes"] == 3
    assert s["relapse_types"]["CD19-"]["successes"] == 2 and s["relapse_types"]["CD19+"]["successes"] == 1
    km = s["relapse_free_survival"]
    assert km["n"] == 8 and km["events"] == 3
    assert km["curve"]["time"] == [40.0, 50.0, 60.0, 100.0]  # five censored at the end (100 d)
    assert km["curve"]["survival"] == pytest.approx([7 / 8, 6 / 8, 5 / 8, 5 / 8])
    assert km["median"] is None  # never below one half
    assert s["time_to_cure"]["quantiles"]["50%"] == 6.0 and s["time_to_cure"]["n"] == 3


def test_describe_quantiles() -> None:
    d = describe([1.0, 2.0, 3.0, 4.0, np.nan])
    assert d["n"] == 4 and d["mean"] == 2.5 and d["quantiles"]["50%"] == 2.5
    assert describe([])["quantiles"]["50%"] is None


@pytest.mark.filterwarnings("ignore:All-NaN slice")  # the per-row reference on the failed row
def test_replicate_endpoints_equal_the_per_patient_definitions() -> None:
    """The vectorised columns of replicate_endpoints are exactly ball_response and exposure
    row by row (random trajectories with NaN rows, ties, masked relapses, B-cell recovery)."""
    from livingdrug.clinical.endpoints import ball_response, exposure

    rng = np.random.default_rng(3)
    t = np.arange(-2.0, 60.0, 0.25)
    n = 300
    # random walks of log-blasts crossing 5 % down and up again, some never
    blasts = 10 ** np.clip(1.5 + np.cumsum(rng.normal(-0.02, 0.25, (n, t.size)), axis=1), -6, 2)
    mrd = blasts / 100.0
    neg = rng.uniform(0, 0.6, (n, t.size))
    masked = rng.uniform(0, 0.6, (n, t.size)) * (rng.uniform(size=(n, 1)) < 0.5)
    bcells = 10 ** np.clip(2 + np.cumsum(rng.normal(0, 0.2, (n, t.size)), axis=1), -3, 3)
    cart = np.abs(rng.normal(size=(n, t.size))) * rng.uniform(0, 1e3, (n, 1))
    cart[5] = cart[5, 0]  # a flat row: ties, the first maximum wins
    for a in (blasts, mrd, cart, bcells):
        a[7] = np.nan  # a failed simulation
    cart[9, 20:] = np.nan
    e = replicate_endpoints(t, t_dose=0.0, blasts_pct=blasts, mrd=mrd, antigen_neg_fraction=neg,
                            masked_fraction=masked, bcells=bcells, cart=cart)
    for i in range(n):
        r = ball_response(t, blasts_pct=blasts[i], mrd=mrd[i], antigen_neg_fraction=neg[i], masked_fraction=masked[i],
                          bcells=bcells[i], t_dose=0.0)
        x = exposure(t, cart[i], t_dose=0.0)
        for key, want in (("time_to_remission", r.time_to_remission), ("time_to_mrd_negative", r.time_to_mrd_negative),
                          ("relapse_time", r.relapse_time), ("bcell_aplasia_duration", r.bcell_aplasia_duration),
                          ("cmax", x.cmax), ("tmax", x.tmax), ("auc_0_28", x.auc_0_28)):
            got = e[key][i]
            assert (math.isnan(got) and math.isnan(want)) or got == want, (i, key, got, want)
        assert e["relapse_type"][i] == r.relapse_type, i
    assert e["relapse"].sum() > 20 and (~e["remission"]).sum() > 5  # the sample exercises both branches
    one = replicate_endpoints(t, t_dose=0.0, cart=cart[:1])  # a row's value does not depend on its batch
    assert one["auc_0_28"][0] == e["auc_0_28"][0]
