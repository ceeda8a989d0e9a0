"""Stochastic ensemble runs: many random replicates of one patient, scored and summarised.

Front door (usually through :func:`livingdrug.simulate`)::

    r = run_ensemble(scenario)                 # scenario.simulation.engine in ssa|tau|hybrid
    r.summary["probabilities"]["cure"]         # {'estimate': 0.42, 'low': …, 'high': …}
    r.endpoints                                # pandas DataFrame, one row per replicate
    r.dataset["leukaemia_total"]               # xarray (replicate, time)
    s = run_sweep(scenario, "dose=1e6:1e9:log:7")   # P(cure) against the dose

Pipeline (DESIGN.md: scenario → network → solve → score → render)
-----------------------------------------------------------------
1. **Integer counts.**  The stochastic engines count individual cells, so the initial
   amounts of the count species (those marked ``nonnegative``) are rounded to whole numbers.
   A rounding that changes a value by more than :data:`ROUNDING_TOLERANCE` (5 %) of
   ``max(|value|, 1)`` is refused with an error naming the species (e.g. a model in cells/µL
   such as Kimmel 2021, whose 0.36 CAR-T/µL is not a number of cells).
2. **Count parameters.**  A model may declare ``network.meta["count_params"] =
   {name: {"mean": <sympy expression of parameters>, "condition": "at_least_one" | absent}}``:
   per replicate, parameter ``name`` is drawn ~ Poisson(λ) with λ the mean evaluated on the
   replicate's parameters, zero-truncated (conditioned on ≥ 1) when the condition is
   ``at_least_one``; the summary reports P(≥ 1) = 1 − e^{−λ}, so an unconditional
   probability is P(≥ 1) × the conditional one.  The draws come from replicate i's own
   generator ``SeedSequence(seed, spawn_key=(i, 0))`` — the first child of the per-patient
   sequence of :func:`livingdrug.rng.patient_seed_sequence`, distinct from the engine's
   stream ``SeedSequence(seed, spawn_key=(i,))``.  Zero-truncated draws: sequential
   inversion of the truncated law for λ < 1, otherwise rejection of zeros (acceptance
   ``1 − e^{−λ} ≥ 0.63``).
3. **Guard against hopeless exact runs** (engine ``ssa`` only).  The exact SSA fires every
   reaction one at a time.  The firings per replicate are estimated as
   ``max a0 × (t_end − t_start)``, with ``a0`` the total propensity (1/d) at the start and
   just after each timed event (dose, lymphodepletion) applied in time order.  A run is
   refused, recommending ``hybrid`` or ``tau``, when that estimate exceeds the engine's
   ``max_events`` per replicate or :data:`MAX_EXACT_FIRINGS` over the ensemble.
4. **Chunks.**  Replicates are simulated in chunks of ``chunk_size`` (default
   :data:`DEFAULT_CHUNK`).  Replicate i's random stream depends only on ``(seed, i)``, so the
   results are bitwise identical whatever the chunk size.  After each chunk ``on_chunk``
   receives a :class:`ChunkReport` with that chunk's endpoints (the CLI writes it to disk), so
   an interrupted run loses no finished replicate.
5. **Endpoints** per replicate (:func:`livingdrug.clinical.probability.replicate_endpoints`)
   and the **summary** (:func:`livingdrug.clinical.probability.ensemble_summary`):
   probabilities with Wilson 95 % intervals, time-to-cure quantiles, relapse-free survival
   (Kaplan–Meier), exposure ranges.  Replicates whose simulation failed (status ≠ 0: e.g.
   ``max_events`` reached) are counted and listed in ``summary["failed_replicates"]``, and
   excluded from the probabilities' denominators — never silently dropped.
6. **Trajectories.**  Observables of at most :data:`MAX_TRAJECTORY_VALUES` values
   (replicates × times × observables; 2×10⁷ float64 ≈ 160 MB) are kept: all replicates when
   they fit, else the first ``R_keep`` (replicates are independent and identically
   distributed, so the first ``R_keep`` are a uniform random subsample).  ``bands`` holds the
   5/25/50/75/95 % quantiles and mean of each observable over the kept replicates at every
   output time, and ``p_extinct`` — the fraction of all (successful) replicates whose tumour is
   extinct at each time.

Sweeps (:func:`run_sweep`) run the ensemble at each value of one parameter (or initial
amount) with the same seed: replicate i uses the same random stream at every value (common
random numbers), so differences between values are not blurred by independent noise.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from . import __version__
from .clinical.probability import CURE_THRESHOLD, QUANTILES, ensemble_summary, replicate_endpoints
from .engines.common import STATUS_OK
from .network import CompiledNetwork, Network, compile_network, sym
from .rng import patient_seed_sequence
from .scenarios import STOCHASTIC_ENGINES, ScenarioError

__all__ = [
    "EnsembleResult",
    "SweepResult",
    "SweepSpec",
    "ChunkReport",
    "run_ensemble",
    "run_sweep",
    "partial_summary",
    "summarise_endpoints",
    "parse_sweep",
    "sweep_values",
    "apply_sweep_value",
    "engine_function",
    "estimate_exact_firings",
    "fractional_counts",
    "integer_counts",
    "draw_count",
    "count_param_means",
    "ENGINE_TABLE",
    "DEFAULT_CHUNK",
    "MAX_TRAJECTORY_VALUES",
    "MAX_EXACT_FIRINGS",
    "ROUNDING_TOLERANCE",
    "MAX_SWEEP_POINTS",
]

#: replicates per chunk (one engine call) unless told otherwise
DEFAULT_CHUNK = 128
#: most trajectory values (replicates × times × observables) kept in memory and written
MAX_TRAJECTORY_VALUES = 20_000_000
#: most reaction firings (estimated, over the whole ensemble) an exact SSA run may need;
#: at ~10⁷ firings/s per core that is about a quarter of an hour on two cores
MAX_EXACT_FIRINGS = 1e10
#: largest relative change (of max(|y|, 1)) rounding an initial count may make
ROUNDING_TOLERANCE = 0.05
#: most values one sweep may take
MAX_SWEEP_POINTS = 50
#: spawn-key suffix of the count-parameter stream (child 0 of the patient's sequence)
_COUNT_STREAM = 0


# ---------------------------------------------------------------------------------------
# engines: one dispatch table, imported lazily (the hybrid engine may not be installed)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Engine:
    module: str
    function: str
    description: str
    settings: Callable[[Any], dict[str, Any]]


ENGINE_TABLE: dict[str, _Engine] = {
    "ssa": _Engine(
        "livingdrug.engines.ssa", "solve_ssa", "exact stochastic simulation (Gillespie 1977)", lambda rs: {}
    ),
    "tau": _Engine(
        "livingdrug.engines.tau",
        "solve_tau",
        "explicit tau-leaping (Cao, Gillespie & Petzold 2006)",
        lambda rs: {"epsilon": float(rs.tau_epsilon)},
    ),
    "hybrid": _Engine(
        "livingdrug.engines.hybrid",
        "solve_hybrid",
        "hybrid: deterministic above the threshold, exact below it",
        lambda rs: {"threshold": float(rs.hybrid_threshold), "rtol": float(rs.rtol), "atol": float(rs.atol)},
    ),
}


def engine_function(name: str, *, source: str = "<scenario>") -> Callable[..., Any]:
    """The solve function of stochastic engine ``name`` (imported on first use)."""
    spec = ENGINE_TABLE.get(name)
    if spec is None:
        raise ScenarioError(
            file=source,
            field="simulation.engine",
            value=name,
            expected="one of " + ", ".join(f'"{e}"' for e in ENGINE_TABLE),
            hint="the ODE engine runs through livingdrug.simulate",
        )
    try:
        module = importlib.import_module(spec.module)
    except ImportError:
        raise ScenarioError(
            file=source,
            field="simulation.engine",
            value=name,
            expected="an engine installed in this livingdrug version",
            hint=f"{spec.module} is not available; use engine \"tau\" (or \"ssa\" for small populations)",
        ) from None
    return getattr(module, spec.function)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------
# inputs: integer counts, count parameters, cost estimate
# ---------------------------------------------------------------------------------------


def integer_counts(net: Network, y0: Any, *, engine: str = "ssa", source: str = "<scenario>") -> np.ndarray:
    """``y0`` with the count species (marked ``nonnegative``) rounded to whole numbers.

    Raises :class:`ScenarioError` naming the species when rounding changes a value by more
    than :data:`ROUNDING_TOLERANCE` × ``max(|value|, 1)``.  Other species (bookkeeping such as
    a recorded time) are left as they are.
    """
    y = np.array(y0, dtype=float).reshape(-1)
    for k, s in enumerate(net.species):
        if not s.nonnegative:
            continue
        r = float(np.round(y[k]))
        if abs(r - y[k]) > ROUNDING_TOLERANCE * max(abs(y[k]), 1.0):
            raise ScenarioError(
                file=source,
                field=f"initial.{s.name}",
                value=f"{y[k]:.6g} {s.unit}",
                expected=f"a whole number of {s.unit} (the {engine} engine counts individual cells)",
                hint=f"rounding to {r:g} would change it by more than {ROUNDING_TOLERANCE:.0%}; "
                "use a model whose species are counts, scale the initial amount, or use --engine ode",
            )
        y[k] = r
    return y


def count_param_means(net: Network, P: np.ndarray) -> dict[str, dict[str, Any]]:
    """``{name: {"mean": λ, "condition": ..., "index": parameter index}}`` for the model's
    ``meta["count_params"]`` evaluated on the parameter vector ``P[m]``."""
    spec = (net.meta or {}).get("count_params") or {}
    out: dict[str, dict[str, Any]] = {}
    values = {sym(n): float(v) for n, v in zip(net.param_names, np.asarray(P, dtype=float), strict=True)}
    for name in sorted(spec):
        entry = spec[name]
        if name not in net.param_names:
            raise ValueError(f"model {net.name}: count parameter {name!r} is not one of its parameters")
        cond = entry.get("condition")
        if cond not in (None, "at_least_one"):
            raise ValueError(
                f"model {net.name}: count parameter {name!r} has condition {cond!r}; expected 'at_least_one' or none"
            )
        import sympy as sp

        expr = sp.sympify(entry["mean"])
        unknown = {str(x) for x in expr.free_symbols} - set(net.param_names)
        if unknown:
            raise ValueError(
                f"model {net.name}: the mean of count parameter {name!r} uses {sorted(unknown)}, not parameters"
            )
        lam = float(expr.subs(values))
        if not (math.isfinite(lam) and lam >= 0):
            raise ValueError(f"model {net.name}: count parameter {name!r} has mean {lam!r}; expected >= 0")
        out[name] = {"mean": lam, "condition": cond, "index": net.param_names.index(name)}
    return out


def draw_count(rng: np.random.Generator, lam: float, *, at_least_one: bool) -> int:
    """One Poisson(λ) count, conditioned on ≥ 1 when ``at_least_one`` (see the module doc)."""
    if not at_least_one:
        return int(rng.poisson(lam))
    if lam <= 0:
        raise ValueError("a count conditioned on at least one needs a positive mean")
    if lam >= 1.0:
        while True:
            k = int(rng.poisson(lam))
            if k >= 1:
                return k
    # inversion of P(K = k | K >= 1) = λ^k / (k! (e^λ − 1)), k = 1, 2, …
    u = rng.random()
    k, p = 1, lam / math.expm1(lam)
    cdf = p
    while u > cdf and p > 0.0:
        k += 1
        p *= lam / k
        cdf += p
    return k


def _timed_states(compiled: CompiledNetwork, y0: Any, p: Any, t0: float, t_end: float) -> list[tuple[float, str, np.ndarray]]:
    """``(time, event name, state just after it)`` for the start and each timed event in
    ``[t0, t_end]`` applied to ``y0`` in time order (condition events are not applied)."""
    net = compiled.network
    y = np.array(y0, dtype=float).reshape(-1)
    pp = np.array(p, dtype=float).reshape(-1)
    out = [(float(t0), "start", y.copy())]
    timed = []
    for k in range(len(net.events)):
        if compiled.event_is_timed[k]:
            tk = float(compiled.event_time(k, pp))
            if t0 <= tk <= t_end:
                timed.append((tk, k))
    for tk, k in sorted(timed):
        compiled.event_apply(k, tk, y, pp)
        out.append((tk, net.events[k].name, y.copy()))
    return out


def estimate_exact_firings(compiled: CompiledNetwork, y0: Any, p: Any, t0: float, t_end: float) -> tuple[float, float]:
    """``(a0_max, firings)``: the largest total propensity (1/d) at the start and just after
    each timed event in ``[t0, t_end]`` (applied in time order), and ``a0_max × (t_end − t0)``,
    the estimated reaction firings of one exact replicate."""
    pp = np.array(p, dtype=float).reshape(-1)
    best = 0.0
    for tk, _name, y in _timed_states(compiled, y0, pp, t0, t_end):
        a = compiled.propensities_at(tk, y, pp)
        best = max(best, float(a[np.isfinite(a) & (a > 0)].sum()))
    return best, best * (t_end - t0)


def fractional_counts(compiled: CompiledNetwork, y0: Any, p: Any, t0: float, t_end: float) -> list[str]:
    """Warnings for timed events (e.g. an infusion split into phenotypes) that leave a count
    species at a fractional number of cells: the stochastic engines then fire reactions on
    fractional cells, which can drive a count below zero (the replicate fails with a negative
    propensity)."""
    net = compiled.network
    count = np.array([s.nonnegative for s in net.species], dtype=bool)
    out = []
    for tk, name, y in _timed_states(compiled, y0, p, t0, t_end)[1:]:
        frac = count & (np.abs(y - np.round(y)) > 1e-9 * np.maximum(np.abs(y), 1.0))
        for k in np.flatnonzero(frac):
            s = net.species[k]
            out.append(
                f"event {name} at t = {tk:g} d makes {s.name} = {y[k]:.6g} {s.unit}, not a whole number: "
                "the stochastic engines then count fractional cells and a replicate may fail with a "
                "negative count (choose amounts that split into whole cells)"
            )
    return out


# ---------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkReport:
    """One finished chunk: replicates ``first … first + count − 1`` of sweep value
    ``value_index`` (0 without a sweep); ``endpoints`` holds its columns (``replicate``,
    ``status``, ``message``, count parameters, endpoints) and ``units`` their units;
    ``done``/``total`` count replicates over the whole run (all sweep values)."""

    value_index: int
    first: int
    count: int
    endpoints: dict[str, np.ndarray]
    done: int
    total: int
    units: dict[str, str] = field(default_factory=dict)
    sweep_value: float | None = None


@dataclass(frozen=True)
class EnsembleResult:
    """A stochastic run: the scenario, the model, trajectories, endpoints, provenance.

    * ``dataset`` — observables with dims ``(replicate, time)`` for the kept replicates
      (attrs ``replicates``, ``trajectories_kept``), plus ``status``/``message`` per kept
      replicate;
    * ``bands`` — dims ``(quantile, time)``: quantiles and ``*_mean`` of each observable over
      the kept replicates, and ``p_extinct`` (time) over all successful replicates;
    * ``endpoints`` — pandas DataFrame, one row per replicate (``attrs["units"]``);
    * ``summary`` — probabilities with CIs, Kaplan–Meier, quantiles, failures, count params;
    * ``manifest`` — everything needed to re-run it bitwise; ``stats`` — engine counters.
    """

    scenario: Any
    network: Network
    dataset: xr.Dataset
    bands: xr.Dataset
    endpoints: Any
    summary: dict
    manifest: dict
    stats: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SweepSpec:
    """``name`` swept over ``n`` values from ``lo`` to ``hi`` (``scale`` ``"log"`` or
    ``"lin"``), in the canonical unit of the parameter or species."""

    name: str
    lo: float
    hi: float
    scale: str
    n: int
    text: str = ""

    def values(self) -> np.ndarray:
        return sweep_values(self)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "lo": self.lo, "hi": self.hi, "scale": self.scale, "n": self.n, "text": self.text}


@dataclass(frozen=True)
class SweepResult:
    """An ensemble at each value of one swept quantity.

    ``table`` (pandas DataFrame) has one row per value: the value, replicates, failures and,
    for every probability, its estimate and CI (``p_cure``, ``p_cure_low``, ``p_cure_high``
    …); ``results`` holds the :class:`EnsembleResult` of each value.
    """

    scenario: Any
    network: Network
    spec: SweepSpec
    kind: str  # "parameter" or "initial"
    unit: str
    values: np.ndarray
    results: tuple[EnsembleResult, ...]
    table: Any
    summary: dict
    manifest: dict
    stats: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------
# the ensemble
# ---------------------------------------------------------------------------------------

_ROLES = ("tumour_total", "blasts_pct", "mrd", "tumour_antigen_neg", "tumour_car_masked", "bcells_blood", "cart_blood")
_MSG_RE = re.compile(r"^replicate \d+: ")


def _role_arrays(net: Network, obs: np.ndarray) -> dict[str, Any]:
    names = net.observable_names
    out: dict[str, Any] = {}
    for r in _ROLES:
        o = net.observable_by_role(r)
        if o is not None:
            out[r] = obs[:, :, names.index(o.name)]
    return out


def _chunk_endpoints(net: Network, t: np.ndarray, obs: np.ndarray, t_dose: float) -> dict[str, np.ndarray]:
    ra = _role_arrays(net, obs)
    neg = None
    masked = None
    if "tumour_total" in ra:
        tot = ra["tumour_total"]
        safe = np.where(tot > 0, tot, 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            if "tumour_antigen_neg" in ra:
                neg = np.where(tot > 0, ra["tumour_antigen_neg"] / safe, 0.0)
            if "tumour_car_masked" in ra:
                masked = np.where(tot > 0, ra["tumour_car_masked"] / safe, 0.0)
    cart = net.observable_by_role("cart_blood")
    out = replicate_endpoints(
        t,
        t_dose=t_dose,
        tumour_total=ra.get("tumour_total"),
        blasts_pct=ra.get("blasts_pct"),
        mrd=ra.get("mrd"),
        antigen_neg_fraction=neg,
        masked_fraction=masked,
        bcells=ra.get("bcells_blood"),
        cart=ra.get("cart_blood"),
        cart_unit=cart.unit if cart is not None else "",
    )
    out.update(clone_endpoints(net, t, obs))
    out.update(toxicity_endpoints(net, t, obs, t_dose))
    return out


def toxicity_endpoints(net: Network, t: np.ndarray, obs: np.ndarray, t_dose: float) -> dict[str, np.ndarray]:
    """Per-replicate ASTCT grades of a model with clinical-sign observables (roles of
    :mod:`livingdrug.clinical.grading`): ``crs_max_grade``, ``crs_onset_day``,
    ``icans_max_grade``, ``icans_onset_day`` (:func:`~livingdrug.clinical.grading.replicate_grades`);
    ``{}`` for a model without them.  ``obs[n, T, o]``."""
    from .clinical.grading import CRS_SIGNS, ICANS_SIGNS, grade_signs, replicate_grades

    names = net.observable_names
    signs = {}
    for r in (*CRS_SIGNS, *ICANS_SIGNS, "vasopressin"):
        o = net.observable_by_role(r)
        if o is not None:
            signs[r] = obs[:, :, names.index(o.name)]
    if not signs:
        return {}
    g = grade_signs(signs)
    grades = {f"{k}_grade": g[f"{k}_grade"] for k, roles in (("crs", CRS_SIGNS), ("icans", ICANS_SIGNS)) if any(r in signs for r in roles)}
    return replicate_grades(t, grades, t_dose=t_dose)


#: a clone "dominates" at this share of all CAR-T cells (Fraietta JA et al. 2018 Nature
#: 558:307: one clone was 94 % of CAR-T cells at the response peak)
DOMINANCE_SHARE = 0.9


def clone_endpoints(net: Network, t: np.ndarray, obs: np.ndarray) -> dict[str, np.ndarray]:
    """Per-replicate clonality endpoints of a model that tracks clones
    (``network.meta["clones"]`` with an observable ``clone_<name>`` per clone and the total
    ``car_t_total``); ``{}`` otherwise.  ``obs[n, T, o]``.

    * ``clone_dominates``: some tracked clone reaches ``DOMINANCE_SHARE`` of all CAR-T cells
      at some output time; ``t_clone_dominant`` the first such time (d; NaN if never);
    * ``clone_dominates_at_peak``: the largest clone's share at the CAR-T peak (the time of
      the largest ``car_t_total``) is at least ``DOMINANCE_SHARE``;
      ``largest_clone_share_at_peak`` that share;
    * ``shannon_at_peak`` (nats) and ``simpson_at_peak`` (Σp²) of the tracked clones at the
      peak (:mod:`livingdrug.clinical.clonality`, as integration-site sequencing reports them);
    * with an advantaged clone ``adv``: ``adv_share_at_peak``, ``adv_max_share``,
      ``adv_dominates`` and ``adv_alive_end`` (at least one cell at the end).
    """
    from .clinical import clonality

    meta = (net.meta or {}).get("clones") or {}
    names = net.observable_names
    clones = [c for c in clonality.clone_names(meta) if f"clone_{c}" in names]
    if not clones or "car_t_total" not in names:
        return {}
    sizes = np.stack([obs[:, :, names.index(f"clone_{c}")] for c in clones], axis=-1)
    total = obs[:, :, names.index("car_t_total")]
    dom = clonality.dominance(t, sizes, threshold=DOMINANCE_SHARE, total=total)
    n = obs.shape[0]
    rows = np.arange(n)
    ipk = np.argmax(np.where(np.isfinite(total), total, -np.inf), axis=1)
    at_peak = sizes[rows, ipk]
    share_pk = np.asarray(dom.share_at_peak, dtype=float)
    out: dict[str, np.ndarray] = {
        "clone_dominates": np.isfinite(np.asarray(dom.t_dominant, dtype=float)),
        "t_clone_dominant": np.asarray(dom.t_dominant, dtype=float),
        "largest_clone_share_at_peak": share_pk,
        "clone_dominates_at_peak": np.nan_to_num(share_pk, nan=0.0) >= DOMINANCE_SHARE,
        "shannon_at_peak": np.asarray(clonality.shannon(at_peak), dtype=float),
        "simpson_at_peak": np.asarray(clonality.simpson(at_peak), dtype=float),
    }
    if "adv" in clones:
        a = sizes[:, :, clones.index("adv")]
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(total > 0, a / np.where(total > 0, total, 1.0), 0.0)
        out["adv_share_at_peak"] = share[rows, ipk]
        out["adv_max_share"] = np.nanmax(share, axis=1)
        out["adv_dominates"] = out["adv_max_share"] >= DOMINANCE_SHARE
        out["adv_alive_end"] = a[:, -1] >= 1.0
    return out


def _endpoint_units(net: Network, counts: Mapping[str, Any]) -> dict[str, str]:
    cart = net.observable_by_role("cart_blood")
    cu = cart.unit if cart is not None else ""
    units = {
        "replicate": "1",
        "status": "1",
        "message": "",
        "cured": "1",
        "time_to_cure": "d",
        "tumour_end": "cell",
        "remission": "1",
        "time_to_remission": "d",
        "mrd_negative": "1",
        "time_to_mrd_negative": "d",
        "relapse": "1",
        "relapse_time": "d",
        "relapse_type": "",
        "bcell_aplasia_duration": "d",
        "cmax": cu,
        "tmax": "d",
        "auc_0_28": f"{cu}*d" if cu else "d",
        "sweep_value": "",
        "clone_dominates": "1",
        "t_clone_dominant": "d",
        "largest_clone_share_at_peak": "1",
        "clone_dominates_at_peak": "1",
        "shannon_at_peak": "nat",
        "simpson_at_peak": "1",
        "adv_share_at_peak": "1",
        "adv_max_share": "1",
        "adv_dominates": "1",
        "adv_alive_end": "1",
        "crs_max_grade": "1",
        "crs_onset_day": "d",
        "icans_max_grade": "1",
        "icans_onset_day": "d",
    }
    tot = net.observable_by_role("tumour_total")
    if tot is not None:
        units["tumour_end"] = tot.unit
    for name in counts:
        units[name] = net.param(name).unit
    return units


def _t_dose(rs: Any) -> float:
    return 0.0 if rs.dose_time is None else float(rs.dose_time)


def _settings(rs: Any, engine_settings: dict, chunk_size: int, counts: dict) -> dict[str, Any]:
    settings = dict(engine_settings)
    module = settings.pop("engine", None)
    for k in ("replicate_offset",):
        settings.pop(k, None)
    settings.update(
        engine=rs.engine,
        engine_module=module or ENGINE_TABLE[rs.engine].module,
        replicates=int(rs.replicates),
        chunk_size=int(chunk_size),
        initial_counts=f"count species rounded to whole numbers (refused when it changes a value by > {ROUNDING_TOLERANCE:.0%})",
    )
    settings.update({k: v for k, v in ENGINE_TABLE[rs.engine].settings(rs).items()})
    if counts:
        settings["count_params"] = {
            k: {"mean": v["mean"], "condition": v["condition"]} for k, v in counts.items()
        }
        settings["count_params_rng"] = "numpy Generator(SeedSequence(seed, spawn_key=(i, 0))) per replicate i"
    return settings


def run_ensemble(
    scenario: Any,
    rs: Any = None,
    *,
    chunk_size: int | None = None,
    on_chunk: Callable[[ChunkReport], None] | None = None,
    max_exact_firings: float | None = None,
    max_trajectory_values: int | None = None,
    value_index: int = 0,
    progress_offset: int = 0,
    progress_total: int | None = None,
    sweep_value: float | None = None,
) -> EnsembleResult:
    """Simulate ``rs.replicates`` replicates of a scenario on its stochastic engine and score
    them (the pipeline of the module doc).  ``rs`` is the resolved scenario (resolved here
    when omitted).  Raises :class:`ScenarioError` for input the engines cannot take."""
    from .api import _manifest
    from .scenarios import resolve

    if rs is None:
        rs = resolve(scenario)
    if rs.engine not in STOCHASTIC_ENGINES:
        raise ScenarioError(
            file=str(getattr(scenario, "source", "<scenario>")),
            field="simulation.engine",
            value=rs.engine,
            expected="a stochastic engine: " + ", ".join(f'"{e}"' for e in STOCHASTIC_ENGINES),
            hint="the ODE engine runs through livingdrug.simulate",
        )
    chunk = int(chunk_size or DEFAULT_CHUNK)
    if chunk < 1:
        raise ValueError(f"chunk_size must be a positive integer; got {chunk_size!r}")
    limit = float(MAX_EXACT_FIRINGS if max_exact_firings is None else max_exact_firings)
    traj_limit = int(MAX_TRAJECTORY_VALUES if max_trajectory_values is None else max_trajectory_values)
    t_wall = time.perf_counter()
    net: Network = rs.network
    source = str(getattr(scenario, "source", "<scenario>"))
    solve = engine_function(rs.engine, source=source)
    compiled = compile_network(net)
    y0 = integer_counts(net, rs.y0, engine=rs.engine, source=source)
    P = np.array(rs.P, dtype=float)
    counts = count_param_means(net, P)
    for name, c in counts.items():
        if c["condition"] == "at_least_one" and c["mean"] <= 0:
            raise ScenarioError(
                file=source,
                field=f"parameters (count parameter {name})",
                value=c["mean"],
                expected=f"a positive expected number of {name}",
                hint="the model conditions it on at least one; its mean is 0 with these parameters",
            )
    R = int(rs.replicates)
    t_eval = np.asarray(rs.t_out, dtype=float)
    t0, t_end = float(rs.t_start), float(rs.t_end)
    engine_kw = ENGINE_TABLE[rs.engine].settings(rs)
    firing_estimate = None
    if rs.engine == "ssa":
        p_est = P.copy()
        for c in counts.values():
            p_est[c["index"]] = max(c["mean"], 1.0 if c["condition"] else 0.0)
        a0, per_rep = estimate_exact_firings(compiled, y0, p_est, t0, t_end)
        firing_estimate = {"max_total_propensity_per_d": a0, "per_replicate": per_rep, "total": per_rep * R}
        max_events = 10**8
        if per_rep > max_events or per_rep * R > limit:
            raise ScenarioError(
                file=source,
                field="simulation.engine",
                value="ssa",
                expected="an engine that can simulate this patient in reasonable time",
                hint=(
                    f"the exact SSA fires one reaction at a time and would need about {per_rep * R:.2g} "
                    f"firings ({per_rep:.2g} per replicate × {R} replicates: total propensity up to "
                    f"{a0:.3g}/d over {t_end - t0:g} d; the limit is {min(limit, max_events * R):.2g}); "
                    "use --engine hybrid (exact for small populations, deterministic for large ones) "
                    "or --engine tau"
                ),
            )
        engine_kw = dict(engine_kw, max_events=max_events)
    p_chk = P.copy()
    for c in counts.values():
        p_chk[c["index"]] = 1.0  # drawn counts are whole numbers
    warnings = fractional_counts(compiled, y0, p_chk, t0, t_end)
    t_dose = _t_dose(rs)
    n_obs = len(net.observables)
    keep = R if R * t_eval.size * max(n_obs, 1) <= traj_limit else max(1, traj_limit // (t_eval.size * max(n_obs, 1)))
    kept = np.empty((keep, t_eval.size, n_obs))
    kept_status = np.zeros(keep, dtype=np.int64)
    kept_msg: list[str] = []
    tot_role = net.observable_by_role("tumour_total")
    extinct_count = np.zeros(t_eval.size, dtype=np.int64)
    parts: list[dict[str, np.ndarray]] = []
    units = _endpoint_units(net, counts)
    stats: dict[str, Any] = {}
    settings0: dict[str, Any] | None = None
    total = R if progress_total is None else int(progress_total)
    for first in range(0, R, chunk):
        n = min(chunk, R - first)
        Pc = np.repeat(P[None, :], n, axis=0)
        drawn: dict[str, np.ndarray] = {}
        if counts:
            for name in counts:
                drawn[name] = np.empty(n)
            for j in range(n):
                rng = np.random.default_rng(patient_seed_sequence(int(rs.seed), first + j).spawn(1)[_COUNT_STREAM])
                for name, c in counts.items():
                    k = draw_count(rng, c["mean"], at_least_one=c["condition"] == "at_least_one")
                    Pc[j, c["index"]] = k
                    drawn[name][j] = k
        sol = solve(compiled, y0, Pc, t_eval, seed=int(rs.seed), replicates=n, replicate_offset=first, t0=t0, **engine_kw)
        if settings0 is None:
            settings0 = dict(sol.settings)
        for k, v in sol.stats.items():
            if isinstance(v, (int, np.integer)):
                stats[k] = int(stats.get(k, 0)) + int(v)
        y = np.asarray(sol.y, dtype=float)
        obs = compiled.observables_batch(sol.t, np.nan_to_num(y, nan=0.0), Pc)
        obs[~np.isfinite(y).all(axis=2)] = np.nan
        status = np.asarray(sol.status, dtype=np.int64)
        messages = np.array(
            [
                "ok" if st == STATUS_OK else f"replicate {first + j}: " + _MSG_RE.sub("", str(m))
                for j, (st, m) in enumerate(zip(status, sol.message, strict=True))
            ],
            dtype=object,
        )
        cols: dict[str, np.ndarray] = {"replicate": np.arange(first, first + n, dtype=np.int64)}
        if sweep_value is not None:
            cols["sweep_value"] = np.full(n, float(sweep_value))
        cols["status"] = status
        cols["message"] = messages
        cols.update(drawn)
        cols.update(_chunk_endpoints(net, sol.t, obs, t_dose))
        parts.append(cols)
        if tot_role is not None:
            x = obs[:, :, net.observable_names.index(tot_role.name)]
            extinct_count += ((x < CURE_THRESHOLD) & (status == STATUS_OK)[:, None]).sum(axis=0)
        if first < keep:
            m = min(n, keep - first)
            kept[first : first + m] = obs[:m]
            kept_status[first : first + m] = status[:m]
            kept_msg.extend(messages[:m].tolist())
        if on_chunk is not None:
            on_chunk(ChunkReport(value_index, first, n, cols, progress_offset + first + n, total, units, sweep_value))
    endpoints = _concat(parts)
    settings = _settings(rs, settings0 or {}, chunk, counts)
    manifest = _manifest(scenario, rs, settings)
    summary = summarise_endpoints(endpoints, rs, counts=counts, units=units)
    if firing_estimate is not None:
        summary["firing_estimate"] = firing_estimate
    if warnings:
        summary["warnings"] = warnings
    ok = endpoints["status"] == STATUS_OK
    summary["engine"] = {"name": rs.engine, "description": ENGINE_TABLE[rs.engine].description, **engine_kw}
    ds = _dataset(net, t_eval, kept, kept_status, kept_msg)
    n_ok = int(ok.sum())
    bands = _bands(net, t_eval, kept[kept_status == STATUS_OK], extinct_count / n_ok if n_ok and tot_role is not None else None)
    attrs = dict(
        scenario=str(getattr(scenario, "name", "")),
        scenario_hash=manifest["scenario"]["hash"],
        seed=int(rs.seed),
        livingdrug_version=__version__,
        model=net.name,
        model_reference=net.reference,
        engine_settings=json.dumps(settings),
        replicates=R,
        trajectories_kept=int(keep),
    )
    ds.attrs.update(attrs)
    bands.attrs.update(attrs, bands_from=f"the first {keep} replicates (those that succeeded)")
    summary["trajectories_kept"] = int(keep)
    stats.update(wall_seconds=time.perf_counter() - t_wall, chunks=len(parts))
    return EnsembleResult(scenario, net, ds, bands, _frame(endpoints, units), summary, manifest, stats)


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _frame(cols: Mapping[str, np.ndarray], units: Mapping[str, str]) -> Any:
    import pandas as pd

    df = pd.DataFrame({k: np.asarray(v) for k, v in cols.items()})
    df.attrs["units"] = {k: units.get(k, "") for k in df.columns}
    return df


def summarise_endpoints(
    endpoints: Mapping[str, Any],
    rs: Any,
    *,
    counts: Mapping[str, Any] | None = None,
    units: Mapping[str, str] | None = None,
    requested: int | None = None,
) -> dict[str, Any]:
    """The ensemble summary of endpoint columns (all replicates, or the finished part of an
    interrupted run: ``requested`` then says how many were asked for)."""
    status = np.asarray(endpoints.get("status", np.zeros(0, dtype=np.int64)))
    ok = status == STATUS_OK
    follow_up = float(rs.t_end) - _t_dose(rs)
    summary: dict[str, Any] = {
        "scenario": str(getattr(rs.scenario, "name", "")),
        "seed": int(rs.seed),
        "t_dose": _t_dose(rs),
        "follow_up_days": follow_up,
    }
    summary.update(
        ensemble_summary(
            {k: v for k, v in endpoints.items() if k not in ("replicate", "status", "message", "sweep_value")},
            ok=ok,
            follow_up=follow_up,
            units=units,
        )
    )
    # counts from the status column even if no endpoint column exists
    summary["replicates"] = int(status.size)
    summary["ok"] = int(ok.sum())
    summary["failed"] = int((~ok).sum())
    if requested is not None:
        summary["replicates_requested"] = int(requested)
        summary["partial"] = int(status.size) < int(requested)
    if summary["failed"]:
        idx = np.flatnonzero(~ok)
        rep = np.asarray(endpoints["replicate"])
        msg = np.asarray(endpoints["message"], dtype=object)
        summary["failed_replicates"] = [
            {"replicate": int(rep[i]), "status": int(status[i]), "message": str(msg[i])} for i in idx[:100]
        ]
        if idx.size > 100:
            summary["failed_replicates_not_listed"] = int(idx.size - 100)
    if "clone_dominates" in endpoints:
        summary["clonality"] = _clonality_summary(endpoints, ok)
    if counts:
        cp: dict[str, Any] = {}
        for name, c in counts.items():
            lam = float(c["mean"])
            drawn = np.asarray(endpoints.get(name, np.zeros(0)), dtype=float)
            cp[name] = {
                "mean": lam,
                "unit": (units or {}).get(name, ""),
                "condition": c["condition"] or "none",
                "p_at_least_one": -math.expm1(-lam),
                "drawn_mean": float(drawn.mean()) if drawn.size else None,
                "note": (
                    "drawn per replicate ~ Poisson(mean), conditioned on >= 1: the probabilities "
                    "above are conditional on at least one; multiply by p_at_least_one for "
                    "unconditional ones"
                    if c["condition"] == "at_least_one"
                    else "drawn per replicate ~ Poisson(mean)"
                ),
            }
        summary["count_params"] = cp
    return summary


def _clonality_summary(endpoints: Mapping[str, Any], ok: np.ndarray) -> dict[str, Any]:
    """Probabilities that a clone (or the advantaged clone) dominates, diversity at the peak,
    and the main outcomes in the replicates where it does and where it does not."""
    from .clinical.probability import describe, proportion

    def col(name: str) -> np.ndarray:
        return np.asarray(endpoints[name])[ok]

    n = int(ok.sum())
    out: dict[str, Any] = {"dominance_share": DOMINANCE_SHARE, "probabilities": {}}
    probs = out["probabilities"]
    for key in ("clone_dominates", "clone_dominates_at_peak", "adv_dominates", "adv_alive_end"):
        if key in endpoints:
            probs[key] = proportion(int(col(key).astype(bool).sum()), n).as_dict()
    for key in ("largest_clone_share_at_peak", "shannon_at_peak", "simpson_at_peak",
                "adv_share_at_peak", "t_clone_dominant"):
        if key in endpoints:
            out[key] = describe(col(key).astype(float))
    group_key = "adv_dominates" if "adv_dominates" in endpoints else "clone_dominates"
    groups = col(group_key).astype(bool)
    by: dict[str, Any] = {"by": group_key}
    for label, sel in (("dominates", groups), ("does_not", ~groups)):
        g: dict[str, Any] = {"replicates": int(sel.sum())}
        for outcome in ("cured", "remission", "relapse"):
            if outcome in endpoints:
                g[outcome] = proportion(int(col(outcome).astype(bool)[sel].sum()), int(sel.sum())).as_dict()
        if "bcell_aplasia_duration" in endpoints:
            g["bcell_aplasia_duration"] = describe(col("bcell_aplasia_duration").astype(float)[sel])
        by[label] = g
    out["outcomes"] = by
    return out


def partial_summary(scenario: Any, chunks: list[ChunkReport], *, sweep: SweepSpec | str | None = None) -> dict[str, Any]:
    """The summary of the finished chunks of an interrupted run of ``scenario`` (its variant
    with the run's engine and replicates): it says how many replicates it covers
    (``replicates`` of ``replicates_requested``, ``partial: true``); for a sweep, one summary
    per value reached."""
    from .scenarios import resolve

    def one(s: Any, cs: list[ChunkReport]) -> dict[str, Any]:
        rs = resolve(s)
        counts = count_param_means(rs.network, np.array(rs.P, dtype=float))
        cols = _concat([c.endpoints for c in sorted(cs, key=lambda c: c.first)])
        if not cols:
            cols = {"status": np.zeros(0, dtype=np.int64)}
        units = cs[0].units if cs else {}
        out = summarise_endpoints(cols, rs, counts=counts, units=units, requested=int(rs.replicates))
        out["partial"] = True
        return out

    if sweep is None:
        return one(scenario, chunks)
    spec = parse_sweep(sweep) if isinstance(sweep, str) else sweep
    values = sweep_values(spec)
    per = []
    for i, v in enumerate(values):
        cs = [c for c in chunks if c.value_index == i]
        if cs:
            per.append({"value": float(v), **one(apply_sweep_value(scenario, spec.name, float(v))[0], cs)})
    return {
        "partial": True,
        "sweep": spec.as_dict(),
        "values_reached": len(per),
        "values_requested": len(values),
        "replicates": int(sum(p["replicates"] for p in per)),
        "per_value": per,
    }


def _dataset(net: Network, t: np.ndarray, obs: np.ndarray, status: np.ndarray, message: list[str]) -> xr.Dataset:
    coords = {
        "replicate": np.arange(obs.shape[0]),
        "time": ("time", t, {"units": "d", "long_name": "time (d; the infusion is at t_dose)"}),
    }
    data: dict[str, Any] = {}
    for j, o in enumerate(net.observables):
        data[o.name] = (
            ("replicate", "time"),
            obs[:, :, j],
            {"units": o.unit, "long_name": o.description, "kind": "observable", "role": o.role},
        )
    data["status"] = (("replicate",), status)
    data["message"] = (("replicate",), np.asarray(message, dtype=object))
    return xr.Dataset(data, coords=coords)


def _clonality_bands(net: Network, obs: np.ndarray, q: np.ndarray) -> dict[str, Any]:
    """Quantiles over replicates, at every output time, of the largest tracked clone's share of
    all CAR-T cells and of the tracked clones' Shannon (nats) and Simpson (Σp²) indices — the
    clone-size statistics integration-site sequencing reports over time.  NaN where a replicate
    has no (tracked) CAR-T cells."""
    from .clinical import clonality

    meta = (net.meta or {}).get("clones") or {}
    names = net.observable_names
    clones = [c for c in clonality.clone_names(meta) if f"clone_{c}" in names]
    if not clones or "car_t_total" not in names or obs.shape[0] == 0:
        return {}
    sizes = np.stack([obs[:, :, names.index(f"clone_{c}")] for c in clones], axis=-1)
    total = obs[:, :, names.index("car_t_total")]
    stats = {
        "largest_clone_share": (clonality.largest_share(sizes, total), "1",
                                "largest tracked clone's share of all CAR-T cells"),
        "clone_shannon": (clonality.shannon(sizes), "nat", "Shannon index of the tracked clones"),
        "clone_simpson": (clonality.simpson(sizes), "1", "Simpson index (sum of squared shares) of the tracked clones"),
    }
    out: dict[str, Any] = {}
    for name, (x, unit, what) in stats.items():
        x = np.asarray(x, dtype=float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN times (no CAR-T yet)
            qs = np.nanquantile(x, q, axis=0)
            mean = np.nanmean(x, axis=0)
        attrs = {"units": unit, "long_name": what, "role": ""}
        out[name] = (("quantile", "time"), qs, attrs)
        out[f"{name}_mean"] = (("time",), mean, attrs)
    return out


def _bands(net: Network, t: np.ndarray, obs: np.ndarray, p_extinct: np.ndarray | None) -> xr.Dataset:
    q = np.asarray(QUANTILES)
    data: dict[str, Any] = {}
    for j, o in enumerate(net.observables):
        x = obs[:, :, j]
        if x.shape[0]:
            qs = np.quantile(x, q, axis=0)
            mean = x.mean(axis=0)
        else:
            qs = np.full((q.size, t.size), np.nan)
            mean = np.full(t.size, np.nan)
        attrs = {"units": o.unit, "long_name": o.description, "role": o.role}
        data[o.name] = (("quantile", "time"), qs, attrs)
        data[f"{o.name}_mean"] = (("time",), mean, attrs)
    data.update(_clonality_bands(net, obs, q))
    if p_extinct is not None:
        data["p_extinct"] = (
            ("time",),
            np.asarray(p_extinct, dtype=float),
            {"units": "1", "long_name": "fraction of replicates with the tumour extinct"},
        )
    return xr.Dataset(
        data, coords={"quantile": q, "time": ("time", t, {"units": "d"})}
    )


# ---------------------------------------------------------------------------------------
# sweeps
# ---------------------------------------------------------------------------------------

_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_SWEEP_RE = re.compile(rf"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*({_NUM}):({_NUM}):([A-Za-z]+):(\d+)\s*$")
_SWEEP_FORM = "NAME=LO:HI:log|lin:N, e.g. dose=1e6:1e9:log:7"


def _sweep_error(text: str, hint: str) -> ScenarioError:
    return ScenarioError(file="command line", field="--sweep", value=text, expected=_SWEEP_FORM, hint=hint)


def parse_sweep(text: str) -> SweepSpec:
    """Parse ``NAME=LO:HI:log|lin:N`` (``log``: N values evenly spaced in log, LO, HI > 0;
    ``lin``: evenly spaced; 2 ≤ N ≤ :data:`MAX_SWEEP_POINTS`; LO < HI).  Errors name the
    value and the expected form."""
    if not isinstance(text, str) or len(text) > 200:
        raise _sweep_error(str(text)[:80], "write one NAME=LO:HI:log|lin:N")
    m = _SWEEP_RE.match(text)
    if not m:
        hint = "write the name, '=', then LO:HI:scale:N separated by colons"
        if "=" in text and text.split("=", 1)[1].count(":") != 3:
            hint = "after '=' give four fields separated by ':' (LO, HI, log or lin, N)"
        raise _sweep_error(text, hint)
    name, lo_t, hi_t, scale, n_t = m.groups()
    lo, hi, n = float(lo_t), float(hi_t), int(n_t)
    scale = scale.lower()
    if scale not in ("log", "lin"):
        raise _sweep_error(text, f"the scale {scale!r} is neither 'log' nor 'lin'")
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise _sweep_error(text, "LO and HI must be finite numbers")
    if not (2 <= n <= MAX_SWEEP_POINTS):
        raise _sweep_error(text, f"N = {n}: give between 2 and {MAX_SWEEP_POINTS} values")
    if not lo < hi:
        raise _sweep_error(text, f"LO = {lo:g} must be smaller than HI = {hi:g}")
    if scale == "log" and lo <= 0:
        raise _sweep_error(text, f"a log sweep needs LO > 0 (got {lo:g}); use 'lin' or a positive LO")
    return SweepSpec(name, lo, hi, scale, n, text.strip())


def sweep_values(spec: SweepSpec) -> np.ndarray:
    """The swept values: ``geomspace`` (log) or ``linspace`` (lin) with exact end points."""
    if spec.scale == "log":
        v = np.geomspace(spec.lo, spec.hi, spec.n)
    else:
        v = np.linspace(spec.lo, spec.hi, spec.n)
    v[0], v[-1] = spec.lo, spec.hi
    return v


def apply_sweep_value(s: Any, name: str, value: float) -> tuple[Any, str, str]:
    """``(scenario, kind, unit)``: the scenario with ``name`` set to ``value`` (canonical
    unit).  ``name`` is a model parameter (``kind = "parameter"``; the dose parameter sets
    ``dosing.dose`` in cells) or a species (``kind = "initial"``: its initial amount)."""
    from .scenarios import with_dose, with_initial, with_parameters
    from .scenarios.load import _network_of

    net = _network_of(s)
    meta = net.meta or {}
    dose = (meta.get("dose") or {}).get("param")
    reserved = {}
    dose_time = (meta.get("dose") or {}).get("time_param")
    if dose_time:
        reserved[str(dose_time)] = "dosing.time"
    if meta.get("weight_param"):
        reserved[str(meta["weight_param"])] = "patient.weight"
    if name == dose:
        return with_dose(s, float(value)), "parameter", net.param(name).unit
    if name in reserved:
        raise ScenarioError(
            file="command line",
            field="--sweep",
            value=name,
            expected="a parameter or species the scenario does not set elsewhere",
            hint=f"{name} is set by {reserved[name]} of the scenario; sweep another quantity or edit the file",
        )
    if name in net.param_names:
        return with_parameters(s, **{name: float(value)}), "parameter", net.param(name).unit
    if name in net.species_names:
        return with_initial(s, **{name: float(value)}), "initial", net.species_by_name(name).unit
    import difflib

    known = sorted(set(net.param_names) | set(net.species_names))
    best = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    raise ScenarioError(
        file="command line",
        field="--sweep",
        value=name,
        expected=f"a parameter or species of model {net.name}",
        hint=(f'did you mean "{best[0]}"? ' if best else "") + f"known: {', '.join(known[:15])}"
        + (", …" if len(known) > 15 else ""),
    )


def run_sweep(
    scenario: Any,
    spec: SweepSpec | str,
    *,
    chunk_size: int | None = None,
    on_chunk: Callable[[ChunkReport], None] | None = None,
    max_exact_firings: float | None = None,
    max_trajectory_values: int | None = None,
) -> SweepResult:
    """Run the scenario's stochastic ensemble at each value of ``spec`` (same seed: common
    random numbers) and tabulate the probabilities with their CIs against the value."""
    import pandas as pd

    from .api import _manifest
    from .scenarios import resolve

    if isinstance(spec, str):
        spec = parse_sweep(spec)
    values = sweep_values(spec)
    base = resolve(scenario)
    if base.engine not in STOCHASTIC_ENGINES:
        raise ScenarioError(
            file=str(getattr(scenario, "source", "<scenario>")),
            field="simulation.engine",
            value=base.engine,
            expected="a stochastic engine (ssa, tau or hybrid) for a sweep of probabilities",
            hint="add --engine hybrid (or tau, or ssa for small populations)",
        )
    variants = [apply_sweep_value(scenario, spec.name, float(v)) for v in values]  # validate all first
    traj = int(MAX_TRAJECTORY_VALUES if max_trajectory_values is None else max_trajectory_values)
    per_value = max(1, traj // len(values))
    total = int(base.replicates) * len(values)
    results = []
    stats: dict[str, Any] = {}
    for i, (v, (s_v, _kind, _unit)) in enumerate(zip(values, variants, strict=True)):
        r = run_ensemble(
            s_v,
            chunk_size=chunk_size,
            on_chunk=on_chunk,
            max_exact_firings=max_exact_firings,
            max_trajectory_values=per_value,
            value_index=i,
            progress_offset=i * int(base.replicates),
            progress_total=total,
            sweep_value=float(v),
        )
        results.append(r)
        for k, x in r.stats.items():
            if isinstance(x, (int, float)):
                stats[k] = stats.get(k, 0) + x
    kind, unit = variants[0][1], variants[0][2]
    rows = []
    for v, r in zip(values, results, strict=True):
        row: dict[str, Any] = {
            "value": float(v),
            "replicates": r.summary["replicates"],
            "ok": r.summary["ok"],
            "failed": r.summary["failed"],
        }
        for key, p in r.summary.get("probabilities", {}).items():
            row[f"p_{key}"] = p["estimate"]
            row[f"p_{key}_low"] = p["low"]
            row[f"p_{key}_high"] = p["high"]
        for key, p in ((r.summary.get("clonality") or {}).get("probabilities") or {}).items():
            row[f"p_{key}"] = p["estimate"]
            row[f"p_{key}_low"] = p["low"]
            row[f"p_{key}_high"] = p["high"]
        km = r.summary.get("relapse_free_survival")
        if km:
            row["relapse_time_median"] = km.get("median")
        ttc = r.summary.get("time_to_cure")
        if ttc:
            row["time_to_cure_median"] = ttc["quantiles"].get("50%")
        for name, c in (r.summary.get("count_params") or {}).items():
            row[f"{name}_mean"] = c["mean"]
            row[f"{name}_p_at_least_one"] = c["p_at_least_one"]
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["units"] = {c: ("d" if c.startswith("time_") else "1") for c in table.columns} | {"value": unit}
    settings = dict(results[0].manifest["engine"])
    manifest = _manifest(scenario, base, settings)
    manifest["sweep"] = {**spec.as_dict(), "kind": kind, "unit": unit, "values": [float(v) for v in values]}
    summary = {
        "sweep": manifest["sweep"],
        "common_random_numbers": "every value uses the same seed, so replicate i draws the same random stream at each value",
        "confidence": 0.95,
        "ci_method": results[0].summary.get("ci_method"),
        "table": json.loads(table.to_json(orient="records")),
        "replicates_per_value": int(base.replicates),
        "failed": int(sum(r.summary["failed"] for r in results)),
    }
    return SweepResult(
        scenario, base.network, spec, kind, unit, values, tuple(results), table, summary, manifest, stats
    )
