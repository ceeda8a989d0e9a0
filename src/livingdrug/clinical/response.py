"""Response criteria for lymphoma (Lugano 2014) and myeloma (IMWG 2016) as pure functions.

Times in days; the assessment at "day d" uses the last output time at or before
``t_dose + d`` (``"NE"``, not evaluable, when the follow-up is shorter or the value is NaN).
"Baseline" is the value at the infusion (first output time ≥ ``t_dose``); the "nadir" at an
assessment is the lowest value from baseline up to and including it.

Lugano 2014, CT-based (Cheson BD et al. 2014 J Clin Oncol 32:3059), on the sum of the
products of the perpendicular diameters (SPD, cm²) of the target lesions — operational rules,
tested in this order:

* **CR** — ``SPD ≤ cr_spd_cm2`` (default 1.0 cm²).  Lugano's CR asks target lesions to
  regress to normal nodes (≤ 1.5 cm longest diameter).  A model's SPD counts lymphoma tissue
  only (a normal node contributes nothing), so CR is "SPD ≈ 0": a sum below 1 cm², i.e.
  lesions of a few millimetres, under the ~5 mm that CT measures reliably.
* **PD** — ``SPD ≥ 1.5 × nadir`` (Lugano: ≥ 50 % increase from the nadir of the product of
  the diameters).  New lesions are not modelled.
* **PR** — ``SPD ≤ 0.5 × baseline`` (≥ 50 % decrease of the SPD).
* **SD** — otherwise.

IMWG 2016 (Kumar S et al. 2016 Lancet Oncol 17:e328), on serum M-protein (g/dL), marrow
plasma cells (% of nucleated cells) and, optionally, the myeloma fraction of marrow cells —
operational rules, in this order:

* **PD** — an increase from the nadir of ≥ 25 % *and* ≥ 0.5 g/dL; or, when the nadir is
  ≥ 5 g/dL, an increase of ≥ 1 g/dL (whatever its percentage).
* **sCR** — CR and myeloma cells < 10⁻⁵ of marrow nucleated cells: the IMWG 2016 MRD
  threshold, standing in for "no clonal cells in marrow and a normal free-light-chain ratio"
  (free light chains are not modelled).
* **CR** — M-protein below the immunofixation detection limit ``m_detect_g_dl`` (default
  0.02 g/dL = 0.2 g/L, an assumption of the order of serum immunofixation sensitivity) *and*
  marrow plasma cells < 5 %.  Without a marrow value CR cannot be confirmed (best: VGPR).
* **VGPR** — M-protein reduced by ≥ 90 % from baseline.
* **PR** — reduced by ≥ 50 %.
* **MR** — reduced by 25–49 %.
* **SD** — otherwise.

:func:`depletion_episode` measures an on-target off-tumour effect: how long a normal-tissue
read-out stays below a threshold (B-cell aplasia, hypogammaglobulinaemia).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "LUGANO_CATEGORIES",
    "IMWG_CATEGORIES",
    "CR_SPD_CM2",
    "M_DETECT_G_DL",
    "MRD_IMWG",
    "HYPOGAMMA_G_DL",
    "LuganoResponse",
    "ImwgResponse",
    "Episode",
    "lugano_category",
    "imwg_category",
    "lugano_response",
    "imwg_response",
    "depletion_episode",
    "episode_dict",
]

#: Lugano categories, best first ("NE": not evaluable)
LUGANO_CATEGORIES = ("CR", "PR", "SD", "PD", "NE")
#: IMWG categories, best first
IMWG_CATEGORIES = ("sCR", "CR", "VGPR", "PR", "MR", "SD", "PD", "NE")
#: operational CR threshold on the lymphoma SPD (cm²)
CR_SPD_CM2 = 1.0
#: serum immunofixation detection limit used for IMWG CR (g/dL)
M_DETECT_G_DL = 0.02
#: IMWG 2016 MRD-negativity threshold (myeloma cells per marrow nucleated cell)
MRD_IMWG = 1e-5
#: hypogammaglobulinaemia: IgG < 400 mg/dL, the usual threshold for immunoglobulin
#: replacement after CAR-T (Hill JA, Seo SK 2020 Blood 136:925)
HYPOGAMMA_G_DL = 0.4


def _nan_to_none(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def _finite(*xs: float | None) -> bool:
    return all(x is not None and math.isfinite(float(x)) for x in xs)


def lugano_category(spd: float, baseline: float, nadir: float, *, cr_spd_cm2: float = CR_SPD_CM2) -> str:
    """Lugano 2014 CT category of one assessment (module docstring): ``spd``, ``baseline`` and
    ``nadir`` in cm² (the nadir includes this assessment and the baseline)."""
    if not _finite(spd, baseline, nadir):
        return "NE"
    if spd <= cr_spd_cm2:
        return "CR"
    if spd >= 1.5 * nadir:
        return "PD"
    if spd <= 0.5 * baseline:
        return "PR"
    return "SD"


def imwg_category(
    m_protein: float,
    baseline: float,
    nadir: float,
    *,
    marrow_plasma_pct: float | None = None,
    myeloma_mrd: float | None = None,
    m_detect_g_dl: float = M_DETECT_G_DL,
) -> str:
    """IMWG 2016 category of one assessment (module docstring): M-protein, its baseline and
    nadir in g/dL; ``marrow_plasma_pct`` (%) and ``myeloma_mrd`` (fraction) if measured."""
    if not _finite(m_protein, baseline, nadir):
        return "NE"
    rise = m_protein - nadir
    if (rise >= 0.25 * nadir and rise >= 0.5) or (nadir >= 5.0 and rise >= 1.0):
        return "PD"
    if m_protein < m_detect_g_dl and _finite(marrow_plasma_pct) and float(marrow_plasma_pct) < 5.0:  # type: ignore[arg-type]
        if _finite(myeloma_mrd) and float(myeloma_mrd) < MRD_IMWG:  # type: ignore[arg-type]
            return "sCR"
        return "CR"
    if baseline > 0:
        reduction = 1.0 - m_protein / baseline
        if reduction >= 0.9:
            return "VGPR"
        if reduction >= 0.5:
            return "PR"
        if reduction >= 0.25:
            return "MR"
    return "SD"


@dataclass(frozen=True)
class Episode:
    """A stretch below a threshold after the infusion: ``start`` (d after infusion),
    ``duration`` (d; censored at the end of follow-up when ``ongoing``); NaN when it never
    happens."""

    start: float
    duration: float
    ongoing: bool


def depletion_episode(t: np.ndarray, x: np.ndarray, threshold: float, *, t_dose: float = 0.0) -> Episode:
    """The first episode after ``t_dose`` with ``x < threshold``: from the first output time
    below it to the first time at or above it again (B-cell aplasia, hypogammaglobulinaemia)."""
    t = np.asarray(t, dtype=float)
    x = np.asarray(x, dtype=float)
    start = int(np.searchsorted(t, t_dose, side="left"))
    below = np.flatnonzero(x[start:] < threshold)
    if not below.size:
        return Episode(math.nan, math.nan, False)
    i = start + int(below[0])
    back = np.flatnonzero(x[i:] >= threshold)
    if back.size:
        return Episode(float(t[i] - t_dose), float(t[i + int(back[0])] - t[i]), False)
    return Episode(float(t[i] - t_dose), float(t[-1] - t[i]), True)


def _assessment_index(t: np.ndarray, when: float) -> int:
    """Last output index at or before ``when`` (-1 if the follow-up ends before it)."""
    if t.size == 0 or t[-1] < when - 1e-9:
        return -1
    return int(np.searchsorted(t, when + 1e-9, side="right")) - 1


def _day_key(d: float) -> str:
    return f"day_{d:g}"


@dataclass(frozen=True)
class LuganoResponse:
    """Lugano 2014 response after infusion: category at each assessment day (``at``: day →
    category), the best category over the follow-up and when a response (PR or CR) was first
    reached and when progression (PD) was first seen (d after infusion, NaN if never); SPD at
    baseline and nadir (cm²), percent change of the SPD from baseline at each assessment day."""

    at: dict[str, str]
    best_response: str
    time_to_response: float
    progression_time: float
    baseline_spd: float
    nadir_spd: float
    spd_change_pct: dict[str, float]

    def as_dict(self) -> dict:
        d: dict = dict(self.at)
        d.update(best_response=self.best_response, time_to_response=self.time_to_response,
                 progression_time=self.progression_time, baseline_spd=self.baseline_spd, nadir_spd=self.nadir_spd)
        d.update({f"spd_change_{k}_pct": v for k, v in self.spd_change_pct.items()})
        return _nan_to_none(d)


@dataclass(frozen=True)
class ImwgResponse:
    """IMWG 2016 response after infusion: category at each assessment day, the best category
    over the follow-up, when PR or better was first reached and when progression (PD) was first
    seen (d after infusion, NaN if never); M-protein at baseline and nadir (g/dL)."""

    at: dict[str, str]
    best_response: str
    time_to_response: float
    progression_time: float
    baseline_m_protein: float
    nadir_m_protein: float

    def as_dict(self) -> dict:
        d: dict = dict(self.at)
        d.update(best_response=self.best_response, time_to_response=self.time_to_response,
                 progression_time=self.progression_time, baseline_m_protein=self.baseline_m_protein, nadir_m_protein=self.nadir_m_protein)
        return _nan_to_none(d)


def _first(t: np.ndarray, i0: int, cats: list[str], wanted: Sequence[str], t_dose: float) -> float:
    """Days after infusion of the first assessment (output time) whose category is in ``wanted``."""
    hit = [k for k, c in enumerate(cats) if c in wanted]
    return float(t[i0 + hit[0]] - t_dose) if hit else math.nan


def _best(cats: list[str], order: tuple[str, ...]) -> str:
    ranked = [c for c in cats if c != "NE"]
    return min(ranked, key=order.index) if ranked else "NE"


def lugano_response(
    t: np.ndarray,
    spd: np.ndarray,
    *,
    t_dose: float = 0.0,
    days: Sequence[float] = (28.0, 90.0),
    cr_spd_cm2: float = CR_SPD_CM2,
) -> LuganoResponse:
    """Lugano 2014 CT response of an SPD course (cm²) at ``days`` after the infusion at
    ``t_dose`` and over the whole follow-up (rules in the module docstring)."""
    t = np.asarray(t, dtype=float)
    x = np.asarray(spd, dtype=float)
    i0 = int(np.searchsorted(t, t_dose, side="left"))
    if i0 >= t.size or not math.isfinite(x[i0]):
        nan = math.nan
        return LuganoResponse({_day_key(d): "NE" for d in days}, "NE", nan, nan, nan, nan,
                              {_day_key(d): nan for d in days})
    base = float(x[i0])
    nadirs = np.fmin.accumulate(x[i0:])
    cats = [lugano_category(float(x[i0 + k]), base, float(nadirs[k]), cr_spd_cm2=cr_spd_cm2)
            for k in range(t.size - i0)]
    at, change = {}, {}
    for d in days:
        i = _assessment_index(t, t_dose + d)
        key = _day_key(d)
        at[key] = cats[i - i0] if i >= i0 else "NE"
        change[key] = 100.0 * (float(x[i]) / base - 1.0) if i >= i0 and base > 0 else math.nan
    ttr = _first(t, i0, cats, ("CR", "PR"), t_dose)
    return LuganoResponse(at, _best(cats, LUGANO_CATEGORIES), ttr, _first(t, i0, cats, ("PD",), t_dose),
                          base, float(np.nanmin(x[i0:])), change)


def imwg_response(
    t: np.ndarray,
    m_protein: np.ndarray,
    *,
    marrow_plasma_pct: np.ndarray | None = None,
    myeloma_mrd: np.ndarray | None = None,
    t_dose: float = 0.0,
    days: Sequence[float] = (28.0, 90.0),
    m_detect_g_dl: float = M_DETECT_G_DL,
) -> ImwgResponse:
    """IMWG 2016 response of a serum M-protein course (g/dL), with marrow plasma cells (%) and
    the myeloma fraction of marrow cells where given, at ``days`` after the infusion and over
    the whole follow-up (rules in the module docstring)."""
    t = np.asarray(t, dtype=float)
    x = np.asarray(m_protein, dtype=float)
    pc = None if marrow_plasma_pct is None else np.asarray(marrow_plasma_pct, dtype=float)
    mrd = None if myeloma_mrd is None else np.asarray(myeloma_mrd, dtype=float)
    i0 = int(np.searchsorted(t, t_dose, side="left"))
    if i0 >= t.size or not math.isfinite(x[i0]):
        nan = math.nan
        return ImwgResponse({_day_key(d): "NE" for d in days}, "NE", nan, nan, nan, nan)
    base = float(x[i0])
    nadirs = np.fmin.accumulate(x[i0:])
    cats = [
        imwg_category(float(x[i]), base, float(nadirs[i - i0]),
                      marrow_plasma_pct=None if pc is None else float(pc[i]),
                      myeloma_mrd=None if mrd is None else float(mrd[i]),
                      m_detect_g_dl=m_detect_g_dl)
        for i in range(i0, t.size)
    ]
    at = {}
    for d in days:
        i = _assessment_index(t, t_dose + d)
        at[_day_key(d)] = cats[i - i0] if i >= i0 else "NE"
    ttr = _first(t, i0, cats, IMWG_CATEGORIES[: IMWG_CATEGORIES.index("PR") + 1], t_dose)
    return ImwgResponse(at, _best(cats, IMWG_CATEGORIES), ttr, _first(t, i0, cats, ("PD",), t_dose),
                        base, float(np.nanmin(x[i0:])))


def episode_dict(prefix: str, e: Episode) -> dict:
    """``{prefix_start, prefix_duration, prefix_ongoing}`` of an :class:`Episode` (NaN → None)."""
    return _nan_to_none({f"{prefix}_{k}": v for k, v in asdict(e).items()})
