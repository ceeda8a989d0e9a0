r"""Death of virtual patients: a joint tumour-burden–survival (time-to-event) model.

Nobody dies in the disease models; overall survival (OS) and progression-free survival (PFS)
of a virtual trial need a death process.  As pharmacometric tumour-dynamics–OS models do
(Claret L et al. 2009 J Clin Oncol 27:4103; review: Bruno R et al. 2020 Clin Cancer Res
26:1787), the hazard of death of patient *i* is a function of its own simulated tumour burden:

.. math::

   h_i(t) = h_{bg} + h_d \left(\frac{B_i(t)}{B_{ref}}\right)^{\beta}
   \qquad [1/\mathrm{d}]

with the model's tumour burden :math:`B_i(t)` (cells; the observable of role
``tumour_total``, present in every built-in model: ``leukaemia_total`` of car_t and car_nk,
``lymphoma_total`` of lbcl, ``myeloma_total`` of myeloma), a background (non-relapse) hazard
:math:`h_{bg}` (1/d), the disease hazard :math:`h_d` (1/d) at the reference burden
:math:`B_{ref}` (cells) and the dimensionless shape :math:`\beta`.  Time :math:`t` is in days
from referral.

**Death time.**  Patient *i* draws :math:`E_i \sim \mathrm{Exp}(1)` from a stream of its own
(``SeedSequence(seed, spawn_key=(i, SURVIVAL_STREAM))``, the scheme of
:func:`livingdrug.trials.population.sample_population`): the same value in every arm of a
comparison (patient *i* is the same person) and whatever the chunking.  It dies when the
cumulative hazard :math:`\Lambda_i(t) = \int_0^t h_i(s)\,ds` reaches :math:`E_i` — the
inverse-transform method for a non-homogeneous hazard, since
:math:`P(T > t) = P(E > \Lambda(t)) = e^{-\Lambda(t)}` (Cox DR, Oakes D 1984, *Analysis of
Survival Data*, ch. 2).  :math:`\Lambda` is integrated by the trapezoid rule on the output
grid and the crossing is interpolated linearly.  For a constant burden the death time is
exponential with rate :math:`h_{bg} + h_d (B/B_{ref})^\beta`; the tests check that closed form.

**Defaults** (per disease, :data:`DEFAULTS`; a scenario's ``[survival]`` table overrides
any field).  The disease is recognised from the model's observable roles (``blasts_pct`` →
B-ALL, ``tumour_spd`` → large B-cell lymphoma, ``m_protein`` → myeloma).

* :math:`h_{bg}`: non-relapse mortality after CAR-T, 6.1 % (LBCL) and 8.0 % (myeloma) over
  the follow-up of a meta-analysis of 7,604 patients (Cordas dos Santos DM et al. 2024 Nat
  Med 30:2667; median follow-up about a year), read as a constant hazard over one year:
  :math:`h_{bg} = -\ln(1 - p)/365.25\ \mathrm{d}`.  B-ALL was not in that meta-analysis; the
  LBCL figure is used (an assumption).
* :math:`B_{ref}`: the model's default burden at referral (car_t: 2.1e11 leukaemic cells, a
  nearly replaced marrow; lbcl: 5e10 lymphoma cells; myeloma: 2e11 myeloma cells).
* :math:`h_d`: at :math:`B_{ref}` the median survival is that of relapsed/refractory disease
  without CAR-T, :math:`h_{bg} + h_d = \ln 2 / m`: B-ALL m = 4.5 months after relapse (Oriol
  A et al. 2010 Haematologica 95:589, 263 adults); LBCL m = 6.3 months for refractory disease
  (Crump M et al. 2017 Blood 130:1800, SCHOLAR-1); myeloma m = 13 months when refractory to
  an immunomodulatory drug and a proteasome inhibitor (Kumar SK et al. 2017 Leukemia
  31:2443).  Those medians include the salvage therapies those patients received: salvage is
  not modelled explicitly, it lives in the hazard.
* :math:`\beta = 1` (hazard proportional to burden; no published value for these models).
* ``follow_up`` (d after infusion): by default ``None``, the scenario's own follow-up (its
  end minus the infusion day: 365 d for ``cd19-ball``), so survival costs no extra
  integration; a longer ``follow_up`` integrates the disease model past the scenario's end
  for OS and PFS (the calibrated ``eliana`` population, simulated for 40 days, asks for a
  year this way).

Assumptions: the hazard depends on the current burden only (no memory of toxicity, no
explicit infection or CRS death: they are part of :math:`h_{bg}`); 1 month = 30.4375 d.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..logistics.programme import DAYS_PER_MONTH
from ..rng import patient_draws

__all__ = ["SurvivalModel", "SurvivalInputError", "DEFAULTS", "SURVIVAL_STREAM", "MONTH_DAYS", "LANDMARK_SLACK_DAYS",
           "disease_of", "default_survival", "exposures", "death_times", "cumulative_hazard",
           "weighted_survival_at"]

#: spawn-key stream of each patient's Exp(1) death threshold
SURVIVAL_STREAM = 0x5EAD
#: days per month of the landmark read-outs (365.25 / 12, the logistics' month)
MONTH_DAYS = DAYS_PER_MONTH
#: a follow-up that ends at most this much (d) before a landmark still reads it (365 d of
#: follow-up gives the 12-month figure at 365.25 d); later landmarks are not extrapolated
LANDMARK_SLACK_DAYS = 1.0
_YEAR = 365.25  # d


class SurvivalInputError(ValueError):
    """A survival-model field out of range: ``field``, ``value``, ``expected``."""

    def __init__(self, field: str, value: object, expected: str) -> None:
        self.field, self.value, self.expected = field, value, expected
        super().__init__(f"survival.{field} = {value!r}: expected {expected}")


@dataclass(frozen=True)
class SurvivalModel:
    """Hazard of death :math:`h = h_{bg} + h_d (B/B_{ref})^\\beta` (module docstring).

    ``h_bg``, ``h_d``: 1/d (≥ 0); ``b_ref``: cells (> 0); ``beta``: dimensionless (≥ 0);
    ``follow_up``: d after infusion (> 0), or ``None`` for the scenario's own follow-up;
    ``source``: where the values come from."""

    h_bg: float
    h_d: float
    b_ref: float
    beta: float = 1.0
    follow_up: float | None = None
    source: str = ""

    def __post_init__(self) -> None:
        checks = (("h_bg", self.h_bg, 0.0, False, "a rate ≥ 0 1/d, e.g. \"1.7e-4 1/d\""),
                  ("h_d", self.h_d, 0.0, False, "a rate ≥ 0 1/d, e.g. \"5e-3 1/d\""),
                  ("b_ref", self.b_ref, 0.0, True, "a burden > 0 cell, e.g. \"2e11 cell\""),
                  ("beta", self.beta, 0.0, False, "a number ≥ 0 (dimensionless), e.g. 1"),
                  ("follow_up", self.follow_up, 0.0, True, "a duration > 0 d, e.g. \"730 d\""))
        for name, v, lo, strict, what in checks:
            if name == "follow_up" and v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or (v <= lo if strict else v < lo):
                raise SurvivalInputError(name, v, what)
        if self.beta > 10:
            raise SurvivalInputError("beta", self.beta, "a number from 0 to 10 (a hazard ∝ burden^β)")
        if self.h_bg > 1.0 or self.h_d > 1.0:
            name = "h_bg" if self.h_bg > 1.0 else "h_d"
            raise SurvivalInputError(name, getattr(self, name), "a rate ≤ 1 1/d (a median survival of ≥ 0.7 d)")

    def hazard(self, burden: np.ndarray) -> np.ndarray:
        """:math:`h(B)` (1/d) of burdens ``burden`` (cells; negative values count as 0)."""
        b = np.maximum(np.asarray(burden, dtype=float), 0.0) / self.b_ref
        return self.h_bg + self.h_d * (b ** self.beta if self.beta != 0 else np.ones_like(b))


def _constant(median_months: float, nrm: float, b_ref: float, source: str) -> SurvivalModel:
    h_bg = -math.log1p(-nrm) / _YEAR
    return SurvivalModel(h_bg, math.log(2.0) / (median_months * MONTH_DAYS) - h_bg, b_ref, 1.0, None, source)


def _defaults() -> dict[str, SurvivalModel]:
    from ..models.car_t import L0_MARROW
    from ..models.tumours import LBCL_TUMOUR, MYELOMA_CELLS

    nrm = "non-relapse mortality {p} % in a year (Cordas dos Santos DM et al. 2024 Nat Med 30:2667{x})"
    return {
        "b-all": _constant(4.5, 0.061, L0_MARROW,
                           "median survival 4.5 months with relapsed ALL (Oriol A et al. 2010 Haematologica 95:589) at "
                           "the car_t default burden; " + nrm.format(p=6.1, x="; the LBCL figure, an assumption for B-ALL")),
        "lbcl": _constant(6.3, 0.061, LBCL_TUMOUR,
                          "median survival 6.3 months with refractory LBCL (Crump M et al. 2017 Blood 130:1800, SCHOLAR-1) "
                          "at the lbcl default burden; " + nrm.format(p=6.1, x="")),
        "myeloma": _constant(13.0, 0.080, MYELOMA_CELLS,
                             "median survival 13 months with myeloma refractory to an IMiD and a PI (Kumar SK et al. 2017 "
                             "Leukemia 31:2443) at the myeloma default burden; " + nrm.format(p=8.0, x="")),
    }


#: default survival model per disease (module docstring)
DEFAULTS: dict[str, SurvivalModel] = _defaults()


def disease_of(net: object) -> str | None:
    """``"b-all"``, ``"lbcl"``, ``"myeloma"`` from the network's observable roles, else None."""
    role = getattr(net, "observable_by_role", None)
    if role is None:
        return None
    for r, disease in (("blasts_pct", "b-all"), ("tumour_spd", "lbcl"), ("m_protein", "myeloma")):
        if role(r) is not None:
            return disease
    return None


def default_survival(net: object) -> SurvivalModel | None:
    """The default :class:`SurvivalModel` of the network's disease (None for a model of no
    known disease: then only logistics drop-outs for death die)."""
    d = disease_of(net)
    return DEFAULTS[d] if d is not None else None


def exposures(seed: int, patients: np.ndarray) -> np.ndarray:
    """:math:`E_i \\sim \\mathrm{Exp}(1)` of cohort patients ``patients`` from their own streams
    (seed, spawn key ``(i, SURVIVAL_STREAM)``); independent of the other patients."""
    return np.array(patient_draws(int(seed), np.asarray(patients, dtype=np.int64), (SURVIVAL_STREAM,),
                                  lambda g: g.standard_exponential()), dtype=float)


def cumulative_hazard(times: np.ndarray, burden: np.ndarray, model: SurvivalModel) -> np.ndarray:
    """:math:`\\Lambda(t_k)` (dimensionless) by the trapezoid rule on ``times`` (d, ``[..., T]``,
    non-decreasing) with burdens ``burden`` (cells, same shape); :math:`\\Lambda(t_0) = 0`.
    Points after the first non-finite time or burden add nothing (the path has ended)."""
    t = np.asarray(times, dtype=float)
    h = model.hazard(np.nan_to_num(np.asarray(burden, dtype=float), nan=0.0))
    valid = np.isfinite(t) & np.isfinite(np.asarray(burden, dtype=float))
    valid = np.logical_and.accumulate(valid, axis=-1)
    inc = 0.5 * (h[..., 1:] + h[..., :-1]) * np.diff(np.where(valid, t, 0.0), axis=-1)
    inc = np.where(valid[..., 1:], inc, 0.0)
    zero = np.zeros((*t.shape[:-1], 1))
    return np.concatenate([zero, np.cumsum(inc, axis=-1)], axis=-1)


def death_times(times: np.ndarray, burden: np.ndarray, e: np.ndarray, model: SurvivalModel) -> tuple[np.ndarray, np.ndarray]:
    """Death times and ends of follow-up of paths ``times``/``burden`` (``[n, T]``, d and cells,
    NaN-padded after each path's end) with thresholds ``e`` (``[n]``): the first ``t`` with
    :math:`\\Lambda(t) = E` (linear interpolation between grid points; NaN if :math:`\\Lambda`
    stays below ``E``), and the last valid time of each path (d; the censoring time)."""
    t = np.atleast_2d(np.asarray(times, dtype=float))
    b = np.atleast_2d(np.asarray(burden, dtype=float))
    e = np.asarray(e, dtype=float).reshape(-1)
    if t.shape != b.shape or t.shape[0] != e.size:
        raise ValueError(f"times {t.shape}, burden {b.shape} and e ({e.size},) do not match")
    n, T = t.shape
    valid = np.logical_and.accumulate(np.isfinite(t) & np.isfinite(b), axis=-1)
    last = np.where(valid.any(axis=1), np.max(np.where(valid, np.arange(T), -1), axis=1), -1)
    end = np.where(last >= 0, t[np.arange(n), np.maximum(last, 0)], np.nan)
    lam = cumulative_hazard(t, b, model)
    hit = (lam >= e[:, None]) & valid
    k = np.argmax(hit, axis=1)
    dead = hit[np.arange(n), k]
    out = np.full(n, np.nan)
    i = np.flatnonzero(dead)
    j = k[i]
    j0 = np.maximum(j - 1, 0)
    l0, l1 = lam[i, j0], lam[i, j]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(l1 > l0, (e[i] - l0) / (l1 - l0), 1.0)
    out[i] = np.where(j == 0, t[i, 0], t[i, j0] + frac * (t[i, j] - t[i, j0]))
    return out, end


def weighted_survival_at(durations: np.ndarray, observed: np.ndarray, weights: np.ndarray, t: float,
                         confidence: float = 0.95) -> dict[str, float]:
    """Weighted Kaplan–Meier :math:`\\hat S(t) = \\prod_{t_j \\le t} (1 - d_j/n_j)` with weighted
    event and at-risk counts (weights ≥ 0, e.g. calibration weights), and a pointwise interval
    from Greenwood's variance on the log-log scale (Kalbfleisch JD, Prentice RL 1980) with the
    counts rescaled to Kish's effective sample size :math:`n_{eff} = (\\sum w)^2/\\sum w^2`
    (an approximation for weighted data).  ``durations`` (d), ``t`` (d).  Returns
    ``{"estimate", "low", "high", "n_effective"}`` (NaN where the follow-up ends more than
    :data:`LANDMARK_SLACK_DAYS` before ``t``); with equal weights it is the ordinary
    Kaplan–Meier estimate and Greenwood interval."""
    from scipy.stats import norm

    d = np.asarray(durations, dtype=float)
    o = np.asarray(observed, dtype=bool)
    w = np.asarray(weights, dtype=float)
    keep = np.isfinite(d) & (w > 0)
    d, o, w = d[keep], o[keep], w[keep]
    if d.size == 0:
        return {"estimate": math.nan, "low": math.nan, "high": math.nan, "n_effective": 0.0}
    n_eff = float(w.sum() ** 2 / np.sum(w ** 2))
    if t > float(d.max()) + LANDMARK_SLACK_DAYS:  # the follow-up ends before t: no extrapolation
        return {"estimate": math.nan, "low": math.nan, "high": math.nan, "n_effective": n_eff}
    w = w * n_eff / w.sum()
    s, var_sum = 1.0, 0.0
    for tj in np.unique(d[o & (d <= t)]):
        n_j = float(w[d >= tj].sum())
        d_j = float(w[(d == tj) & o].sum())
        s *= 1.0 - d_j / n_j
        if n_j > d_j:
            var_sum += d_j / (n_j * (n_j - d_j))
    if s <= 0.0 or s >= 1.0 or var_sum == 0.0:
        return {"estimate": s, "low": s, "high": s, "n_effective": n_eff}
    z = float(norm.ppf(0.5 + confidence / 2))
    se = math.sqrt(var_sum) / abs(math.log(s))
    c = math.log(-math.log(s))
    lo, hi = math.exp(-math.exp(c + z * se)), math.exp(-math.exp(c - z * se))
    return {"estimate": s, "low": lo, "high": hi, "n_effective": n_eff}
