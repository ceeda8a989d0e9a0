r"""ASTCT consensus grading of cytokine release syndrome (CRS) and immune effector
cell-associated neurotoxicity syndrome (ICANS) — Lee DW et al. 2019, Biol Blood Marrow
Transplant 25:625 ("ASTCT Consensus Grading for Cytokine Release Syndrome and Neurologic
Toxicity Associated with Immune Effector Cells").

Pure, vectorised functions of clinical signs (numpy arrays of any common shape, one value per
observation time).  ``NaN`` means "not recorded": that sign does not contribute.  The
encodings are the shared clinical-sign contract (roles of model observables, ``docs/grading.md``).

CRS (Lee 2019, Table 4)
-----------------------
*Fever* is a temperature :math:`\ge 38.0\,^\circ C`.  CRS requires fever, **unless**
antipyretics or anti-cytokine therapy (tocilizumab, steroids, anakinra) have been given at or
before that time (``anticytokine_given = 1``): then "fever is no longer required to grade
subsequent CRS severity; CRS grading is driven by hypotension and/or hypoxia" (Lee 2019,
Table 4 footnote).  The grade is the **worse** of the two domains:

==== ====================================================== =====================================================
grade hypotension                                           hypoxia (``o2_level``)
==== ====================================================== =====================================================
1    none (fever only)                                      none
2    SBP < 90 mmHg, not requiring vasopressors              1: low-flow nasal cannula (≤ 6 L/min) or blow-by
3    one vasopressor, with or without vasopressin           2: high-flow cannula (> 6 L/min), facemask, non-
                                                            rebreather or Venturi mask
4    multiple vasopressors (excluding vasopressin)          3: positive pressure (CPAP, BiPAP, ventilation)
==== ====================================================== =====================================================

so, with :math:`f` = fever (0/1), :math:`h` the hypotension and :math:`x` the hypoxia grade,

.. math::

   \mathrm{CRS} = \begin{cases} \max(f, h, x) & f = 1 \text{ or therapy given}\\
                                 0 & \text{otherwise (no fever, untreated: no CRS)}\end{cases}

Choices made where the consensus leaves room (each documented in ``docs/grading.md``):

* Hypotension grade: ``vasopressors_n ≥ 2`` → 4, ``= 1`` → 3 whatever the SBP (the
  vasopressor is what keeps the pressure up), ``0`` with SBP below ``hypotension_sbp_mmhg``
  (90 mmHg, adults) → 2.  Vasopressin is never counted in ``vasopressors_n``; a patient on
  vasopressin alone (``vasopressin=True``, ``vasopressors_n = 0``) needs a vasopressor and is
  grade 3, never 4.
* ``o2_level`` 1 with a recorded flow above 6 L/min (``o2_flow_l_min``) is high-flow → 3.
* After therapy, a patient without fever, hypotension or hypoxia is grade 0 (CRS resolved);
  with fever alone grade 1.
* A missing temperature cannot show fever: without therapy that row is grade 0.
* Grade 5 (death from CRS) is not assigned: the signs do not record death.

ICANS (Lee 2019, Table 6, adults)
---------------------------------
The grade is the worst of its domains:

==== ============== ==================================== ================== ======= ===================
grade ICE (0–10)    consciousness                        seizure            motor   oedema / raised ICP
==== ============== ==================================== ================== ======= ===================
1    7–9            awakens spontaneously                –                  –       –
2    3–6            awakens to voice (level 1)           –                  –       –
3    0–2            awakens only to touch (level 2)      brief (level 1)    –       focal (level 1)
4    0, unarousable unarousable / vigorous stimuli (3)   prolonged (2)      yes (1) diffuse (level 2)
==== ============== ==================================== ================== ======= ===================

* ICE 10 → 0, 7–9 → 1, 3–6 → 2, 0–2 → 3.  An ICE score of 0 alone is grade 3 ("awake with
  global aphasia"); grade 4 needs an unarousable patient (consciousness level 3) or another
  grade-4 finding (Lee 2019, Table 6 footnote).
* **Consciousness level 0 ("awakens spontaneously") contributes grade 0.**  In ASTCT
  "awakens spontaneously" is the grade-1 entry of the *depressed* level of consciousness
  domain: a drowsy patient who still wakes by themselves.  The contract's level 0 also
  holds the fully alert patient (there is no separate "alert" level), and ASTCT grade 1 is
  defined by ICE 7–9 together with the ability to awaken spontaneously (NCI Thesaurus
  C188936 reads grade-1 ICANS the same way), so level 0 cannot by itself signal ICANS; a
  grade-1 patient is graded through the ICE score.  Levels 1, 2, 3 → grades 2, 3, 4.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "FEVER_C",
    "HYPOTENSION_SBP_MMHG",
    "LOW_FLOW_MAX_L_MIN",
    "CRS_SIGNS",
    "ICANS_SIGNS",
    "CRSDomains",
    "ICANSDomains",
    "GradeCourse",
    "crs_domains",
    "crs_grade",
    "icans_domains",
    "icans_grade",
    "grade_course",
    "grade_signs",
    "toxicity_summary",
    "replicate_grades",
    "GRADING_REFERENCE",
]

#: the grading's source, stored with every toxicity summary
GRADING_REFERENCE = "ASTCT consensus (Lee DW et al. 2019, Biol Blood Marrow Transplant 25:625)"

#: fever threshold (°C), Lee 2019
FEVER_C = 38.0
#: systolic blood pressure below which an adult is hypotensive (mmHg), shared contract
HYPOTENSION_SBP_MMHG = 90.0
#: highest oxygen flow of a low-flow nasal cannula (L/min), Lee 2019
LOW_FLOW_MAX_L_MIN = 6.0

#: the contract's CRS sign roles (``o2_flow_l_min`` refines ``o2_level`` 1; ``vasopressin``
#: is an extra, optional flag)
CRS_SIGNS = ("temperature_c", "sbp_mmhg", "vasopressors_n", "o2_level", "o2_flow_l_min", "anticytokine_given")
#: the contract's ICANS sign roles
ICANS_SIGNS = ("ice_score", "consciousness_level", "seizure_level", "motor_weakness", "cerebral_edema_level")


def _arr(x: Any) -> np.ndarray:
    return np.asarray(x.values if hasattr(x, "values") and not isinstance(x, np.ndarray) else x, dtype=float)


def _check_levels(name: str, x: np.ndarray, top: int, meaning: str) -> None:
    """``x`` must hold NaN or whole numbers 0..top."""
    f = x[np.isfinite(x)]
    bad = f[(f < 0) | (f > top) | (f != np.round(f))]
    if bad.size or np.isinf(x).any():
        v = bad[0] if bad.size else x[np.isinf(x)][0]
        raise ValueError(
            f"{name} = {float(v)!r}: expected a whole number from 0 to {top} ({meaning}) or NaN for "
            f"'not recorded'; fix the value (see docs/grading.md for the encoding)"
        )


def _check_real(name: str, x: np.ndarray, lo: float, hi: float, unit: str) -> None:
    f = x[~np.isnan(x)]
    bad = f[~((f >= lo) & (f <= hi))]
    if bad.size:
        raise ValueError(
            f"{name} = {float(bad[0])!r} {unit}: expected a value from {lo:g} to {hi:g} {unit} or NaN "
            "for 'not recorded'; check the unit and the value"
        )


def _max_domains(*domains: np.ndarray) -> np.ndarray:
    """Worst recorded domain, 0 where none is recorded."""
    stack = np.stack(np.broadcast_arrays(*domains))
    return np.max(np.where(np.isnan(stack), 0.0, stack), axis=0)


@dataclass(frozen=True)
class CRSDomains:
    """The parts of a CRS grade, float arrays with NaN where the domain was not recorded:
    ``fever`` (0/1), ``hypotension`` and ``hypoxia`` (the grade each implies: 0, 2, 3, 4),
    ``treated`` (0/1: antipyretic or anti-cytokine therapy given at or before the time;
    0 when not recorded)."""

    fever: np.ndarray
    hypotension: np.ndarray
    hypoxia: np.ndarray
    treated: np.ndarray


def crs_domains(
    temperature_c: Any,
    sbp_mmhg: Any,
    vasopressors_n: Any,
    o2_level: Any,
    anticytokine_given: Any,
    *,
    hypotension_sbp_mmhg: float = HYPOTENSION_SBP_MMHG,
    o2_flow_l_min: Any = None,
    vasopressin: Any = None,
) -> CRSDomains:
    """Domain sub-grades of ASTCT CRS (module doc): fever ``T ≥ 38.0 °C``; hypotension
    grade 2 (SBP < ``hypotension_sbp_mmhg`` mmHg, no vasopressor), 3 (one vasopressor, or
    vasopressin alone), 4 (``vasopressors_n ≥ 2``, vasopressin never counted); hypoxia grade
    2/3/4 for ``o2_level`` 1/2/3, level 1 with ``o2_flow_l_min > 6`` L/min counting as 2.
    Lee DW et al. 2019, Biol Blood Marrow Transplant 25:625."""
    temp = _arr(temperature_c)
    sbp = _arr(sbp_mmhg)
    vaso = _arr(vasopressors_n)
    o2 = _arr(o2_level)
    ac = _arr(anticytokine_given)
    _check_real("temperature_c", temp, 25.0, 45.0, "degC")
    _check_real("sbp_mmhg", sbp, 0.0, 300.0, "mmHg")
    _check_levels("vasopressors_n", vaso, 10, "number of vasopressors, vasopressin not counted")
    _check_levels("o2_level", o2, 3, "0 none, 1 low-flow, 2 high-flow/mask, 3 positive pressure")
    _check_levels("anticytokine_given", ac, 1, "1 once antipyretic or anti-cytokine therapy was given")
    flow = None if o2_flow_l_min is None else _arr(o2_flow_l_min)
    if flow is not None:
        _check_real("o2_flow_l_min", flow, 0.0, 100.0, "L/min")
    vp = None if vasopressin is None else _arr(vasopressin)
    if vp is not None:
        _check_levels("vasopressin", vp, 1, "1 while vasopressin is given")

    with np.errstate(invalid="ignore"):
        fever = np.where(np.isnan(temp), np.nan, (temp >= FEVER_C).astype(float))
        # hypotension: vasopressors decide when recorded; else the pressure alone
        n_v = vaso
        if vp is not None:
            # vasopressin alone is "a vasopressor" (grade 3) but never adds to "multiple"
            n_v = np.where((np.nan_to_num(vp) >= 1) & ~(np.nan_to_num(vaso) >= 1), 1.0, vaso)
        low_bp = sbp < hypotension_sbp_mmhg
        hypot = np.where(
            n_v >= 2, 4.0,
            np.where(n_v >= 1, 3.0,
                     np.where(low_bp, 2.0,
                              np.where(np.isnan(sbp) & np.isnan(n_v), np.nan, 0.0))),
        )
        level = o2
        if flow is not None:
            level = np.where((o2 == 1) & (flow > LOW_FLOW_MAX_L_MIN), 2.0, o2)
        hypox = np.where(np.isnan(level), np.nan, np.where(level > 0, level + 1.0, 0.0))
    treated = np.where(np.isnan(ac), 0.0, ac)
    b = np.broadcast_arrays(fever, hypot, hypox, treated)
    return CRSDomains(*(np.array(x, dtype=float) for x in b))


def crs_grade(
    temperature_c: Any,
    sbp_mmhg: Any,
    vasopressors_n: Any,
    o2_level: Any,
    anticytokine_given: Any,
    *,
    hypotension_sbp_mmhg: float = HYPOTENSION_SBP_MMHG,
    o2_flow_l_min: Any = None,
    vasopressin: Any = None,
) -> np.ndarray:
    """ASTCT CRS grade 0–4 (int array) at each time (Lee DW et al. 2019, Biol Blood Marrow
    Transplant 25:625; module doc): no fever and no therapy → 0; else the worst of fever
    (1), hypotension (2–4) and hypoxia (2–4).

    Arguments (arrays broadcast together; NaN = not recorded): ``temperature_c`` (°C),
    ``sbp_mmhg`` (mmHg), ``vasopressors_n`` (count, vasopressin excluded), ``o2_level``
    (0 none, 1 low-flow ≤ 6 L/min or blow-by, 2 high-flow > 6 L/min / facemask /
    non-rebreather / Venturi, 3 CPAP / BiPAP / ventilation), ``anticytokine_given`` (1 once
    antipyretics or anti-cytokine therapy were given).  Optional: ``hypotension_sbp_mmhg``
    (90 mmHg for adults), ``o2_flow_l_min`` (L/min; level 1 above 6 L/min is high-flow),
    ``vasopressin`` (1 while vasopressin is given: alone it counts as one vasopressor).
    """
    d = crs_domains(
        temperature_c, sbp_mmhg, vasopressors_n, o2_level, anticytokine_given,
        hypotension_sbp_mmhg=hypotension_sbp_mmhg, o2_flow_l_min=o2_flow_l_min, vasopressin=vasopressin,
    )
    gate = (np.nan_to_num(d.fever) >= 1) | (d.treated >= 1)
    return np.where(gate, _max_domains(d.fever, d.hypotension, d.hypoxia), 0.0).astype(np.int64)


@dataclass(frozen=True)
class ICANSDomains:
    """Grades implied by each ICANS domain, float arrays with NaN where not recorded:
    ``ice``, ``consciousness``, ``seizure``, ``motor``, ``edema`` (module doc)."""

    ice: np.ndarray
    consciousness: np.ndarray
    seizure: np.ndarray
    motor: np.ndarray
    edema: np.ndarray


def icans_domains(
    ice_score: Any,
    consciousness_level: Any,
    seizure_level: Any,
    motor_weakness: Any,
    cerebral_edema_level: Any,
) -> ICANSDomains:
    """Domain grades of ASTCT ICANS for adults (Lee DW et al. 2019, Biol Blood Marrow
    Transplant 25:625, Table 6): ICE 10/7–9/3–6/0–2 → 0/1/2/3; consciousness level
    0/1/2/3 → 0/2/3/4 (level 0 "awakens spontaneously" alone is not ICANS: module doc);
    seizure 0/1/2 → 0/3/4; deep focal motor weakness 0/1 → 0/4; cerebral oedema 0/1/2 →
    0/3/4."""
    ice = _arr(ice_score)
    con = _arr(consciousness_level)
    sei = _arr(seizure_level)
    mot = _arr(motor_weakness)
    ede = _arr(cerebral_edema_level)
    _check_levels("ice_score", ice, 10, "ICE score points")
    _check_levels("consciousness_level", con, 3, "0 awakens spontaneously, 1 to voice, 2 only to touch, 3 unarousable")
    _check_levels("seizure_level", sei, 2, "0 none, 1 resolving rapidly, 2 prolonged or repeated")
    _check_levels("motor_weakness", mot, 1, "1 deep focal motor weakness")
    _check_levels("cerebral_edema_level", ede, 2, "0 none, 1 focal, 2 diffuse")
    nan = np.nan
    with np.errstate(invalid="ignore"):
        g_ice = np.where(np.isnan(ice), nan, np.select([ice >= 10, ice >= 7, ice >= 3], [0.0, 1.0, 2.0], 3.0))
        g_con = np.where(np.isnan(con), nan, np.choose(np.nan_to_num(con).astype(int), [0.0, 2.0, 3.0, 4.0]))
        g_sei = np.where(np.isnan(sei), nan, np.choose(np.nan_to_num(sei).astype(int), [0.0, 3.0, 4.0]))
        g_mot = np.where(np.isnan(mot), nan, 4.0 * mot)
        g_ede = np.where(np.isnan(ede), nan, np.choose(np.nan_to_num(ede).astype(int), [0.0, 3.0, 4.0]))
    b = np.broadcast_arrays(g_ice, g_con, g_sei, g_mot, g_ede)
    return ICANSDomains(*(np.array(x, dtype=float) for x in b))


def icans_grade(
    ice_score: Any,
    consciousness_level: Any,
    seizure_level: Any,
    motor_weakness: Any,
    cerebral_edema_level: Any,
) -> np.ndarray:
    """ASTCT ICANS grade 0–4 (int array): the worst recorded domain of
    :func:`icans_domains` (Lee DW et al. 2019, Biol Blood Marrow Transplant 25:625); 0 where
    nothing is recorded.  Encodings: ``ice_score`` 0–10; ``consciousness_level`` 0 awakens
    spontaneously, 1 to voice, 2 only to touch, 3 unarousable; ``seizure_level`` 0 none,
    1 resolving rapidly / non-convulsive on EEG, 2 prolonged (> 5 min) or repeated;
    ``motor_weakness`` 0/1; ``cerebral_edema_level`` 0 none, 1 focal, 2 diffuse."""
    d = icans_domains(ice_score, consciousness_level, seizure_level, motor_weakness, cerebral_edema_level)
    return _max_domains(d.ice, d.consciousness, d.seizure, d.motor, d.edema).astype(np.int64)


@dataclass(frozen=True)
class GradeCourse:
    """The course of a graded toxicity over a timeline (times in the unit of ``t``).

    ``max_grade`` — the highest grade (0 if never ≥ 1); ``onset`` — first time with grade ≥ 1;
    ``peak_time`` — first time the highest grade is reached; ``duration`` — total time with
    grade ≥ 1, every observation's grade holding until the next observation (the last one
    adds nothing), summed over all episodes; ``episodes`` — number of separate spells with
    grade ≥ 1; ``resolved`` — grade 0 again at the last observation (``None`` when there was
    no episode).  Times are NaN when there was no episode.
    """

    max_grade: int
    onset: float
    peak_time: float
    duration: float
    resolved: bool | None
    episodes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def grade_course(t: Any, grades: Any) -> GradeCourse:
    """:class:`GradeCourse` of ``grades[T]`` (0–4) observed at increasing times ``t[T]``.

    Duration is the step-function integral :math:`\\sum_i (t_{i+1}-t_i)\\,[g_i \\ge 1]`: a
    grade holds until the next observation (last observation carried forward), so on a
    simulation grid it converges to the exact time spent at grade ≥ 1 as the grid refines.
    """
    t = np.asarray(t, dtype=float).reshape(-1)
    g = np.asarray(grades, dtype=float).reshape(-1)
    if t.shape != g.shape:
        raise ValueError(f"t has {t.size} times but grades has {g.size} values; give one grade per time")
    if t.size > 1 and not np.all(np.diff(t) > 0):
        raise ValueError("t must be strictly increasing (one grade per observation time, in time order)")
    g = np.nan_to_num(g, nan=0.0)
    on = g >= 1
    if not on.any():
        nan = math.nan
        return GradeCourse(0, nan, nan, 0.0, None, 0)
    gmax = int(g.max())
    dt = np.diff(t)
    duration = float(np.sum(dt[on[:-1]])) if t.size > 1 else 0.0
    episodes = int(on[0]) + int(np.sum(on[1:] & ~on[:-1]))
    return GradeCourse(
        max_grade=gmax,
        onset=float(t[np.argmax(on)]),
        peak_time=float(t[np.argmax(g == gmax)]),
        duration=duration,
        resolved=bool(not on[-1]),
        episodes=episodes,
    )


def _sign(signs: Mapping[str, Any], name: str, shape: tuple[int, ...] | None) -> np.ndarray:
    if name in signs and signs[name] is not None:
        return _arr(signs[name])
    return np.full(shape if shape is not None else (), np.nan)


def grade_signs(
    signs: Mapping[str, Any], *, hypotension_sbp_mmhg: float = HYPOTENSION_SBP_MMHG
) -> dict[str, np.ndarray]:
    """Grade a whole table of signs: ``signs`` maps contract role names (:data:`CRS_SIGNS`,
    :data:`ICANS_SIGNS`, optional ``vasopressin``) to arrays — a dict, an
    :class:`xarray.Dataset` or a pandas DataFrame; a missing sign is "not recorded".

    Returns int arrays ``crs_grade`` and ``icans_grade`` and float domain columns (NaN =
    not recorded): ``fever`` (0/1), ``crs_hypotension_grade``, ``crs_hypoxia_grade``,
    ``icans_ice_grade``, ``icans_consciousness_grade``, ``icans_seizure_grade``,
    ``icans_motor_grade``, ``icans_edema_grade`` (module doc; Lee DW et al. 2019)."""
    present = [_arr(signs[k]) for k in (*CRS_SIGNS, *ICANS_SIGNS, "vasopressin") if k in signs and signs[k] is not None]
    if not present:
        raise ValueError(
            "no clinical signs to grade: expected at least one of "
            + ", ".join((*CRS_SIGNS, *ICANS_SIGNS))
        )
    shape = np.broadcast_shapes(*(p.shape for p in present))
    s = {k: _sign(signs, k, shape) for k in (*CRS_SIGNS, *ICANS_SIGNS)}
    vp = _arr(signs["vasopressin"]) if "vasopressin" in signs and signs["vasopressin"] is not None else None
    crs_args = (s["temperature_c"], s["sbp_mmhg"], s["vasopressors_n"], s["o2_level"], s["anticytokine_given"])
    flow = s["o2_flow_l_min"]
    cd = crs_domains(*crs_args, hypotension_sbp_mmhg=hypotension_sbp_mmhg, o2_flow_l_min=flow, vasopressin=vp)
    icans_args = tuple(s[k] for k in ICANS_SIGNS)
    idm = icans_domains(*icans_args)
    return {
        "fever": cd.fever,
        "crs_hypotension_grade": cd.hypotension,
        "crs_hypoxia_grade": cd.hypoxia,
        "crs_grade": crs_grade(*crs_args, hypotension_sbp_mmhg=hypotension_sbp_mmhg, o2_flow_l_min=flow, vasopressin=vp),
        "icans_ice_grade": idm.ice,
        "icans_consciousness_grade": idm.consciousness,
        "icans_seizure_grade": idm.seizure,
        "icans_motor_grade": idm.motor,
        "icans_edema_grade": idm.edema,
        "icans_grade": icans_grade(*icans_args),
    }


def toxicity_summary(t: Any, grades: Mapping[str, Any], *, t_dose: float = 0.0) -> dict[str, Any]:
    """The course of each graded toxicity after an infusion at ``t_dose`` (d): for
    ``grades["crs_grade"]`` and/or ``grades["icans_grade"]`` (one grade per time ``t`` in
    days) a dict ``{"crs": {...}, "icans": {...}}`` with ``max_grade``, ``onset_day``
    (first day with grade ≥ 1, days after infusion), ``peak_day`` (first day at the maximum),
    ``duration_days`` (total days at grade ≥ 1, :func:`grade_course`), ``episodes`` and
    ``resolved``; ``None`` times when the grade never reached 1.  Only times ``t ≥ t_dose``
    count, like the other endpoints (:mod:`livingdrug.clinical.endpoints`)."""
    t = np.asarray(t, dtype=float)
    after = t >= t_dose
    out: dict[str, Any] = {}
    for key in ("crs", "icans"):
        g = grades.get(f"{key}_grade")
        if g is None:
            continue
        c = grade_course(t[after] - t_dose, np.asarray(g)[after])
        d = c.as_dict()
        out[key] = {
            "max_grade": d["max_grade"],
            "onset_day": d["onset"],
            "peak_day": d["peak_time"],
            "duration_days": d["duration"],
            "episodes": d["episodes"],
            "resolved": d["resolved"],
        }
    if out:
        out["grading"] = GRADING_REFERENCE
    return out


def replicate_grades(t: Any, grades: Mapping[str, Any], *, t_dose: float = 0.0) -> dict[str, np.ndarray]:
    """Per-replicate toxicity endpoints of grade arrays ``grades["crs_grade"]`` and/or
    ``grades["icans_grade"]`` of shape ``[n, T]`` at times ``t[T]`` (d), counting only
    ``t ≥ t_dose``: ``crs_max_grade`` (0–4), ``crs_onset_day`` (first day with grade ≥ 1,
    days after infusion; NaN if never) and the same for ``icans``."""
    t = np.asarray(t, dtype=float)
    after = t >= t_dose
    out: dict[str, np.ndarray] = {}
    for key in ("crs", "icans"):
        g = grades.get(f"{key}_grade")
        if g is None:
            continue
        ga = np.atleast_2d(np.asarray(g, dtype=float))[:, after]
        if ga.shape[1] == 0:
            out[f"{key}_max_grade"] = np.zeros(ga.shape[0], dtype=np.int64)
            out[f"{key}_onset_day"] = np.full(ga.shape[0], np.nan)
            continue
        on = np.nan_to_num(ga) >= 1
        out[f"{key}_max_grade"] = np.nan_to_num(ga).max(axis=1).astype(np.int64)
        out[f"{key}_onset_day"] = np.where(on.any(axis=1), t[after][np.argmax(on, axis=1)] - t_dose, np.nan)
    return out
