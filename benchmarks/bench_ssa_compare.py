"""Benchmark: reaction firings per second of livingdrug's exact SSA against GillesPy2's C++ SSA
solver and libroadrunner's gillespie integrator, on the same two models, in one run.

Run by hand (not a test)::

    python benchmarks/bench_ssa_compare.py            # full run (a few minutes on 2 cores)
    python benchmarks/bench_ssa_compare.py --quick    # short run (< ~1 min once compiled)

Needs the ``bench`` extra: ``pip install -e ".[bench]"`` (gillespy2, libroadrunner); GillesPy2
also needs ``g++`` and SCons (SCons comes with gillespy2; if only the package and not its
``scons`` script is on ``PATH``, the script puts the running interpreter's ``bin`` folder on
``PATH`` so GillesPy2 finds it).

Models (both built once as a livingdrug :class:`~livingdrug.network.Network`; the GillesPy2
model and the SBML for libroadrunner are generated from that same Network)
------------------------------------------------------------------------------------------

(a) **birth–death–killing** (mass action; tumour cells ``T``, killer cells ``E``)::

        T → 2T      λ·T          λ = 1 /d
        T → ∅       μ·T          μ = 0.5 /d
        E + T → E   k·E·T        k = 0.01 /(cell·d)
        ∅ → E       σ            σ = 5 cell/d
        E → ∅       δ·E          δ = 0.1 /d

    ``T(0) = 1000``, ``E(0) = 50`` cells, 10 days, daily outputs.  The killers do **not** feed
    back on the tumour (they are an immigration–death process, stationary mean σ/δ = 50), so
    the tumour is, given the killer path, a linear birth–death process with per-capita death
    rate ``μ + k·E(s)``, and its mean has a closed form used as an analytic check of every tool:
    ``E[T(t)] = T0·e^{(λ−μ)t}·φ(t)^{E0}·exp(σ·k/(δ+k)·[(1 − e^{−(δ+k)t})/(δ+k) − t])`` with
    ``φ(s) = (δ + k·e^{−(δ+k)s})/(δ+k)`` (each initial killer lives an Exp(δ) time; immigrants
    arrive as a Poisson process, Campbell's theorem), and ``E[E(t)] = 50``.  About 2×10⁴
    firings per replicate.

(b) **the full default network** ``livingdrug.models.get_model("car_t").network()`` (11
    species, 31 reactions, saturating / homeostatic / crowding rate laws), **scaled down**: the
    default patient holds ~4×10¹¹ cells (≈10¹¹ firings a day), far beyond any exact SSA, so we
    simulate the same patient scaled by ``ε`` (``--eps``, default 1e-7): every cell amount and
    every amount-valued parameter (``K_A``, ``K_X``, ``K_kill``, ``K_mar``, ``dose``,
    ``extinction_threshold``, and ``weight``, which sets the blood volume and hence the
    homeostatic capacity ``K_T`` and the B-cell set point) is multiplied by ε.  Every rate law
    is homogeneous of degree 1 in these amounts, so the mean-field (ODE) solution of the scaled
    patient is exactly ε × the default one.  The start state is the default patient's
    post-infusion state: the ODE engine runs the full model (lymphodepletion days −5…−3,
    infusion of 10⁸ CAR-T on day 0) from day −6 to day 0, then the state is multiplied by ε
    and rounded (ε = 1e-7: 10 CAR-T cells, ~2.7×10⁴ leukaemic cells, 229 normal T cells).  The
    window is days 0–28 (expansion, peak, remission), weekly outputs; ~10⁵ firings per
    replicate at ε = 1e-7.  Events (lymphodepletion, infusion, extinction thresholds) and
    observables are removed (``dataclasses.replace(network, events=(), observables=())``) for
    all three tools: GillesPy2's C++ SSA does not support events, and the comparison must run
    the same law everywhere.

What is timed
-------------
* **livingdrug**: ``solve_ssa(compiled, y0, P, t_eval, seed=…, replicates=n, parallel=…)`` end
  to end (seed derivation, kernel, output arrays), ``parallel=False`` (one thread: the per-core
  figure) and ``parallel=True`` (all numba threads).  Firings: ``sol.stats["reactions"]``.
  The first calls (numba compile or on-disk cache load of the engine kernel and the model's
  cfuncs) are timed apart and excluded.
* **GillesPy2** ``SSACSolver`` (C++, direct method with a reaction dependency graph, one
  process, one thread): ``solver.run(number_of_trajectories=n, seed=…)`` end to end, which
  launches the compiled executable and decodes its text output; and, for the per-core ratio
  (the figure most favourable to GillesPy2), the **C++ process alone** with its output thrown
  away.  The C++ build (at ``SSACSolver(model=…)``) is timed apart and excluded.  GillesPy2
  1.8 compiles its solver with ``g++ -std=c++14`` and *no* optimisation flag (= ``-O0``), so
  it is measured twice: as shipped, and rebuilt with ``-O3 -march=native`` (a ``g++`` wrapper
  put first on ``PATH`` during the build adds the flags; ``--no-gillespy2-o3`` skips it).
  Propensities are written from the same sympy rate laws as livingdrug's (every species printed
  as ``(1.0*X)`` so that GillesPy2's ``unsigned int`` counts never meet integer division or
  32-bit overflow, rationals as decimals).  GillesPy2 does not report firings: the number of
  firings has the same law in every correct simulator, so its firings are **estimated** as
  livingdrug's mean firings per replicate × its replicate count (marked ``~``).
* **libroadrunner** ``gillespie`` integrator on ``network.to_sbml()``: one ``RoadRunner``,
  seeded once (its stream continues across ``simulate`` calls), ``variable_step_size`` off,
  then a Python loop of ``rr.reset(); rr.simulate(t0, t1, points)`` over the replicates (one
  thread).  Loading the SBML (parse + LLVM JIT) is timed apart and excluded.  Firings are
  estimated as for GillesPy2; in addition a separate, untimed run with
  ``variable_step_size`` on (one output row per firing, plus the first and last rows) counts
  roadrunner's firings directly on ``--count-replicates`` replicates and compares their mean
  with livingdrug's.

Every run is timed twice: wall clock, and CPU time (user + system of this process's threads
plus its finished child processes, i.e. GillesPy2's executable), each the best of ``--repeat``
runs with the same seed.  The **per-core** figure is firings per CPU-second and the ratio column
is livingdrug's single-thread per-core rate over each tool's: on a machine shared with other
work, CPU time is what a core actually spent; on an idle machine it equals the wall time of the
single-threaded runs.  ``firings/s`` is on the wall clock (the figure for the parallel run).

Correctness checks (printed)
----------------------------
For each tool and model, the mean of every species at the last output time is compared with
livingdrug's: ``z = (m_tool − m_ld)/sqrt(se_tool² + se_ld²)`` (se = sd/√n); the check passes when
``max |z| ≤ 4`` over species (species with zero spread in both must agree exactly).  For model
(a) each tool's mean ``T`` and ``E`` are also compared with the closed forms above.  A failed
check is printed as ``FAIL`` and makes the script exit with status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import sympy as sp
from sympy.printing.str import StrPrinter

from livingdrug.engines.ode import solve
from livingdrug.engines.ssa import solve_ssa
from livingdrug.models import get_model
from livingdrug.network import Network, Reaction, Species, sym, with_values
from livingdrug.params import Param

Z_MAX = 4.0  # standard errors allowed between two tools' means (or a tool and a closed form)

# parameters of model (a) (per day; k per cell per day; σ cells per day)
BDK = {"lam": 1.0, "mu": 0.5, "k": 0.01, "sigma": 5.0, "delta": 0.1}
BDK_T0, BDK_E0, BDK_DAYS = 1000, 50, 10.0

# amount-valued parameters of the car_t model (unit "cell") and the weight (blood volume)
CAR_T_SCALED_PARAMS = ("weight", "K_A", "K_X", "K_kill", "K_mar", "dose", "extinction_threshold")


# ---------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark model: a network without events whose defaults are the start state and
    parameters, the output times (days, from 0) and the replicate count."""

    key: str
    title: str
    network: Network
    t_eval: np.ndarray
    replicates: int


def birth_death_killing() -> Network:
    """Model (a) (see the module docstring)."""
    T, E = sym("T"), sym("E")
    lam, mu, k, sigma, delta = (sym(n) for n in ("lam", "mu", "k", "sigma", "delta"))
    return Network(
        "birth_death_killing",
        species=(Species("T", initial=float(BDK_T0), description="tumour cells"),
                 Species("E", initial=float(BDK_E0), description="killer cells")),
        params=(Param("lam", BDK["lam"], "1/d"), Param("mu", BDK["mu"], "1/d"),
                Param("k", BDK["k"], "1/(cell*d)"), Param("sigma", BDK["sigma"], "cell/d"),
                Param("delta", BDK["delta"], "1/d")),
        reactions=(
            Reaction("T_birth", {"T": 1}, lam * T),
            Reaction("T_death", {"T": -1}, mu * T),
            Reaction("T_killed", {"T": -1}, k * E * T),
            Reaction("E_inflow", {"E": 1}, sigma),
            Reaction("E_death", {"E": -1}, delta * E),
        ),
    )


def bdk_exact_means(t: float) -> dict[str, float]:
    """Closed-form means of model (a) at time ``t`` (days): ``E[E(t)]`` of the
    immigration–death process and ``E[T(t)] = T0 e^{(λ−μ)t} E[exp(−k ∫₀ᵗ E ds)]`` (module
    docstring)."""
    lam, mu, k, sigma, delta = (BDK[n] for n in ("lam", "mu", "k", "sigma", "delta"))
    r = delta + k
    phi = (delta + k * math.exp(-r * t)) / r
    log_imm = sigma * k / r * ((1.0 - math.exp(-r * t)) / r - t)
    mean_T = BDK_T0 * math.exp((lam - mu) * t) * phi**BDK_E0 * math.exp(log_imm)
    mean_E = sigma / delta + (BDK_E0 - sigma / delta) * math.exp(-delta * t)
    return {"T": mean_T, "E": mean_E}


def car_t_scaled(eps: float, days: float) -> tuple[Network, dict[str, float]]:
    """Model (b): the default ``car_t`` patient scaled by ``eps``, started from its
    post-infusion state (day 0), events and observables removed.  Returns the network (its
    defaults are the scaled start state and parameters) and the unrounded scaled state."""
    full = get_model("car_t").network()
    compiled = full.compile()
    y0 = full.initial_state()
    P = full.parameter_vector()
    post = solve(compiled, y0, P, np.array([0.0]), t0=float(full.meta["time_start"]),
                 rtol=1e-8, atol=1e-6)
    if post.status[0] != 0:
        raise RuntimeError(f"ODE solve to the post-infusion state failed: {post.message[0]}")
    names = list(full.param_names)
    Ps = P.copy()
    for n in CAR_T_SCALED_PARAMS:
        Ps[names.index(n)] *= eps
    exact = post.y[0, 0] * eps
    ys = np.round(exact)
    # the scaled patient is outside the physiological bounds of weight and K_mar by
    # construction: widen those bounds to hold the scaled values
    params = tuple(dataclasses.replace(p, value=float(v), bounds=(min(p.bounds[0], v), max(p.bounds[1], v)))
                   for p, v in zip(full.params, Ps, strict=True))
    net = dataclasses.replace(full, name="car_t_scaled", params=params, events=(), observables=(),
                              meta={})
    return with_values(net, Ps, ys), dict(zip(full.species_names, exact, strict=True))


# ---------------------------------------------------------------------------------------
# timings
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Timing:
    """Best (smallest) wall-clock and CPU seconds over the repeats.  CPU time is this process's
    (all its threads) plus its finished child processes' (GillesPy2's executable), user +
    system."""

    wall: float
    cpu: float


@dataclasses.dataclass
class Run:
    tool: str
    replicates: int
    firings: float
    counted: bool  # firings counted by the tool itself (else estimated from livingdrug's mean)
    time: Timing
    final: np.ndarray | None  # [n, k] states at the last output time (species order)

    @property
    def rate_wall(self) -> float:
        return self.firings / self.time.wall

    @property
    def rate_cpu(self) -> float:
        return self.firings / self.time.cpu


def _cpu_seconds() -> float:
    own = time.process_time()
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own + ch.ru_utime + ch.ru_stime


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[Timing, Any]:
    wall, cpu, out = math.inf, math.inf, None
    for _ in range(repeat):
        c0 = _cpu_seconds()
        t0 = time.perf_counter()
        out = fn()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, _cpu_seconds() - c0)
    return Timing(wall, cpu), out


def run_livingdrug(case: Case, seed: int, repeat: int, parallel: bool) -> Run:
    c = case.network.compile()
    y0 = case.network.initial_state()
    P = case.network.parameter_vector()
    secs, sol = best_of(repeat, lambda: solve_ssa(c, y0, P, case.t_eval, seed=seed,
                                                  replicates=case.replicates, parallel=parallel))
    if np.any(sol.status != 0):
        raise RuntimeError(f"livingdrug SSA failed: {sol.message[int(np.argmax(sol.status != 0))]}")
    label = (f"livingdrug solve_ssa, parallel ({numba.get_num_threads()} threads)" if parallel
             else "livingdrug solve_ssa, 1 thread")
    return Run(label, case.replicates, float(sol.stats["reactions"]), True, secs, sol.y[:, -1, :])


# --- GillesPy2 ---------------------------------------------------------------------------


class _GillesPyPrinter(StrPrinter):
    """sympy → a GillesPy2 propensity string: species as ``(1.0*X)`` (GillesPy2's C++ SSA holds
    counts as ``unsigned int``: a product of two counts would be 32-bit integer arithmetic and
    a ratio of counts integer division), rationals and floats as exact decimals."""

    def __init__(self, species: set[str]):
        super().__init__({"full_prec": True})
        self.species = species

    def _print_Symbol(self, expr: sp.Symbol) -> str:  # noqa: N802 (sympy naming)
        return f"(1.0*{expr.name})" if expr.name in self.species else expr.name

    def _print_Rational(self, expr: sp.Rational) -> str:  # noqa: N802
        return repr(float(expr))

    def _print_Float(self, expr: sp.Float) -> str:  # noqa: N802
        return repr(float(expr))


def gillespy2_model(net: Network, t_eval: np.ndarray) -> Any:
    """A GillesPy2 ``Model`` of ``net`` (volume 1, discrete species, one reaction per network
    reaction with the network's rate law as its ``propensity_function``)."""
    import gillespy2

    if t_eval[0] != 0.0 or not np.allclose(np.diff(t_eval), t_eval[1] - t_eval[0]):
        raise ValueError("GillesPy2 needs equally spaced output times starting at 0")
    model = gillespy2.Model(name=net.name, volume=1.0)
    model.add_parameter([gillespy2.Parameter(name=p.name, expression=repr(float(p.value)))
                         for p in net.params])
    for s in net.species:
        if s.initial != round(s.initial):
            raise ValueError(f"species {s.name}: initial count {s.initial} is not an integer")
    model.add_species([gillespy2.Species(name=s.name, initial_value=int(s.initial), mode="discrete")
                       for s in net.species])
    pr = _GillesPyPrinter(set(net.species_names))
    for r in net.reactions:
        if any(v != round(v) for v in r.stoich.values()):
            raise ValueError(f"reaction {r.name}: non-integer stoichiometry")
        reactants = {n: int(-v) for n, v in r.stoich.items() if v < 0}
        products = {n: int(v) for n, v in r.stoich.items() if v > 0}
        model.add_reaction(gillespy2.Reaction(name=r.name, reactants=reactants, products=products,
                                              propensity_function=pr.doprint(sp.sympify(r.rate))))
    model.timespan(np.asarray(t_eval, dtype=float))
    return model


def _ensure_scons_on_path() -> None:
    """GillesPy2 runs ``scons`` from ``PATH`` or as ``python -m SCons`` with the *resolved*
    interpreter, which in a virtual environment is the base one without SCons."""
    if shutil.which("scons") is None:
        os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")


def build_gillespy2(model: Any, optimise: bool) -> tuple[Any, float]:
    """``SSACSolver(model=model)`` (this compiles the C++ simulation); returns the solver and
    the build time (s).  With ``optimise`` a temporary ``g++`` wrapper that adds ``-O3
    -march=native`` is put first on ``PATH`` for the build."""
    import gillespy2

    _ensure_scons_on_path()
    old_path = os.environ["PATH"]
    wrapper_dir = None
    try:
        if optimise:
            real = shutil.which("g++")
            if real is None:
                raise RuntimeError("g++ not found on PATH")
            wrapper_dir = tempfile.mkdtemp(prefix="bench_gxx_")
            wrapper = os.path.join(wrapper_dir, "g++")
            with open(wrapper, "w") as fh:
                fh.write(f'#!/bin/sh\nexec "{real}" -O3 -march=native "$@"\n')
            os.chmod(wrapper, 0o755)
            os.environ["PATH"] = wrapper_dir + os.pathsep + old_path
        t = time.perf_counter()
        solver = gillespy2.SSACSolver(model=model)
        return solver, time.perf_counter() - t
    finally:
        os.environ["PATH"] = old_path
        if wrapper_dir is not None:
            shutil.rmtree(wrapper_dir, ignore_errors=True)


def run_gillespy2(case: Case, solver: Any, label: str, seed: int, repeat: int,
                  firings_per_rep: float) -> list[Run]:
    """End-to-end ``solver.run`` and the C++ process alone (output discarded)."""
    names = case.network.species_names
    n = case.replicates

    def go() -> Any:
        return solver.run(number_of_trajectories=n, seed=seed)

    secs, res = best_of(repeat, go)
    trajs = res if n > 1 else [res]
    final = np.array([[traj[s][-1] for s in names] for traj in trajs], dtype=float)
    out = [Run(f"{label}, run() end to end", n, firings_per_rep * n, False, secs, final)]
    # the executable on its own, with the arguments solver.run() passes it (GillesPy2 1.8)
    exe = solver.build_engine.get_executable_path()
    steps = len(case.t_eval)
    args = [exe, "--trajectories", str(n), "--timesteps", str(steps),
            "--end", repr(float(case.t_eval[-1])), "--interval", str(steps), "--seed", str(seed)]

    def raw() -> int:
        return subprocess.run(args, stdout=subprocess.DEVNULL, check=True).returncode

    try:
        secs_raw, _ = best_of(repeat, raw)
        out.append(Run(f"{label}, C++ process alone", n, firings_per_rep * n, False, secs_raw, None))
    except (OSError, subprocess.CalledProcessError) as err:  # another GillesPy2 version
        print(f"  (could not time the GillesPy2 executable alone: {err})")
    return out


# --- libroadrunner -----------------------------------------------------------------------


def load_roadrunner(net: Network) -> tuple[Any, float]:
    import roadrunner

    t = time.perf_counter()
    rr = roadrunner.RoadRunner(net.to_sbml())
    rr.setIntegrator("gillespie")
    rr.timeCourseSelections = ["time", *net.species_names]
    return rr, time.perf_counter() - t


def run_roadrunner(case: Case, rr: Any, seed: int, repeat: int, firings_per_rep: float) -> Run:
    it = rr.getIntegrator()
    it.setValue("variable_step_size", False)
    t0, t1, points = float(case.t_eval[0]), float(case.t_eval[-1]), len(case.t_eval)
    n = case.replicates

    def go() -> np.ndarray:
        it.setValue("seed", seed)
        final = np.empty((n, len(case.network.species)))
        for i in range(n):
            rr.reset()
            final[i] = rr.simulate(t0, t1, points)[-1, 1:]
        return final

    secs, final = best_of(repeat, go)
    return Run("libroadrunner gillespie, Python loop", n, firings_per_rep * n, False, secs, final)


def count_roadrunner_firings(case: Case, rr: Any, n: int, seed: int) -> np.ndarray:
    """Firings per replicate counted by roadrunner itself: with ``variable_step_size`` its
    output has one row per firing plus the first (t0) and the last (t1) rows."""
    it = rr.getIntegrator()
    it.setValue("variable_step_size", True)
    it.setValue("max_output_rows", 10**9)
    it.setValue("seed", seed)
    counts = np.empty(n)
    try:
        for i in range(n):
            rr.reset()
            counts[i] = rr.simulate(float(case.t_eval[0]), float(case.t_eval[-1])).shape[0] - 2
    finally:
        it.setValue("variable_step_size", False)
    return counts


# ---------------------------------------------------------------------------------------
# checks and report
# ---------------------------------------------------------------------------------------


def mean_se(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float)
    return x.mean(axis=0), x.std(axis=0, ddof=1) / math.sqrt(x.shape[0])


def compare_means(ref: np.ndarray, other: np.ndarray, names: tuple[str, ...]) -> tuple[bool, str]:
    """Two-sample z of the final means of every species; passes when max |z| ≤ Z_MAX."""
    m1, s1 = mean_se(ref)
    m2, s2 = mean_se(other)
    worst, worst_name, ok = 0.0, "", True
    for j, name in enumerate(names):
        se = math.hypot(s1[j], s2[j])
        if se == 0.0:
            if m1[j] != m2[j]:
                ok, worst, worst_name = False, math.inf, name
            continue
        z = (m2[j] - m1[j]) / se
        if abs(z) > abs(worst):
            worst, worst_name = z, name
    ok = ok and abs(worst) <= Z_MAX
    j = names.index(worst_name) if worst_name else 0
    detail = (f"max |z| = {abs(worst):.2f} ({worst_name}: {m2[j]:.6g} vs livingdrug {m1[j]:.6g})"
              if worst_name else "all species identical")
    return ok, detail


def compare_exact(final: np.ndarray, names: tuple[str, ...], exact: dict[str, float]) -> tuple[bool, str]:
    m, s = mean_se(final)
    parts, ok = [], True
    for name, value in exact.items():
        j = names.index(name)
        z = (m[j] - value) / s[j] if s[j] > 0 else (0.0 if m[j] == value else math.inf)
        ok = ok and abs(z) <= Z_MAX
        parts.append(f"{name} {m[j]:.5g} vs {value:.5g} (z = {z:+.2f})")
    return ok, ", ".join(parts)


def fmt_firings(r: Run) -> str:
    return f"{r.firings:,.0f}" if r.counted else f"~{r.firings:,.0f}"


def print_table(runs: list[Run], ref: Run) -> None:
    """``per core`` = firings per CPU-second; the ratio column is livingdrug's single-thread
    firings per CPU-second over the tool's (the per-core speed-up)."""
    w = max(len(r.tool) for r in runs)
    print(f"  {'tool':<{w}}  {'replicates':>10}  {'firings':>13}  {'wall s':>7}  {'CPU s':>7}  "
          f"{'firings/s':>10}  {'per core':>9}  {'livingdrug/tool per core':>24}")
    for r in runs:
        ratio = ref.rate_cpu / r.rate_cpu
        print(f"  {r.tool:<{w}}  {r.replicates:>10,}  {fmt_firings(r):>13}  {r.time.wall:>7.3f}  "
              f"{r.time.cpu:>7.3f}  {r.rate_wall / 1e6:>8.2f} M  {r.rate_cpu / 1e6:>7.2f} M  "
              f"{ratio:>23.1f}×")


def bench_case(case: Case, args: argparse.Namespace, exact: dict[str, float] | None) -> bool:
    net = case.network
    names = net.species_names
    print(f"\n=== ({case.key}) {case.title}")
    print(f"  {len(net.species)} species, {len(net.reactions)} reactions, output times "
          f"{case.t_eval[0]:g}..{case.t_eval[-1]:g} d ({len(case.t_eval)} points), "
          f"{case.replicates:,} replicates per tool, seed {args.seed}")
    ok_all = True

    # livingdrug: first calls (compile / cache load), then the timed runs
    c = net.compile()
    t = time.perf_counter()
    for parallel in (False, True):
        solve_ssa(c, net.initial_state(), net.parameter_vector(), case.t_eval, seed=args.seed,
                  replicates=2, parallel=parallel)
    print(f"  livingdrug first calls (numba compile or cache load): {time.perf_counter() - t:.2f} s "
          "wall (excluded)")
    ld1 = run_livingdrug(case, args.seed, args.repeat, parallel=False)
    ldp = run_livingdrug(case, args.seed, args.repeat, parallel=True)
    per_rep = ld1.firings / case.replicates  # the same paths as the other tools' estimate uses
    runs = [ld1, ldp]

    # GillesPy2, as shipped and -O3
    builds = [("as shipped, -O0", False)] + ([] if args.no_gillespy2_o3 else [("-O3 -march=native", True)])
    if not args.no_gillespy2:
        model = gillespy2_model(net, case.t_eval)
        for what, optimise in builds:
            solver, secs = build_gillespy2(model, optimise)
            print(f"  GillesPy2 C++ build ({what}): {secs:.2f} s wall (excluded)")
            solver.run(number_of_trajectories=2, seed=args.seed)  # warm-up
            runs += run_gillespy2(case, solver, f"GillesPy2 SSACSolver ({what})", args.seed,
                                  args.repeat, per_rep)

    # libroadrunner
    rr = None
    if not args.no_roadrunner:
        rr, secs = load_roadrunner(net)
        print(f"  libroadrunner SBML load + JIT: {secs:.2f} s wall (excluded)")
        rr.getIntegrator().setValue("seed", args.seed)
        rr.getIntegrator().setValue("variable_step_size", False)
        rr.simulate(float(case.t_eval[0]), float(case.t_eval[-1]), len(case.t_eval))  # warm-up
        runs.append(run_roadrunner(case, rr, args.seed, args.repeat, per_rep))

    # livingdrug's firings per replicate (each replicate run alone: the stats are summed over
    # rows; a replicate's path depends only on (seed, index), so these are the timed paths)
    ld_counts = np.array([
        solve_ssa(c, net.initial_state(), net.parameter_vector(), case.t_eval, seed=args.seed,
                  replicates=1, replicate_offset=i, parallel=False).stats["reactions"]
        for i in range(case.replicates)], dtype=float)
    if ld_counts.sum() != ld1.firings:
        raise RuntimeError("per-replicate firings do not add up to the batch's")
    m_ld, s_ld = ld_counts.mean(), ld_counts.std(ddof=1) / math.sqrt(ld_counts.size)

    print()
    print_table(runs, ld1)
    print(f"  (~ = estimated as livingdrug's mean firings per replicate, {m_ld:,.0f} ± {s_ld:,.0f} "
          f"(± 1 standard error, {100 * s_ld / m_ld:.1f} %), × replicates)")

    # checks
    print("  checks (final means, |z| ≤ 4):")
    for r in runs[1:]:
        if r.final is None:
            continue
        ok, detail = compare_means(ld1.final, r.final, names)
        ok_all &= ok
        print(f"    {'ok  ' if ok else 'FAIL'} {r.tool} vs livingdrug: {detail}")
    if exact is not None:
        for r in runs:
            if r.final is None:
                continue
            ok, detail = compare_exact(r.final, names, exact)
            ok_all &= ok
            print(f"    {'ok  ' if ok else 'FAIL'} {r.tool} vs closed form: {detail}")
    if rr is not None and args.count_replicates > 0:
        n = args.count_replicates
        counts = count_roadrunner_firings(case, rr, n, args.seed + 1)
        m_rr, s_rr = counts.mean(), counts.std(ddof=1) / math.sqrt(n)
        z = (m_rr - m_ld) / math.hypot(s_rr, s_ld)
        ok = abs(z) <= Z_MAX
        ok_all &= ok
        print(f"    {'ok  ' if ok else 'FAIL'} firings per replicate counted by libroadrunner "
              f"(variable step, {n} replicates) {m_rr:,.0f} ± {s_rr:,.0f} vs livingdrug "
              f"{m_ld:,.0f} ± {s_ld:,.0f} (z = {z:+.2f})")
    return ok_all


def versions() -> str:
    parts = [f"python {platform.python_version()}", f"numpy {np.__version__}",
             f"numba {numba.__version__} ({numba.get_num_threads()} threads)"]
    for mod in ("gillespy2", "roadrunner"):
        try:
            m = __import__(mod)
            parts.append(f"{mod} {getattr(m, '__version__', '?')}")
        except ImportError:
            parts.append(f"{mod} not installed")
    try:
        gxx = subprocess.run(["g++", "-dumpfullversion"], capture_output=True, text=True, check=True)
        parts.append(f"g++ {gxx.stdout.strip()}")
    except (OSError, subprocess.CalledProcessError):
        pass
    return ", ".join(parts)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short run (fewer replicates, repeat 1)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--repeat", type=int, default=None, help="best of N timings (default 3; 1 with --quick)")
    ap.add_argument("--bdk-replicates", type=int, default=None, help="model (a) replicates (default 400; 60 with --quick)")
    ap.add_argument("--car-t-replicates", type=int, default=None, help="model (b) replicates (default 200; 20 with --quick)")
    ap.add_argument("--eps", type=float, default=1e-7, help="scale of the car_t patient (default 1e-7)")
    ap.add_argument("--days", type=float, default=28.0, help="car_t window in days from infusion (default 28)")
    ap.add_argument("--count-replicates", type=int, default=None,
                    help="replicates whose firings libroadrunner counts itself (default 20; 5 with --quick; 0 skips)")
    ap.add_argument("--no-gillespy2", action="store_true")
    ap.add_argument("--no-gillespy2-o3", action="store_true", help="skip the -O3 rebuild of GillesPy2")
    ap.add_argument("--no-roadrunner", action="store_true")
    ap.add_argument("--only", choices=("a", "b"), default=None, help="run one model only")
    args = ap.parse_args()
    q = args.quick
    args.repeat = args.repeat or (1 if q else 3)
    n_a = args.bdk_replicates or (60 if q else 400)
    n_b = args.car_t_replicates or (20 if q else 200)
    if args.count_replicates is None:
        args.count_replicates = 5 if q else 20
    bad = [f"{name} = {v} (expected {want})" for name, v, ok, want in (
        ("--repeat", args.repeat, args.repeat >= 1, "≥ 1"),
        ("--bdk-replicates", n_a, n_a >= 2, "≥ 2: means need a standard error"),
        ("--car-t-replicates", n_b, n_b >= 2, "≥ 2: means need a standard error"),
        ("--count-replicates", args.count_replicates, args.count_replicates == 0 or args.count_replicates >= 2,
         "0 (skip) or ≥ 2"),
        ("--eps", args.eps, 0.0 < args.eps <= 1.0, "0 < eps ≤ 1"),
        ("--days", args.days, args.days > 0.0, "> 0 days"),
    ) if not ok]
    if bad:
        ap.error("; ".join(bad))
    for flag, module in (("--no-gillespy2", "gillespy2"), ("--no-roadrunner", "roadrunner")):
        if not getattr(args, flag[2:].replace("-", "_")) and importlib.util.find_spec(module) is None:
            ap.error(f"{module} is not installed: pip install -e \".[bench]\" (or pass {flag})")

    print(f"machine: {os.cpu_count()} CPUs ({cpu_name()}), {platform.system()} {platform.machine()}")
    print(versions())
    ok = True
    if args.only in (None, "a"):
        t_a = np.arange(0.0, BDK_DAYS + 0.5, 1.0)
        case_a = Case("a", "birth–death–killing (mass action)", birth_death_killing(), t_a, n_a)
        ok &= bench_case(case_a, args, bdk_exact_means(float(t_a[-1])))
    if args.only in (None, "b"):
        net_b, _ = car_t_scaled(args.eps, args.days)
        start = ", ".join(f"{sp_.name} {sp_.initial:.0f}" for sp_ in net_b.species)
        print(f"\n(b) start state (post-infusion default patient × {args.eps:g}, rounded): {start}")
        t_b = np.arange(0.0, args.days + 1e-9, 7.0)
        if t_b[-1] != args.days:
            t_b = np.linspace(0.0, args.days, max(2, round(args.days / 7.0) + 1))
        case_b = Case("b", f"default car_t network, patient scaled by ε = {args.eps:g}, "
                      f"days 0–{args.days:g} after infusion, no events", net_b, t_b, n_b)
        ok &= bench_case(case_b, args, None)
    if not ok:
        print("\nsome checks FAILED")
        sys.exit(1)


if __name__ == "__main__":
    main()
