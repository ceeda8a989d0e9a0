"""Where the exact SSA engine spends its time per firing: a ladder of kernel variants.

Run by hand (not a test)::

    python benchmarks/profile_ssa_kernel.py            # both models of bench_ssa_compare.py
    python benchmarks/profile_ssa_kernel.py --model b --repeat 7

The models are those of ``bench_ssa_compare.py``: (a) birth–death–killing (5 reactions) and (b)
the default ``car_t`` network scaled by ε = 1e-7, days 0–28, no events (31 reactions).

Method: the scalar kernel ``livingdrug.engines._ssa_kernel._ssa_one`` (Gillespie's direct method; D. T.
Gillespie 1977, J. Phys. Chem. 81:2340) is re-written here, for a network without events, as
one numba function whose parts can be switched off at compile time.  Step 0 keeps every part
and must draw exactly the engine's random numbers (the script checks that it fires exactly as
many reactions as ``solve_ssa``); each later step removes one more part:

0. the engine's loop (outputs, ``max_events``, progress, propensity checks, ``a[r] > 0`` test);
1. the per-reaction validity test of the propensities (``0 ≤ a_r < ∞``) replaced by a
   branch-free one that detects the same failures (running minimum ≥ 0 and a finite sum);
2. ... and the ``a[r] > 0`` test in the linear search removed;
3. ... and the per-firing output / ``max_events`` / progress bookkeeping moved to the stops;
4. ... and the propensities called as an (inlinable) numba function instead of through the
   ``cfunc`` pointer the engine uses so that its kernel is compiled once for every model.

Steps 1–4 draw the same random numbers and fire the same reactions as the engine (checked),
so the differences are pure cost.  Also timed on their own: one call of the model's
propensities (all reactions), and the random numbers of one firing (two xoshiro256**
uniforms and one ``log``, :func:`~livingdrug.engines._ssa_kernel.log_open` as in the engine).
The lane kernel (``solve_ssa(kernel="lanes")``, the default for event-free networks, which
vectorises over 16 replicates in lockstep) is timed end to end beside the scalar one and must
give the bitwise identical result.  Times are CPU time of this process (``time.process_time``), best
of ``--repeat``, so other load on the machine disturbs them less than wall time.

This is a measuring instrument, not a second engine: nothing in livingdrug uses it.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

from livingdrug.engines._ssa_kernel import log_open, uniform_open
from livingdrug.engines.ssa import replicate_states, solve_ssa

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_ssa_compare import BDK_DAYS, birth_death_killing, car_t_scaled  # noqa: E402


def make_kernel(compiled: Any, strict_check: bool, pos_test: bool, bookkeeping: bool,
                use_cfunc: bool) -> Callable[..., int]:
    """A direct-method kernel for an event-free network with the parts selected by the flags
    (compile-time constants: the switched-off code is not generated)."""
    prop = compiled.ssa_cfuncs[0] if use_cfunc else compiled.propensities

    @njit(nogil=True)
    def kernel(y0, p, t_eval, ST, states, yout):  # noqa: ANN001, ANN202
        nr = ST.shape[0]
        k = y0.shape[0]
        nT = t_eval.shape[0]
        a = np.zeros(nr)
        prog = np.zeros(1)
        total = 0
        for rep in range(states.shape[0]):
            s = states[rep].copy()
            y = y0.copy()
            t = t_eval[0]
            j = 0
            n_rx = 0
            failed = False
            if not bookkeeping:  # outputs at the start time, as the engine's loop does
                while j < nT and t_eval[j] == t:
                    for i in range(k):
                        yout[rep, j, i] = y[i]
                    j += 1
            while j < nT:
                if bookkeeping and t_eval[j] == t:
                    for i in range(k):
                        yout[rep, j, i] = y[i]
                    j += 1
                    continue
                t_stop = t_eval[j]
                if use_cfunc:
                    prop(t, y.ctypes, p.ctypes, a.ctypes)
                else:
                    prop(t, y, p, a)
                a0 = 0.0
                if strict_check:
                    bad = False
                    for r in range(nr):
                        ar = a[r]
                        if not (ar >= 0.0 and ar < math.inf):
                            bad = True
                        a0 += ar
                else:
                    amin = 0.0
                    for r in range(nr):
                        ar = a[r]
                        a0 += ar
                        amin = ar if ar < amin else amin
                    bad = not (amin >= 0.0 and a0 < math.inf)
                if bad:
                    failed = True
                    break
                tau = math.inf
                if a0 > 0.0:
                    tau = -log_open(uniform_open(s)) / a0
                if t + tau < t_stop:
                    if bookkeeping and n_rx >= 10**12:
                        break
                    t = t + tau
                    target = uniform_open(s) * a0
                    acc = 0.0
                    if pos_test:
                        chosen = -1
                        last = 0
                        for r in range(nr):
                            if a[r] > 0.0:
                                last = r
                                acc += a[r]
                                if target < acc:
                                    chosen = r
                                    break
                        if chosen < 0:
                            chosen = last
                    else:
                        chosen = nr - 1
                        for r in range(nr):
                            acc += a[r]
                            if target < acc:
                                chosen = r
                                break
                    for i in range(k):
                        y[i] += ST[chosen, i]
                    n_rx += 1
                else:
                    t = t_stop
                    if not bookkeeping:
                        for i in range(k):
                            yout[rep, j, i] = y[i]
                        j += 1
                if bookkeeping:
                    prog[0] = t
            if failed:
                return -1
            total += n_rx
        return total

    return kernel


@njit(nogil=True)
def _propensity_calls(prop, y, p, a, n):  # noqa: ANN001, ANN202
    acc = 0.0
    for i in range(n):
        y[0] += 1.0 if i % 2 == 0 else -1.0  # a changing state, so nothing is hoisted
        prop(0.0, y.ctypes, p.ctypes, a.ctypes)
        acc += a[a.shape[0] - 1]
    return acc


@njit(nogil=True)
def _random_numbers(s, n):  # noqa: ANN001, ANN202
    acc = 0.0
    for _ in range(n):
        acc += -log_open(uniform_open(s)) + uniform_open(s)
    return acc


def cpu_best(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    fn()  # compile / warm up
    best, out = math.inf, None
    for _ in range(repeat):
        t = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t)
    return best, out


def profile(label: str, net: Any, t_eval: np.ndarray, n: int, repeat: int, seed: int) -> None:
    c = net.compile()
    y0 = net.initial_state()
    P = net.parameter_vector()
    ST = np.ascontiguousarray(c.stoichiometry.T)
    states = replicate_states(seed, 0, n)
    yout = np.empty((n, t_eval.size, y0.size))
    secs, sol = cpu_best(repeat, lambda: solve_ssa(c, y0, P, t_eval, seed=seed, replicates=n,
                                                   parallel=False, kernel="scalar"))
    fired = sol.stats["reactions"]
    print(f"\n({label}) {len(net.reactions)} reactions, {len(net.species)} species, {n} replicates, "
          f"{fired:,} firings; ns per firing (CPU time, best of {repeat}):")
    print(f"  {'solve_ssa(parallel=False, kernel=scalar), end to end':<72} {1e9 * secs / fired:7.1f}")
    secs_l, sol_l = cpu_best(repeat, lambda: solve_ssa(c, y0, P, t_eval, seed=seed, replicates=n,
                                                       parallel=False, kernel="lanes"))
    if not np.array_equal(sol_l.y, sol.y):
        raise RuntimeError("the lane kernel's result differs from the scalar kernel's")
    print(f"  {'solve_ssa(parallel=False, kernel=lanes), end to end (bitwise same)':<72} "
          f"{1e9 * secs_l / fired:7.1f}")
    steps = (
        ("0 the engine's loop, re-written (same draws)", (True, True, True, True)),
        ("1 branch-free propensity check (same failures detected)", (False, True, True, True)),
        ("2 ... and no a[r] > 0 test in the linear search", (False, False, True, True)),
        ("3 ... and no per-firing output/max_events/progress bookkeeping", (False, False, False, True)),
        ("4 ... and propensities inlined (njit function, not the cfunc)", (False, False, False, False)),
    )
    for name, flags in steps:
        kern = make_kernel(c, *flags)
        secs, total = cpu_best(repeat, lambda kern=kern: kern(y0, P, t_eval, ST, states, yout))
        if total != fired:
            raise RuntimeError(f"variant {name!r} fired {total} reactions, the engine {fired}")
        print(f"  {name:<72} {1e9 * secs / fired:7.1f}")
    calls = 5_000_000
    a = np.zeros(len(net.reactions))
    secs, _ = cpu_best(repeat, lambda: _propensity_calls(c.ssa_cfuncs[0], y0.copy(), P, a, calls))
    print(f"  {'one propensities cfunc call (all reactions, CSE)':<72} {1e9 * secs / calls:7.1f}")
    s = states[0].copy()
    secs, _ = cpu_best(repeat, lambda: _random_numbers(s, calls))
    print(f"  {'random numbers of one firing (2 uniforms + 1 log)':<72} {1e9 * secs / calls:7.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("a", "b", "both"), default="both")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.model in ("a", "both"):
        profile("a: birth–death–killing", birth_death_killing(),
                np.arange(0.0, BDK_DAYS + 0.5, 1.0), 1000, args.repeat, args.seed)
    if args.model in ("b", "both"):
        net, _ = car_t_scaled(1e-7, 28.0)
        profile("b: car_t scaled by 1e-7, days 0-28", net, np.arange(0.0, 28.0 + 1e-9, 7.0),
                200, args.repeat, args.seed)


if __name__ == "__main__":
    main()
