r"""Ensemble statistics of stochastic runs: per-replicate endpoints, probabilities with
confidence intervals, Kaplan–Meier curves and quantiles.

Whether the last leukaemic cells die out is a matter of chance (Kimmel GJ, Locke FL, Altrock PM
2021, Proc R Soc B 288:20210229), so a stochastic run answers "how likely": out of ``n``
independent replicates of the same patient, ``k`` are cured, and ``k/n`` estimates the cure
probability.  Everything here is a pure function of arrays; times are in days.

Per-replicate endpoints (:func:`replicate_endpoints`)
-----------------------------------------------------
* **cure** — every tumour population extinct at the end of the run: the observable with role
  ``tumour_total`` (cells) is below :data:`CURE_THRESHOLD` = 0.5 cell, i.e. no whole cell is
  left (the stochastic engines keep counts integer, so this is ``== 0``).
* **time to cure** (d after infusion) — the first output time from which the tumour stays
  extinct until the end ("for good"); it has the resolution of the output grid.
* **remission, MRD negativity, relapse** (time and type) — as defined in
  :mod:`livingdrug.clinical.endpoints` (:func:`~livingdrug.clinical.endpoints.ball_response`:
  < 5 % marrow blasts; MRD < 10⁻⁴; blasts ≥ 5 % again after remission).  ``relapse`` is
  false for a replicate that never reached remission.
* **exposure** — Cmax, Tmax, AUC0–28 of the CAR-T observable
  (:func:`~livingdrug.clinical.endpoints.exposure`).
* **toxicity** (models with clinical-sign observables) — ``crs_max_grade``,
  ``icans_max_grade`` (ASTCT 0–4, Lee DW et al. 2019, Biol Blood Marrow Transplant 25:625)
  and their onsets (:func:`livingdrug.clinical.grading.replicate_grades`), summarised as
  P(CRS ≥ 1), P(CRS ≥ 3), P(ICANS ≥ 1) and P(ICANS ≥ 3) with Wilson intervals.

Probabilities (:func:`proportion`)
----------------------------------
``p̂ = k/n`` with the **Wilson score** interval (Wilson EB 1927, J Am Stat Assoc 22:209),
computed by :meth:`scipy.stats.binomtest(k, n).proportion_ci(method="wilson")
<scipy.stats._result_classes.BinomTestResult.proportion_ci>`:

.. math::

   \frac{\hat p + \frac{z^2}{2n} \pm z\sqrt{\frac{\hat p(1-\hat p)}{n} + \frac{z^2}{4n^2}}}
        {1 + \frac{z^2}{n}},\qquad z = \Phi^{-1}\!\left(\tfrac{1+c}{2}\right)

(no continuity correction).  Unlike the Wald interval it stays inside [0, 1] and keeps close
to its nominal coverage for p near 0 or 1 (Brown LD, Cai TT, DasGupta A 2001, Stat Sci 16:101).
Replicates whose simulation failed are excluded from ``n`` and counted separately.

Kaplan–Meier (:func:`kaplan_meier`)
-----------------------------------
The product-limit estimate (Kaplan EL, Meier P 1958, J Am Stat Assoc 53:457)
``Ŝ(t) = Π_{tᵢ ≤ t} (1 − dᵢ/nᵢ)`` (``dᵢ`` events at time ``tᵢ``, ``nᵢ`` at risk just
before it), computed by :func:`scipy.stats.ecdf` on :class:`scipy.stats.CensoredData`, with
the pointwise 95 % interval from Greenwood's variance on the **log-log** scale (bounds stay in
[0, 1]; Kalbfleisch JD, Prentice RL 1980).  Where ``Ŝ = 1`` (before the first event) or
``Ŝ = 0`` the interval is the point itself (Greenwood's variance is 0 there).  The median is
``inf{t : Ŝ(t) ≤ 0.5}`` and its confidence interval is read off the pointwise band
(Brookmeyer R, Crowley J 1982, Biometrics 38:29; the convention of R's ``survival``
package): lower = first time the *lower* band is ≤ 0.5, upper = first time the *upper*
band is ≤ 0.5; ``None`` ("not reached") when that never happens.

**Relapse-free survival** convention (:func:`ensemble_summary`): the population is the
replicates that reached remission; time runs from the infusion; the event is relapse (blasts
≥ 5 % again); a replicate without relapse is censored at the end of the run (administrative
censoring: every replicate is followed to the same end).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .endpoints import (
    BCELL_APLASIA_THRESHOLD,
    MRD_NEGATIVE,
    RELAPSE_TYPES,
    REMISSION_BLASTS_PCT,
    trapezoid_rows,
)

__all__ = [
    "CURE_THRESHOLD",
    "QUANTILES",
    "Proportion",
    "KaplanMeier",
    "proportion",
    "kaplan_meier",
    "extinction",
    "replicate_endpoints",
    "describe",
    "ensemble_summary",
    "PROBABILITY_LABELS",
    "TOXICITY_PROBABILITIES",
]

#: a tumour below half a cell has no whole cell left (cell)
CURE_THRESHOLD = 0.5
#: quantiles reported for distributions over replicates
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)

#: what each reported probability means (for tables and the report)
PROBABILITY_LABELS: dict[str, str] = {
    "cure": "P(cure): every tumour cell extinct at the end",
    "remission": "P(remission): marrow blasts < 5 %",
    "mrd_negative": "P(MRD-negative remission): leukaemic fraction < 10⁻⁴",
    "relapse": "P(relapse by the end): blasts ≥ 5 % again after remission",
    "relapse_given_remission": "P(relapse by the end | remission)",
    "crs_grade_ge_1": "P(CRS, any grade): ASTCT grade ≥ 1",
    "crs_grade_ge_3": "P(severe CRS): ASTCT grade ≥ 3",
    "icans_grade_ge_1": "P(ICANS, any grade): ASTCT grade ≥ 1",
    "icans_grade_ge_3": "P(severe ICANS): ASTCT grade ≥ 3",
}
#: probability key → (endpoint column, lowest grade) for the toxicity probabilities
TOXICITY_PROBABILITIES = {
    "crs_grade_ge_1": ("crs_max_grade", 1),
    "crs_grade_ge_3": ("crs_max_grade", 3),
    "icans_grade_ge_1": ("icans_max_grade", 1),
    "icans_grade_ge_3": ("icans_max_grade", 3),
}


def _f(x: Any) -> float | None:
    """A finite float, or None (for JSON)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class Proportion:
    """``successes`` of ``trials`` with the point estimate and a confidence interval.

    ``estimate``, ``low`` and ``high`` are NaN when ``trials == 0``.
    """

    successes: int
    trials: int
    estimate: float
    low: float
    high: float
    confidence: float
    method: str = "Wilson score"

    def as_dict(self) -> dict[str, Any]:
        return {
            "estimate": _f(self.estimate),
            "low": _f(self.low),
            "high": _f(self.high),
            "successes": int(self.successes),
            "trials": int(self.trials),
            "confidence": float(self.confidence),
            "method": self.method,
        }


def proportion(successes: int, trials: int, *, confidence: float = 0.95) -> Proportion:
    """``k/n`` with its Wilson score interval (see the module doc); ``0 ≤ k ≤ n``."""
    from scipy.stats import binomtest

    k, n = int(successes), int(trials)
    if n < 0 or not (0 <= k <= max(n, 0)):
        raise ValueError(f"need 0 <= successes <= trials; got successes={successes}, trials={trials}")
    if not (0.0 < confidence < 1.0):
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")
    if n == 0:
        nan = math.nan
        return Proportion(0, 0, nan, nan, nan, confidence)
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Proportion(k, n, k / n, float(ci.low), float(ci.high), confidence)


@dataclass(frozen=True)
class KaplanMeier:
    """A Kaplan–Meier survival curve (see the module doc).

    ``time[j]`` (d) are the distinct observed times (events and censorings), ``survival[j]``
    is Ŝ just after ``time[j]`` (right-continuous), ``low``/``high`` the pointwise band,
    ``at_risk[j]`` and ``events[j]`` the counts at ``time[j]``.  ``median`` and its interval
    are NaN when not reached.
    """

    time: np.ndarray
    survival: np.ndarray
    low: np.ndarray
    high: np.ndarray
    at_risk: np.ndarray
    events: np.ndarray
    n: int
    n_events: int
    median: float
    median_low: float
    median_high: float
    confidence: float
    method: str = "Kaplan-Meier (scipy.stats.ecdf), Greenwood log-log band"

    def at(self, t: Any) -> np.ndarray:
        """Ŝ at times ``t`` (1 before the first observed time)."""
        t = np.asarray(t, dtype=float)
        idx = np.searchsorted(self.time, t, side="right") - 1
        s = np.concatenate(([1.0], self.survival))
        return s[idx + 1]

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": int(self.n),
            "events": int(self.n_events),
            "median": _f(self.median),
            "median_low": _f(self.median_low),
            "median_high": _f(self.median_high),
            "confidence": float(self.confidence),
            "method": self.method,
            "curve": {
                "time": [float(x) for x in self.time],
                "survival": [_f(x) for x in self.survival],
                "low": [_f(x) for x in self.low],
                "high": [_f(x) for x in self.high],
                "at_risk": [int(x) for x in self.at_risk],
                "events": [int(x) for x in self.events],
            },
        }


def _first_at_or_below(time: np.ndarray, s: np.ndarray, level: float) -> float:
    idx = np.flatnonzero(s <= level + 1e-12)
    return float(time[idx[0]]) if idx.size else math.nan


def kaplan_meier(durations: Any, observed: Any, *, confidence: float = 0.95) -> KaplanMeier:
    """Kaplan–Meier estimate of ``S(t) = P(T > t)`` from right-censored data.

    ``durations[i]`` (d) is the event time when ``observed[i]`` is true, else the censoring
    time.  Returns a :class:`KaplanMeier` (empty, median NaN, for no data).
    """
    from scipy.stats import CensoredData, ecdf

    d = np.asarray(durations, dtype=float).reshape(-1)
    o = np.asarray(observed, dtype=bool).reshape(-1)
    if d.shape != o.shape:
        raise ValueError(f"durations and observed must have the same length; got {d.size} and {o.size}")
    if not np.all(np.isfinite(d)):
        raise ValueError("durations must be finite")
    nan = math.nan
    empty = np.zeros(0)
    if d.size == 0:
        return KaplanMeier(empty, empty, empty, empty, empty.astype(int), empty.astype(int), 0, 0, nan, nan, nan, confidence)
    res = ecdf(CensoredData(uncensored=d[o], right=d[~o]))
    time = np.asarray(res.sf.quantiles, dtype=float)
    surv = np.asarray(res.sf.probabilities, dtype=float)
    if o.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # undefined where S is 0 or 1
            ci = res.sf.confidence_interval(confidence_level=confidence, method="log-log")
        low = np.asarray(ci.low.probabilities, dtype=float)
        high = np.asarray(ci.high.probabilities, dtype=float)
    else:
        low, high = surv.copy(), surv.copy()
    # Greenwood's variance is 0 where S is 1 (no event yet) or 0: the band is the point
    for arr in (low, high):
        arr[surv >= 1.0] = 1.0
        arr[surv <= 0.0] = 0.0
    # counts by binary search on the sorted times (O(N log N); a scan per time is O(N²) and
    # hangs a 10⁶-patient trial): at risk = #{d ≥ t}, events = #{observed d = t}
    d_all, d_obs = np.sort(d), np.sort(d[o])
    at_risk = (d.size - np.searchsorted(d_all, time, side="left")).astype(np.int64)
    events = (np.searchsorted(d_obs, time, side="right") - np.searchsorted(d_obs, time, side="left")).astype(np.int64)
    return KaplanMeier(
        time=time,
        survival=surv,
        low=low,
        high=high,
        at_risk=at_risk,
        events=events,
        n=int(d.size),
        n_events=int(o.sum()),
        median=_first_at_or_below(time, surv, 0.5),
        median_low=_first_at_or_below(time, low, 0.5),
        median_high=_first_at_or_below(time, high, 0.5),
        confidence=confidence,
    )


def extinction(
    t: Any, tumour: Any, *, t_dose: float = 0.0, threshold: float = CURE_THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """Cure and time to cure of each row of ``tumour[n, T]`` (cells) at times ``t[T]`` (d).

    ``cured[i]``: ``tumour[i, -1] < threshold``.  ``time_to_cure[i]`` (d after ``t_dose``):
    ``t[j] − t_dose`` for the first ``j`` with ``tumour[i, j:] < threshold`` throughout;
    NaN when not cured (or when the row holds NaN, a failed simulation).  A 1-D ``tumour``
    is one row.
    """
    t = np.asarray(t, dtype=float)
    x = np.atleast_2d(np.asarray(tumour, dtype=float))
    if x.shape[-1] != t.size:
        raise ValueError(f"tumour has {x.shape[-1]} time points but t has {t.size}")
    finite = np.isfinite(x).all(axis=1)
    alive = ~(x < threshold)  # NaN counts as alive: no cure from a failed row
    cured = ~alive[:, -1] & finite
    # index of the last time the tumour was present, + 1 (0 if never present)
    any_alive = alive.any(axis=1)
    last = x.shape[1] - 1 - np.argmax(alive[:, ::-1], axis=1)
    first_free = np.where(any_alive, last + 1, 0)
    ttc = np.full(x.shape[0], np.nan)
    ttc[cured] = t[first_free[cured]] - t_dose
    return cured, ttc


def replicate_endpoints(
    t: Any,
    *,
    t_dose: float = 0.0,
    tumour_total: Any = None,
    blasts_pct: Any = None,
    mrd: Any = None,
    antigen_neg_fraction: Any = None,
    masked_fraction: Any = None,
    bcells: Any = None,
    cart: Any = None,
    cart_unit: str = "",
) -> dict[str, np.ndarray]:
    """Endpoints of every replicate as columns (arrays of length ``n``).

    Inputs are ``[n, T]`` arrays of observables at times ``t[T]`` (d); each is optional and
    only the endpoints it allows are returned:

    * ``tumour_total`` (cell) → ``cured`` (bool), ``time_to_cure`` (d after infusion),
      ``tumour_end`` (cell);
    * ``blasts_pct`` (%) and ``mrd`` (fraction), optionally ``antigen_neg_fraction``,
      ``masked_fraction`` (CAR+ CD19-masked share of the tumour) and
      ``bcells`` (cell/µL) → ``remission``, ``time_to_remission``, ``mrd_negative``,
      ``time_to_mrd_negative``, ``relapse``, ``relapse_time`` (d after infusion),
      ``relapse_type`` (``"none"``, ``"CD19+"``, ``"CD19-"``), ``bcell_aplasia_duration`` (d);
    * ``cart`` (``cart_unit``) → ``cmax`` (``cart_unit``), ``tmax`` (d after infusion),
      ``auc_0_28`` (``cart_unit``·d).

    Rows holding NaN (failed simulations) give NaN/false endpoints; the caller excludes them.
    """
    t = np.asarray(t, dtype=float)
    out: dict[str, np.ndarray] = {}
    n = None
    for a in (tumour_total, blasts_pct, cart):
        if a is not None:
            n = np.atleast_2d(np.asarray(a)).shape[0]
            break
    if n is None:
        return out
    if tumour_total is not None:
        x = np.atleast_2d(np.asarray(tumour_total, dtype=float))
        cured, ttc = extinction(t, x, t_dose=t_dose)
        out["cured"] = cured
        out["time_to_cure"] = ttc
        out["tumour_end"] = x[:, -1].copy()
    if blasts_pct is not None and mrd is not None:
        b = np.atleast_2d(np.asarray(blasts_pct, dtype=float))
        m = np.atleast_2d(np.asarray(mrd, dtype=float))
        neg = None if antigen_neg_fraction is None else np.atleast_2d(np.asarray(antigen_neg_fraction, dtype=float))
        msk = None if masked_fraction is None else np.atleast_2d(np.asarray(masked_fraction, dtype=float))
        bc = None if bcells is None else np.atleast_2d(np.asarray(bcells, dtype=float))
        out.update(_ball_columns(t, b, m, neg, msk, bc, t_dose))
        out["remission"] = np.isfinite(out["time_to_remission"])
        out["mrd_negative"] = np.isfinite(out["time_to_mrd_negative"])
        out["relapse"] = np.isfinite(out["relapse_time"])
    if cart is not None:
        c = np.atleast_2d(np.asarray(cart, dtype=float))
        out.update(_exposure_columns(t, c, t_dose))
    return out


def _first(hit: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Per row, the first column ``j >= start[row]`` where ``hit`` is true; -1 if none
    (the row-wise :func:`~livingdrug.clinical.endpoints.first_crossing`)."""
    hit = hit & (np.arange(hit.shape[1]) >= start[:, None])
    idx = np.argmax(hit, axis=1)
    return np.where(hit[np.arange(hit.shape[0]), idx], idx, -1)


def _ball_columns(t: np.ndarray, b: np.ndarray, m: np.ndarray, neg: np.ndarray | None, msk: np.ndarray | None,
                  bc: np.ndarray | None, t_dose: float) -> dict[str, np.ndarray]:
    """:func:`~livingdrug.clinical.endpoints.ball_response` of every row at once (same
    definitions, same values: tested against it): remission, MRD negativity, relapse time and
    type, B-cell aplasia duration."""
    n = b.shape[0]
    rows = np.arange(n)
    nan = np.full(n, np.nan)
    start = np.full(n, int(np.searchsorted(t, t_dose, side="left")))
    with np.errstate(invalid="ignore"):
        i_rem = _first(b < REMISSION_BLASTS_PCT, start)
        i_mrd = _first(m < MRD_NEGATIVE, start)
        i_rel = np.where(i_rem >= 0, _first(b >= REMISSION_BLASTS_PCT, np.maximum(i_rem, 0)), -1)
    out = {
        "time_to_remission": np.where(i_rem >= 0, t[i_rem] - t_dose, nan),
        "time_to_mrd_negative": np.where(i_mrd >= 0, t[i_mrd] - t_dose, nan),
        "relapse_time": np.where(i_rel >= 0, t[i_rel] - t_dose, nan),
    }
    k = np.maximum(i_rel, 0)
    f_neg = neg[rows, k] if neg is not None else np.zeros(n)
    f_msk = msk[rows, k] if msk is not None else np.zeros(n)
    kind = np.argmax(np.stack([1.0 - f_neg - f_msk, f_neg, f_msk], axis=1), axis=1)  # first wins ties
    out["relapse_type"] = np.where(i_rel >= 0, np.asarray(RELAPSE_TYPES, dtype=object)[1 + kind], "none")
    out["relapse_type"] = out["relapse_type"].astype(object)
    if bc is not None:
        with np.errstate(invalid="ignore"):
            i_a = _first(bc < BCELL_APLASIA_THRESHOLD, start)
            i_rec = np.where(i_a >= 0, _first(bc >= BCELL_APLASIA_THRESHOLD, np.maximum(i_a, 0)), -1)
        a = np.maximum(i_a, 0)
        out["bcell_aplasia_duration"] = np.where(i_a < 0, nan, np.where(i_rec >= 0, t[np.maximum(i_rec, 0)], t[-1]) - t[a])
    return out


def _exposure_columns(t: np.ndarray, c: np.ndarray, t_dose: float) -> dict[str, np.ndarray]:
    """:func:`~livingdrug.clinical.endpoints.exposure` (Cmax, Tmax, AUC0–28) of every row at
    once; same definitions and values (tested against it)."""
    n = c.shape[0]
    after = t >= t_dose
    nan = np.full(n, np.nan)
    if not after.any():
        return {"cmax": nan, "tmax": nan.copy(), "auc_0_28": nan.copy()}
    ta, ca = t[after] - t_dose, c[:, after]
    finite = np.isfinite(ca)
    some = finite.any(axis=1)
    i = np.argmax(np.where(finite, ca, -np.inf), axis=1)  # nanargmax: first maximum of the finite values
    window = ta <= 28.0 + 1e-9
    if window.sum() > 1 and ta[window][-1] >= 28.0 - 1e-9:
        auc = trapezoid_rows(ca[:, window], ta[window])
    else:
        auc = nan  # fewer than two points, or follow-up shorter than 28 days: AUC0-28 undefined
    rows = np.arange(n)
    return {"cmax": np.where(some, ca[rows, i], np.nan), "tmax": np.where(some, ta[i], np.nan),
            "auc_0_28": np.where(some, auc, np.nan)}


def describe(values: Any, *, quantiles: tuple[float, ...] = QUANTILES) -> dict[str, Any]:
    """Count, mean and quantiles (linear interpolation, numpy's default) of the finite
    values; ``None`` entries when there are none."""
    x = np.asarray(values, dtype=float).reshape(-1)
    x = x[np.isfinite(x)]
    out: dict[str, Any] = {"n": int(x.size), "mean": _f(x.mean()) if x.size else None}
    qs = np.quantile(x, quantiles) if x.size else [None] * len(quantiles)
    out["quantiles"] = {f"{100 * q:g}%": _f(v) for q, v in zip(quantiles, qs, strict=True)}
    return out


def ensemble_summary(
    endpoints: Mapping[str, Any],
    *,
    ok: Any = None,
    confidence: float = 0.95,
    follow_up: float | None = None,
    units: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Probabilities with confidence intervals, time-to-cure quantiles, relapse-free survival
    and exposure ranges over the replicates ``ok`` (bool mask; default all).

    ``endpoints`` holds the columns of :func:`replicate_endpoints`.  ``follow_up`` (d after
    infusion) is the censoring time of relapse-free survival (default: the largest observed
    time).  Conventions: see the module doc.
    """
    cols = {k: np.asarray(v) for k, v in endpoints.items()}
    n_all = len(next(iter(cols.values()))) if cols else 0
    mask = np.ones(n_all, dtype=bool) if ok is None else np.asarray(ok, dtype=bool)
    n = int(mask.sum())
    units = dict(units or {})
    out: dict[str, Any] = {
        "replicates": int(n_all),
        "ok": n,
        "failed": int(n_all - n),
        "confidence": confidence,
        "ci_method": "Wilson score interval (scipy.stats.binomtest(...).proportion_ci(method='wilson'))",
    }
    probs: dict[str, Any] = {}

    def flag(name: str) -> np.ndarray:
        return np.asarray(cols[name], dtype=bool)[mask]

    for key in ("cure", "remission", "mrd_negative", "relapse"):
        col = "cured" if key == "cure" else key
        if col in cols:
            probs[key] = proportion(int(flag(col).sum()), n, confidence=confidence).as_dict()
    if "relapse" in cols and "remission" in cols:
        rem = flag("remission")
        probs["relapse_given_remission"] = proportion(
            int((flag("relapse") & rem).sum()), int(rem.sum()), confidence=confidence
        ).as_dict()
    for key, (col, lowest) in TOXICITY_PROBABILITIES.items():
        if col in cols:
            g = np.asarray(cols[col], dtype=float)[mask]
            probs[key] = proportion(int((g >= lowest).sum()), n, confidence=confidence).as_dict()
    out["probabilities"] = probs
    if "relapse_type" in cols:
        types = np.asarray(cols["relapse_type"], dtype=object)[mask]
        kinds = sorted({str(x) for x in types} - {"none", "None"})
        out["relapse_types"] = {
            k: proportion(int((types == k).sum()), n, confidence=confidence).as_dict() for k in kinds
        }
    if "time_to_cure" in cols:
        d = describe(np.asarray(cols["time_to_cure"], dtype=float)[mask])
        d["unit"] = "d after infusion"
        d["of"] = "cured replicates"
        out["time_to_cure"] = d
    if "relapse_time" in cols and "remission" in cols:
        rem = flag("remission")
        rt = np.asarray(cols["relapse_time"], dtype=float)[mask][rem]
        rel = np.isfinite(rt)
        if follow_up is None:
            follow_up = float(np.nanmax(rt)) if rel.any() else 0.0
        durations = np.where(rel, rt, follow_up)
        km = kaplan_meier(durations, rel, confidence=confidence)
        d = km.as_dict()
        d.update(
            unit="d after infusion",
            population="replicates that reached remission",
            event="relapse (marrow blasts >= 5 % again)",
            censoring=f"at the end of the run ({follow_up:g} d after infusion) for replicates without relapse",
        )
        out["relapse_free_survival"] = d
    dist: dict[str, Any] = {}
    for key in ("cmax", "tmax", "auc_0_28", "time_to_remission", "time_to_mrd_negative", "relapse_time", "tumour_end",
                "crs_max_grade", "crs_onset_day", "icans_max_grade", "icans_onset_day"):
        if key in cols:
            dd = describe(np.asarray(cols[key], dtype=float)[mask])
            if key in units:
                dd["unit"] = units[key]
            dist[key] = dd
    if dist:
        out["distributions"] = dist
    return out
