"""Benchmark: livingdrug's batched ODE engine vs the loops a user would otherwise write.

Run by hand (not a test)::

    python benchmarks/bench_ode.py                      # 10,000 patients, 365 days
    python benchmarks/bench_ode.py --patients 2000 --sample 100 --ref-sample 10

See benchmarks/README.md for what is measured.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np
from scipy.integrate import solve_ivp

#: main rate parameters of the default model that get log-normal inter-individual variability
VARY = ("k_exp", "k_kill", "d_E", "k_X", "d_M", "k_EM", "r_L", "K_A", "r_N", "k_S", "k_SE")


def default_network() -> Any:
    """The default model (``car_t``); a small stand-in if the model library is missing."""
    try:
        from livingdrug.models import get_model

        return get_model("car_t").build(), "car_t"
    except ImportError:  # pragma: no cover - only before the model library existed
        return _stand_in(), "stand-in (livingdrug.models missing)"


def _stand_in() -> Any:
    from livingdrug.network import At, Event, Network, Reaction, Species, When, sym
    from livingdrug.params import Param

    E, L = sym("C_E"), sym("L_M")
    return Network(
        "stand_in",
        species=(Species("C_E", initial=0.0), Species("L_M", initial=1e11)),
        params=(Param("k_exp", 1.0, "1/d"), Param("K_A", 1e10, "cell"), Param("d_E", 0.15, "1/d"),
                Param("k_kill", 4.0, "1/d"), Param("r_L", 0.05, "1/d"), Param("dose", 1e8, "cell")),
        reactions=(
            Reaction("expand", {"C_E": 1}, sym("k_exp") * E * L / (sym("K_A") + L)),
            Reaction("contract", {"C_E": -1}, sym("d_E") * E),
            Reaction("grow", {"L_M": 1}, sym("r_L") * L * (1 - L / 1e12)),
            Reaction("kill", {"L_M": -1}, sym("k_kill") * E * L / (1e8 + L + E / 0.2)),
        ),
        events=(Event("infusion", At(0.0), {"C_E": E + sym("dose")}),
                Event("extinct", When(L - 1.0, -1), {"L_M": 0.0}, once=False)),
    )


def population(net: Any, n: int, omega: float, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    P = np.tile(net.parameter_vector(), (n, 1))
    names = [v for v in VARY if v in net.param_names]
    for name in names:
        j = net.param_names.index(name)
        P[:, j] *= np.exp(omega * rng.standard_normal(n))
    y0 = np.tile(net.initial_state(), (n, 1))
    return y0, P, names


# ---------------------------------------------------------------------------------------
# (b) what a user would write with scipy
# ---------------------------------------------------------------------------------------


def scipy_loop(compiled: Any, y0: np.ndarray, P: np.ndarray, t_eval: np.ndarray, t0: float,
               rtol: float, atol: float, method: str = "LSODA") -> tuple[np.ndarray, int]:
    """solve_ivp per patient: segments between timed events, condition events as terminal
    events, outputs from solve_ivp's t_eval (dense output).  Returns (y[n, T, k], n_failed)."""
    net = compiled.network
    k = len(net.species)
    n_ev = len(net.events)
    t_end = float(t_eval[-1])
    Y = np.full((y0.shape[0], t_eval.size, k), np.nan)
    failed = 0
    for i in range(y0.shape[0]):
        p = np.ascontiguousarray(P[i])
        y = y0[i].copy()

        def f(t: float, yy: np.ndarray, p: np.ndarray = p) -> np.ndarray:
            dy = np.empty(k)
            compiled.rhs(t, yy, p, dy)
            return dy

        def jac(t: float, yy: np.ndarray, p: np.ndarray = p) -> np.ndarray:
            J = np.empty((k, k))
            compiled.jac(t, yy, p, J)
            return J

        evs = []
        for c in range(n_ev):
            if compiled.event_is_timed[c]:
                continue

            def g(t: float, yy: np.ndarray, c: int = c, p: np.ndarray = p) -> float:
                return compiled.event_condition(c, t, yy, p)

            g.terminal = True  # type: ignore[attr-defined]
            g.direction = float(compiled.event_direction[c])  # type: ignore[attr-defined]
            evs.append((c, g))
        timed = sorted((compiled.event_time(c, p), c) for c in range(n_ev) if compiled.event_is_timed[c])
        timed = [(te, c) for te, c in timed if t0 <= te <= t_end]
        t = t0
        ok = True
        while True:
            while timed and timed[0][0] <= t:
                compiled.event_apply(timed.pop(0)[1], t, y, p)
            stop = timed[0][0] if timed else t_end
            mask = (t_eval >= t) & (t_eval <= stop)
            if t == stop:
                Y[i, mask] = y
                if not timed:
                    break
                continue
            sol = solve_ivp(f, (t, stop), y, method=method, rtol=rtol, atol=atol, jac=jac,
                            t_eval=t_eval[mask], events=[g for _, g in evs] or None)
            if sol.status < 0:
                ok = False
                break
            idx = np.flatnonzero(mask)[: sol.t.size]
            Y[i, idx] = sol.y.T
            if sol.status == 1:
                t = float(max(te[-1] for te in sol.t_events if te.size))
                y = np.array([ye[-1] for te, ye in zip(sol.t_events, sol.y_events, strict=True)
                              if te.size and te[-1] == t][0], dtype=float)
                for (c, _), te in zip(evs, sol.t_events, strict=True):
                    if te.size and te[-1] == t:
                        compiled.event_apply(c, t, y, p)
                # outputs exactly at t after the event
                Y[i, t_eval == t] = y
                continue
            y = sol.y[:, -1].copy() if sol.t.size and sol.t[-1] == stop else _end_state(sol, f, t, stop, y, rtol, atol, method, jac)
            t = stop
            if not timed:
                Y[i, t_eval == t] = y
                break
        if not ok:
            failed += 1
    return Y, failed


def _end_state(sol: Any, f: Any, t: float, stop: float, y: np.ndarray, rtol: float, atol: float,
               method: str, jac: Any) -> np.ndarray:
    """State at ``stop`` when no output time falls on it (integrate again; rare)."""
    s2 = solve_ivp(f, (t, stop), y, method=method, rtol=rtol, atol=atol, jac=jac)
    return s2.y[:, -1].copy()


# ---------------------------------------------------------------------------------------
# (c) libroadrunner on the exported SBML
# ---------------------------------------------------------------------------------------


def roadrunner_loop(net: Any, y0: np.ndarray, P: np.ndarray, t_eval: np.ndarray, t0: float,
                    rtol: float, atol: float, sbml: str) -> tuple[np.ndarray, int, float]:
    import roadrunner

    t_load = time.perf_counter()
    rr = roadrunner.RoadRunner(sbml)
    load_s = time.perf_counter() - t_load
    rr.integrator.relative_tolerance = rtol
    rr.integrator.absolute_tolerance = atol
    rr.integrator.setValue("maximum_num_steps", 100_000)
    # constant parameters come first in the SBML, in the network's order
    ids = list(rr.model.getGlobalParameterIds())
    assert ids[: len(net.params)] == list(net.param_names), "unexpected SBML parameter order"
    pidx = np.arange(len(net.params), dtype=np.int32)
    sidx = [list(rr.model.getFloatingSpeciesIds()).index(s) for s in net.species_names]
    sel = ["time", *net.species_names]
    Y = np.full((y0.shape[0], t_eval.size, len(net.species)), np.nan)
    failed = 0
    origin = float(net.meta.get("time_start", 0.0))
    for i in range(y0.shape[0]):
        try:
            rr.resetAll()
            rr.model.setGlobalParameterValues(pidx, P[i])
            rr.model.setFloatingSpeciesInitAmounts(np.array(sidx, dtype=np.int32), y0[i])
            rr.reset()
            # the output times themselves (a trial scenario's grid is not uniform: 6-hourly to
            # day 28, then daily), not start/end/points
            res = np.asarray(rr.simulate(times=list(np.concatenate([[t0], t_eval[t_eval > t0]]) - origin),
                                         selections=sel))
            Y[i] = res[-t_eval.size:, 1:]
        except RuntimeError:
            failed += 1
    return Y, failed, load_s


# ---------------------------------------------------------------------------------------


def max_rel_error(Y: np.ndarray, ref: np.ndarray, floor: float = 1.0) -> float:
    """Max relative error over patients, times and states where the reference is > 1 cell."""
    m = np.abs(ref) > floor
    if not m.any():
        return 0.0
    err = np.abs(Y[m] - ref[m]) / np.abs(ref[m])
    return float(np.nanmax(np.where(np.isnan(err), np.inf, err)))


def cli_timing() -> float | None:
    exe = shutil.which("livingdrug", path=os.path.dirname(sys.executable)) or shutil.which("livingdrug")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        times = []
        for j in range(2):  # the second run has a warm numba cache
            t = time.perf_counter()
            r = subprocess.run([exe, "run", "--out", os.path.join(tmp, f"run{j}")],
                               capture_output=True, text=True, check=False)
            times.append(time.perf_counter() - t)
            if r.returncode != 0:
                print(f"  livingdrug run failed (exit {r.returncode}): {r.stderr.strip()[-300:]}")
                return None
    return times[-1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=10_000)
    ap.add_argument("--days", type=float, default=365.0)
    ap.add_argument("--sample", type=int, default=200, help="patients for the slow loops (extrapolated)")
    ap.add_argument("--ref-sample", type=int, default=20, help="patients for the Radau reference")
    ap.add_argument("--omega", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--atol", type=float, default=1e-9)
    ap.add_argument("--no-cli", action="store_true", help="skip timing `livingdrug run`")
    ap.add_argument("--no-roadrunner", action="store_true")
    args = ap.parse_args(argv)

    from livingdrug.engines import ode
    from livingdrug.engines.reference import solve_reference

    net, label = default_network()
    t0 = float(net.meta.get("time_start", 0.0))
    t_eval = np.arange(math.ceil(t0), args.days + 0.5, 1.0)
    y0, P, varied = population(net, args.patients, args.omega, args.seed)
    n_s = min(args.sample, args.patients)
    n_r = min(args.ref_sample, n_s)
    print(f"livingdrug ODE benchmark: model {label} ({len(net.species)} species, "
          f"{len(net.reactions)} reactions, {len(net.events)} events)")
    print(f"  {args.patients} patients, t = {t0:g} .. {args.days:g} d, {t_eval.size} daily outputs; "
          f"log-normal ω={args.omega} on {', '.join(varied)}; seed {args.seed}")
    print(f"  rtol={args.rtol:g}, atol={args.atol:g}; machine: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, numba threads {_numba_threads()}")

    # compile / warm-up (reported separately)
    t = time.perf_counter()
    compiled = net.compile()
    ode.solve(compiled, y0[:2], P[:2], t_eval, t0=t0, rtol=args.rtol, atol=args.atol)
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    sbml = net.to_sbml()
    sbml_s = time.perf_counter() - t

    rows: list[tuple[str, float, int, bool, float, int]] = []
    t = time.perf_counter()
    sol = ode.solve(compiled, y0, P, t_eval, t0=t0, rtol=args.rtol, atol=args.atol)
    ld_s = time.perf_counter() - t
    ld_failed = int(np.sum(sol.status != 0))

    t = time.perf_counter()
    ref = solve_reference(compiled, y0[:n_r], P[:n_r], t_eval, t0=t0, method="Radau", rtol=1e-10, atol=1e-12)
    ref_s = time.perf_counter() - t
    if np.any(ref.status != 0):
        print(f"  WARNING: reference failed for {int(np.sum(ref.status != 0))} patients")
    rows.append(("livingdrug ode.solve (batched)", ld_s, args.patients, False,
                 max_rel_error(sol.y[:n_r], ref.y), ld_failed))

    # warm the scipy path once (numba dispatch of rhs/jac from Python)
    scipy_loop(compiled, y0[:1], P[:1], t_eval, t0, args.rtol, args.atol)
    t = time.perf_counter()
    Ys, sf = scipy_loop(compiled, y0[:n_s], P[:n_s], t_eval, t0, args.rtol, args.atol)
    sc_s = (time.perf_counter() - t) * args.patients / n_s
    rows.append(("scipy solve_ivp LSODA loop", sc_s, n_s, n_s < args.patients,
                 max_rel_error(Ys[:n_r], ref.y), sf))

    rr_s = math.nan
    rr_load = math.nan
    if not args.no_roadrunner:
        try:
            roadrunner_loop(net, y0[:1], P[:1], t_eval, t0, args.rtol, args.atol, sbml)
            t = time.perf_counter()
            Yr, rf, rr_load = roadrunner_loop(net, y0[:n_s], P[:n_s], t_eval, t0, args.rtol, args.atol, sbml)
            rr_s = (time.perf_counter() - t - rr_load) * args.patients / n_s
            rows.append(("libroadrunner CVODE loop (SBML)", rr_s, n_s, n_s < args.patients,
                         max_rel_error(Yr[:n_r], ref.y), rf))
        except ImportError:
            print("  libroadrunner not installed: skipped")

    print()
    print(f"{'method':34s} {'wall s':>10s} {'patients/s':>12s} {'measured on':>14s} {'max rel err':>12s} {'failed':>7s}")
    for name, secs, measured, extrap, err, nf in rows:
        on = f"{measured}" + (" (extrap.)" if extrap else "")
        print(f"{name:34s} {secs:10.2f} {args.patients / secs:12.1f} {on:>14s} {err:12.2e} {nf:7d}")
    print(f"{'scipy Radau reference rtol=1e-10':34s} {ref_s * args.patients / n_r:10.2f} "
          f"{n_r / ref_s:12.1f} {str(n_r) + ' (extrap.)':>14s} {'(reference)':>12s}")
    print()
    print(f"compile + warm-up of the engine (numba, cache as found): {compile_s:.2f} s; "
          f"SBML export {sbml_s:.2f} s; roadrunner SBML load/JIT {rr_load:.2f} s")
    print("errors: max |y - y_ref| / |y_ref| over the reference sample, all outputs, states > 1 cell")
    print()
    r_sc = sc_s / ld_s
    print(f"speed-up livingdrug / scipy loop:   {r_sc:8.1f}x   (target >= 100x) {'OK' if r_sc >= 100 else 'MISSED'}")
    if not math.isnan(rr_s):
        r_rr = rr_s / ld_s
        print(f"speed-up livingdrug / roadrunner:   {r_rr:8.1f}x   (target >= 10x)  {'OK' if r_rr >= 10 else 'MISSED'}")
    e = rows[0][4]
    print(f"livingdrug max relative error:      {e:8.1e}    (target <= 1e-4) {'OK' if e <= 1e-4 else 'MISSED'}")

    if not args.no_cli:
        s = cli_timing()
        if s is None:
            print("livingdrug run (default scenario): CLI not available")
        else:
            print(f"livingdrug run (default scenario, end to end, 2nd run, warm cache): {s:.2f} s")
    return 0


def _numba_threads() -> int:
    try:
        import numba

        return int(numba.get_num_threads())
    except Exception:  # pragma: no cover
        return 1


if __name__ == "__main__":
    sys.exit(main())
