r"""Phase-1 dose escalation: dose-limiting toxicity (DLT), the 3+3 rule, BOIN, and their
operating characteristics.

Science only: no files, no printing.  Dose levels are indices ``0 … L−1`` (lowest first); what
a level means (cells, cells/kg) is up to the caller.  A patient's DLT comes either from a true
DLT probability per level (a Bernoulli draw, one uniform per patient, in enrolment order, from
the given generator) or from a callable ``dlt(level, patient) -> bool`` so that simulated
virtual patients can supply their own toxicities (``patient`` = enrolment index 0, 1, 2, …).

Dose-limiting toxicity (:func:`dlt_from_grades`)
------------------------------------------------
CAR-T phase-1 protocols usually count as a DLT grade ≥ 3 CRS or grade ≥ 3 ICANS (ASTCT
grading, Lee DW et al. 2019, Biol Blood Marrow Transplant 25:625), often only when it does not
resolve to ≤ grade 2 within 72 h (e.g. the ZUMA-1 phase-1 definition, Locke FL et al. 2017,
Mol Ther 25:285).  Simulations record only the **maximum** grade per patient, so here a DLT
is ``crs_max_grade ≥ 3 or icans_max_grade ≥ 3`` — the resolution window is not modelled, which
can only over-count DLTs (conservative).  A ``NaN`` grade (patient not infused, or no
toxicity observables) is *not evaluable* and counts as no DLT; exclude such patients
upstream when they should be replaced.

The 3+3 design (:func:`three_plus_three`)
-----------------------------------------
Storer BE 1989, Biometrics 45:925 (design "A"/"B" combination used in oncology):

* treat 3 patients at the current level;
* 0/3 DLT → escalate; 1/3 → treat 3 more at the same level; ≥ 2/3 → the level is too toxic;
* 6 treated, ≤ 1/6 → escalate; ≥ 2/6 → the level is too toxic;
* a too-toxic level is closed (never re-entered); the **dose-below rule**: go down one level;
  if it already has 6 patients it is the MTD, otherwise treat 3 more there and apply the same
  ≤ 1/6 test (going further down on ≥ 2/6);
* at the highest level (or below a closed one) 0/3 is confirmed with 3 more patients, so the
  MTD is always a level with ≥ 6 patients and ≤ 1/6 DLT (the convention of Storer 1989 and
  Le Tourneau C et al. 2009, J Natl Cancer Inst 101:708);
* MTD = the highest level with ≤ 1/6 DLT among 6 patients below every closed level; ``None``
  when the lowest level is too toxic.

The probability of escalating from a level of true DLT probability :math:`p` is
:math:`(1-p)^3 + 3p(1-p)^2\,(1-p)^3` (0/3, or 1/3 then 0/3).

BOIN (:func:`boin`)
-------------------
Bayesian optimal interval design, Liu S, Yuan Y 2015, J R Stat Soc C 64:507.  With target DLT
rate :math:`φ`, the highest rate deemed sub-therapeutic :math:`φ_1` (default 0.6 φ) and the
lowest deemed overly toxic :math:`φ_2` (default 1.4 φ), the escalation and de-escalation
boundaries are

.. math::

   λ_e = \frac{\ln\frac{1-φ_1}{1-φ}}{\ln\frac{φ(1-φ_1)}{φ_1(1-φ)}},\qquad
   λ_d = \frac{\ln\frac{1-φ}{1-φ_2}}{\ln\frac{φ_2(1-φ)}{φ(1-φ_2)}}

(φ = 0.3: λe = 0.236, λd = 0.358).  After each cohort, with :math:`n_j` patients and
:math:`y_j` DLTs at the current level, :math:`\hat p_j = y_j/n_j`: escalate if
:math:`\hat p_j ≤ λ_e`, de-escalate if :math:`\hat p_j ≥ λ_d`, otherwise stay (never above the
highest level or an eliminated one, never below the lowest).  **Elimination**: when
:math:`n_j ≥ 3` and :math:`P(p_j > φ \mid y_j, n_j) > 0.95` under the Beta(1, 1) prior, i.e.
:math:`1 - I_φ(1 + y_j, 1 + n_j - y_j) > 0.95`, level *j* and all higher levels are
eliminated; if the lowest level is eliminated the trial stops with no MTD.  The trial also
stops once ``n_cohorts`` cohorts are treated, or when the level to be treated next already
has ``n_earlystop`` patients.

**MTD selection**: among the treated, non-eliminated levels, the isotonic (non-decreasing)
estimates :math:`\tilde p_j` of the DLT rates are the weighted least-squares fit of
:math:`\hat p_j` with weights :math:`n_j` (pool-adjacent-violators, Barlow RE et al. 1972,
*Statistical Inference under Order Restrictions*; :func:`scipy.optimize.isotonic_regression`);
the MTD is the level with :math:`\tilde p_j` closest to φ.  Ties: the highest of the tied
levels when their estimate is below φ, the lowest when above (Liu & Yuan 2015; BOIN R
package ``select.mtd`` documentation); a tie between one estimate below and one above φ goes
to the lower (safer) level.

Operating characteristics (:func:`operating_characteristics`)
-------------------------------------------------------------
Trial *i* of a study seeded with ``seed`` draws from its own stream
``SeedSequence(seed, spawn_key=(i,))``; the summary is P(select each level), P(no MTD), mean
patients and DLTs per level, and the mean proportion of treated patients with a DLT.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.optimize import isotonic_regression
from scipy.special import betaincc

from ..rng import as_generator, patient_seed_sequence

__all__ = [
    "DesignInputError",
    "Cohort",
    "EscalationResult",
    "OperatingCharacteristics",
    "dlt_from_grades",
    "three_plus_three",
    "boin",
    "boin_boundaries",
    "boin_decision_table",
    "isotonic_dlt_estimates",
    "select_mtd_isotonic",
    "operating_characteristics",
    "DESIGNS",
]

#: DLT source: true probability per level, or ``dlt(level, patient) -> bool``
DltSource = Sequence[float] | np.ndarray | Callable[[int, int], Any]


class DesignInputError(ValueError):
    """A design input is wrong: ``field``, ``value``, what was ``expected`` and a ``hint``."""

    def __init__(self, field: str, value: Any, expected: str, hint: str = "") -> None:
        self.field, self.value, self.expected, self.hint = field, value, expected, hint
        text = f"{field} = {value!r}: expected {expected}"
        super().__init__(text + (f"; {hint}" if hint else ""))


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _check_int(name: str, x: Any, low: int, hint: str = "") -> int:
    if not _is_int(x) or x < low:
        raise DesignInputError(name, x, f"a whole number ≥ {low}", hint)
    return int(x)


def _check_prob(name: str, x: Any, *, open_interval: bool, hint: str = "") -> float:
    ok = isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(x)
    if ok:
        ok = 0 < x < 1 if open_interval else 0 <= x <= 1
    if not ok:
        raise DesignInputError(name, x, "a number in (0, 1)" if open_interval else "a probability in [0, 1]", hint)
    return float(x)


# ---------------------------------------------------------------------------------------------
# DLT from toxicity grades
# ---------------------------------------------------------------------------------------------

def _grades(name: str, g: Any) -> np.ndarray:
    try:
        a = np.asarray(g, dtype=float)
    except (TypeError, ValueError):
        raise DesignInputError(name, g, "ASTCT grades 0–5 (NaN = not evaluable)") from None
    bad = ~np.isnan(a) & ((a < 0) | (a > 5))
    if bad.any():
        raise DesignInputError(name, float(a[bad].flat[0]), "ASTCT grades 0–5 (NaN = not evaluable)",
                               "grades come from clinical.grading (Lee 2019)")
    return a


def dlt_from_grades(crs_max_grade: Any, icans_max_grade: Any, *, crs_dlt_grade: int = 3,
                    icans_dlt_grade: int = 3) -> np.ndarray:
    """Dose-limiting toxicity per patient: ``crs_max_grade ≥ crs_dlt_grade`` or
    ``icans_max_grade ≥ icans_dlt_grade`` (ASTCT grades 0–5, dimensionless; Lee DW et al. 2019,
    Biol Blood Marrow Transplant 25:625).

    The usual CAR-T phase-1 DLT is grade ≥ 3 CRS or ICANS not resolving to ≤ grade 2 within
    72 h (e.g. ZUMA-1 phase 1, Locke FL et al. 2017, Mol Ther 25:285); only the maximum grade
    is known here, so the 72-h resolution window is not applied (over-counts, conservative).
    ``NaN`` (not infused / not evaluable) in a grade is no DLT from that syndrome.  Arrays are
    broadcast against each other; returns a boolean array of the broadcast shape.
    """
    c_thr = _check_int("crs_dlt_grade", crs_dlt_grade, 1)
    i_thr = _check_int("icans_dlt_grade", icans_dlt_grade, 1)
    if c_thr > 5 or i_thr > 5:
        raise DesignInputError("crs_dlt_grade" if c_thr > 5 else "icans_dlt_grade", max(c_thr, i_thr),
                               "a grade from 1 to 5")
    crs = _grades("crs_max_grade", crs_max_grade)
    icans = _grades("icans_max_grade", icans_max_grade)
    with np.errstate(invalid="ignore"):
        return np.asarray((crs >= c_thr) | (icans >= i_thr), dtype=bool)  # NaN >= x is False


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cohort:
    """One cohort: ``n`` patients treated at dose ``level``, ``dlts`` of them with a DLT."""

    level: int
    n: int
    dlts: int


@dataclass(frozen=True)
class EscalationResult:
    """One simulated dose-escalation trial.

    ``cohorts`` in treatment order; ``mtd`` the selected maximum tolerated dose level (``None``:
    none, every level too toxic); ``n_patients``/``n_dlt`` per level (counts); ``eliminated``
    per level (closed as too toxic); ``estimate`` the isotonic DLT-rate estimate per level used
    for selection (BOIN; NaN where not used); ``stop_reason`` why the trial ended.
    """

    design: str
    cohorts: tuple[Cohort, ...]
    mtd: int | None
    n_patients: np.ndarray
    n_dlt: np.ndarray
    eliminated: np.ndarray
    stop_reason: str
    estimate: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def n_levels(self) -> int:
        return int(self.n_patients.size)

    @property
    def total_patients(self) -> int:
        return int(self.n_patients.sum())

    @property
    def total_dlt(self) -> int:
        return int(self.n_dlt.sum())

    def as_dict(self) -> dict[str, Any]:
        return {
            "design": self.design, "mtd": self.mtd, "stop_reason": self.stop_reason,
            "cohorts": [{"level": c.level, "n": c.n, "dlts": c.dlts} for c in self.cohorts],
            "n_patients": self.n_patients.tolist(), "n_dlt": self.n_dlt.tolist(),
            "eliminated": self.eliminated.tolist(),
            "estimate": [None if math.isnan(x) else float(x) for x in self.estimate],
        }


def _dlt_source(p_dlt: DltSource, rng: Any, n_levels: int | None) -> tuple[Callable[[int, int], bool], int]:
    """``(dlt(level, patient) -> bool, number of levels)`` from probabilities or a callable."""
    if callable(p_dlt):
        if n_levels is None:
            raise DesignInputError("n_levels", None, "the number of dose levels (a whole number ≥ 1)",
                                   "a DLT callable needs n_levels=…")
        n = _check_int("n_levels", n_levels, 1)
        fn = p_dlt

        def call(level: int, patient: int) -> bool:
            out = fn(level, patient)
            if isinstance(out, (bool, np.bool_)) or (_is_int(out) and out in (0, 1)):
                return bool(out)
            raise DesignInputError(f"dlt({level}, {patient})", out, "True or False (DLT or not)")
        return call, n
    if isinstance(p_dlt, (str, bytes)) or not isinstance(p_dlt, (Sequence, np.ndarray)):
        raise DesignInputError("p_dlt", p_dlt, "true DLT probabilities per dose level, or a callable "
                               "dlt(level, patient) -> bool")
    p = [_check_prob(f"p_dlt[{j}]", x, open_interval=False) for j, x in enumerate(p_dlt)]
    if not p:
        raise DesignInputError("p_dlt", p_dlt, "at least one dose level")
    if n_levels is not None and n_levels != len(p):
        raise DesignInputError("n_levels", n_levels, f"{len(p)} (the length of p_dlt) or None")
    if rng is None:
        raise DesignInputError("rng", rng, "a numpy Generator or an integer seed",
                               "DLTs are Bernoulli(p_dlt[level]) draws from it")
    gen = as_generator(rng)
    probs = np.asarray(p)

    def draw(level: int, patient: int) -> bool:
        return bool(gen.random() < probs[level])
    return draw, len(p)


def _treat(dlt: Callable[[int, int], bool], level: int, size: int, first_patient: int) -> int:
    return sum(dlt(level, first_patient + k) for k in range(size))


# ---------------------------------------------------------------------------------------------
# 3+3
# ---------------------------------------------------------------------------------------------

def three_plus_three(p_dlt: DltSource, rng: Any = None, *, n_levels: int | None = None, start: int = 0,
                     max_patients: int | None = None) -> EscalationResult:
    """One 3+3 trial (Storer BE 1989, Biometrics 45:925; rules in the module docstring).

    ``p_dlt``: true DLT probability per level (each patient's DLT a Bernoulli draw from
    ``rng``: one ``rng.random()`` per patient in enrolment order), or a callable
    ``dlt(level, patient) -> bool`` (then ``n_levels`` is required and ``rng`` unused).
    ``start``: first level; ``max_patients``: stop before a cohort that would exceed it (the
    MTD is then the highest level with ≥ 6 patients and ≤ 1 DLT below every closed level, if
    any).  Returns an :class:`EscalationResult`.
    """
    dlt, L = _dlt_source(p_dlt, rng, n_levels)
    level = _check_int("start", start, 0)
    if level >= L:
        raise DesignInputError("start", start, f"a dose level from 0 to {L - 1}")
    budget = math.inf if max_patients is None else _check_int("max_patients", max_patients, 3)
    n = np.zeros(L, dtype=np.int64)
    d = np.zeros(L, dtype=np.int64)
    closed = L  # lowest level found too toxic; levels ≥ closed are never treated again
    cohorts: list[Cohort] = []
    mtd: int | None = None
    reason = ""
    while True:
        if n.sum() + 3 > budget:
            reason = "max_patients reached"
            ok = [j for j in range(min(closed, L)) if n[j] >= 6 and d[j] <= 1]
            mtd = max(ok) if ok else None
            break
        y = _treat(dlt, level, 3, int(n.sum()))
        cohorts.append(Cohort(level, 3, y))
        n[level] += 3
        d[level] += y
        can_escalate = level + 1 < closed
        if (n[level] == 3 and d[level] <= 1) and not (d[level] == 0 and can_escalate):
            continue  # 1/3, or 0/3 with nowhere to go: 3 more at the same level
        if d[level] <= 1:  # 0/3 or ≤ 1/6
            if can_escalate:
                level += 1
                continue
            mtd, reason = level, "MTD confirmed in 6 patients"
            break
        closed = level  # ≥ 2 DLTs: too toxic; dose-below rule
        if level == 0:
            mtd, reason = None, "lowest level too toxic"
            break
        level -= 1
        if n[level] >= 6:
            mtd, reason = level, "MTD confirmed in 6 patients"
            break
    return EscalationResult("3+3", tuple(cohorts), mtd, n, d, np.arange(L) >= closed, reason,
                            np.full(L, np.nan))


# ---------------------------------------------------------------------------------------------
# BOIN
# ---------------------------------------------------------------------------------------------

def _boin_phis(target: float, phi1: float | None, phi2: float | None) -> tuple[float, float, float]:
    t = _check_prob("target", target, open_interval=True, hint="the target DLT rate, e.g. 0.3")
    p1 = 0.6 * t if phi1 is None else _check_prob("phi1", phi1, open_interval=True)
    p2 = 1.4 * t if phi2 is None else _check_prob("phi2", phi2, open_interval=True)
    if not p1 < t:
        raise DesignInputError("phi1", p1, f"below the target {t:g}", "default 0.6 × target")
    if not t < p2 < 1:
        raise DesignInputError("phi2", p2, f"between the target {t:g} and 1", "default 1.4 × target")
    return t, p1, p2


def boin_boundaries(target: float = 0.3, *, phi1: float | None = None, phi2: float | None = None
                    ) -> tuple[float, float]:
    """BOIN escalation and de-escalation boundaries ``(λe, λd)`` on the observed DLT rate
    (dimensionless; Liu S, Yuan Y 2015, J R Stat Soc C 64:507, equations in the module
    docstring).  Defaults φ1 = 0.6 φ, φ2 = 1.4 φ; φ = 0.3 gives (0.236, 0.358)."""
    t, p1, p2 = _boin_phis(target, phi1, phi2)
    lam_e = math.log((1 - p1) / (1 - t)) / math.log(t * (1 - p1) / (p1 * (1 - t)))
    lam_d = math.log((1 - t) / (1 - p2)) / math.log(p2 * (1 - t) / (t * (1 - p2)))
    return lam_e, lam_d


def _eliminate(y: int, n: int, target: float, cutoff: float, min_n: int) -> bool:
    """``n ≥ min_n`` and P(p > target | y of n, Beta(1, 1) prior) > cutoff."""
    return n >= min_n and float(betaincc(1 + y, 1 + n - y, target)) > cutoff


def boin_decision_table(target: float = 0.3, n_max: int = 30, *, phi1: float | None = None,
                        phi2: float | None = None, cutoff: float = 0.95, elimination_min_n: int = 3
                        ) -> dict[str, np.ndarray]:
    """BOIN decisions as DLT counts, for ``n = 1 … n_max`` patients at a level:
    ``escalate`` = largest y with y/n ≤ λe (−1: never), ``deescalate`` = smallest y with
    y/n ≥ λd (n + 1: never), ``eliminate`` = smallest y that eliminates the level
    (n + 1: never) — the form in which the design is written into protocols."""
    n_max = _check_int("n_max", n_max, 1)
    cutoff = _check_prob("cutoff", cutoff, open_interval=True)
    elimination_min_n = _check_int("elimination_min_n", elimination_min_n, 1)
    lam_e, lam_d = boin_boundaries(target, phi1=phi1, phi2=phi2)
    ns = np.arange(1, n_max + 1)
    esc = np.array([max((y for y in range(k + 1) if y / k <= lam_e), default=-1) for k in ns])
    dee = np.array([min((y for y in range(k + 1) if y / k >= lam_d), default=k + 1) for k in ns])
    eli = np.array([min((y for y in range(k + 1) if _eliminate(y, int(k), target, cutoff, elimination_min_n)),
                        default=k + 1) for k in ns])
    return {"n": ns, "escalate": esc, "deescalate": dee, "eliminate": eli}


def isotonic_dlt_estimates(n_dlt: Any, n_patients: Any) -> np.ndarray:
    """Non-decreasing DLT-rate estimates: weighted least squares of ``n_dlt/n_patients`` with
    weights ``n_patients`` under the order constraint (pool-adjacent-violators, Barlow RE et al.
    1972; :func:`scipy.optimize.isotonic_regression`).  Every level must have ≥ 1 patient."""
    y = np.asarray(n_dlt, dtype=float)
    w = np.asarray(n_patients, dtype=float)
    if y.shape != w.shape or y.ndim != 1 or y.size == 0:
        raise DesignInputError("n_dlt", n_dlt, "a 1-D array of DLT counts, one per level, as long as n_patients")
    if (w <= 0).any() or (y < 0).any() or (y > w).any():
        raise DesignInputError("n_patients", n_patients, "≥ 1 patient per level and 0 ≤ n_dlt ≤ n_patients")
    return np.asarray(isotonic_regression(y / w, weights=w, increasing=True).x)


def select_mtd_isotonic(n_dlt: Any, n_patients: Any, target: float, *,
                        eliminated: Any = None) -> tuple[int | None, np.ndarray]:
    """``(MTD level or None, isotonic estimate per level)``: the treated, non-eliminated level
    whose isotonic DLT estimate is closest to ``target``; ties → highest tied level when below
    the target, lowest when above (Liu & Yuan 2015; BOIN ``select.mtd``).  ``None`` when the
    lowest level is eliminated or no level was treated.  Estimates are NaN where not used."""
    y = np.asarray(n_dlt, dtype=np.int64)
    n = np.asarray(n_patients, dtype=np.int64)
    elim = np.zeros(n.size, dtype=bool) if eliminated is None else np.asarray(eliminated, dtype=bool)
    est = np.full(n.size, np.nan)
    if n.size == 0 or elim[0]:
        return None, est
    adm = np.flatnonzero((n > 0) & ~elim)
    if adm.size == 0:
        return None, est
    est[adm] = isotonic_dlt_estimates(y[adm], n[adm])
    e = est[adm]
    dist = np.abs(e - target)
    tol = 1e-12
    tied = adm[dist <= dist.min() + tol]
    if np.all(est[tied] < target):
        return int(tied.max()), est
    return int(tied.min()), est


def boin(p_dlt: DltSource, rng: Any = None, *, n_levels: int | None = None, target: float = 0.3,
         cohort_size: int = 3, n_cohorts: int = 10, start: int = 0, phi1: float | None = None,
         phi2: float | None = None, cutoff: float = 0.95, elimination_min_n: int = 3,
         n_earlystop: int = 100) -> EscalationResult:
    """One BOIN trial (Liu S, Yuan Y 2015, J R Stat Soc C 64:507; rules in the module docstring).

    ``p_dlt``: true DLT probability per level (Bernoulli draws from ``rng``, one per patient in
    enrolment order) or a callable ``dlt(level, patient) -> bool`` (``n_levels`` required).
    ``target``: target DLT rate φ; ``phi1``/``phi2`` default 0.6 φ / 1.4 φ; ``cutoff``: the
    posterior probability of exceeding φ that eliminates a level (Beta(1, 1) prior), applied
    from ``elimination_min_n`` patients; ``n_earlystop``: stop when the next level to treat
    already has that many patients.  Returns an :class:`EscalationResult` with the isotonic
    estimates used to select the MTD.
    """
    t, _, _ = _boin_phis(target, phi1, phi2)
    lam_e, lam_d = boin_boundaries(t, phi1=phi1, phi2=phi2)
    size = _check_int("cohort_size", cohort_size, 1, "e.g. 3 patients per cohort")
    cohorts_max = _check_int("n_cohorts", n_cohorts, 1, "e.g. 10 cohorts")
    cut = _check_prob("cutoff", cutoff, open_interval=True, hint="Liu & Yuan 2015 recommend 0.95")
    min_n = _check_int("elimination_min_n", elimination_min_n, 1)
    earlystop = _check_int("n_earlystop", n_earlystop, 1)
    dlt, L = _dlt_source(p_dlt, rng, n_levels)
    level = _check_int("start", start, 0)
    if level >= L:
        raise DesignInputError("start", start, f"a dose level from 0 to {L - 1}")
    n = np.zeros(L, dtype=np.int64)
    d = np.zeros(L, dtype=np.int64)
    elim = np.zeros(L, dtype=bool)
    cohorts: list[Cohort] = []
    reason = "maximum sample size reached"
    for _ in range(cohorts_max):
        if n[level] >= earlystop:
            reason = f"{earlystop} patients at level {level} (n_earlystop)"
            break
        y = _treat(dlt, level, size, int(n.sum()))
        cohorts.append(Cohort(level, size, y))
        n[level] += size
        d[level] += y
        if _eliminate(int(d[level]), int(n[level]), t, cut, min_n):
            elim[level:] = True
            if level == 0:
                reason = "lowest level eliminated (too toxic)"
                break
            level -= 1
            continue
        rate = d[level] / n[level]
        if rate <= lam_e and level + 1 < L and not elim[level + 1]:
            level += 1
        elif rate >= lam_d and level > 0:
            level -= 1
    mtd, est = select_mtd_isotonic(d, n, t, eliminated=elim)
    return EscalationResult("BOIN", tuple(cohorts), mtd, n, d, elim, reason, est)


# ---------------------------------------------------------------------------------------------
# Operating characteristics
# ---------------------------------------------------------------------------------------------

DESIGNS: dict[str, Callable[..., EscalationResult]] = {"3+3": three_plus_three, "boin": boin}


@dataclass(frozen=True)
class OperatingCharacteristics:
    """Summary of ``n_trials`` simulated trials of one design under true DLT rates ``p_dlt``.

    ``p_select[j]``: fraction of trials selecting level *j* as MTD; ``p_no_mtd``: fraction with
    none; ``mean_patients[j]``/``mean_dlt[j]``: mean patients / DLTs at level *j* per trial;
    ``mean_total_patients``; ``dlt_rate``: mean over trials of (DLTs / patients treated).
    Sampling error of a fraction p: √(p(1−p)/n_trials) (:meth:`se`).
    """

    design: str
    p_dlt: np.ndarray
    n_trials: int
    seed: int
    p_select: np.ndarray
    p_no_mtd: float
    mean_patients: np.ndarray
    mean_dlt: np.ndarray
    mean_total_patients: float
    dlt_rate: float

    def se(self, p: float | np.ndarray) -> float | np.ndarray:
        """Binomial standard error of a fraction estimated from ``n_trials`` trials."""
        out = np.sqrt(np.asarray(p) * (1 - np.asarray(p)) / self.n_trials)
        return float(out) if out.ndim == 0 else out

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}


def operating_characteristics(design: Literal["3+3", "boin"] | Callable[..., EscalationResult],
                              p_dlt: Sequence[float], n_trials: int, seed: int,
                              **options: Any) -> OperatingCharacteristics:
    """Simulate ``n_trials`` trials of ``design`` ("3+3", "boin", or the function itself) with
    true DLT probabilities ``p_dlt``; ``options`` go to the design (e.g. ``target``,
    ``n_cohorts``).  Trial *i* uses ``SeedSequence(seed, spawn_key=(i,))``, so the answer does
    not depend on how the trials are split.  See :class:`OperatingCharacteristics`."""
    if isinstance(design, str):
        key = design.lower()
        if key not in DESIGNS:
            raise DesignInputError("design", design, " or ".join(map(repr, DESIGNS)))
        fn, name = DESIGNS[key], key
    elif design in DESIGNS.values():
        fn = design
        name = next(k for k, v in DESIGNS.items() if v is design)
    else:
        raise DesignInputError("design", design, " or ".join(map(repr, DESIGNS)))
    n_trials = _check_int("n_trials", n_trials, 1)
    if isinstance(seed, bool) or not _is_int(seed) or seed < 0:
        raise DesignInputError("seed", seed, "a non-negative whole number")
    if callable(p_dlt) or isinstance(p_dlt, (str, bytes)) or not isinstance(p_dlt, (Sequence, np.ndarray)):
        raise DesignInputError("p_dlt", p_dlt, "true DLT probabilities per dose level")
    probs = np.array([_check_prob(f"p_dlt[{j}]", x, open_interval=False) for j, x in enumerate(p_dlt)])
    if probs.size == 0:
        raise DesignInputError("p_dlt", p_dlt, "at least one dose level")
    L = probs.size
    select = np.zeros(L)
    none = 0
    pts = np.zeros(L)
    dlts = np.zeros(L)
    rate = 0.0
    for i in range(n_trials):
        res = fn(probs, np.random.default_rng(patient_seed_sequence(int(seed), i)), **options)
        if res.mtd is None:
            none += 1
        else:
            select[res.mtd] += 1
        pts += res.n_patients
        dlts += res.n_dlt
        rate += res.total_dlt / res.total_patients
    return OperatingCharacteristics(name, probs, n_trials, int(seed), select / n_trials, none / n_trials,
                                    pts / n_trials, dlts / n_trials, float(pts.sum() / n_trials),
                                    rate / n_trials)
