r"""In-silico dose escalation: virtual patients supply the toxicity of every dose level.

1. **Dose–toxicity in the same patients.**  The scenario's virtual population (its
   ``[population]``) is treated at every dose level — a comparison whose arms differ only in
   the dose (:func:`livingdrug.comparison.run_comparison`).  Patient *i* at level *j* has a
   dose-limiting toxicity ``DLT[i, j]`` from its maximum ASTCT CRS and ICANS grades
   (:func:`livingdrug.trials.designs.dlt_from_grades`: grade ≥ 3 of either by default), and a
   response.  The true DLT rate of level *j* is the population mean, with its Wilson interval.
2. **Simulated trials.**  Each of ``n_trials`` trials enrols virtual patients drawn at random
   from the population (trial *t* draws from its own stream (seed, *t*)); the *k*-th enrolled
   patient at level *j* has the DLT that patient has at that level, so a patient's toxicity
   is consistent across levels.  The design (3+3, Storer 1989; BOIN, Liu & Yuan 2015) decides
   escalation from those outcomes.  Operating characteristics: probability of selecting each
   level as the MTD (or none), mean patients and DLTs per level, overall DLT rate.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["DoseToxicity", "dose_toxicity", "simulate_escalation"]


@dataclass(frozen=True)
class DoseToxicity:
    """Per virtual patient and dose level: ``dlt[n, L]`` and ``responded[n, L]`` (bool);
    ``doses[L]`` (cell); ``summary`` per level (DLT, response, CRS/ICANS ≥ 3 with Wilson
    intervals); ``comparison`` the underlying result."""

    doses: np.ndarray
    dlt: np.ndarray
    responded: np.ndarray
    summary: list[dict]
    comparison: Any


def dose_toxicity(scenario: Any, doses: Any, *, patients: int | None = None, seed: int | None = None,
                  crs_dlt_grade: int = 3, icans_dlt_grade: int = 3) -> DoseToxicity:
    """Treat the population of ``scenario`` (name, path or Scenario with ``[population]``) at
    each dose of ``doses`` (cells, increasing)."""
    from .clinical.probability import proportion
    from .comparison import run_comparison
    from .scenarios import Scenario, ScenarioError, load_scenario, with_dose
    from .scenarios.comparison import ComparisonArm
    from .trial import trial_design
    from .trials.designs import dlt_from_grades

    s = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    d = np.asarray(doses, dtype=float).reshape(-1)
    if d.size == 0 or not np.all(np.isfinite(d)) or np.any(d <= 0) or np.any(np.diff(d) <= 0):
        raise ScenarioError(file="--doses", value=list(map(float, d)), expected="increasing doses > 0 (cells)",
                            hint="e.g. --doses 1e7,3e7,1e8,3e8")
    base = trial_design(s)
    arms = tuple(ComparisonArm(f"{x:.3g} cells", with_dose(s, float(x)), None, "scenario", ()) for x in d)
    c = dataclasses.replace(base, arms=arms)
    r = run_comparison(c, patients=patients, seed=seed)
    n = r.summary["patients"]
    dlt = np.zeros((n, d.size), dtype=bool)
    resp = np.zeros((n, d.size), dtype=bool)
    rows = []
    for j, a in enumerate(arms):
        m = r.patients["arm"] == a.name
        crs, icans = r.patients["crs_max_grade"][m], r.patients["icans_max_grade"][m]
        dlt[:, j] = dlt_from_grades(crs, icans, crs_dlt_grade=crs_dlt_grade, icans_dlt_grade=icans_dlt_grade)
        resp[:, j] = r.patients["responded"][m]
        rows.append({
            "level": j, "dose_cells": float(d[j]),
            "dlt": proportion(int(dlt[:, j].sum()), n).as_dict(),
            "response": proportion(int(resp[:, j].sum()), n).as_dict(),
            "crs_grade_ge_3": proportion(int(np.sum(np.nan_to_num(crs) >= 3)), n).as_dict(),
            "icans_grade_ge_3": proportion(int(np.sum(np.nan_to_num(icans) >= 3)), n).as_dict(),
        })
    return DoseToxicity(d, dlt, resp, rows, r)


def simulate_escalation(dt: DoseToxicity, *, design: str = "boin", n_trials: int = 1000, seed: int = 0,
                        **options: Any) -> dict:
    """Operating characteristics of ``design`` ("3+3" or "boin"; ``options`` go to it, e.g.
    ``target``, ``n_cohorts``) when the patients are the virtual patients of ``dt``."""
    from .trials.designs import DESIGNS, DesignInputError

    key = str(design).lower()
    if key not in DESIGNS:
        raise DesignInputError("design", design, " or ".join(map(repr, DESIGNS)))
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise DesignInputError("n_trials", n_trials, "a whole number ≥ 1")
    fn = DESIGNS[key]
    n, L = dt.dlt.shape
    select = np.zeros(L)
    pts = np.zeros(L)
    dlts = np.zeros(L)
    resp = np.zeros(L)
    none = 0
    rate = 0.0
    for t in range(n_trials):
        rng = np.random.default_rng(np.random.SeedSequence(entropy=int(seed), spawn_key=(t,)))
        order = rng.integers(0, n, size=10_000)  # patients in order of enrolment

        def dlt(level: int, k: int, order: np.ndarray = order) -> bool:
            return bool(dt.dlt[order[k], level])

        res = fn(dlt, None, n_levels=L, **options)
        if res.mtd is None:
            none += 1
        else:
            select[res.mtd] += 1
            resp[res.mtd] += dt.responded[:, res.mtd].mean()
        pts += res.n_patients
        dlts += res.n_dlt
        rate += res.total_dlt / max(res.total_patients, 1)
    return {
        "design": key,
        "options": {k: v for k, v in options.items()},
        "n_trials": n_trials,
        "seed": seed,
        "true_dlt_rate": [float(x) for x in dt.dlt.mean(axis=0)],
        "true_response_rate": [float(x) for x in dt.responded.mean(axis=0)],
        "p_select": [float(x) for x in select / n_trials],
        "p_no_mtd": none / n_trials,
        "mean_patients": [float(x) for x in pts / n_trials],
        "mean_dlt": [float(x) for x in dlts / n_trials],
        "mean_total_patients": float(pts.sum() / n_trials),
        "dlt_rate": rate / n_trials,
        "response_rate_at_selected_dose": float(resp.sum() / max(n_trials - none, 1)),
    }
