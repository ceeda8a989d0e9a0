"""Benchmark: a virtual trial of the default scenario vs the loops a user would otherwise write.

Run by hand (not a test)::

    python benchmarks/bench_trial.py                       # 100,000 patients × 365 days
    python benchmarks/bench_trial.py --patients 1000000    # the target, run for real (~5 min)
    python benchmarks/bench_trial.py --patients 20000 --sample 20

What it measures, side by side in one run, on the same virtual patients (the cd19-ball
``[population]``: burden, CD19-negative clone, growth, weight and expansion vary):

(a) ``livingdrug.trial.run_trial`` — the whole trial (population draws, batched ODE
    integration from day −6 to 365 on the scenario's output grid — 6-hourly to day 28, then
    daily — scoring: B-ALL response, exposure, ASTCT grades, OS/PFS,
    Parquet parts, final table and summary; no figures), in a fresh process so that its peak memory
    (``ru_maxrss``) is its own; run at two sizes to show how memory depends on N;
(b) scipy ``solve_ivp`` (LSODA with the analytic Jacobian, event handling as in
    ``bench_ode.py``) per patient on a sample, extrapolated to N;
(c) libroadrunner on the exported SBML per patient on a sample, extrapolated to N.

Accuracy: livingdrug's states of the sample patients against scipy's Radau at rtol 1e-10
(max relative error over the output times, values below 1 cell/unit ignored), and the same for
(b) and (c).  Prints patients/s, ratios and peak memory, and the target: 10⁶ patients in
< 5 min with < 2 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_ode import max_rel_error, roadrunner_loop, scipy_loop  # noqa: E402

from livingdrug.clinical.streaming import RANGE_ROWS  # noqa: E402
from livingdrug.io.results import MERGE_ROW_GROUP  # noqa: E402


def _trial_worker(n: int, chunk: int | None) -> None:
    """Child process: run the trial and print timings and peak memory as JSON."""
    from livingdrug.trial import run_trial

    out = tempfile.mkdtemp(prefix="ld-bench-trial-")
    # compile and load everything first (the numba cache makes this fast after the first run)
    run_trial("cd19-ball", Path(out) / "warm", patients=8, chunk_size=8, figures=False)
    rss_warm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    r = run_trial("cd19-ball", Path(out) / "trial", patients=n, chunk_size=chunk, figures=False)
    secs = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    arm = next(iter(r.summary["arms"].values()))
    print(json.dumps({"n": n, "seconds": secs, "peak_rss_mb": rss / 1024, "warm_rss_mb": rss_warm / 1024,
                      "failed": arm["failed_solves"], "response": arm["response_itt"]["estimate"],
                      "crs3": arm["crs_grade_ge_3"]["estimate"]}))


def _run_child(n: int, chunk: int | None) -> dict:
    env = dict(os.environ)
    size = [] if chunk is None else ["--chunk-size", str(chunk)]
    p = subprocess.run([sys.executable, __file__, "--worker", str(n), *size],
                       capture_output=True, text=True, env=env, timeout=6 * 3600)
    if p.returncode != 0:
        raise SystemExit(f"trial worker failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def _sample_inputs(k: int) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    from livingdrug.comparison import advance_untreated, arm_inputs, plan_arm
    from livingdrug.network import compile_network
    from livingdrug.trial import trial_design

    c = trial_design("cd19-ball")
    plan = plan_arm(c, 0, k)
    inp = arm_inputs(c, plan, np.arange(k))
    compiled = compile_network(plan.rs.network)
    y0, _ = advance_untreated(compiled, plan.rs, inp.y0, inp.P, inp.untreated[inp.idx], horizon=plan.horizon)
    return plan.rs, compiled, inp.P, y0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--small", type=int, default=10_000, help="second trial size for the memory check")
    ap.add_argument("--sample", type=int, default=20, help="patients for the scipy/roadrunner loops")
    ap.add_argument("--chunk-size", type=int, default=None, help="patients per chunk (default: the trial's own)")
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker is not None:
        _trial_worker(a.worker, a.chunk_size)
        return 0

    from scipy.integrate import solve_ivp  # noqa: F401  (imported early: not timed below)

    from livingdrug.engines.ode import solve
    from livingdrug.sbml import to_sbml

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"(a) livingdrug trial, cd19-ball population, {a.patients:,} patients × 365 d, "
          f"chunk {a.chunk_size or 'default'}")
    big = _run_child(a.patients, a.chunk_size)
    small = _run_child(a.small, a.chunk_size)
    rate = big["n"] / big["seconds"]
    print(f"    {big['n']:,} patients in {big['seconds']:.1f} s = {rate:,.0f} patients/s; "
          f"peak memory {big['peak_rss_mb']:.0f} MB (after warm-up {big['warm_rss_mb']:.0f} MB); failed {big['failed']}")
    print(f"    {small['n']:,} patients: peak memory {small['peak_rss_mb']:.0f} MB "
          f"→ {big['peak_rss_mb'] - small['peak_rss_mb']:+.0f} MB for {big['n'] - small['n']:,} more patients "
          f"(bounded: the merge's row groups fill at {MERGE_ROW_GROUP:,} patients and the summary's "
          f"sort ranges at {RANGE_ROWS:,}; flat beyond)")
    minutes = big["seconds"] / 60 * 1e6 / big["n"]
    how = "measured" if big["n"] == 1_000_000 else "extrapolated"
    met = minutes < 5 and big["peak_rss_mb"] < 2048
    print(f"    {how} 10^6 patients: {minutes:.1f} min, peak {big['peak_rss_mb']:.0f} MB "
          f"(target < 5 min and < 2 GB: {'met' if met else 'NOT met'}), "
          f"ITT response {100 * big['response']:.1f} %, CRS ≥ 3 {100 * big['crs3']:.1f} %")

    rs, compiled, P, y0 = _sample_inputs(a.sample)
    t_eval = np.asarray(rs.t_out, dtype=float)
    t0 = float(rs.t_start)
    sol = solve(compiled, y0, P, t_eval, t0=t0, rtol=rs.rtol, atol=rs.atol)
    ref, _ = scipy_loop(compiled, y0, P, t_eval, t0, 1e-10, 1e-6, method="Radau")
    t = time.perf_counter()
    Ys, fail_s = scipy_loop(compiled, y0, P, t_eval, t0, rs.rtol, rs.atol, method="LSODA")
    per_scipy = (time.perf_counter() - t) / a.sample
    try:
        sbml = to_sbml(rs.network)
        t = time.perf_counter()
        Yr, fail_r, _ = roadrunner_loop(rs.network, y0, P, t_eval, t0, rs.rtol, rs.atol, sbml)
        per_rr = (time.perf_counter() - t) / a.sample
    except Exception as exc:  # noqa: BLE001 - report, do not hide
        Yr, fail_r, per_rr = None, a.sample, float("nan")
        print(f"    libroadrunner could not run the model: {type(exc).__name__}: {exc}")
    print(f"(b) scipy solve_ivp LSODA loop: {per_scipy * 1e3:.1f} ms/patient (1 core) → "
          f"{a.patients * per_scipy / 60:.1f} min for {a.patients:,}; failed {fail_s}/{a.sample}")
    if Yr is not None:
        print(f"(c) libroadrunner loop: {per_rr * 1e3:.1f} ms/patient (1 core) → "
              f"{a.patients * per_rr / 60:.1f} min for {a.patients:,}; failed {fail_r}/{a.sample}")
    print("accuracy (max relative error vs scipy Radau rtol 1e-10, states ≥ 1):")
    print(f"    livingdrug {max_rel_error(sol.y, ref):.2e}; scipy LSODA {max_rel_error(Ys, ref):.2e}"
          + (f"; libroadrunner {max_rel_error(Yr, ref):.2e}" if Yr is not None else ""))
    print("ratios (patients/s, livingdrug trial on all cores vs one-core loops; the loops would scale "
          "at best linearly with cores):")
    print(f"    vs scipy loop: {rate * per_scipy:.0f}×" + (f"; vs libroadrunner: {rate * per_rr:.0f}×" if Yr is not None else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
