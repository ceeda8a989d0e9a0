r"""Treatments compared in the same virtual patients, counted from referral.

A :class:`~livingdrug.scenarios.comparison.ComparisonScenario` gives a population and arms
(a model scenario plus, optionally, a logistics programme).  For each virtual patient *i* and
arm *a*:

1. **Patient.**  Shared variability (``[population]``) is drawn once per patient from its own
   stream, so patient *i* is the same person in every arm: the same weight, tumour growth
   rate, leukaemic burden at referral …  (:func:`livingdrug.trials.sample_population`; the
   model's ``patient_state`` turns the burden covariate into a consistent state: normal
   marrow, B and T cells follow it).  Arm-specific variability (e.g. of the product's
   expansion) uses a further independent stream per arm.
2. **Referral to infusion.**  The arm's programme is simulated with the comparison seed
   (:func:`livingdrug.logistics.simulate_programme`); virtual patient *i* is the programme's
   *i*-th referral.  Patient *i* draws screening, eligibility, bridging and its drop-out clock
   from the same stream in every programme, so who would drop out after how long is common to
   the arms; only the waits differ.  A patient who drops out (progression, death,
   ineligibility, failed manufacturing) is never infused.  Without a programme every patient
   is infused with no wait.
3. **Progression while waiting, by the disease model.**  The untreated interval before the
   scenario's start (which already contains lymphodepletion) is
   :math:`u_i = \max(0,\; w_{eff,i} - (t_{dose} - t_{start}))` with the referral-to-infusion
   time :math:`w_i` and :math:`w_{eff} = w` (times the programme's
   ``bridging_growth_factor`` for a bridged patient: bridging slows progression, an
   assumption).  The model itself is integrated for :math:`u_i` days without product
   (rounded to :data:`PRE_STEP` = 0.25 d), so the burden at lymphodepletion is the model's.
   This relies on the model being autonomous before its first timed event (no timed event
   falls before ``t_start``), which holds for every built-in model and is tested.
4. **Product.**  The scenario's dose (per kg × the patient's weight for a per-kg dose) or,
   with ``product = "manufactured"``, the product the programme made for this patient
   (dose, phenotype, transduction, VCN and fitness → model parameters;
   :func:`livingdrug.logistics.product_parameters`).
5. **Treatment and scoring** with the ODE engine, all of an arm's infused patients in one
   batched solve, scored like ``livingdrug run`` (response criteria, ASTCT CRS/ICANS grades).

Endpoints (per arm; proportions with Wilson 95 % intervals): share infused, referral to
infusion (median, IQR), response by intention to treat (every referred patient in the
denominator) and among the infused, CRS and ICANS of grade ≥ 1 and ≥ 3, relapse among
responders, event-free survival from referral (Kaplan–Meier; events: drop-out before
infusion, no response, relapse; censored at the end of follow-up).  Because the arms treat
the same patients, differences between arms are *paired*: discordant pairs give the
difference in ITT response with McNemar's exact test (McNemar Q 1947 Psychometrika 12:153).

Response means: B-ALL complete remission (< 5 % marrow blasts) by day 28; lymphoma (Lugano
2014) CR or PR by day 90; myeloma (IMWG 2016) PR or better by day 90.  ``complete_response``:
the B-ALL remission, Lugano CR, IMWG CR or sCR at day 90.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import inspect
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import __version__

__all__ = ["ComparisonResult", "ArmPlan", "ArmInputs", "run_comparison", "plan_arm", "arm_inputs", "arm_chunk",
           "allocation", "arm_patients",
           "advance_untreated", "PRE_STEP", "RESPONSE_DAY"]

#: resolution (d) of the untreated interval simulated before the scenario's start
PRE_STEP = 0.25
#: infused patients solved and scored together in a trial chunk (:func:`arm_chunk`)
SOLVE_BLOCK = 64
#: day after infusion by which a B-ALL complete remission counts as a response
RESPONSE_DAY = 28.0
#: day after infusion of the lymphoma (Lugano) and myeloma (IMWG) response assessment
LATE_RESPONSE_DAY = 90.0
_LATE_DAY = "day_90"
#: categories that count as a complete response at the late assessment (Lugano 2014 CR; IMWG 2016 CR or sCR)
_COMPLETE = {"response_lugano": ("CR",), "response_imwg": ("sCR", "CR")}
_DROPPED = ("ineligible", "progression", "death", "manufacturing failure")
#: what the endpoints of a comparison or trial mean (stored in every summary)
DEFINITIONS = {
    "response": "B-ALL: complete remission (< 5 % marrow blasts) by day 28; lymphoma: Lugano CR/PR at "
                "day 90; myeloma: IMWG PR or better at day 90",
    "itt": "every referred virtual patient is in the denominator; drop-outs count as non-responders",
    "efs": "event-free survival from referral: drop-out before infusion, no response (at day 28 for B-ALL, "
           "day 90 otherwise), relapse/progression (over the survival follow-up), death",
    "os": "overall survival from referral: death from any cause (drop-out for death, or the tumour-burden hazard "
          "h = h_bg + h_d (B/B_ref)^beta of livingdrug.trials.survival); censored at the end of follow-up "
          "(follow_up after infusion; after referral if not infused) or when the programme ended (still waiting)",
    "pfs": "progression-free survival from infusion (infused only): relapse/progression or death; B-ALL: blasts >= 5 % "
           "again after remission, no remission by day 28 = progression at day 28; lymphoma: Lugano PD; myeloma: "
           "IMWG PD; over the survival follow-up",
    "grading": "ASTCT consensus (Lee DW et al. 2019, Biol Blood Marrow Transplant 25:625)",
}


@dataclass(frozen=True)
class ComparisonResult:
    """``patients``: one row per (arm, patient) — column name → array; ``summary``:
    JSON-ready endpoints per arm and the paired differences; ``curves``: per arm the
    event-free survival from referral and median/10th/90th-percentile time courses
    (``t``, ``tumour``, ``car_blood``) of the infused; ``manifest``: provenance."""

    comparison: Any
    patients: dict[str, np.ndarray]
    summary: dict
    curves: dict
    manifest: dict


def run_comparison(comparison: Any, *, patients: int | None = None, seed: int | None = None,
                   on_arm: Callable[[str, dict], None] | None = None) -> ComparisonResult:
    """Run every arm of ``comparison`` (a :class:`ComparisonScenario`, built-in name or path)
    in the same ``patients`` virtual patients (default: the file's) with ``seed`` (default:
    the file's).  ``on_arm(name, arm_summary)`` is called as each arm finishes."""
    from .scenarios import ScenarioError
    from .scenarios.comparison import ComparisonScenario, load_comparison
    from .trials.population import Population

    c = comparison if isinstance(comparison, ComparisonScenario) else load_comparison(comparison)
    if patients is not None:
        if isinstance(patients, bool) or not isinstance(patients, int) or patients < 1:
            raise ScenarioError(file=c.source, field="population.patients", value=patients,
                                expected="a whole number ≥ 1", hint="e.g. --patients 200")
        c = dataclasses.replace(c, population=dataclasses.replace(c.population, size=patients))
        Population.__post_init__(c.population)
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ScenarioError(file=c.source, field="population.seed", value=seed,
                                expected="a whole number ≥ 0", hint="e.g. --seed 0")
        c = dataclasses.replace(c, seed=seed)
    n = c.population.size
    rows: list[dict[str, np.ndarray]] = []
    arms: dict[str, dict] = {}
    curves: dict[str, dict] = {}
    per_arm: dict[str, dict[str, np.ndarray]] = {}
    for a, arm in enumerate(c.arms):
        cols, curve, programme = _run_arm(c, a, arm, n)
        s = _arm_summary(cols, curve, programme)
        arms[arm.name] = s
        curves[arm.name] = curve
        per_arm[arm.name] = cols
        rows.append(cols)
        if on_arm is not None:
            on_arm(arm.name, s)
    keys = list(dict.fromkeys(k for r in rows for k in r))  # arm-specific columns are NaN elsewhere
    table = {k: np.concatenate([r[k] if k in r else np.full(r["patient"].size, np.nan) for r in rows])
             for k in keys}
    summary = {
        "comparison": c.name,
        "title": c.title,
        "patients": n,
        "seed": c.seed,
        "arms": arms,
        "allocation": c.allocation,
        "paired": _paired(per_arm, arms) if c.allocation == "paired" else [],
        "randomised": _randomised(per_arm, arms) if c.allocation == "randomised" else [],
        "definitions": dict(DEFINITIONS),
    }
    return ComparisonResult(c, table, summary, curves, _manifest(c))


def programme_outcomes(logistics: Any, scenario: Any, *, seed: int | None = None,
                       referred: int | None = None) -> dict:
    """Intention-to-treat outcomes of a logistics programme by the disease model: every
    patient the programme refers (``logistics``, a LogisticsScenario, with its seed or
    ``seed``) who is infused receives ``scenario`` (name, path or Scenario) after progressing
    by the model while waiting — a one-arm comparison (module docstring) whose patient *i* is
    the programme's referral *i*, with the scenario's ``[population]`` variability if it has
    one.  ``referred``: the programme's referral count when the caller has simulated it already
    (else it is simulated once to count).  Returns that arm's summary (:func:`run_comparison`)."""
    import hashlib

    from .logistics import simulate_programme
    from .scenarios import Scenario, load_scenario
    from .scenarios.comparison import ComparisonArm, ComparisonScenario
    from .trials.population import Population

    s = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    run_seed = logistics.seed if seed is None else int(seed)
    if referred is None:
        referred = int(simulate_programme(logistics.programme, run_seed).summary["referred"])
    pop = s.population if s.population is not None else Population(max(referred, 1))
    pop = dataclasses.replace(pop, size=max(referred, 1))
    text = f"{logistics.sha256}:{s.name}"
    c = ComparisonScenario(name=f"{logistics.name}+{s.name}", title=f"{logistics.title} — {s.title}",
                           description="", population=pop, seed=run_seed,
                           arms=(ComparisonArm(s.title, s, logistics, "scenario", ()),), source=str(logistics.source),
                           text=text, hash=hashlib.sha256(text.encode()).hexdigest())
    r = run_comparison(c)
    return next(iter(r.summary["arms"].values()))


def _manifest(c: Any) -> dict:
    import datetime as _dt
    import platform

    import numba
    import scipy

    return {
        "livingdrug_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "kind": "comparison",
        "comparison": {"name": c.name, "hash": c.hash, "source": str(c.source), "toml": c.text},
        "patients": int(c.population.size),
        "seed": int(c.seed),
        "engine": {"engine": "ode", "pre_step_days": PRE_STEP},
        "arms": [{"name": a.name, "scenario": a.scenario.name, "logistics": a.logistics.name if a.logistics else None,
                  "product": a.product} for a in c.arms],
        "platform": {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
                     "numba": numba.__version__, "machine": platform.machine()},
    }


def _covariate_defaults(fn: Callable[..., Any]) -> dict[str, float]:
    return {k: float(p.default) for k, p in inspect.signature(fn).parameters.items()
            if p.kind == p.KEYWORD_ONLY and isinstance(p.default, (int, float))}


def _programme_fates(arm: Any, seed: int, n: int) -> tuple[dict[str, np.ndarray], Any]:
    """Per-patient logistics of the first ``n`` referrals (the referral period is lengthened
    when the programme as written refers fewer than ``n`` patients)."""
    from .logistics import simulate_programme
    from .scenarios import ScenarioError

    prog = arm.logistics.programme
    res = simulate_programme(prog, seed)
    while res.summary["referred"] < n:
        if prog.months >= 120:
            raise ScenarioError(file=arm.logistics.source, field="programme.months", value=prog.months,
                                expected=f"a programme that refers at least {n} patients within 120 months",
                                hint="raise referrals_per_week or lower the number of patients")
        grow = 1.2 * n / max(res.summary["referred"], 1)
        prog = dataclasses.replace(prog, months=min(120.0, prog.months * max(grow, 1.25)))
        res = simulate_programme(prog, seed)
    return {k: v[:n] for k, v in res.patients.items()}, res


@dataclass(frozen=True)
class ArmPlan:
    """What one arm shares across every chunk of patients: its resolved scenario, the
    logistics of the whole cohort (``fates``: column → array over patients 0 … n−1, or
    ``None`` without a programme), each patient's untreated days and the cohort-wide longest
    one (``horizon``: every chunk integrates the untreated interval from the same time, so a
    patient's result does not depend on which chunk it is in)."""

    index: int
    arm: Any
    rs: Any
    n: int
    fates: dict[str, np.ndarray] | None
    programme: Any
    untreated: np.ndarray
    horizon: float


def plan_arm(c: Any, a: int, n: int) -> ArmPlan:
    """The :class:`ArmPlan` of arm ``a`` of comparison ``c`` for ``n`` patients (simulates its
    programme once for the whole cohort)."""
    from .scenarios import resolve

    arm = c.arms[a]
    rs = resolve(arm.scenario)
    fates, programme = _programme_fates(arm, c.seed, n) if arm.logistics is not None else (None, None)
    untreated = np.zeros(n)
    if fates is not None:
        infused = np.asarray(fates["outcome"], dtype=object) == "infused"
        wait = np.asarray(fates["referral_to_infusion"], dtype=float)
        growth = arm.logistics.programme.bridging_growth_factor
        w_eff = np.where(np.asarray(fates["bridged"], dtype=bool), wait * growth, wait)
        lead = float(rs.dose_time if rs.dose_time is not None else 0.0) - float(rs.t_start)
        untreated[infused] = np.round(np.maximum(0.0, w_eff[infused] - lead) / PRE_STEP) * PRE_STEP
    return ArmPlan(a, arm, rs, n, fates, programme, untreated, float(untreated.max(initial=0.0)))


#: spawn-key stream of the randomisation draw of each patient
ALLOCATION_STREAM = 0xA110C


def allocation(c: Any, patients: np.ndarray) -> np.ndarray:
    """Arm index of each patient under ``c.allocation``: ``-1`` (every arm) when paired; when
    randomised, patient *i* draws u ~ U(0, 1) from its own stream (seed, spawn key
    ``(i, ALLOCATION_STREAM)``) and joins the arm whose share of the cumulative ``ratio``
    contains u (simple randomisation; independent of chunking and of the other patients)."""
    patients = np.asarray(patients, dtype=np.int64)
    if getattr(c, "allocation", "paired") != "randomised":
        return np.full(patients.size, -1, dtype=np.int64)
    cum = np.cumsum(c.ratio) / np.sum(c.ratio)
    from .rng import patient_draws

    u = np.array(patient_draws(int(c.seed), patients, (ALLOCATION_STREAM,), lambda g: g.random()), dtype=float)
    return np.minimum(np.searchsorted(cum, u, side="right"), len(c.ratio) - 1).astype(np.int64)


def arm_patients(c: Any, a: int, patients: np.ndarray) -> np.ndarray:
    """The ``patients`` (cohort indices) that arm ``a`` treats: all of them when paired, the
    ones randomised to it otherwise."""
    patients = np.asarray(patients, dtype=np.int64)
    alloc = allocation(c, patients)
    return patients if getattr(c, "allocation", "paired") != "randomised" else patients[alloc == a]


def _run_arm(c: Any, a: int, arm: Any, n: int) -> tuple[dict[str, np.ndarray], dict, Any]:
    plan = plan_arm(c, a, n)
    cols, ds = arm_chunk(c, plan, arm_patients(c, a, np.arange(n)))
    curve: dict[str, Any] = {"t": np.asarray(plan.rs.t_out) - _t_dose(plan.rs)}
    if ds is not None:
        curve.update(_bands(ds, plan.rs.network))
    return cols, curve, plan.programme


def _t_dose(rs: Any) -> float:
    return float(rs.dose_time if rs.dose_time is not None else 0.0)


@dataclass(frozen=True)
class ArmInputs:
    """The virtual ``patients`` of one arm as an engine takes them: ``P[m]``/``y0[m, k]`` of the
    ``m`` infused ones (``idx`` into ``patients``; ``y0`` at referral, before the untreated
    interval ``untreated[idx]``), plus the drawn variability (``shared``, ``own``) and the
    logistics (``fates``, ``outcome``, ``wait``, ``bridged``, ``end``)."""

    patients: np.ndarray
    shared: dict[str, np.ndarray]
    own: dict[str, np.ndarray]
    fates: dict[str, np.ndarray]
    outcome: np.ndarray
    wait: np.ndarray
    bridged: np.ndarray
    end: np.ndarray
    idx: np.ndarray
    untreated: np.ndarray
    P: np.ndarray
    y0: np.ndarray


def arm_inputs(c: Any, plan: ArmPlan, patients: np.ndarray) -> ArmInputs:
    """Draw the virtual ``patients`` of one arm and build their parameters and initial states
    (module docstring, steps 1–4)."""
    from .logistics.manufacturing import K_EXP_REFERENCE
    from .models import MODELS
    from .trials.population import apply_effects, sample_population

    a, arm, rs = plan.index, plan.arm, plan.rs
    patients = np.asarray(patients, dtype=np.int64)
    n = patients.size
    net = rs.network
    names = list(net.param_names)
    pidx = {p: j for j, p in enumerate(names)}
    sidx = {s: k for k, s in enumerate(net.species_names)}
    typical = dict(zip(names, map(float, rs.P), strict=True))
    spec = MODELS.get(arm.scenario.model)
    state_fn = spec.patient_state if spec is not None else None
    cov_typ = _covariate_defaults(state_fn) if state_fn is not None else {}
    pop = c.population
    shared = sample_population(pop.variables, {**typical, **cov_typ}, c.seed, patients,
                               correlation=pop.correlation_matrix())
    shared = apply_effects(shared, pop.effects, typical)
    own = sample_population(arm.parameters, typical, c.seed, patients, stream=2 + a) if arm.parameters else {}

    # referral → infusion (the programme was simulated once for the whole cohort)
    if plan.fates is not None:
        fates = {k: v[patients] for k, v in plan.fates.items()}
        outcome = np.asarray(fates["outcome"], dtype=object)
        wait = np.asarray(fates["referral_to_infusion"], dtype=float)
        bridged = np.asarray(fates["bridged"], dtype=bool)
        end = np.asarray(fates["end"] - fates["referral"], dtype=float)
    else:
        fates = {}
        outcome = np.array(["infused"] * n, dtype=object)
        wait = np.zeros(n)
        bridged = np.zeros(n, dtype=bool)
        end = np.zeros(n)
    infused = outcome == "infused"
    idx = np.flatnonzero(infused)
    untreated = plan.untreated[patients]

    # parameters and state of each infused patient
    P = np.tile(np.asarray(rs.P, dtype=float), (idx.size, 1))
    for name, vals in {**shared, **own}.items():
        if name in pidx:
            P[:, pidx[name]] = vals[idx]
    dosing = arm.scenario.dosing
    dose_name = (net.meta.get("dose") or {}).get("param")
    weight_name = net.meta.get("weight_param")
    if dosing is not None and dosing.per_kg and dose_name in pidx and weight_name in pidx:
        P[:, pidx[dose_name]] = dosing.dose * P[:, pidx[weight_name]]
    if arm.product == "manufactured":
        P[:, pidx["dose"]] = fates["dose"][idx]
        for p, col in (("f_S", "f_S"), ("f_E", "f_E"), ("f_M", "f_M"), ("eta_tx", "eta_tx"), ("VCN", "vcn")):
            if p in pidx:
                P[:, pidx[p]] = fates[col][idx]
        # the product's fitness sets the typical expansion; patient variability multiplies it
        iiv = own.get("k_exp", shared.get("k_exp"))
        factor = iiv[idx] / typical["k_exp"] if iiv is not None else 1.0
        P[:, pidx["k_exp"]] = K_EXP_REFERENCE * fates["fitness"][idx] * factor
    y0 = np.tile(np.asarray(rs.y0, dtype=float), (idx.size, 1))
    if state_fn is not None and pop.variables:
        covs = {k: shared.get(k, np.full(n, v))[idx] for k, v in cov_typ.items()}
        st = state_fn({name: P[:, j] for j, name in enumerate(names)}, **covs)  # all patients at once
        for sp_name, val in st.items():
            if sp_name in sidx:
                y0[:, sidx[sp_name]] = val
        for sp_name, val in arm.scenario.initial.items():  # explicit overrides still win
            y0[:, sidx[sp_name]] = val
    return ArmInputs(patients, shared, own, fates, outcome, wait, bridged, end, idx, untreated, P, y0)


def arm_chunk(c: Any, plan: ArmPlan, patients: np.ndarray, *,
              with_dataset: bool = True) -> tuple[dict[str, np.ndarray], Any]:
    """Simulate and score the virtual ``patients`` (indices into the cohort) of one arm:
    ``(columns, dataset of the infused or None)`` (the dataset, with grades, only when
    ``with_dataset``: a trial chunk does without it).  A patient's columns depend only on its
    index, the comparison and its seed — not on the other patients of the chunk."""
    from .api import _dataset, with_grades
    from .engines.ode import solve
    from .network import compile_network

    rs, arm = plan.rs, plan.arm
    net = rs.network
    pidx = {p: j for j, p in enumerate(net.param_names)}
    dose_name = (net.meta.get("dose") or {}).get("param")
    inp = arm_inputs(c, plan, patients)
    patients, shared, own, fates = inp.patients, inp.shared, inp.own, inp.fates
    outcome, wait, bridged, end = inp.outcome, inp.wait, inp.bridged, inp.end
    idx, untreated, P, y0 = inp.idx, inp.untreated, inp.P, inp.y0
    n = patients.size
    infused = outcome == "infused"
    t_dose = _t_dose(rs)

    compiled = compile_network(net)
    y0, status_pre, pre_path = advance_untreated(compiled, rs, y0, P, untreated[idx], horizon=plan.horizon, path=True)
    cols = _empty_columns(n, arm.name)
    cols["patient"] = patients.copy()
    cols["outcome"] = outcome
    cols["referral_to_infusion"] = np.where(infused, wait, np.nan)
    cols["dropout_day"] = np.where(np.isin(outcome, _DROPPED), end, np.nan)
    cols["bridged"] = bridged
    cols["untreated_days"] = np.where(infused, untreated, np.nan)
    for name, vals in shared.items():
        cols[name] = vals
    for name, vals in own.items():
        cols[name] = vals
    if arm.product == "manufactured":
        for col in ("f_S", "f_E", "f_M", "vcn", "fitness"):
            cols[f"product_{col}"] = np.asarray(fates[col], dtype=float)
    ds = None
    assess = RESPONSE_DAY if net.observable_by_role("blasts_pct") is not None else LATE_RESPONSE_DAY
    survival = _Survival(c, plan, inp, compiled, pre_path, assess)
    if idx.size:
        t_eval = np.asarray(rs.t_out, dtype=float)
        if dose_name in pidx:
            cols["dose"][idx] = P[:, pidx[dose_name]]
        needs_ds = with_dataset or any(net.observable_by_role(r) is not None for r in ("tumour_spd", "m_protein"))
        # Without a dataset the infused are solved and scored SOLVE_BLOCK at a time: the
        # outputs (patients × times × species) then live in reused heap memory instead of
        # hundreds of MB of fresh pages per chunk, and peak memory does not grow with the chunk.
        # The blocks are solved by the solver threads (one per core; the compiled solver
        # releases the GIL), each block on one thread with the serial kernel, as many ahead as
        # there are threads, while this thread scores: no core waits at a parallel kernel's
        # barrier or for scoring.  A single block (with a dataset) uses the parallel kernel.
        step = idx.size if needs_ds else SOLVE_BLOCK
        starts = list(range(0, idx.size, step))

        def solve_block(lo: int) -> tuple[slice, Any]:
            blk = slice(lo, lo + step)
            return blk, solve(compiled, y0[blk], P[blk], t_eval, t0=float(rs.t_start), rtol=rs.rtol,
                              atol=rs.atol, parallel=len(starts) == 1)

        pool, ahead = _solver_pool()
        pending = collections.deque(pool.submit(solve_block, lo) for lo in starts[:ahead])
        try:
            for i in range(len(starts)):
                blk, sol = pending.popleft().result()
                if i + ahead < len(starts):
                    pending.append(pool.submit(solve_block, starts[i + ahead]))
                # only failed patients hold NaN (after their failure)
                obs = _observed(compiled, sol.t, sol.y, P[blk], rows=np.flatnonzero(sol.status != 0))
                status = np.where(status_pre[blk] != 0, status_pre[blk], sol.status)
                ds = _dataset(net, sol.t, sol.y, obs, status, sol.message) if needs_ds else None
                _score(cols, idx[blk], np.asarray(sol.t), obs, status, net, t_dose, ds)
                survival.infused(cols, blk, np.asarray(sol.t), obs[:, :, survival.sel], sol.y[:, -1], status)
        finally:
            concurrent.futures.wait(pending)  # on an error or Ctrl-C, leave no block running behind
        if ds is not None and with_dataset:
            ds = with_grades(ds, net)
    follow, progression = survival.finish(cols)
    cols["efs_day"], cols["efs_event"] = _efs(cols, follow, assess, progression)
    return cols, ds


_SOLVER: tuple[concurrent.futures.ThreadPoolExecutor, int] | None = None
_SOLVER_LOCK = threading.Lock()


def _solver_pool() -> tuple[concurrent.futures.ThreadPoolExecutor, int]:
    """The threads that solve trial blocks (numba's thread count: one per core unless the user
    set ``NUMBA_NUM_THREADS``) and how many blocks a chunk keeps in flight; kept for the
    process: a new thread per chunk would get its own malloc arena and, over hundreds of
    chunks, the process's memory would grow with the number of patients."""
    global _SOLVER
    import numba

    with _SOLVER_LOCK:  # two trial chunks may ask at once
        if _SOLVER is None:
            n = max(1, numba.get_num_threads())
            _SOLVER = (concurrent.futures.ThreadPoolExecutor(max_workers=n, thread_name_prefix="livingdrug-solve"), n)
        return _SOLVER


def advance_untreated(compiled: Any, rs: Any, y0: np.ndarray, P: np.ndarray,
                      days: np.ndarray, *, horizon: float | None = None, path: bool = False) -> Any:
    """States ``[n, k]`` after patient *i* has lived ``days[i]`` (a multiple of
    :data:`PRE_STEP`) untreated from ``y0[i]``, and the solver status per patient.

    One batched ODE solve from ``t_start − horizon`` (default ``max(days)``; give the
    cohort's longest interval so that every chunk starts at the same time) with output every
    :data:`PRE_STEP`;
    patient *i*'s state is read ``days[i]`` after the start.  Valid because the model is
    autonomous before its first timed event, which comes after ``t_start`` (so the absolute
    time at which the untreated interval is placed does not matter).

    ``path=True`` adds a third item: ``(tau, Y)``, the untreated course — ``tau[T]`` (d since
    referral, step :data:`PRE_STEP`) and the states ``Y[n, T, k]`` (patient *i*'s course is
    meaningful up to ``days[i]``) — or ``None`` when nobody waits untreated."""
    from .engines.ode import solve

    y0 = np.asarray(y0, dtype=float)
    status = np.zeros(y0.shape[0], dtype=np.int64)
    if y0.shape[0] == 0 or float(np.max(days)) <= 0:
        return (y0, status, None) if path else (y0, status)
    U = float(np.max(days)) if horizon is None else float(horizon)
    if U < float(np.max(days)):
        raise ValueError(f"horizon {U:g} d is shorter than the longest untreated interval {float(np.max(days)):g} d")
    t_pre = float(rs.t_start) - U + np.arange(int(round(U / PRE_STEP)) + 1) * PRE_STEP
    pre = solve(compiled, y0, P, t_pre, t0=float(t_pre[0]), rtol=rs.rtol, atol=rs.atol)
    k_end = np.round(np.asarray(days) / PRE_STEP).astype(int)  # patient i has lived days[i] at t_pre[k_end]
    out = pre.y[np.arange(y0.shape[0]), k_end], np.asarray(pre.status, dtype=np.int64)
    return (*out, (t_pre - t_pre[0], pre.y)) if path else out


def _empty_columns(n: int, arm: str) -> dict[str, np.ndarray]:
    nan = np.full(n, np.nan)
    return {
        "arm": np.array([arm] * n, dtype=object),
        "patient": np.arange(n, dtype=np.int64),
        "outcome": np.array([""] * n, dtype=object),
        "status": np.zeros(n, dtype=np.int64),
        "referral_to_infusion": nan.copy(),
        "dropout_day": nan.copy(),
        "untreated_days": nan.copy(),
        "bridged": np.zeros(n, dtype=bool),
        "dose": nan.copy(),
        "tumour_at_infusion": nan.copy(),
        "responded": np.zeros(n, dtype=bool),
        "complete_response": np.zeros(n, dtype=bool),
        "response_day": nan.copy(),
        "mrd_negative_day": nan.copy(),
        "relapse_day": nan.copy(),
        "crs_max_grade": nan.copy(),
        "icans_max_grade": nan.copy(),
        "car_cmax": nan.copy(),
        "car_tmax": nan.copy(),
        "car_auc28": nan.copy(),
        "tumour_nadir": nan.copy(),
    }


def _score(cols: dict, idx: np.ndarray, t: np.ndarray, obs: np.ndarray, status: np.ndarray, net: Any,
           t_dose: float, ds: Any) -> None:
    """Endpoint columns of the infused patients ``idx`` from their observables ``obs[n, T, j]``
    at times ``t``, all patients at once, with the definitions of ``livingdrug run``
    (:func:`livingdrug.api.summarise`): B-ALL response (:func:`~livingdrug.clinical.endpoints.ball_response`),
    exposure, ASTCT grades (:func:`~livingdrug.clinical.grading.grade_signs`); lymphoma and
    myeloma responses from the dataset ``ds``."""
    from .api import disease_responses, sign_observables
    from .clinical.probability import replicate_endpoints

    where = {o.name: j for j, o in enumerate(net.observables)}

    def role(r: str) -> np.ndarray | None:
        o = net.observable_by_role(r)
        return obs[:, :, where[o.name]] if o is not None else None

    ok = np.asarray(status) == 0
    cols["status"][idx] = status
    k_after = int(np.searchsorted(t, t_dose, side="left"))  # t[k_after:] are the times t >= t_dose
    k_dose = int(np.searchsorted(t, t_dose - 1e-9))
    tumour = role("tumour_total")
    if tumour is not None:
        cols["tumour_at_infusion"][idx] = tumour[:, k_dose]
        with np.errstate(all="ignore"):
            cols["tumour_nadir"][idx] = np.nanmin(tumour[:, k_after:], axis=1) if k_after < t.size else np.nan
    cart = role("cart_blood")
    blasts, mrd = role("blasts_pct"), role("mrd")
    neg = masked = None
    if tumour is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            an, mk = role("tumour_antigen_neg"), role("tumour_car_masked")
            neg = np.where(tumour > 0, an / tumour, 0.0) if an is not None else None
            masked = np.where(tumour > 0, mk / tumour, 0.0) if mk is not None else None
    ep = replicate_endpoints(t, t_dose=t_dose, blasts_pct=blasts, mrd=mrd, antigen_neg_fraction=neg,
                             masked_fraction=masked, cart=cart)
    if cart is not None:
        cols["car_cmax"][idx] = ep["cmax"]
        cols["car_tmax"][idx] = ep["tmax"]
        cols["car_auc28"][idx] = ep["auc_0_28"]
    if "time_to_remission" in ep:
        ttr = ep["time_to_remission"]
        resp = ok & (ttr <= RESPONSE_DAY)
        cols["responded"][idx] = resp
        cols["complete_response"][idx] = resp  # a B-ALL response is a complete remission
        cols["response_day"][idx] = np.where(resp, ttr, np.nan)
        cols["relapse_day"][idx] = np.where(resp, ep["relapse_time"], np.nan)
        cols["mrd_negative_day"][idx] = np.where(ok, ep["time_to_mrd_negative"], np.nan)
    elif ds is not None:
        for row, i in enumerate(idx):
            d = disease_responses(ds, net, row, t_dose=t_dose)
            d["status"] = int(status[row])
            responded, day, relapse = _response(d)
            cols["responded"][i], cols["response_day"][i], cols["relapse_day"][i] = responded, day, relapse
            cols["complete_response"][i] = responded and any(
                (d.get(k) or {}).get(_LATE_DAY) in cr for k, cr in _COMPLETE.items())
    names = sign_observables(net)
    if names:
        # a basic slice (a view) of the times after the dose, not a fancy-indexed copy
        for key, grade in max_grades({r: obs[:, k_after:, where[n]] for r, n in names.items()}).items():
            cols[f"{key}_max_grade"][idx] = np.where(ok, grade, np.nan)


def max_grades(signs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Maximum ASTCT CRS and ICANS grade per patient of sign arrays ``[n, T]`` (contract roles
    of :mod:`livingdrug.clinical.grading`), equal to the maximum over time of
    :func:`~livingdrug.clinical.grading.grade_signs` (its calls of ``crs_grade`` and
    ``icans_grade``, one each) but grading only the (patient, time)
    points where a grade can be above 0: CRS needs fever (T ≥ 38 °C), or anti-cytokine
    therapy given (Lee 2019: no fever and no therapy is grade 0) together with a sign that
    grades without fever — hypotension (SBP < 90 mmHg), a vasopressor, vasopressin or
    oxygen (therapy once given stays given, so gating on it alone would grade every later
    point); ICANS needs an ICE score below 10 or a consciousness, seizure, motor or oedema
    level ≥ 1.  Same rules, a few per cent of the work."""
    from .clinical.grading import FEVER_C, HYPOTENSION_SBP_MMHG, ICANS_SIGNS, crs_grade, icans_grade

    n = next(iter(signs.values())).shape[0]
    out: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore"):
        crs_on = np.zeros(next(iter(signs.values())).shape, dtype=bool)
        if "temperature_c" in signs:
            crs_on |= signs["temperature_c"] >= FEVER_C
        if "anticytokine_given" in signs:
            afebrile_sign = np.zeros_like(crs_on)
            for r, low in (("sbp_mmhg", True), ("vasopressors_n", False), ("vasopressin", False), ("o2_level", False)):
                if r in signs:
                    afebrile_sign |= (signs[r] < HYPOTENSION_SBP_MMHG) if low else (signs[r] >= 1)
            crs_on |= (signs["anticytokine_given"] >= 1) & afebrile_sign
        icans_on = np.zeros_like(crs_on)
        if "ice_score" in signs:
            icans_on |= signs["ice_score"] < 10
        for r in ("consciousness_level", "seizure_level", "motor_weakness", "cerebral_edema_level"):
            if r in signs:
                icans_on |= signs[r] >= 1
    crs_roles = ("temperature_c", "sbp_mmhg", "vasopressors_n", "o2_level", "o2_flow_l_min", "anticytokine_given",
                 "vasopressin")
    for key, on, roles in (("crs", crs_on, crs_roles), ("icans", icans_on, None)):
        present = [r for r in signs if (r in crs_roles) == (roles is not None)]
        if not present:
            continue
        grade = np.zeros(n, dtype=np.int64)
        rows, _ = np.nonzero(on)
        if rows.size:
            def sign(r: str, on: np.ndarray = on, m: int = rows.size) -> np.ndarray:
                return signs[r][on] if r in signs else np.full(m, np.nan)  # not recorded

            if key == "crs":  # the calls of grade_signs, for the one grade needed
                g = crs_grade(*(sign(r) for r in ("temperature_c", "sbp_mmhg", "vasopressors_n", "o2_level",
                                                  "anticytokine_given")),
                              o2_flow_l_min=sign("o2_flow_l_min"),
                              vasopressin=signs["vasopressin"][on] if "vasopressin" in signs else None)
            else:
                g = icans_grade(*(sign(r) for r in ICANS_SIGNS))
            np.maximum.at(grade, rows, g)
        out[key] = grade
    return out


def _response(d: dict) -> tuple[bool, float, float]:
    """(responded, day of response, day of relapse/progression) of one scored patient."""
    nan = math.nan
    if d.get("status", 0) != 0:
        return False, nan, nan
    if "response" in d:
        r = d["response"]
        day = r.get("time_to_remission")
        ok = day is not None and day <= RESPONSE_DAY
        rel = r.get("relapse_time")
        return ok, float(day) if ok else nan, float(rel) if ok and rel is not None else nan
    for key, good in (("response_lugano", ("CR", "PR")), ("response_imwg", ("sCR", "CR", "VGPR", "PR"))):
        if key in d:
            r = d[key]
            ok = r.get(_LATE_DAY) in good
            day = r.get("time_to_response")
            prog = r.get("progression_time")
            return ok, float(day) if ok and day is not None else nan, float(prog) if ok and prog is not None else nan
    return False, nan, nan


def _efs(cols: dict, follow: Any, assess: float,
         progression: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Event-free survival from referral (d) and whether the event was observed; no response
    is an event at the response assessment ``assess`` (d after infusion); a responder's event
    is its relapse/progression (``progression``, d after infusion over the survival follow-up,
    else ``relapse_day``); an infused patient without event is censored ``follow`` (d, scalar
    or per patient) after infusion; death (``death_day``, d from referral) ends EFS as an
    event when it comes first."""
    n = cols["patient"].size
    follow = np.broadcast_to(np.asarray(follow, dtype=float), (n,))
    relapse = cols["relapse_day"] if progression is None else progression
    dropped = np.isin(cols["outcome"], _DROPPED)
    infused = cols["outcome"] == "infused"
    responded = cols["responded"].astype(bool)
    relapsed = np.isfinite(relapse)
    w = cols["referral_to_infusion"]
    with np.errstate(invalid="ignore"):
        # still waiting when the programme ended: censored at the end of the wait
        day = np.maximum(np.nan_to_num(cols["dropout_day"]), 0.0)
        day = np.where(infused, np.where(~responded, w + assess, np.where(relapsed, w + relapse, w + follow)), day)
    day = np.where(dropped, cols["dropout_day"], day)
    event = dropped | (infused & (~responded | relapsed))
    if "death_day" in cols:
        dead = np.isfinite(cols["death_day"]) & (np.nan_to_num(cols["death_day"], nan=np.inf) <= day)
        day[dead], event[dead] = cols["death_day"][dead], True
    return day, event


#: output step (d) of the disease model integrated past the scenario's end for survival
FOLLOW_STEP = 1.0
_UNTREATED_DROPOUTS = ("ineligible", "progression", "manufacturing failure")


class _Survival:
    """Fills ``death_day``, ``os_day``/``os_event`` (d from referral) and ``pfs_day``/``pfs_event``
    (d from infusion, infused only) of the patients of a chunk (:mod:`livingdrug.trials.survival`;
    docs/trials.md): the drop-outs at construction, the infused block by block
    (:meth:`infused`, as each block is solved), then :meth:`finish`, which returns each
    patient's follow-up after infusion (d; NaN if not infused) and its relapse/progression day
    after infusion over that follow-up (NaN if none), for EFS.

    Who is exposed when: an infused patient from referral (its untreated course ``pre_path``
    and the scenario's lead-in, mapped linearly onto the real wait: bridging slows the course),
    through the treatment solve and, if ``follow_up`` is longer than the scenario, a
    continuation of the model to ``follow_up`` after infusion; a drop-out for death dies at its
    drop-out day; other drop-outs live their untreated disease from referral for the follow-up
    (one batched solve); a patient still waiting when the programme ended is censored then."""

    def __init__(self, c: Any, plan: ArmPlan, inp: ArmInputs, compiled: Any, pre_path: Any, assess: float) -> None:
        from .trials.survival import death_times, default_survival, exposures

        self.plan, self.inp, self.compiled, self.assess = plan, inp, compiled, assess
        rs, net = plan.rs, plan.rs.network
        n = inp.patients.size
        outcome = inp.outcome
        self.sm = sm = getattr(plan.arm.scenario, "survival", None) or default_survival(net)
        self.t_dose, self.t_end = t_dose, t_end = _t_dose(rs), float(rs.t_end)
        nan = np.full(n, np.nan)
        self.death, self.os_day, self.os_event = nan.copy(), nan.copy(), np.zeros(n, dtype=bool)
        self.pfs_day, self.pfs_event = nan.copy(), np.zeros(n, dtype=bool)
        self.follow, self.progression = nan.copy(), nan.copy()
        self.e = e = exposures(c.seed, inp.patients)
        self.horizon = horizon = sm.follow_up if sm is not None and sm.follow_up is not None else t_end - t_dose
        j_tum = _obs_index(net, "tumour_total")
        self.sel = _survival_observables(net)
        where = {j: k for k, j in enumerate(self.sel)}
        self.roles = {r: (where[j] if (j := _obs_index(net, r)) is not None else None) for r in _PROGRESSION_ROLES}
        self.j_sub = where[j_tum] if j_tum is not None else None
        # paths of the infused need the untreated course's burden (observables of its states)
        self.pre_b = None
        if pre_path is not None and j_tum is not None:
            tau_pre, Y = pre_path
            self.pre_b = (tau_pre, _observed(compiled, tau_pre, Y, inp.P)[:, :, j_tum])

        # drop-outs for death die at their drop-out day; the waiting are censored at the programme's end
        d_out = outcome == "death"
        self.death[d_out] = inp.end[d_out]
        self.os_day[d_out], self.os_event[d_out] = inp.end[d_out], True
        waiting = ~np.isin(outcome, ("infused", *_DROPPED))
        self.os_day[waiting] = np.maximum(inp.end[waiting], 0.0)

        # other drop-outs: untreated disease from referral
        others = np.flatnonzero(np.isin(outcome, _UNTREATED_DROPOUTS))
        if others.size:
            if sm is None or j_tum is None:
                self.os_day[others] = inp.end[others]
            else:
                fates = {**(plan.fates or {}), "outcome": np.full(plan.n, "infused", dtype=object)}
                as_treated = dataclasses.replace(plan, fates=fates, arm=dataclasses.replace(plan.arm, product="scenario"))
                inp2 = arm_inputs(c, as_treated, inp.patients[others])
                tau, burden = _untreated_course(compiled, rs, inp2.y0, inp2.P, horizon, j_tum)
                dd, end = death_times(np.broadcast_to(tau, burden.shape), burden, e[others], sm)
                self.death[others] = dd
                self.os_day[others] = np.where(np.isfinite(dd), dd, end)
                self.os_event[others] = np.isfinite(dd)

    def infused(self, cols: dict, rows: slice, t: np.ndarray, obs: np.ndarray, y_end: np.ndarray,
                status: np.ndarray) -> None:
        """The infused patients ``inp.idx[rows]`` (already scored into ``cols``), from their
        treatment solve: times ``t``, the observables ``obs[m, T, :]`` that
        :func:`_survival_observables` selects, final states ``y_end`` and solver status."""
        from .trials.survival import death_times

        inp, rs, sm, t_dose, horizon = self.inp, self.plan.rs, self.sm, self.t_dose, self.horizon
        idx = inp.idx[rows]
        P = inp.P[rows]
        w = inp.wait[idx]
        if horizon > self.t_end - t_dose + 1e-9:
            tc, oc = _continue(self.compiled, rs, y_end, P, status, self.t_end, t_dose + horizon)
            t_all, o_all = np.concatenate([t, tc]), np.concatenate([obs, oc[:, :, self.sel]], axis=1)
        else:
            t_all, o_all = t, obs
        keep = t_all <= t_dose + horizon + 1e-9
        t_all, o_all = t_all[keep], o_all[:, keep]
        post = t_all >= t_dose - 1e-9
        # follow-up ends at the horizon or where the patient's solve failed (NaN)
        finite = np.logical_and.accumulate(np.isfinite(o_all[:, post]).all(axis=2), axis=1)
        last = np.where(finite.any(axis=1), np.max(np.where(finite, np.arange(finite.shape[1]), -1), axis=1), -1)
        tp = t_all[post] - t_dose
        f_end = np.where(last >= 0, tp[np.maximum(last, 0)], 0.0)
        self.follow[idx] = f_end
        prog = _progression(cols, idx, self.roles, tp, o_all[:, post], self.assess)
        self.progression[idx] = prog
        if sm is not None and self.j_sub is not None:
            pre = None if self.pre_b is None else (self.pre_b[0], self.pre_b[1][rows])
            s, b = _infused_paths(rs, inp.untreated[idx], w, pre, t_all, o_all[:, :, self.j_sub])
            dd, end = death_times(s, b, self.e[idx], sm)
        else:
            dd, end = np.full(idx.size, np.nan), w + f_end
        self.death[idx] = dd
        self.os_day[idx] = np.where(np.isfinite(dd), dd, end)
        self.os_event[idx] = np.isfinite(dd)
        after = dd - w  # death after infusion (d)
        p_first = np.fmin(prog, after)
        self.pfs_event[idx] = np.isfinite(p_first) & (p_first <= f_end + 1e-9)
        self.pfs_day[idx] = np.where(self.pfs_event[idx], p_first, f_end)
        # death while waiting: never infused in fact, so not in the PFS population (OS and EFS keep the death)
        gone = np.isfinite(dd) & (dd < w)
        self.pfs_day[idx[gone]], self.pfs_event[idx[gone]] = np.nan, False

    def finish(self, cols: dict) -> tuple[np.ndarray, np.ndarray]:
        cols["death_day"], cols["os_day"], cols["os_event"] = self.death, self.os_day, self.os_event
        cols["pfs_day"], cols["pfs_event"] = self.pfs_day, self.pfs_event
        return self.follow, self.progression


def _survival_observables(net: Any) -> list[int]:
    """Indices of the observables :class:`_Survival` reads: the tumour burden and the
    progression criteria (only these are kept from each solved block of a chunk)."""
    return sorted({j for r in ("tumour_total", *_PROGRESSION_ROLES) if (j := _obs_index(net, r)) is not None})


def _obs_index(net: Any, role: str) -> int | None:
    o = net.observable_by_role(role)
    return None if o is None else [x.name for x in net.observables].index(o.name)


def _observed(compiled: Any, t: np.ndarray, y: np.ndarray, P: np.ndarray, rows: Any = None) -> np.ndarray:
    """Observables ``[n, T, j]`` of the states ``y[n, T, k]`` at ``t``: NaN wherever a state is
    not finite (after a failed solve; those points are evaluated on zeros, then blanked).
    ``rows``: the only patients that can hold NaN (e.g. those whose solve failed), default all."""
    y = np.asarray(y, dtype=float)
    rows = slice(None) if rows is None else rows
    bad = ~np.isfinite(y[rows]).all(axis=2)
    if not bad.any():
        return compiled.observables_batch(t, y, P)
    y = y.copy()
    y[rows] = np.nan_to_num(y[rows], nan=0.0)
    obs = compiled.observables_batch(t, y, P)
    obs[rows] = np.where(bad[:, :, None], np.nan, obs[rows])
    return obs


def _untreated_course(compiled: Any, rs: Any, y0: np.ndarray, P: np.ndarray, days: float,
                      j_tum: int) -> tuple[np.ndarray, np.ndarray]:
    """Tumour burden (cells) ``[n, T]`` of patients living ``days`` untreated from ``y0``, at
    ``tau`` (d since referral, step :data:`FOLLOW_STEP`); one batched solve ending at
    ``t_start`` (the model is autonomous before its first timed event; see
    :func:`advance_untreated`).  A failed solve holds NaN (the follow-up ends there)."""
    from .engines.ode import solve

    m = int(math.ceil(days / FOLLOW_STEP - 1e-9))
    tau = np.minimum(np.arange(m + 1) * FOLLOW_STEP, days)
    t = float(rs.t_start) - days + tau
    sol = solve(compiled, np.asarray(y0, dtype=float), P, t, t0=float(t[0]), rtol=rs.rtol, atol=rs.atol)
    return tau, _observed(compiled, t, sol.y, P)[:, :, j_tum]


def _continue(compiled: Any, rs: Any, y_end: np.ndarray, P: np.ndarray, status: np.ndarray, t_end: float,
              t_stop: float) -> tuple[np.ndarray, np.ndarray]:
    """Observables ``[n, T, j]`` of the model continued from the treatment solve's final states
    ``y_end`` (at ``t_end``) to ``t_stop``, every :data:`FOLLOW_STEP` days (the last step may be
    shorter); NaN for patients whose solve failed before or now.  State events that fire again
    after ``t_end`` act again (a ``once`` event's memory is not carried over)."""
    from .engines.ode import solve

    m = int(math.ceil((t_stop - t_end) / FOLLOW_STEP - 1e-9))
    tc = np.minimum(t_end + np.arange(1, m + 1) * FOLLOW_STEP, t_stop)
    y0 = np.asarray(y_end, dtype=float)
    failed = (np.asarray(status) != 0) | ~np.isfinite(y0).all(axis=1)
    sol = solve(compiled, np.where(failed[:, None], 0.0, y0), P, tc, t0=t_end, rtol=rs.rtol, atol=rs.atol)
    obs = _observed(compiled, tc, sol.y, P)
    obs[failed | (np.asarray(sol.status) != 0)] = np.nan
    return tc, obs


def _infused_paths(rs: Any, untreated: np.ndarray, wait: np.ndarray, pre: Any,
                   t: np.ndarray, tumour: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Real time from referral (d) and tumour burden (cells) of each infused patient,
    NaN-padded ``[m, L]``: the untreated course (``pre_path``, model time τ = 0 … u), the
    scenario's lead-in (τ = u + t − t_start up to the dose), both mapped onto the real wait w
    by s = τ · w/(u + lead) (the wait that the bridging factor stretched back to real time),
    then s = w + (t − t_dose) after the dose."""
    t_dose, t_start = _t_dose(rs), float(rs.t_start)
    lead = t_dose - t_start
    tb = t[t <= t_dose + 1e-9] - t_start  # the scenario's lead-in (model time after the untreated course)
    ta = t[t > t_dose + 1e-9] - t_dose  # after the dose
    m = untreated.size
    u = np.asarray(untreated, dtype=float)
    w = np.asarray(wait, dtype=float)
    if pre is not None:
        tau_pre, pre_b = pre
        n1 = np.where(u > 0, np.round(u / PRE_STEP).astype(np.int64) + 1, 0)  # points of the untreated course
    else:
        tau_pre, pre_b = np.zeros(1), np.full((m, 1), np.nan)
        n1 = np.zeros(m, dtype=np.int64)
    nb, na = tb.size, ta.size
    L = int(n1.max(initial=0)) + nb + na
    scale = np.where(u + lead > 0, w / np.where(u + lead > 0, u + lead, 1.0), 0.0)[:, None]
    s = np.full((m, L), np.nan)
    b = np.full((m, L), np.nan)
    plain = n1 == 0  # no untreated course: the lead-in and the treatment, side by side
    if plain.any():
        s[plain, :nb] = (u[plain, None] + tb[None, :]) * scale[plain]
        s[plain, nb:nb + na] = w[plain, None] + ta[None, :]
        b[plain, :nb + na] = tumour[plain, :nb + na]
    course = np.flatnonzero(~plain)
    if course.size:  # the untreated course first, its length varying by patient
        j = np.arange(L)[None, :]
        k1 = n1[course, None]
        in1, in2, in3 = j < k1, (j >= k1) & (j < k1 + nb), (j >= k1 + nb) & (j < k1 + nb + na)
        i1 = np.clip(j, 0, tau_pre.size - 1)
        i2 = np.clip(j - k1, 0, max(nb - 1, 0))
        i3 = np.clip(j - k1 - nb, 0, max(na - 1, 0))
        rows = course[:, None]
        sc = scale[course]
        nan = np.nan
        s[course] = np.where(in1, tau_pre[i1] * sc,
                             np.where(in2, (u[rows] + tb[i2]) * sc if nb else nan,
                                      np.where(in3, w[rows] + ta[i3] if na else nan, nan)))
        b[course] = np.where(in1, pre_b[rows, np.clip(j, 0, pre_b.shape[1] - 1)],
                             np.where(in2, tumour[rows, i2] if nb else nan,
                                      np.where(in3, tumour[rows, nb + i3] if na else nan, nan)))
    return s, b


#: observable roles that define relapse/progression (:func:`_progression`)
_PROGRESSION_ROLES = ("blasts_pct", "tumour_spd", "m_protein", "marrow_plasma_pct", "myeloma_mrd")


def _progression(cols: dict, idx: np.ndarray, j: dict[str, int | None], tp: np.ndarray, obs: np.ndarray,
                 assess: float) -> np.ndarray:
    """Relapse/progression day after infusion (NaN if none in the follow-up) of the infused
    ``idx`` from their observables ``obs[m, T, :]`` (``j``: role → column, None if absent) at
    ``tp`` (d after infusion), over the whole
    survival follow-up.  B-ALL: a responder relapses when marrow blasts are ≥ 5 % again after
    remission; a non-responder (no remission by day 28) has refractory disease, counted as
    progressing at the assessment.  Lymphoma: Lugano PD (SPD ≥ 1.5 × nadir), responder or not.
    Myeloma: IMWG PD (M-protein up ≥ 25 % and ≥ 0.5 g/dL from the nadir), responder or not.
    A model without these read-outs: a responder's ``relapse_day``, a non-responder at
    ``assess``."""
    from .clinical.endpoints import REMISSION_BLASTS_PCT
    from .clinical.response import imwg_response, lugano_response

    m = idx.size
    out = np.full(m, np.nan)
    resp = np.asarray(cols["responded"][idx], dtype=bool)
    ok = np.asarray(cols["status"][idx]) == 0
    with np.errstate(invalid="ignore"):
        if j["blasts_pct"] is not None:
            bl = obs[:, :, j["blasts_pct"]]
            rday = np.asarray(cols["response_day"][idx], dtype=float)
            again = (bl >= REMISSION_BLASTS_PCT) & (tp[None, :] >= np.nan_to_num(rday, nan=np.inf)[:, None])
            first = np.argmax(again, axis=1)
            out = np.where(resp & again.any(axis=1), tp[first], np.nan)
            out = np.where(~resp, assess, out)
        elif j["tumour_spd"] is not None or j["m_protein"] is not None:
            for r in range(m):
                if not ok[r]:
                    out[r] = assess if not resp[r] else np.nan
                    continue
                if j["tumour_spd"] is not None:
                    out[r] = lugano_response(tp, obs[r, :, j["tumour_spd"]], t_dose=0.0).progression_time
                else:
                    jp, jm = j["marrow_plasma_pct"], j["myeloma_mrd"]
                    out[r] = imwg_response(tp, obs[r, :, j["m_protein"]], t_dose=0.0,
                                           marrow_plasma_pct=obs[r, :, jp] if jp is not None else None,
                                           myeloma_mrd=obs[r, :, jm] if jm is not None else None).progression_time
        else:
            out = np.where(resp, np.asarray(cols["relapse_day"][idx], dtype=float), assess)
    return out


def _bands(ds: Any, net: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, role, label in (("tumour", "tumour_total", "tumour cells in the body"),
                             ("car_blood", "cart_blood", "product (CAR) cells per µL blood")):
        o = net.observable_by_role(role)
        if o is None:
            continue
        v = np.asarray(ds[o.name].values, dtype=float)
        with np.errstate(all="ignore"):
            q = np.nanpercentile(v, [10, 50, 90], axis=0) if v.shape[0] else np.full((3, v.shape[1]), np.nan)
        out[key] = {"p10": q[0], "median": q[1], "p90": q[2], "unit": o.unit, "label": label}
    return out


def _table(cols: Any) -> Any:
    """``cols`` as :class:`~livingdrug.io.results.Batches` (a mapping of arrays is read in
    slices)."""
    from .io.results import Batches

    return cols if isinstance(cols, Batches) else Batches(cols)


def _infused(b: Mapping[str, Any]) -> np.ndarray:
    return np.asarray(b["outcome"] == "infused", dtype=bool)


def _arm_summary(cols: Any, curve: dict, programme: Any) -> dict:
    """The endpoints of one arm (a mapping of arrays or a :class:`~livingdrug.io.results.Batches`),
    computed batch by batch (:mod:`livingdrug.clinical.streaming`): memory does not grow with
    the number of patients.  ``curve`` receives the survival curves for figures."""
    from .clinical.probability import proportion
    from .clinical.streaming import column_scan, kaplan_meier_scan, percentiles
    from .trials.survival import MONTH_DAYS

    t = _table(cols)
    k: collections.Counter = collections.Counter()
    outcomes: collections.Counter = collections.Counter()
    has_death = "death_day" in t
    for b in t(["outcome", "status", "responded", "complete_response", "relapse_day", "crs_max_grade",
                "icans_max_grade", *(("death_day",) if has_death else ())]):
        infused = _infused(b)
        ok = infused & (b["status"] == 0)
        resp = np.asarray(b["responded"], dtype=bool)
        names, counts = np.unique(b["outcome"], return_counts=True)
        outcomes.update({str(o): int(c) for o, c in zip(names, counts, strict=True)})
        k["n"] += resp.size
        k["infused"] += int(infused.sum())
        k["ok"] += int(ok.sum())
        k["failed"] += int((infused & (b["status"] != 0)).sum())
        k["resp"] += int(resp.sum())
        k["resp_ok"] += int((resp & ok).sum())
        k["cr"] += int(np.asarray(b["complete_response"], dtype=bool).sum())
        k["rel"] += int((np.isfinite(b["relapse_day"]) & resp).sum())
        for key in ("crs_max_grade", "icans_max_grade"):
            for g in (1, 3):
                k[key, g] += int(((b[key] >= g) & ok).sum())
        if has_death:
            k["deaths"] += int(np.isfinite(b["death_day"]).sum())
    n, n_ok = k["n"], k["ok"]

    def quart(col: str) -> dict:
        (q1, med, q3), m = percentiles(column_scan(t, col), [25, 50, 75])
        if m == 0:
            return {"median": None, "q1": None, "q3": None, "n": 0}
        return {"median": float(med), "q1": float(q1), "q3": float(q3), "n": m}

    marks = [m * MONTH_DAYS for m in (6, 12)]
    km = kaplan_meier_scan(column_scan(t, "efs_day", weight="efs_event"), landmarks=marks)
    os_km = kaplan_meier_scan(column_scan(t, "os_day", weight="os_event"), landmarks=marks) if "os_day" in t else None
    pfs_km = (kaplan_meier_scan(column_scan(t, "pfs_day", where=_infused, weight="pfs_event", extra=("outcome",)),
                                landmarks=marks) if "pfs_day" in t else None)
    s: dict[str, Any] = {
        "referred": n,
        "infused": k["infused"],
        "infused_share": proportion(k["infused"], n).as_dict(),
        "outcomes": {o: int(outcomes.get(o, 0)) for o in ("infused", *_DROPPED, "waiting")},
        "failed_solves": k["failed"],
        "referral_to_infusion_days": quart("referral_to_infusion"),
        "untreated_days": quart("untreated_days"),
        "tumour_at_infusion": quart("tumour_at_infusion"),
        "response_itt": proportion(k["resp"], n).as_dict(),
        "response_if_infused": proportion(k["resp_ok"], n_ok).as_dict(),
        "complete_response_itt": proportion(k["cr"], n).as_dict(),
        "relapse_among_responders": proportion(k["rel"], k["resp"]).as_dict(),
        "crs_grade_ge_1": proportion(k["crs_max_grade", 1], n_ok).as_dict(),
        "crs_grade_ge_3": proportion(k["crs_max_grade", 3], n_ok).as_dict(),
        "icans_grade_ge_1": proportion(k["icans_max_grade", 1], n_ok).as_dict(),
        "icans_grade_ge_3": proportion(k["icans_max_grade", 3], n_ok).as_dict(),
        "car_cmax": quart("car_cmax"),
        "efs": {"median_days": km.as_dict()["median"],
                **{f"at_{m}_months": (lm or {}).get("estimate") for m in (6, 12) for lm in [_landmark(km, m)]}},
    }
    for key, c in (("efs", km), ("os", os_km), ("pfs", pfs_km)):
        if c is not None:
            if key != "efs":
                s[key] = _km_summary(c)
            curve[key] = {"time": c.time, "survival": c.survival, "low": c.low, "high": c.high}
    if has_death:
        s["deaths"] = k["deaths"]
    if programme is not None:
        s["programme"] = {"months": programme.programme.months, "referred": programme.summary["referred"],
                          "vein_to_vein_days": programme.summary["vein_to_vein_days"]}
    return s


def _km_summary(km: Any) -> dict:
    """Median (d) with its 95 % interval (Brookmeyer–Crowley, read off the Greenwood log-log
    band; None: not reached) and Ŝ at 6 and 12 months (:func:`_landmark`)."""
    d = km.as_dict()
    out: dict[str, Any] = {"n": d["n"], "events": d["events"], "median_days": d["median"],
                           "median_low_days": d["median_low"], "median_high_days": d["median_high"]}
    for m in (6, 12):
        out[f"at_{m}_months"] = _landmark(km, m)
    return out


def _landmark(km: Any, months: int) -> dict | None:
    """Ŝ at ``months`` × :data:`MONTH_DAYS` with its pointwise Greenwood log-log interval, or
    None where the follow-up ends before it (``km``: a
    :class:`~livingdrug.clinical.streaming.KaplanMeierScan` asked for that landmark).  A
    follow-up that ends less than :data:`LANDMARK_SLACK_DAYS` before the landmark reads Ŝ at
    its end (a 365-day follow-up gives the 12-month figure, 365.25 d); the curve is not
    extrapolated further."""
    from .trials.survival import LANDMARK_SLACK_DAYS, MONTH_DAYS

    t = months * MONTH_DAYS
    if km.n == 0 or t > km.last_time + LANDMARK_SLACK_DAYS:
        return None
    s, lo, hi = km.landmarks[t]
    return {"estimate": s, "low": lo, "high": hi}


def _logrank(a: Any, b: Any, day: str, event: str) -> float | None:
    """Log-rank p-value of arm ``a`` against arm ``b`` (tables, :func:`_table`) on columns
    ``day``/``event`` (:func:`livingdrug.clinical.streaming.logrank_scan`: scipy.stats.logrank's
    statistic, batch by batch); None without an event or without the columns."""
    from .clinical.streaming import column_scan, logrank_scan

    if day not in a or day not in b:
        return None
    return logrank_scan(column_scan(a, day, weight=event), column_scan(b, day, weight=event))


def _randomised(per_arm: Mapping[str, Any], arms: Mapping[str, dict]) -> list[dict]:
    """Each arm against the first in a randomised trial (different patients): difference in
    ITT response with Newcombe's hybrid-score 95 % interval (Newcombe RG 1998 Stat Med 17:873,
    method 10) and Fisher's exact test; CRS ≥ 3 among the infused likewise (both from the
    counts of the arm summaries ``arms``, :func:`_arm_summary`); event-free survival by the
    log-rank test (scipy.stats.logrank's statistic) on the arms' tables (mappings of arrays or
    :class:`~livingdrug.io.results.Batches`, read batch by batch)."""
    from scipy.stats import fisher_exact

    from .clinical.probability import proportion

    def diff(k1: int, n1: int, k0: int, n0: int) -> dict:
        p1, p0 = proportion(k1, n1), proportion(k0, n0)
        d = p1.estimate - p0.estimate
        lo = d - math.sqrt((p1.estimate - p1.low) ** 2 + (p0.high - p0.estimate) ** 2)
        hi = d + math.sqrt((p1.high - p1.estimate) ** 2 + (p0.estimate - p0.low) ** 2)
        p = float(fisher_exact([[k1, n1 - k1], [k0, n0 - k0]]).pvalue) if n1 and n0 else None
        return {"difference": d, "low": lo, "high": hi, "fisher_p": p, "arm": [k1, n1], "reference": [k0, n0]}

    def counts(name: str, key: str) -> tuple[int, int]:
        p = arms[name][key]
        return p["successes"], p["trials"]

    tables = {name: _table(t) for name, t in per_arm.items()}
    names = list(tables)
    ref = tables[names[0]]
    out = []
    for name in names[1:]:
        o = tables[name]
        out.append({
            "arm": name, "reference": names[0],
            "response_itt": diff(*counts(name, "response_itt"), *counts(names[0], "response_itt")),
            "crs_grade_ge_3": diff(*counts(name, "crs_grade_ge_3"), *counts(names[0], "crs_grade_ge_3")),
            "efs_logrank_p": _logrank(o, ref, "efs_day", "efs_event"),
            "os_logrank_p": _logrank(o, ref, "os_day", "os_event"),
            "pfs_logrank_p": _logrank(o, ref, "pfs_day", "pfs_event"),
        })
    return out


def _paired(per_arm: Mapping[str, Any], arms: Mapping[str, dict]) -> list[dict]:
    """Each arm against the first, in the same patients (McNemar's exact test on discordant
    pairs for ITT response; CRS ≥ 1 among patients infused in both arms; the difference of
    the median waits of the arm summaries ``arms``).  Arms are mappings of arrays or
    :class:`~livingdrug.io.results.Batches` holding the same patients in the same order, read
    side by side batch by batch."""
    from scipy.stats import binomtest

    from .clinical.streaming import zip_aligned

    tables = {name: _table(t) for name, t in per_arm.items()}
    names = list(tables)
    out = []
    ref = tables[names[0]]
    cols = ["responded", "outcome", "crs_max_grade"]
    for name in names[1:]:
        other = tables[name]
        k: collections.Counter = collections.Counter()
        for b0, b1 in zip_aligned(ref(cols), other(cols)):
            r0, r1 = np.asarray(b0["responded"], dtype=bool), np.asarray(b1["responded"], dtype=bool)
            k["b"] += int(np.sum(r1 & ~r0))  # respond only on the other arm
            k["c"] += int(np.sum(r0 & ~r1))
            k["n"] += r0.size
            both = _infused(b0) & _infused(b1)
            k["both"] += int(both.sum())
            k["crs0"] += int(np.sum((np.nan_to_num(b0["crs_max_grade"]) >= 1) & both))
            k["crs1"] += int(np.sum((np.nan_to_num(b1["crs_max_grade"]) >= 1) & both))
        b, cc, n = k["b"], k["c"], k["n"]
        p = float(binomtest(b, b + cc, 0.5).pvalue) if b + cc else 1.0
        m1 = arms[name]["referral_to_infusion_days"]["median"]
        m0 = arms[names[0]]["referral_to_infusion_days"]["median"]
        out.append({
            "arm": name,
            "reference": names[0],
            "response_itt_difference": (b - cc) / n if n else None,
            "discordant_pairs": {"only_arm": b, "only_reference": cc},
            "mcnemar_p": p,
            "both_infused": k["both"],
            "crs_grade_ge_1_difference_both_infused":
                float(k["crs1"] / k["both"] - k["crs0"] / k["both"]) if k["both"] else None,
            "referral_to_infusion_median_difference_days": m1 - m0 if m1 is not None and m0 is not None else None,
        })
    return out
