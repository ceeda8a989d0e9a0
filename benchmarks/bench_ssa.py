"""Benchmark: reactions per second of the exact stochastic engine on linear birth–death.

Run by hand (not a test)::

    python benchmarks/bench_ssa.py                          # 20,000 replicates, t = 8 d
    python benchmarks/bench_ssa.py --replicates 2000 --days 12

Model: n → 2n at λ·n, n → ∅ at μ·n (λ = 1, μ = 0.5 per day), n0 = 3, daily outputs.  Times the
first call (compile or cache load) apart, then serial and parallel runs, and the cost of
deriving the per-replicate seeds (``replicate_states``) on its own.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numba
import numpy as np

from livingdrug.engines.ssa import replicate_states, solve_ssa
from livingdrug.network import Network, Reaction, Species, sym
from livingdrug.params import Param


def birth_death() -> Network:
    n, lam, mu = sym("n"), sym("lam"), sym("mu")
    return Network(
        "bench_birth_death",
        species=(Species("n", initial=3.0),),
        params=(Param("lam", 1.0, "1/d"), Param("mu", 0.5, "1/d")),
        reactions=(Reaction("birth", {"n": 1}, lam * n), Reaction("death", {"n": -1}, mu * n)),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicates", type=int, default=20_000)
    ap.add_argument("--days", type=float, default=8.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    c = birth_death().compile()
    y0 = c.network.initial_state()
    P = c.network.parameter_vector()
    t_eval = np.arange(0.0, args.days + 0.5, 1.0)
    print(f"python {platform.python_version()}, numba {numba.__version__}, "
          f"{numba.get_num_threads()} threads, {os.cpu_count()} CPUs")
    t = time.perf_counter()
    solve_ssa(c, y0, P, t_eval, seed=args.seed, replicates=4)
    solve_ssa(c, y0, P, t_eval, seed=args.seed, replicates=4, parallel=False)
    print(f"first calls (compile or cache load): {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    replicate_states(args.seed, 0, args.replicates)
    print(f"seed derivation for {args.replicates} replicates: {time.perf_counter() - t:.3f} s")
    for parallel in (False, True):
        best = np.inf
        for _ in range(args.repeat):
            t = time.perf_counter()
            sol = solve_ssa(c, y0, P, t_eval, seed=args.seed, replicates=args.replicates,
                            parallel=parallel)
            best = min(best, time.perf_counter() - t)
        r = sol.stats["reactions"]
        print(f"parallel={parallel!s:5}: {r:,} reactions in {best:.3f} s (best of {args.repeat}) "
              f"= {r / best / 1e6:.1f} M reactions/s (end to end, seeds included)")


if __name__ == "__main__":
    main()
