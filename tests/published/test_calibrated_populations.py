"""The shipped calibrated virtual populations land inside the published trial ranges.

For each built-in population the plausible patients are simulated afresh and the
maximum-entropy weights recomputed (nothing is stored); each published figure is then
recomputed here from the per-patient table and the weights, independently of
``calibration_table``, and must lie inside the published 95 % interval (Wilson's from the
trial's n; Wilson EB 1927), with Kish's effective sample size at least 20 % of the cohort.

Published figures (PUBLISHED.md §7; the cohort is the paper's unless said):

* ELIANA — Maude SL et al. 2018 NEJM 378:439, 75 infused: overall remission 81 %, CRS 77 %
  (Penn scale), neurological events 40 % (CTCAE).
* ZUMA-1 — Neelapu SS et al. 2017 NEJM 377:2531, 101 treated: objective response 82 %,
  complete response 54 %, CRS 93 %, CRS grade ≥ 3 13 % (Lee 2014 scale), neurological events
  grade ≥ 3 28 %.
* KarMMa — Munshi NC et al. 2021 NEJM 384:705, 128 treated: overall response 73 %, complete
  response or better 33 % (IMWG), CRS 84 %, CRS grade ≥ 3 5 % (Lee 2014 scale).
* Liu E et al. 2020 NEJM 382:545, 11 patients: 7/11 complete remissions (8/11 responded), no
  CRS, no neurotoxicity.

Complete response (the per-patient ``complete_response`` column: B-ALL remission, Lugano CR,
IMWG CR or sCR at day 90): a B-ALL response is a complete remission, so ELIANA's remission
target is its CR figure and Liu's target is the 7 complete remissions (the eighth responder's
partial response cannot happen to the car_nk model's B-ALL patient; the calibrated response
must still lie inside the Wilson interval of 8/11).  ZUMA-1 and KarMMa reproduce response and
complete response together, which needs responders short of CR (Lugano PR, IMWG VGPR/PR at
day 90) among the plausible patients.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from livingdrug.calibrate import calibrate_population, calibrated_sample
from livingdrug.clinical.probability import proportion
from livingdrug.trials.calibration import calibrate_weights, effective_sample_size

# scenario → {target name: (published proportion, published n)}; the interval is Wilson's of
# round(proportion × n) events in n, as the papers report percentages of n
PUBLISHED = {
    "eliana": {"overall remission": (0.81, 75), "CRS, any grade": (0.77, 75),
               "neurological events, any grade": (0.40, 75)},
    "zuma-1": {"objective response": (0.82, 101), "complete response": (0.54, 101), "CRS, any grade": (0.93, 101),
               "CRS grade >= 3": (0.13, 101), "neurological events grade >= 3": (0.28, 101)},
    "karmma": {"overall response": (0.73, 128), "complete response": (0.33, 128), "CRS, any grade": (0.84, 128),
               "CRS grade >= 3": (0.05, 128)},
    "liu2020-carnk": {"complete remission": (7 / 11, 11), "CRS, any grade": (0.0, 11), "ICANS, any grade": (0.0, 11)},
}
#: each population simulated and calibrated once per test process (seed 0, 400 patients)
_calibrated = lru_cache(maxsize=None)(calibrate_population)


def _event(tab: dict, t) -> np.ndarray:  # noqa: ANN001
    x = tab[t.column]
    if t.op is None:
        return x.astype(bool)
    assert t.op == ">="
    return x >= t.threshold


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_calibrated_population_within_published_ranges(name: str) -> None:
    r = _calibrated(name)
    tab, w = r.patients, r.weights
    assert r.n >= 300 and r.n_failed == 0
    ok = (tab["outcome"] == "infused") & (tab["status"] == 0)
    # the weights are genuine: recomputed from the table, they are the same
    np.testing.assert_allclose(w[ok], calibrate_weights({k: v[ok] for k, v in tab.items()}, r.targets), atol=1e-12)
    assert w.sum() == pytest.approx(1.0)
    assert effective_sample_size(w) == pytest.approx(r.n_effective)
    assert r.n_effective >= 0.2 * r.n, f"{name}: n_eff {r.n_effective:.1f} of {r.n}"
    pub = PUBLISHED[name]
    assert sorted(t.name for t in r.targets) == sorted(pub)
    for t, row in zip(r.targets, r.table, strict=True):
        p, n = pub[t.name]
        assert t.n == n and t.value == pytest.approx(p, abs=1e-12), f"{name}: {t.name} is not {p} of {n}"
        ci = proportion(round(p * n), n)
        calibrated = float(w[ok] @ _event(tab, t)[ok]) / float(w[ok].sum())
        assert ci.low <= calibrated <= ci.high, f"{name}: {t.name} {calibrated:.3f} outside ({ci.low:.3f}, {ci.high:.3f})"
        assert row["within"] and row["simulated"] == pytest.approx(calibrated, abs=1e-9)
        # the plausible patients cover the target (it is inside what they span)
        ev = _event(tab, t)[ok]
        assert ev.min() <= t.value <= ev.max()
    # a calibrated cohort drawn by weight reproduces the targets within sampling error
    idx = calibrated_sample(r, 4000, seed=1)
    row_of = {int(p): i for i, p in enumerate(tab["patient"])}
    rows = np.array([row_of[int(p)] for p in idx])
    for t in r.targets:
        share = float(_event(tab, t)[rows].mean())
        se = max(np.sqrt(t.value * (1 - t.value) / idx.size), 1e-12)
        assert abs(share - t.value) <= 5 * se + 1e-12, f"{name}: resampled {t.name} {share:.3f}"


def _weighted(r, column: str) -> tuple[np.ndarray, float]:  # noqa: ANN001
    ok = (r.patients["outcome"] == "infused") & (r.patients["status"] == 0)
    x = r.patients[column][ok].astype(bool)
    return x, float(r.weights[ok] @ x) / float(r.weights[ok].sum())


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_complete_response_is_consistent(name: str) -> None:
    """Every complete response is a response; in B-ALL (eliana, liu2020-carnk) every response
    is a complete remission.  Liu E et al. 2020 NEJM 382:545: the calibrated response (= its
    7/11 complete remissions) lies inside the Wilson interval of the 8/11 who responded.
    ZUMA-1 (Neelapu SS et al. 2017 NEJM 377:2531: 82 % / 54 %) and KarMMa (Munshi NC et al.
    2021 NEJM 384:705: 73 % / 33 %): response and CR reproduced together, with enough
    simulated responders short of CR that partial responders carry real weight."""
    r = _calibrated(name)
    resp, resp_w = _weighted(r, "responded")
    cr, cr_w = _weighted(r, "complete_response")
    assert not np.any(cr & ~resp), f"{name}: a complete response that is not a response"
    assert cr_w <= resp_w + 1e-12
    if name in ("eliana", "liu2020-carnk"):
        np.testing.assert_array_equal(cr, resp)
    if name == "liu2020-carnk":
        ci = proportion(8, 11)
        assert ci.low <= resp_w <= ci.high, f"response {resp_w:.3f} outside ({ci.low:.3f}, {ci.high:.3f})"
    if name in ("zuma-1", "karmma"):
        r_pub, cr_pub = {"zuma-1": (0.82, 0.54), "karmma": (0.73, 0.33)}[name]
        assert resp_w == pytest.approx(r_pub, abs=1e-9) and cr_w == pytest.approx(cr_pub, abs=1e-9)
        # the partial responders (weight r_pub - cr_pub) rest on at least 20 effective virtual
        # patients (ZUMA-1 itself had 28 partial responders of 101, KarMMa 51 of 128)
        partial = resp & ~cr
        ok = (r.patients["outcome"] == "infused") & (r.patients["status"] == 0)
        ess = effective_sample_size(r.weights[ok][partial])
        assert ess >= 20, f"{name}: partial responders carry {r_pub - cr_pub:.2f} of the weight on {ess:.1f} patients"
