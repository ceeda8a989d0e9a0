"""The exact stochastic engine: Gillespie's direct method on a :class:`Network`.

Front door::

    sol = solve_ssa(compiled, y0, P, t_eval, seed=1)                  # y0[n, k], P[n, m]
    sol = solve_ssa(compiled, y0, P, t_eval, seed=1, replicates=1000)  # one row, 1000 runs
    sol.y[n, T, k], sol.status[n], sol.message[n], sol.stats, sol.settings

Interpretation
--------------
Species values are molecule/cell **counts** and each reaction's rate law is its
**propensity** (expected firings per day given the current counts); a firing changes the
counts by the reaction's stoichiometry (which must be integer-valued).  If ``y0`` is
integer-valued the states stay integers (stored as float64): an event that leaves a count
non-integer (e.g. ``N · f`` for a surviving fraction, or a dose split into phenotypes) is
followed by unbiased stochastic rounding, ``⌊x⌋ + Bernoulli(x − ⌊x⌋)``, of every species that
some reaction changes (species no reaction changes, such as a recorded time, keep the value
the event gave them).  A rate law written for
concentrations must be rescaled by the user (e.g. bimolecular ``k·A·B/V``).

Algorithm
---------
Gillespie's direct method (D. T. Gillespie, J. Phys. Chem. 81 (1977) 2340–2361): with
propensities ``a_r(t, y)`` and ``a0 = Σ a_r``, the waiting time to the next firing is
``τ = −ln(U₁)/a0`` and reaction ``r`` is the first index with ``U₂·a0 < Σ_{s≤r} a_s``
(``U₁, U₂`` uniform on (0, 1)).  This is exact for propensities that depend on ``t`` only
through the state; a rate law with an explicit ``t`` is held constant between firings (an
approximation, flagged in ``settings["time_dependent_rates"]``).

Events and outputs
------------------
* Timed events (``At``) fire exactly at their time if ``t0 ≤ time ≤ t_eval[-1]`` (several at
  the same time in index order; one at ``t0`` before the first output).  A waiting time that
  would cross an event or output time is truncated there; since the process is memoryless,
  drawing a fresh waiting time after the stop leaves the law of the path unchanged.
* Condition events (``When``) are checked after each firing and after timed events: a crossing
  of zero in the declared direction since the last check (−1: from > 0 to ≤ 0; +1: from < 0 to
  ≥ 0; 0: either) fires the event; all conditions are evaluated before any assignment and the
  crossed events fire in index order; ``once`` events fire at most once.  States change only at
  firings, so for a condition of the state alone this is exact.
* ``a0 = 0`` (nothing can fire): time jumps to the next event or output time.
* Outputs are right-continuous: the value at ``t_eval[j]`` is the state after every firing and
  event at that time.

Randomness
----------
Row ``i`` draws from its own xoshiro256** generator (Blackman & Vigna, ACM Trans. Math. Softw.
47(4), 36, 2021) whose 256-bit state is ``SeedSequence(seed, spawn_key=(replicate_offset +
i,)).generate_state(4, uint64)`` — the per-patient stream convention of
:mod:`livingdrug.rng`.  A row's result therefore depends only on ``(seed, replicate_offset + i)``
and its inputs: it is bitwise identical whatever the chunking, thread count or ``parallel``
flag.  Simulating rows ``a:b`` of a larger run is ``solve_ssa(..., replicate_offset=a)``.
Global random state is never touched.

Failures are data
-----------------
A negative, NaN or infinite propensity (``STATUS_BAD_PROPENSITY``), a non-finite state after
an event (``STATUS_NONFINITE``), model code that raised (reported as ``STATUS_NONFINITE``) or
more than ``max_events`` firings (``STATUS_MAX_STEPS``) end that row with a status and a
message naming the time; its outputs from then on are NaN; other rows are unaffected.

Kernels
-------
Two kernels compute exactly the same thing (``kernel=`` argument, ``settings["kernel"]``):

* ``"scalar"`` (:mod:`livingdrug.engines._ssa_kernel`): one replicate per thread at a time,
  everything above, events included.
* ``"lanes"`` (:mod:`livingdrug.engines._ssa_lanes`, :mod:`livingdrug.engines.ssa_lanes`), the
  default for a network with reactions and no events: 16 replicates advance in lockstep, one
  firing each per step, through a per-model generated, branch-free step that LLVM compiles to
  SIMD code (AVX-512: 8 replicates per instruction); a lane at an output time, failing, at
  ``max_events`` or finished is advanced by one iteration of the scalar loop instead.  About 7×
  (5 reactions) and 4× (31 reactions) faster per core than the scalar kernel
  (``benchmarks/bench_ssa_compare.py``).

Both use the same propensity code, the same sums, the same draws and the same branch-free
logarithm (:func:`~livingdrug.engines._ssa_kernel.log_open`, fdlibm's algorithm, < 1 ulp), so
a replicate's result is bitwise the same with either kernel, in any lane, chunk or thread.

Compilation
-----------
The kernels take the model's :attr:`~livingdrug.network.CompiledNetwork.ssa_cfuncs` (and, for
the lane kernel, the model's generated lane step ``cfunc``) as arguments, so they are compiled
once for every model and cached under :func:`~livingdrug.network.cache_dir`; only the lane
step is compiled per model (1–4 s once, then cached).  ``settings["kernel_sha256"]``
identifies the kernels' source.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numba
import numpy as np

from ..network import CompiledNetwork, T
from . import _ssa_kernel, _ssa_lanes, ssa_lanes
from .common import (
    STATUS_MAX_STEPS,
    STATUS_MESSAGES,
    STATUS_NONFINITE,
    STATUS_OK,
    OdeSolution,
    as_2d,
    check_times,
    event_arrays,
    require_count_species,
)

__all__ = ["solve_ssa", "replicate_states", "base_settings", "run_batch", "KERNEL_HASH", "KERNELS"]

_KERNEL_EXCEPTION = 5
#: the accepted values of ``solve_ssa(..., kernel=…)``
KERNELS = ("auto", "lanes", "scalar")
_STATS_NAMES = ("reactions", "events")

_KERNEL_SOURCE = "".join(
    Path(__file__).with_name(f).read_text(encoding="utf-8")
    for f in ("_ssa_kernel.py", "_ssa_lanes.py", "ssa_lanes.py")
)
#: SHA-256 (first 16 hex digits) of the kernels' source (scalar and lane), reported in
#: ``settings``
KERNEL_HASH = hashlib.sha256(_KERNEL_SOURCE.encode()).hexdigest()[:16]


# numpy.random.SeedSequence's constants (numpy/random/bit_generator.pyx, after M. E. O'Neill's
# "Developing a seed_seq alternative", 2015): pool of 4 uint32 words, hashmix/mix multipliers
_POOL = 4
_INIT_A = 0x43B0D7E5
_MULT_A = 0x931E8875
_INIT_B = 0x8B51F9DD
_MULT_B = 0x58F38DED
_MIX_L = 0xCA01F9DD
_MIX_R = 0x4973F715
_M32 = 0xFFFFFFFF


def _uint32_words(x: int) -> list[int]:
    """An int as numpy's SeedSequence reads it: little-endian 32-bit words (0 → [0])."""
    words = [x & _M32]
    x >>= 32
    while x:
        words.append(x & _M32)
        x >>= 32
    return words


def _seed_states_vectorised(seed: int, first: int, n: int) -> np.ndarray:
    """``SeedSequence(seed, spawn_key=(first + i,)).generate_state(4, uint64)`` for
    ``i < n``, vectorised over i (``seed < 2¹²⁸``, ``first + n ≤ 2³²``): numpy's algorithm
    step by step — the pool mixed from the run entropy (the seed's words padded to 4) is the
    same for every replicate and computed once; only the spawn word's hashes are per
    replicate.  uint32 arithmetic wraps modulo 2³², as in numpy's C code."""
    hash_a = _INIT_A

    def hashmix(v: int) -> int:
        nonlocal hash_a
        v ^= hash_a
        hash_a = (hash_a * _MULT_A) & _M32
        v = (v * hash_a) & _M32
        return v ^ (v >> 16)

    def mix(x: int, y: int) -> int:
        r = (_MIX_L * x - _MIX_R * y) & _M32
        return r ^ (r >> 16)

    run = _uint32_words(seed) + [0] * (_POOL - len(_uint32_words(seed)))
    pool = [hashmix(w) for w in run]
    for i_src in range(_POOL):
        for i_dst in range(_POOL):
            if i_src != i_dst:
                pool[i_dst] = mix(pool[i_dst], hashmix(pool[i_src]))
    # the spawn word (first + i) is mixed into every pool word, one hash each
    u32 = np.uint32
    spawn = np.arange(first, first + n, dtype=np.uint64).astype(u32)
    P = np.empty((n, _POOL), dtype=u32)
    with np.errstate(over="ignore"):
        for i_dst in range(_POOL):
            h = (spawn ^ u32(hash_a)) * u32((hash_a * _MULT_A) & _M32)
            hash_a = (hash_a * _MULT_A) & _M32
            h ^= h >> u32(16)
            r = u32(pool[i_dst]) * u32(_MIX_L) - h * u32(_MIX_R)
            P[:, i_dst] = r ^ (r >> u32(16))
        out32 = np.empty((n, 2 * _POOL), dtype=u32)
        hash_b = _INIT_B
        for i_dst in range(2 * _POOL):
            d = P[:, i_dst % _POOL] ^ u32(hash_b)
            hash_b = (hash_b * _MULT_B) & _M32
            d = d * u32(hash_b)
            out32[:, i_dst] = d ^ (d >> u32(16))
    lo = out32[:, 0::2].astype(np.uint64)
    hi = out32[:, 1::2].astype(np.uint64)
    return np.ascontiguousarray(lo | (hi << np.uint64(32)))


def replicate_states(seed: int, first: int, n: int) -> np.ndarray:
    """xoshiro256** states ``uint64[n, 4]`` of replicates ``first … first+n−1`` of a run:
    ``SeedSequence(seed, spawn_key=(first + i,)).generate_state(4, uint64)`` (computed by a
    vectorised transcription of numpy's algorithm where it applies, checked bitwise against
    numpy in the tests; numpy itself otherwise)."""
    if 0 <= seed < 2**128 and 0 <= first and first + n <= 2**32:
        out = _seed_states_vectorised(int(seed), int(first), int(n))
    else:
        out = np.empty((n, 4), dtype=np.uint64)
        for i in range(n):
            out[i] = np.random.SeedSequence(seed, spawn_key=(first + i,)).generate_state(4, np.uint64)
    zero = ~out.any(axis=1)  # the all-zero state is xoshiro's fixed point (probability 2⁻²⁵⁶)
    out[zero, 0] = np.uint64(1)
    return out


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _prepare(
    compiled: CompiledNetwork,
    y0: Any,
    P: Any,
    t_eval: Any,
    seed: Any,
    replicates: Any,
    replicate_offset: Any,
    t0: Any,
    engine: str = "exact stochastic engine",
    counts_only: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray, int]:
    """Validate the common arguments of the stochastic engines; returns contiguous float64
    ``(Y0[n, k], P[n, m], t_eval, t_start, ST[r, k], n)`` (``ST`` the transposed
    stoichiometry).  Raises ValueError for malformed arguments, and, with ``counts_only``
    (every engine but the hybrid, which integrates them), for ODE-only species."""
    net = compiled.network
    if counts_only:
        require_count_species(net, engine)
    k = len(net.species)
    m = len(net.params)
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    if not _is_int(replicate_offset) or replicate_offset < 0:
        raise ValueError(f"replicate_offset must be a non-negative integer; got {replicate_offset!r}")
    if replicates is not None and (not _is_int(replicates) or replicates < 0):
        raise ValueError(f"replicates must be a non-negative integer or None; got {replicates!r}")
    S = np.asarray(compiled.stoichiometry, dtype=float)
    if not np.array_equal(S, np.round(S)):
        raise ValueError(
            f"network {net.name}: the {engine} needs integer stoichiometry "
            "(species are counts)"
        )
    te, t_start = check_times(t_eval, t0)
    Y0 = as_2d(y0, k, "y0", f"species {list(net.species_names)}")
    PP = as_2d(P, m, "P", f"parameters {list(net.param_names)}")
    rows = {Y0.shape[0], PP.shape[0]}
    n = max(rows)
    if replicates is not None:
        if not rows <= {1, replicates}:
            raise ValueError(
                f"replicates = {replicates} but y0 has {Y0.shape[0]} rows and P has "
                f"{PP.shape[0]}; each must have 1 row or {replicates}"
            )
        n = replicates
    elif len(rows) > 1 and 1 not in rows:
        raise ValueError(
            f"y0 has {Y0.shape[0]} rows but P has {PP.shape[0]}; they must match "
            "(or one of them must have a single row)"
        )
    if Y0.shape[0] != n:
        Y0 = np.repeat(Y0, n, axis=0)
    if PP.shape[0] != n:
        PP = np.repeat(PP, n, axis=0)
    if not np.all(np.isfinite(Y0)):
        raise ValueError(f"y0 must be finite (row {int(np.argwhere(~np.isfinite(Y0))[0, 0])} is not)")
    if not np.all(np.isfinite(PP)):
        raise ValueError(f"P must be finite (row {int(np.argwhere(~np.isfinite(PP))[0, 0])} is not)")
    nonneg = np.array([s.nonnegative for s in net.species], dtype=bool)
    if n > 0 and k > 0 and np.any(Y0[:, nonneg] < 0):
        i, col = np.argwhere((Y0 < 0) & nonneg[None, :])[0]
        raise ValueError(
            f"y0 must be a non-negative count for species {net.species_names[col]} (row {i})"
        )

    return (
        np.array(Y0, dtype=np.float64, order="C"),
        np.array(PP, dtype=np.float64, order="C"),
        np.array(te, dtype=np.float64, order="C"),
        t_start,
        np.array(S.T, dtype=np.float64, order="C"),
        n,
    )


def _messages(
    status: np.ndarray, t_fail: np.ndarray, limit_what: str, limit_extra: str, offset: int = 0
) -> tuple[str, ...]:
    """Per-row messages naming each replicate by its index in the whole run (``offset`` + row);
    maps the kernel's internal exception code to STATUS_NONFINITE (in place)."""
    messages = []
    for i in range(status.shape[0]):
        st = int(status[i])
        if st == STATUS_OK:
            messages.append("ok")
        elif st == _KERNEL_EXCEPTION:
            messages.append(
                f"replicate {offset + i}: the model raised an arithmetic error (e.g. a division by zero "
                f"in a rate law) after t = {t_fail[i]:.10g} d"
            )
        else:
            extra = f" ({limit_extra})" if st == STATUS_MAX_STEPS else ""
            if st == STATUS_MAX_STEPS:
                what = limit_what
            else:
                what = STATUS_MESSAGES.get(st, "unknown failure")
            messages.append(f"replicate {offset + i}: {what}{extra} at t = {t_fail[i]:.10g} d")
    status[status == _KERNEL_EXCEPTION] = STATUS_NONFINITE
    return tuple(messages)


def base_settings(
    compiled: CompiledNetwork,
    *,
    engine: str,
    method: str,
    kernel_sha256: str,
    seed: int,
    replicate_offset: int,
    n: int,
    t_start: float,
    parallel: bool,
) -> dict[str, Any]:
    """The settings every stochastic engine reports (JSON-serialisable); each adds its own."""
    return {
        "engine": engine,
        "method": method,
        "rng": "xoshiro256** seeded by SeedSequence(seed, spawn_key=(replicate_offset + i,))",
        "kernel_sha256": kernel_sha256,
        "seed": int(seed),
        "replicate_offset": int(replicate_offset),
        "replicates": int(n),
        "t0": t_start,
        "parallel": bool(parallel),
        "time_dependent_rates": any(T in e.free_symbols for e in compiled.network.rate_vector()),
        "output": "right-continuous at events; species are counts",
    }


def run_batch(
    compiled: CompiledNetwork,
    drivers: tuple[Any, Any],
    *,
    parallel: bool,
    t_start: float,
    Y0: np.ndarray,
    P: np.ndarray,
    t_eval: np.ndarray,
    model_arrays: tuple[Any, ...],
    options: tuple[Any, ...],
    seed: int,
    replicate_offset: int,
    stats_names: tuple[str, ...],
    limit: tuple[str, str],
    settings: dict[str, Any],
) -> OdeSolution:
    """Run a stochastic kernel's (parallel, serial) ``drivers`` on all rows and collect the
    :class:`OdeSolution`.  Every kernel takes ``(fns, t0, Y0, P, t_eval, *model_arrays,
    ev_timed, ev_dir, ev_once, states, *options, Yout, status, t_fail, stats)``; ``limit`` is
    the (what, setting) pair named in the message of a row that hit its budget."""
    n, k = Y0.shape
    Yout = np.empty((n, t_eval.size, k))
    status = np.zeros(n, dtype=np.int64)
    t_fail = np.zeros(n)
    stats = np.zeros((n, len(stats_names)), dtype=np.int64)
    if n > 0:
        states = replicate_states(int(seed), int(replicate_offset), n)
        driver = drivers[0] if parallel else drivers[1]
        driver(compiled.ssa_cfuncs, t_start, Y0, P, t_eval, *model_arrays,
               *event_arrays(compiled), states, *options, Yout, status, t_fail, stats)
    messages = _messages(status, t_fail, limit[0], limit[1], int(replicate_offset))
    summed = stats.sum(axis=0)
    return OdeSolution(
        t=t_eval.copy(),
        y=Yout,
        status=status,
        message=messages,
        stats={name: int(v) for name, v in zip(stats_names, summed, strict=True)},
        settings=settings,
    )


def solve_ssa(
    compiled: CompiledNetwork,
    y0: np.ndarray,
    P: np.ndarray,
    t_eval: np.ndarray,
    *,
    seed: int,
    replicates: int | None = None,
    replicate_offset: int = 0,
    t0: float | None = None,
    max_events: int = 10**8,
    parallel: bool = True,
    kernel: str = "auto",
) -> OdeSolution:
    """Simulate n independent stochastic realisations and report the counts at ``t_eval``.

    Parameters
    ----------
    compiled:
        :func:`~livingdrug.network.compile_network` of the model (integer stoichiometry).
    y0:
        Initial counts ``[n, k]`` (or ``[k]``), non-negative for species marked
        ``nonnegative``.
    P:
        Parameters ``[n, m]`` (or ``[m]``).  One of ``y0``/``P`` may have one row and is then
        broadcast to the other's number of rows.
    t_eval:
        Strictly increasing output times (days), 1-D.
    seed:
        Non-negative integer run seed (stored in ``settings``).
    replicates:
        Number of rows ``n``; a single-row ``y0``/``P`` is broadcast to it.  Default: the
        number of rows of ``y0``/``P``.
    replicate_offset:
        Index of the first row in the run's sequence of streams (to simulate a chunk of a
        larger run bitwise identically).
    t0:
        Start time (days), ``t0 ≤ t_eval[0]``; defaults to ``t_eval[0]``.
    max_events:
        Maximum number of reaction firings per row.
    parallel:
        Simulate rows in a numba ``prange`` loop (results are bitwise identical either way).
    kernel:
        ``"auto"`` (default): the lane kernel for a network with reactions and no events, the
        scalar kernel otherwise; ``"lanes"`` or ``"scalar"`` to choose (``"lanes"`` raises
        ValueError for a network with events).  Both give bitwise identical results; the
        choice is reported in ``settings["kernel"]``.

    Returns
    -------
    OdeSolution
        ``y[n, T, k]`` counts (float64, right-continuous at events), ``status[n]``,
        ``message[n]``, ``stats`` (``reactions`` fired and ``events`` fired, summed over rows)
        and ``settings`` (JSON-serialisable, including the seed).

    Raises
    ------
    ValueError
        For malformed arguments.  A row's failure is never raised: see ``status``.
    """
    if not _is_int(max_events) or max_events < 1:
        raise ValueError(f"max_events must be a positive integer; got {max_events!r}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}; got {kernel!r}")
    use_lanes = kernel == "lanes" or (kernel == "auto" and ssa_lanes.lanes_apply(compiled))
    if use_lanes and not ssa_lanes.lanes_apply(compiled):
        raise ValueError(
            f"kernel = 'lanes' needs a network with reactions and no events; network "
            f"{compiled.network.name} has {len(compiled.network.reactions)} reactions and "
            f"{len(compiled.network.events)} events: use kernel = 'auto' or 'scalar'"
        )
    Y0, PP, te, t_start, ST, n = _prepare(
        compiled, y0, P, t_eval, seed, replicates, replicate_offset, t0
    )
    settings = base_settings(
        compiled, engine="livingdrug.engines.ssa", method="gillespie-direct",
        kernel_sha256=KERNEL_HASH, seed=seed, replicate_offset=replicate_offset, n=n,
        t_start=t_start, parallel=parallel,
    )
    settings["max_events"] = int(max_events)
    settings["kernel"] = "lanes" if use_lanes else "scalar"
    limit = ("maximum number of reaction firings reached", f"max_events = {int(max_events)}")
    if not use_lanes:
        return run_batch(
            compiled, (_ssa_kernel.ssa_batch_parallel, _ssa_kernel.ssa_batch_serial),
            parallel=parallel, t_start=t_start, Y0=Y0, P=PP, t_eval=te, model_arrays=(ST,),
            options=(int(max_events),), seed=seed, replicate_offset=replicate_offset,
            stats_names=_STATS_NAMES, limit=limit, settings=settings,
        )
    k = Y0.shape[1]
    Yout = np.empty((n, te.size, k))
    status = np.zeros(n, dtype=np.int64)
    t_fail = np.zeros(n)
    stats = np.zeros((n, len(_STATS_NAMES)), dtype=np.int64)
    if n > 0:
        states = replicate_states(int(seed), int(replicate_offset), n)
        step, lanes = ssa_lanes.lane_step(compiled)
        fns = (step, compiled.ssa_cfuncs[0])
        # one block per thread (each refills its lanes until its replicates run out, so only
        # its last replicates run with idle lanes), at least one lane set per block
        nblocks = max(1, min(numba.get_num_threads(), n // lanes))
        driver = _ssa_lanes.ssa_lanes_parallel if parallel else _ssa_lanes.ssa_lanes_serial
        driver(fns, lanes, nblocks, t_start, Y0, PP, te, ST, states, int(max_events), Yout,
               status, t_fail, stats)
    messages = _messages(status, t_fail, limit[0], limit[1], int(replicate_offset))
    return OdeSolution(
        t=te.copy(),
        y=Yout,
        status=status,
        message=messages,
        stats={name: int(v) for name, v in zip(_STATS_NAMES, stats.sum(axis=0), strict=True)},
        settings=settings,
    )
