"""Endpoints of one patient's trajectory: exposure (Cmax, Tmax, AUC) and B-ALL response.

Pure functions of arrays (times in days since the start of the simulation).  Definitions:

* **Cmax, Tmax** — maximum of the CAR-T observable after infusion and the time of that
  maximum *relative to the infusion* (the convention of Stein AM et al. 2019, CPT:PSP 8:285).
* **AUC0–28** — ∫₀²⁸ C(t) dt after infusion by the linear trapezoidal rule on the output grid
  (units: observable unit × day), the non-compartmental convention of the same paper.
* **Remission** (morphological complete remission in B-ALL) — marrow blasts < 5 %
  (NCCN / ELIANA, Maude SL et al. 2018 NEJM 378:439).  Time to remission is the first output
  time after infusion with blasts below 5 %.
* **MRD negativity** — leukaemic fraction of marrow nucleated cells < 10⁻⁴ (flow cytometry
  sensitivity used in ELIANA, Maude 2018).
* **Relapse** — after remission, marrow blasts ≥ 5 % again.  Its *type* is the largest of
  three disjoint parts of the leukaemia at relapse: CD19-negative (antigen loss, fraction
  ``antigen_neg_fraction``), CD19-masked CAR+ (leukaemic cells carrying the CAR, which binds
  CD19 on the same cell and hides it from CAR-T cells: Ruella M et al. 2018 Nat Med 24:1499;
  fraction ``masked_fraction``) and CD19-positive (the rest); ties go to CD19+, then CD19-.
  Without ``masked_fraction`` this is "CD19-" when antigen-negative cells are the majority,
  else "CD19+".
* **B-cell aplasia** — blood B cells below ``bcell_threshold`` (default 20 cells/µL, about
  1 % of a typical 2,000 lymphocytes/µL; the "< 1 % of lymphocytes" definition used in
  tisagenlecleucel trials, Maude 2018).  Its duration runs from the first time below the
  threshold after infusion to the first recovery above it (censored at the end of follow-up).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "Exposure",
    "Response",
    "exposure",
    "ball_response",
    "first_crossing",
    "trapezoid_rows",
    "REMISSION_BLASTS_PCT",
    "RELAPSE_TYPES",
    "MRD_NEGATIVE",
    "BCELL_APLASIA_THRESHOLD",
]

REMISSION_BLASTS_PCT = 5.0
#: relapse types of :func:`ball_response`
RELAPSE_TYPES = ("none", "CD19+", "CD19-", "CD19-masked (CAR+)")
MRD_NEGATIVE = 1e-4
BCELL_APLASIA_THRESHOLD = 20.0


def _nan_to_none(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


@dataclass(frozen=True)
class Exposure:
    """CAR-T exposure after infusion: ``cmax`` (observable unit), ``tmax`` (d after infusion),
    ``auc_0_28`` (unit·d), ``clast`` (the last value) and ``unit``."""

    cmax: float
    tmax: float
    auc_0_28: float
    clast: float
    unit: str

    def as_dict(self) -> dict:
        return _nan_to_none(asdict(self))


@dataclass(frozen=True)
class Response:
    """B-ALL response after infusion; times in days after infusion, NaN when it never happens."""

    time_to_remission: float
    time_to_mrd_negative: float
    relapse_time: float
    relapse_type: str  # "none", "CD19+", "CD19-", "CD19-masked (CAR+)"
    bcell_aplasia_start: float
    bcell_aplasia_duration: float
    bcell_aplasia_ongoing: bool
    min_blasts_pct: float
    min_mrd: float

    def as_dict(self) -> dict:
        return _nan_to_none(asdict(self))


def first_crossing(t: np.ndarray, x: np.ndarray, threshold: float, *, below: bool, start: int = 0) -> int:
    """Index of the first output ``i >= start`` with ``x[i] < threshold`` (``below``) or
    ``x[i] >= threshold`` (not ``below``); -1 if none."""
    seg = x[start:]
    hit = seg < threshold if below else seg >= threshold
    idx = np.flatnonzero(hit)
    return int(idx[0]) + start if idx.size else -1


def trapezoid_rows(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Trapezoidal integral of each row of ``y[n, T]`` over ``x[T]``, summed left to right
    (a cumulative sum), so a row's value does not depend on how many rows are integrated with
    it (numpy's reductions change their summation order with the array's shape)."""
    seg = np.diff(x)[None, :] * (y[:, 1:] + y[:, :-1]) / 2.0
    return np.cumsum(seg, axis=1)[:, -1] if seg.shape[1] else np.zeros(y.shape[0])


def exposure(t: np.ndarray, c: np.ndarray, *, t_dose: float = 0.0, unit: str = "") -> Exposure:
    """Cmax, Tmax and AUC0–28 of ``c(t)`` after an infusion at ``t_dose`` (see module doc)."""
    t = np.asarray(t, dtype=float)
    c = np.asarray(c, dtype=float)
    after = t >= t_dose
    if not after.any() or not np.isfinite(c[after]).any():
        nan = math.nan
        return Exposure(nan, nan, nan, nan, unit)
    ta, ca = t[after] - t_dose, c[after]
    i = int(np.nanargmax(ca))
    window = ta <= 28.0 + 1e-9
    auc = float(trapezoid_rows(ca[window][None, :], ta[window])[0]) if window.sum() > 1 else math.nan
    if ta[window][-1] < 28.0 - 1e-9:
        auc = math.nan  # follow-up shorter than 28 days: AUC0-28 undefined
    return Exposure(float(ca[i]), float(ta[i]), auc, float(ca[-1]), unit)


def ball_response(
    t: np.ndarray,
    *,
    blasts_pct: np.ndarray,
    mrd: np.ndarray,
    antigen_neg_fraction: np.ndarray | None = None,
    masked_fraction: np.ndarray | None = None,
    bcells: np.ndarray | None = None,
    t_dose: float = 0.0,
    bcell_threshold: float = BCELL_APLASIA_THRESHOLD,
) -> Response:
    """Remission, MRD negativity, relapse and B-cell aplasia (definitions in the module doc).

    ``antigen_neg_fraction`` and ``masked_fraction`` (dimensionless, per output time) are the
    CD19-negative and the CAR+ CD19-masked shares of all leukaemic cells (roles
    ``tumour_antigen_neg`` and ``tumour_car_masked`` over ``tumour_total``); each defaults to 0.
    """
    t = np.asarray(t, dtype=float)
    start = int(np.searchsorted(t, t_dose, side="left"))
    nan = math.nan
    blasts = np.asarray(blasts_pct, dtype=float)
    mrd_a = np.asarray(mrd, dtype=float)
    i_rem = first_crossing(t, blasts, REMISSION_BLASTS_PCT, below=True, start=start)
    i_mrd = first_crossing(t, mrd_a, MRD_NEGATIVE, below=True, start=start)
    t_rem = t[i_rem] - t_dose if i_rem >= 0 else nan
    t_mrd = t[i_mrd] - t_dose if i_mrd >= 0 else nan
    relapse_t, relapse_type = nan, "none"
    if i_rem >= 0:
        i_rel = first_crossing(t, blasts, REMISSION_BLASTS_PCT, below=False, start=i_rem)
        if i_rel >= 0:
            relapse_t = t[i_rel] - t_dose
            neg = float(antigen_neg_fraction[i_rel]) if antigen_neg_fraction is not None else 0.0
            masked = float(masked_fraction[i_rel]) if masked_fraction is not None else 0.0
            parts = (1.0 - neg - masked, neg, masked)  # CD19+, CD19-, masked; first wins ties
            relapse_type = RELAPSE_TYPES[1 + int(np.argmax(parts))]
    a_start, a_dur, ongoing = nan, nan, False
    if bcells is not None:
        b = np.asarray(bcells, dtype=float)
        i_a = first_crossing(t, b, bcell_threshold, below=True, start=start)
        if i_a >= 0:
            a_start = t[i_a] - t_dose
            i_rec = first_crossing(t, b, bcell_threshold, below=False, start=i_a)
            if i_rec >= 0:
                a_dur = t[i_rec] - t[i_a]
            else:
                a_dur, ongoing = t[-1] - t[i_a], True
    after = slice(start, None)
    return Response(
        time_to_remission=float(t_rem),
        time_to_mrd_negative=float(t_mrd),
        relapse_time=float(relapse_t),
        relapse_type=relapse_type,
        bcell_aplasia_start=float(a_start),
        bcell_aplasia_duration=float(a_dur),
        bcell_aplasia_ongoing=ongoing,
        min_blasts_pct=float(np.nanmin(blasts[after])) if blasts[after].size else nan,
        min_mrd=float(np.nanmin(mrd_a[after])) if mrd_a[after].size else nan,
    )
