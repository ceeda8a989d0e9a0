"""Reaction networks: the one model definition every engine runs.

A :class:`Network` is a set of named :class:`Species`, unit-carrying
:class:`~livingdrug.params.Param` s, :class:`Reaction` s (stoichiometry + a rate law written as a
sympy expression in species and parameter symbols), :class:`Observable` s and
:class:`Event` s.  From it :func:`compile_network` derives, as compiled numba functions,

* the right-hand side  ``dy/dt = S · r(t, y, p)``  (``S`` the stoichiometry matrix, ``r`` the
  vector of reaction rates) and its exact Jacobian ``J = S · ∂r/∂y`` (symbolic derivative),
* the reaction propensities ``r(t, y, p)`` and ``S`` for stochastic engines,
* observables ``o(t, y, p)``,
* event times, event conditions and event assignments,

and :func:`livingdrug.sbml.to_sbml` writes the same network as SBML.

Rate laws are Python model code (sympy), never strings read from user files.

Generated code is written to a cache folder (``$LIVINGDRUG_CACHE_DIR`` or
``~/.cache/livingdrug``) under a name that is the hash of its source, and imported from there,
so numba's on-disk cache (``cache=True``) is reused across runs.

Besides the array functions (for Python, numpy and scipy callers), each generated module
defines C-callable wrappers (``cfunc``) of ``rhs``, ``jac``, ``propensities``, ``event_time``,
``event_condition`` and ``event_apply`` taking raw float64 pointers
(:attr:`CompiledNetwork.cfuncs`, :attr:`CompiledNetwork.ssa_cfuncs`).  Compiled engines take these as arguments: numba types a
cfunc by its signature alone, so an engine kernel is compiled once for every model instead of
once per model (see :mod:`livingdrug.engines.ode`).  :func:`use_cache_dir_for_numba` puts the
engines' own numba cache in the same folder.

The ODE engine's right-hand side and Jacobian (``rhs_q``, ``jac_q``) are the same expressions
with their parameter-only parts — ``1/V`` in ``x/V``, the factor ``1e6·v_b·W`` of a product —
computed once per patient by ``derive(p, q)`` into ``q = [p, d]``
(:func:`hoist_parameters`): on the ``car_t`` model 92 such parts, the divisions in ``rhs``
from 34 to 15 and a patient's solve ≈ 12 % faster.  They agree with ``rhs``/``jac`` to
rounding (tested), not bitwise: a parameter-only part is rounded once, on its own.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from .params import Param
from .units import check_unit

__all__ = [
    "Species",
    "Reaction",
    "Observable",
    "Event",
    "At",
    "When",
    "Network",
    "CompiledNetwork",
    "compile_network",
    "sym",
    "T",
    "cache_dir",
    "use_cache_dir_for_numba",
    "mass_action",
    "with_values",
]

#: the time symbol usable in rate laws, observables and events (days)
T = sp.Symbol("t", real=True)

# symbols are printed as y[i] / p[i] in generated code, so only the time symbol is taken
_RESERVED = {"t"}


def sym(name: str) -> sp.Symbol:
    """The sympy symbol for a species or parameter called ``name`` (all symbols are real)."""
    return sp.Symbol(name, real=True)


@dataclass(frozen=True)
class Species:
    """A state variable.  ``initial`` is in ``unit``; ``nonnegative`` marks counts/concentrations."""

    name: str
    unit: str = "cell"
    initial: float = 0.0
    description: str = ""
    nonnegative: bool = True

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name in _RESERVED:
            raise ValueError(f"species name {self.name!r} must be an identifier and not reserved")
        check_unit(self.unit, field=f"species {self.name}.unit")

    @property
    def symbol(self) -> sp.Symbol:
        return sym(self.name)


@dataclass(frozen=True)
class Reaction:
    """``stoich`` maps species names to net change per firing; ``rate`` (firings per day) is a
    sympy expression in species, parameters and ``t``.  For an exact stochastic engine the rate
    is the propensity when species are counts."""

    name: str
    stoich: Mapping[str, float]
    rate: sp.Expr
    description: str = ""


@dataclass(frozen=True)
class Observable:
    """A derived quantity reported beside the states (e.g. CAR transgene copies/µg DNA).
    ``role`` lets endpoints find it (``"cart_blood"``, ``"transgene"``, ``"blasts_pct"``, …)."""

    name: str
    expr: sp.Expr
    unit: str
    description: str = ""
    role: str = ""


@dataclass(frozen=True)
class At:
    """Trigger at a fixed time (days); ``time`` may be an expression of parameters, so each
    patient can have their own dose time."""

    time: sp.Expr | float


@dataclass(frozen=True)
class When:
    """Trigger when ``expr`` (of species, parameters and ``t``) crosses zero.

    ``direction`` = -1 fires on a downward crossing (e.g. ``L - 1`` for "leukaemia falls below
    one cell"), +1 on an upward one, 0 on either.
    """

    expr: sp.Expr
    direction: int = -1


@dataclass(frozen=True)
class Event:
    """A discontinuity: at the trigger, every species in ``assign`` takes the value of its
    expression evaluated on the state just before (assignments are simultaneous).

    Examples: a dose ``{E: E + dose}``; lymphodepletion ``{N: N * f_ld}``;
    extinction below a threshold ``{L: 0}``.  ``once`` events fire at most once per run.
    """

    name: str
    trigger: At | When
    assign: Mapping[str, sp.Expr | float]
    once: bool = True
    description: str = ""


@dataclass(frozen=True)
class Network:
    """A model: species, parameters, reactions, observables and events.  Immutable."""

    name: str
    species: tuple[Species, ...]
    params: tuple[Param, ...]
    reactions: tuple[Reaction, ...]
    observables: tuple[Observable, ...] = ()
    events: tuple[Event, ...] = ()
    reference: str = ""
    description: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        names = [s.name for s in self.species] + [p.name for p in self.params]
        names += [o.name for o in self.observables]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"network {self.name}: names used twice: {dup}")
        for p in self.params:
            if p.name in _RESERVED:
                raise ValueError(f"parameter name {p.name!r} is reserved")
        known = {sym(n) for n in names} | {T}
        spn = set(self.species_names)
        for r in self.reactions:
            bad = set(r.stoich) - spn
            if bad:
                raise ValueError(f"reaction {r.name}: unknown species {sorted(bad)}")
            _check_symbols(sp.sympify(r.rate), known, f"reaction {r.name}")
        for o in self.observables:
            _check_symbols(sp.sympify(o.expr), known - {sym(o.name)}, f"observable {o.name}")
        for e in self.events:
            bad = set(e.assign) - spn
            if bad:
                raise ValueError(f"event {e.name}: unknown species {sorted(bad)}")
            for v in e.assign.values():
                _check_symbols(sp.sympify(v), known, f"event {e.name}")
            trig = e.trigger.time if isinstance(e.trigger, At) else e.trigger.expr
            _check_symbols(sp.sympify(trig), known, f"event {e.name} trigger")

    # --- lookup -------------------------------------------------------------------------
    @property
    def species_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.species)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def observable_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.observables)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def species_by_name(self, name: str) -> Species:
        for s in self.species:
            if s.name == name:
                return s
        raise KeyError(name)

    def observable_by_role(self, role: str) -> Observable | None:
        for o in self.observables:
            if o.role == role:
                return o
        return None

    # --- arrays -------------------------------------------------------------------------
    def stoichiometry(self) -> np.ndarray:
        """``S[k, r]``: change of species k when reaction r fires once."""
        idx = {n: i for i, n in enumerate(self.species_names)}
        S = np.zeros((len(self.species), len(self.reactions)))
        for j, r in enumerate(self.reactions):
            for n, v in r.stoich.items():
                S[idx[n], j] += float(v)
        return S

    def parameter_vector(self, overrides: Mapping[str, float] | None = None) -> np.ndarray:
        """Default parameter values (canonical units) with optional overrides by name."""
        values = {p.name: p.value for p in self.params}
        for k, v in (overrides or {}).items():
            if k not in values:
                raise KeyError(f"unknown parameter {k!r} of network {self.name}")
            values[k] = float(v)
        return np.array([values[n] for n in self.param_names], dtype=float)

    def initial_state(self, overrides: Mapping[str, float] | None = None) -> np.ndarray:
        values = {s.name: s.initial for s in self.species}
        for k, v in (overrides or {}).items():
            if k not in values:
                raise KeyError(f"unknown species {k!r} of network {self.name}")
            values[k] = float(v)
        return np.array([values[n] for n in self.species_names], dtype=float)

    # --- derived forms -----------------------------------------------------------------
    def rate_vector(self) -> list[sp.Expr]:
        return [sp.sympify(r.rate) for r in self.reactions]

    def ode_expressions(self) -> list[sp.Expr]:
        """``dy_k/dt`` as sympy expressions (mass balance of the reactions)."""
        rates = self.rate_vector()
        S = self.stoichiometry()
        out = []
        for k in range(len(self.species)):
            terms = [sp.Float(S[k, j]) * rates[j] if S[k, j] not in (1.0, -1.0) else int(S[k, j]) * rates[j]
                     for j in range(len(rates)) if S[k, j] != 0.0]
            out.append(sp.Add(*terms) if terms else sp.Integer(0))
        return out

    def compile(self) -> CompiledNetwork:
        return compile_network(self)

    def to_sbml(self) -> str:
        from .sbml import to_sbml

        return to_sbml(self)


def _check_symbols(expr: sp.Expr, known: set[sp.Symbol], where: str) -> None:
    free: set[sp.Basic] = getattr(expr, "free_symbols", set())
    unknown = {s for s in free if s not in known}
    if unknown:
        raise ValueError(f"{where}: unknown symbols {sorted(map(str, unknown))}")


# ---------------------------------------------------------------------------------------
# code generation
# ---------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where generated modules and numba's cache live."""
    env = os.environ.get("LIVINGDRUG_CACHE_DIR")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "livingdrug"
    return base


def use_cache_dir_for_numba(module_file: str, depends_on: tuple[str, ...] = ()) -> None:
    """Make numba cache the compiled functions of ``module_file`` (a livingdrug module with
    ``@njit(cache=True)`` functions, e.g. the ODE engine kernels) under :func:`cache_dir`
    instead of the ``__pycache__`` beside it, so that all of livingdrug's machine code lives in
    one folder (deleting it gives a cold start) and read-only installs can cache too.

    numba revalidates a cached function only against its own file, so ``depends_on`` lists
    the other kernel files whose njit functions it calls: the cache folder's name carries a
    hash of all of them, and editing any one gives a fresh compile instead of stale code.

    Call it before the module's functions are decorated.  Uses numba's cache-locator classes;
    if those are not as expected, numba's default location is used (caching still works).
    """
    target = os.path.realpath(module_file)
    h = hashlib.sha256()
    for f in (module_file, *depends_on):
        h.update(Path(f).read_bytes())
    digest = h.hexdigest()[:16]
    try:
        from numba.core import caching

        # public names in recent numba, underscored in older releases
        found = {n.lstrip("_"): getattr(caching, n) for n in dir(caching)}
        base_cls = found["InTreeCacheLocator"]
        impl = found["CacheImpl"]
    except (ImportError, KeyError):  # pragma: no cover - other numba versions
        return
    if any(getattr(c, "livingdrug_target", None) == target for c in impl._locator_classes):
        return

    class _Locator(base_cls):  # type: ignore[misc, valid-type]
        livingdrug_target = target

        def __init__(self, py_func: Any, py_file: str) -> None:
            super().__init__(py_func, py_file)
            folder = cache_dir() / "numba" / f"{self.get_suitable_cache_subpath(py_file)}-{digest}"
            self._cache_path = str(folder)

        @classmethod
        def from_function(cls, py_func: Any, py_file: str) -> Any:
            if os.path.realpath(py_file) != target:
                return None
            self = cls(py_func, py_file)
            try:
                self.ensure_cache_path()
            except OSError:
                return None  # not writable: numba's other locators are tried
            return self

    _Locator.__name__ = _Locator.__qualname__ = "LivingdrugCacheLocator"
    impl._locator_classes = [_Locator, *impl._locator_classes]


# rhs and jac are compiled without fastmath: with FMA contraction and reassociation (tried:
# ~25 % faster) LLVM's choice depends on where a function is inlined and whether it was
# compiled now or loaded from numba's cache, so the same patient could differ in the last bit
# between a fresh process and a cached one (seen between Dask workers and the client) — and
# trial results must be bitwise identical on any worker.  Plain IEEE arithmetic in source
# order is reproducible everywhere on a given machine and build.
# error_model="numpy": a division by zero in a rate law gives inf/NaN (reported per patient as a
# non-finite state by the engines) instead of raising inside compiled code.
class _Printer(PythonCodePrinter):
    """Prints sympy expressions as numba-compatible Python using ``math``."""

    def _print_Symbol(self, expr: sp.Symbol) -> str:  # noqa: N802 (sympy naming)
        return self._symbol_map.get(expr, super()._print_Symbol(expr))  # type: ignore[attr-defined]


def _printer(symbol_map: dict[sp.Symbol, str]) -> _Printer:
    pr = _Printer({"fully_qualified_modules": True, "standard": "python3"})
    pr._symbol_map = symbol_map  # type: ignore[attr-defined]
    return pr


def _emit_block(exprs: list[sp.Expr], targets: list[str], pr: _Printer, indent: str, prefix: str = "_c",
                optimizations: str | None = "basic", cse: Any = None) -> list[str]:
    """Common-subexpression-eliminated assignments ``targets[i] = exprs[i]`` (temporaries
    named ``prefix0``, ``prefix1``, …; ``optimizations=None`` skips sympy's factoring, which
    takes seconds on nested Max/Min).  ``cse``: ``sympy.cse(exprs, …)`` already computed, to
    print the same block a second way without redoing it."""
    if not exprs:
        return []
    repl, reduced = cse if cse is not None else sp.cse(exprs, symbols=sp.numbered_symbols(prefix),
                                                       optimizations=optimizations)
    lines = [f"{indent}{pr.doprint(s)} = {pr.doprint(e)}" for s, e in repl]
    lines += [f"{indent}{tgt} = {pr.doprint(e)}" for tgt, e in zip(targets, reduced, strict=True)]
    return lines


def hoist_parameters(exprs: list[sp.Expr], params: set[sp.Symbol]) -> tuple[list[sp.Expr], list[tuple[sp.Symbol, sp.Expr]]]:
    """``exprs`` with every parameter-only part (no species, no time) — a whole subexpression,
    or the parameter factors of a product or terms of a sum, e.g. ``1/V`` in ``x/V`` or
    ``1e6*V*W`` in ``1e6*V*W*x`` — replaced by a new symbol, and the ``(symbol, expression)``
    pairs.  The engine computes them once per patient, so a right-hand side evaluated
    thousands of times no longer divides by parameters (``x/V`` becomes ``x*d`` with
    ``d = 1/V``: the same value up to one rounding)."""
    memo: dict[sp.Expr, sp.Symbol] = {}

    def name(e: sp.Expr) -> sp.Expr:
        if e.is_Atom:
            return e
        if e not in memo:
            memo[e] = sp.Symbol(f"_d{len(memo)}", real=True)
        return memo[e]

    fixed_memo: dict[sp.Basic, bool] = {}
    visit_memo: dict[sp.Basic, sp.Basic] = {}

    def fixed(e: sp.Basic) -> bool:  # memoised: free_symbols walks the whole subtree
        if e not in fixed_memo:
            fixed_memo[e] = isinstance(e, sp.Expr) and e.free_symbols <= params
        return fixed_memo[e]

    def visit(e: sp.Basic) -> sp.Basic:
        if e.is_Atom:
            return e
        if e in visit_memo:
            return visit_memo[e]
        if fixed(e):
            out = name(e)
        elif isinstance(e, (sp.Mul, sp.Add)):
            const = [a for a in e.args if fixed(a)]
            rest = [visit(a) for a in e.args if not fixed(a)]
            if len(const) > 1 or (const and not const[0].is_Atom):
                out = e.func(name(e.func(*const)), *rest)
            else:
                out = e.func(*const, *rest)
        else:
            out = e.func(*[visit(a) for a in e.args])
        visit_memo[e] = out
        return out

    out = [visit(sp.sympify(e)) for e in exprs]
    return out, [(d, e) for e, d in memo.items()]


def generate_source(net: Network) -> str:
    """Python/numba source of the compiled model functions (see module docstring)."""
    smap: dict[sp.Symbol, str] = {T: "t"}
    for i, s in enumerate(net.species):
        smap[s.symbol] = f"y[{i}]"
    for i, p in enumerate(net.params):
        smap[sym(p.name)] = f"p[{i}]"
    pr = _printer(smap)
    ys = [s.symbol for s in net.species]
    rates = net.rate_vector()
    odes = net.ode_expressions()
    L: list[str] = [
        f"# generated by livingdrug from network {net.name!r}; do not edit",
        "import math",
        "import numpy as np",
        "from numba import carray, cfunc, njit, prange, types",
        "",
        f"N_SPECIES = {len(net.species)}",
        f"N_PARAMS = {len(net.params)}",
        f"N_REACTIONS = {len(net.reactions)}",
        f"N_OBS = {len(net.observables)}",
        f"N_EVENTS = {len(net.events)}",
        "",
        "@njit(cache=True, nogil=True, error_model=\"numpy\")",
        "def rhs(t, y, p, dy):",
    ]
    L += _emit_block(odes, [f"dy[{k}]" for k in range(len(odes))], pr, "    ") or ["    pass"]
    L += ["", "@njit(cache=True, nogil=True, error_model=\"numpy\")", "def jac(t, y, p, J):"]
    jt, je = [], []
    for k, f in enumerate(odes):
        for j, y in enumerate(ys):
            d = sp.diff(f, y)
            if d != 0:
                jt.append(f"J[{k}, {j}]")
                je.append(d)
    L += ["    J[:, :] = 0.0"] + _emit_block(je, jt, pr, "    ")
    # the ODE engine's versions: parameter-only parts hoisted into q = [p, d] (``derive``,
    # once per patient), no per-call zeroing of J (the engine's J is written only here)
    psyms = {sym(p.name) for p in net.params}
    hoisted, derived = hoist_parameters([*odes, *je], psyms)
    qmap = dict(smap)
    qmap.update({d: f"p[{len(net.params) + j}]" for j, (d, _) in enumerate(derived)})
    qr = _printer(qmap)
    L += ["", f"N_DERIVED = {len(derived)}", "", "@njit(cache=True, nogil=True, error_model=\"numpy\")",
          "def derive(p, q):", "    for i in range(N_PARAMS):", "        q[i] = p[i]"]
    L += _emit_block([e for _, e in derived], [f"q[N_PARAMS + {j}]" for j in range(len(derived))], pr, "    ")
    L += ["", "@njit(cache=True, nogil=True, error_model=\"numpy\")", "def rhs_q(t, y, p, dy):"]
    L += _emit_block(hoisted[:len(odes)], [f"dy[{k}]" for k in range(len(odes))], qr, "    ") or ["    pass"]
    L += ["", "@njit(cache=True, nogil=True, error_model=\"numpy\")", "def jac_q(t, y, p, J):"]
    L += _emit_block(hoisted[len(odes):], jt, qr, "    ") or ["    pass"]
    L += ["", "@njit(cache=True, nogil=True, error_model=\"numpy\")", "def propensities(t, y, p, a):"]
    L += _emit_block(rates, [f"a[{j}]" for j in range(len(rates))], pr, "    ") or ["    pass"]
    L += ["", "@njit(cache=True, nogil=True, error_model=\"numpy\")", "def observables(t, y, p, out):"]
    oexprs = [sp.sympify(o.expr) for o in net.observables]
    ocse = sp.cse(oexprs, symbols=sp.numbered_symbols("_c"), optimizations="basic") if oexprs else None
    L += _emit_block(oexprs, [f"out[{j}]" for j in range(len(oexprs))], pr, "    ", cse=ocse) or ["    pass"]
    # events
    L += ["", "@njit(cache=True, nogil=True, error_model=\"numpy\")", "def event_time(k, p):"]
    for k, e in enumerate(net.events):
        if isinstance(e.trigger, At):
            L.append(f"    if k == {k}:\n        return float({pr.doprint(sp.sympify(e.trigger.time))})")
    L += ["    return math.inf"]
    # each condition with its own common subexpressions (the CRS/ICANS rules repeat their
    # terms many times), printed the same way in both functions so they give the same bits
    conds = {k: _emit_block([sp.sympify(e.trigger.expr)], ["_g"], pr, "", f"_e{k}_", None)
             for k, e in enumerate(net.events) if isinstance(e.trigger, When)}
    L += ["", "@njit(cache=True, nogil=True, error_model=\"numpy\")", "def event_condition(k, t, y, p):"]
    for k, block in conds.items():
        L += [f"    if k == {k}:", *(f"        {line}" for line in block), "        return float(_g)"]
    L += ["    return 1.0"]
    # every condition at once: one call per solver step instead of one per event
    L += ["", "@njit(cache=True, nogil=True, error_model=\"numpy\")", "def event_conditions(t, y, p, g):"]
    for k, block in conds.items():
        L += [*(f"    {line}" for line in block), f"    g[{k}] = float(_g)"]
    L += [] if conds else ["    pass"]
    L += ["", "@njit(cache=True, nogil=True, error_model=\"numpy\")", "def event_apply(k, t, y, p):"]
    idx = {n: i for i, n in enumerate(net.species_names)}
    for k, e in enumerate(net.events):
        L.append(f"    if k == {k}:")
        names = list(e.assign)
        vals = [sp.sympify(e.assign[n]) for n in names]
        tmp = [f"_v{i}" for i in range(len(names))]
        L += _emit_block(vals, tmp, pr, "        ")
        L += [f"        y[{idx[n]}] = {v}" for n, v in zip(names, tmp, strict=True)]
        L.append("        return")
    L += ["    return"]
    # batched helpers (leading patient axis) for numpy/scipy users
    L += [
        "",
        "@njit(cache=True, parallel=True, error_model=\"numpy\")",
        "def rhs_batch(t, Y, P, dY):",
        "    for i in prange(Y.shape[0]):",
        "        rhs(t, Y[i], P[i], dY[i])",
        "",
        "@njit(cache=True, parallel=True, error_model=\"numpy\")",
        "def jac_batch(t, Y, P, J):",
        "    for i in prange(Y.shape[0]):",
        "        jac(t, Y[i], P[i], J[i])",
        "",
        "@njit(cache=True, parallel=True, error_model=\"numpy\")",
        "def observables_batch(t, Y, P, O):",
        "    for i in prange(Y.shape[0]):",
        "        for j in range(Y.shape[1]):",
    ]
    # the same expressions and common subexpressions as ``observables`` (so the same bits),
    # written out in the loop: a call with array views per point would cost more than the
    # arithmetic (each view updates a reference count atomically)
    bmap: dict[sp.Symbol, str] = {T: "t[j]"}
    bmap.update({s.symbol: f"Y[i, j, {k}]" for k, s in enumerate(net.species)})
    bmap.update({sym(p.name): f"P[i, {m}]" for m, p in enumerate(net.params)})
    L += _emit_block(oexprs, [f"O[{j}, i, j]" for j in range(len(oexprs))], _printer(bmap), " " * 12,
                     cse=ocse) or ["            pass"]
    L += [""]
    # C-callable wrappers (raw float64 pointers) of the functions the compiled engines call:
    # numba types a cfunc by its signature alone, so one engine kernel, compiled and cached
    # once, serves every model (see livingdrug.engines.ode)
    L += [
        "",
        "_F8 = types.float64",
        "_PTR = types.CPointer(types.float64)",
        "",
        "@cfunc(types.void(_F8, _PTR, _PTR, _PTR), cache=True, nogil=True, error_model=\"numpy\")",
        "def rhs_q_c(t, y, q, dy):",
        "    rhs_q(t, carray(y, (N_SPECIES,)), carray(q, (N_PARAMS + N_DERIVED,)), carray(dy, (N_SPECIES,)))",
        "",
        "@cfunc(types.void(_F8, _PTR, _PTR, _PTR), cache=True, nogil=True, error_model=\"numpy\")",
        "def jac_q_c(t, y, q, J):",
        "    jac_q(t, carray(y, (N_SPECIES,)), carray(q, (N_PARAMS + N_DERIVED,)), carray(J, (N_SPECIES, N_SPECIES)))",
        "",
        "@cfunc(types.void(_PTR, _PTR), cache=True, nogil=True, error_model=\"numpy\")",
        "def derive_c(p, q):",
        "    derive(carray(p, (N_PARAMS,)), carray(q, (N_PARAMS + N_DERIVED,)))",
        "",
        "@cfunc(types.void(_F8, _PTR, _PTR, _PTR), cache=True, nogil=True, error_model=\"numpy\")",
        "def propensities_c(t, y, p, a):",
        "    propensities(t, carray(y, (N_SPECIES,)), carray(p, (N_PARAMS,)), carray(a, (N_REACTIONS,)))",
        "",
        "@cfunc(_F8(types.int64, _PTR), cache=True, nogil=True, error_model=\"numpy\")",
        "def event_time_c(k, p):",
        "    return event_time(k, carray(p, (N_PARAMS,)))",
        "",
        "@cfunc(_F8(types.int64, _F8, _PTR, _PTR), cache=True, nogil=True, error_model=\"numpy\")",
        "def event_condition_c(k, t, y, p):",
        "    return event_condition(k, t, carray(y, (N_SPECIES,)), carray(p, (N_PARAMS,)))",
        "",
        "@cfunc(types.void(_F8, _PTR, _PTR, _PTR), cache=True, nogil=True, error_model=\"numpy\")",
        "def event_conditions_c(t, y, p, g):",
        "    event_conditions(t, carray(y, (N_SPECIES,)), carray(p, (N_PARAMS,)), carray(g, (max(N_EVENTS, 1),)))",
        "",
        "@cfunc(types.void(types.int64, _F8, _PTR, _PTR), cache=True, nogil=True, error_model=\"numpy\")",
        "def event_apply_c(k, t, y, p):",
        "    event_apply(k, t, carray(y, (N_SPECIES,)), carray(p, (N_PARAMS,)))",
        "",
    ]
    return "\n".join(L)


_MODULES: dict[str, ModuleType] = {}


def _load_generated(source: str) -> ModuleType:
    digest = hashlib.sha256(source.encode()).hexdigest()[:20]
    modname = f"livingdrug_gen_{digest}"
    if modname in _MODULES:
        return _MODULES[modname]
    folder = cache_dir() / "gen"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError:
        folder = Path(tempfile.gettempdir()) / "livingdrug-gen"
        folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{modname}.py"
    if not path.exists() or path.read_text() != source:
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(source)
        os.replace(tmp, path)
    spec = importlib.util.spec_from_file_location(modname, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    spec.loader.exec_module(mod)
    _MODULES[modname] = mod
    return mod


@dataclass(frozen=True, eq=False)
class CompiledNetwork:
    """Compiled functions of a network (all single-patient unless named ``*_batch``).

    Signatures (``y``: state[k], ``p``: parameters[m], both float64 1-D arrays)::

        rhs(t, y, p, dy)               dy[:] = dy/dt
        jac(t, y, p, J)                J[:, :] = ∂(dy/dt)/∂y
        propensities(t, y, p, a)       a[:] = reaction rates
        observables(t, y, p, out)      out[:] = observables
        event_time(k, p) -> float      time of timed event k (inf for condition events)
        event_condition(k, t, y, p) -> float   zero-crossing function of condition event k
        event_apply(k, t, y, p)        apply event k to y in place

    ``event_is_timed[k]``, ``event_direction[k]`` (−1, 0, +1) and ``event_once[k]`` describe
    the events as arrays an engine can pass to compiled code.
    """

    network: Network
    module: ModuleType
    stoichiometry: np.ndarray
    event_is_timed: np.ndarray
    event_direction: np.ndarray
    event_once: np.ndarray
    source: str

    @property
    def rhs(self):  # noqa: ANN201
        return self.module.rhs

    @property
    def jac(self):  # noqa: ANN201
        return self.module.jac

    @property
    def propensities(self):  # noqa: ANN201
        return self.module.propensities

    @property
    def observables(self):  # noqa: ANN201
        return self.module.observables

    @property
    def event_time(self):  # noqa: ANN201
        return self.module.event_time

    @property
    def event_condition(self):  # noqa: ANN201
        return self.module.event_condition

    @property
    def event_apply(self):  # noqa: ANN201
        return self.module.event_apply

    @property
    def cfuncs(self) -> tuple[Any, ...]:
        """``(rhs_q_c, jac_q_c, event_time_c, event_condition_c, event_apply_c,
        event_conditions_c, derive_c)``: numba ``cfunc`` s with the signatures of the array
        functions, arrays passed as raw float64 pointers (``J`` as an ``N_SPECIES ×
        N_SPECIES`` C-order block; ``event_conditions_c(t, y, p, g)`` writes every condition
        event's function to ``g[k]``, ``N_EVENTS`` long, and leaves the timed events' entries
        alone).  The right-hand side and Jacobian take ``q = [p, d]`` (``N_PARAMS +
        N_DERIVED`` long), filled once per patient by ``derive_c(p, q)`` with the
        parameter-only parts of their expressions (:func:`hoist_parameters`); the event
        functions read only ``q[:N_PARAMS]``, so they take ``q`` too.  Compiled engine kernels
        take them as arguments, so they are compiled once for every model."""
        m = self.module
        return (m.rhs_q_c, m.jac_q_c, m.event_time_c, m.event_condition_c, m.event_apply_c, m.event_conditions_c,
                m.derive_c)

    @property
    def ssa_cfuncs(self) -> tuple[Any, ...]:
        """``(propensities_c, event_time_c, event_condition_c, event_apply_c)``: the
        ``cfunc`` s the stochastic engines take (:mod:`livingdrug.engines.ssa`);
        ``propensities_c(t, y, p, a)`` writes the ``N_REACTIONS`` reaction rates to ``a``."""
        m = self.module
        return (m.propensities_c, m.event_time_c, m.event_condition_c, m.event_apply_c)

    # numpy conveniences ---------------------------------------------------------------
    def rhs_batch(self, t: float, Y: np.ndarray, P: np.ndarray) -> np.ndarray:
        """``dY[n, k]`` for states ``Y[n, k]`` and parameters ``P[n, m]``."""
        Y = np.ascontiguousarray(Y, dtype=float)
        P = np.ascontiguousarray(P, dtype=float)
        dY = np.empty_like(Y)
        self.module.rhs_batch(float(t), Y, P, dY)
        return dY

    def jac_batch(self, t: float, Y: np.ndarray, P: np.ndarray) -> np.ndarray:
        """``J[n, k, k]`` for states ``Y[n, k]`` and parameters ``P[n, m]``."""
        Y = np.ascontiguousarray(Y, dtype=float)
        P = np.ascontiguousarray(P, dtype=float)
        J = np.empty((Y.shape[0], Y.shape[1], Y.shape[1]))
        self.module.jac_batch(float(t), Y, P, J)
        return J

    def observables_batch(self, t: np.ndarray, Y: np.ndarray, P: np.ndarray) -> np.ndarray:
        """``O[n, T, j]`` for trajectories ``Y[n, T, k]`` at times ``t[T]``: a view of an
        array stored observable by observable (``[j, n, T]``), so that one observable of all
        patients, ``O[:, :, j]``, is contiguous — the form every endpoint reads."""
        Y = np.ascontiguousarray(Y, dtype=float)
        P = np.ascontiguousarray(P, dtype=float)
        obs = np.empty((len(self.network.observables), Y.shape[0], Y.shape[1]))
        self.module.observables_batch(np.ascontiguousarray(t, dtype=float), Y, P, obs)
        return obs.transpose(1, 2, 0)

    def propensities_at(self, t: float, y: np.ndarray, p: np.ndarray) -> np.ndarray:
        a = np.empty(len(self.network.reactions))
        self.module.propensities(float(t), np.asarray(y, dtype=float), np.asarray(p, dtype=float), a)
        return a


_COMPILED: dict[int, CompiledNetwork] = {}


_GENERATOR_SHA = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def structure_key(net: Network) -> str:
    """SHA-256 of everything :func:`generate_source` reads — names and order of species and
    parameters, stoichiometries, rate laws, observables and events (``sympy.srepr``) — plus the
    generator's own source.  Values (initial amounts, parameter values) are not part of it:
    the generated code takes them as arrays."""
    parts: list[str] = [_GENERATOR_SHA, net.name]
    parts += [f"S {x.name}" for x in net.species]
    parts += [f"P {x.name}" for x in net.params]
    for r in net.reactions:
        parts.append(f"R {r.name} {sorted((k, float(v)) for k, v in r.stoich.items())} "
                     f"{sp.srepr(sp.sympify(r.rate))}")
    for o in net.observables:
        parts.append(f"O {o.name} {sp.srepr(sp.sympify(o.expr))}")
    for e in net.events:
        trig = e.trigger
        what = (f"At {sp.srepr(sp.sympify(trig.time))}" if isinstance(trig, At)
                else f"When {sp.srepr(sp.sympify(trig.expr))} {trig.direction}")
        assign = sorted((k, sp.srepr(sp.sympify(v))) for k, v in e.assign.items())
        parts.append(f"E {e.name} {what} {assign} {e.once}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _cached_source(net: Network) -> str:
    """:func:`generate_source`, cached on disk by :func:`structure_key` (symbolic
    differentiation of a large network takes seconds; reading the text back, milliseconds)."""
    path = cache_dir() / "gen" / f"src-{structure_key(net)[:24]}.py"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        pass
    source = generate_source(net)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(source)
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only costs the regeneration next time
    return source


def compile_network(net: Network) -> CompiledNetwork:
    """Generate, cache and import the compiled functions of ``net``."""
    key = id(net)
    hit = _COMPILED.get(key)
    if hit is not None and hit.network is net:
        return hit
    source = _cached_source(net)
    mod = _load_generated(source)
    compiled = CompiledNetwork(
        network=net,
        module=mod,
        stoichiometry=net.stoichiometry(),
        event_is_timed=np.array([isinstance(e.trigger, At) for e in net.events], dtype=np.bool_),
        event_direction=np.array(
            [e.trigger.direction if isinstance(e.trigger, When) else 0 for e in net.events],
            dtype=np.int64,
        ),
        event_once=np.array([e.once for e in net.events], dtype=np.bool_),
        source=source,
    )
    _COMPILED[key] = compiled
    return compiled


def with_values(net: Network, P: np.ndarray, y0: np.ndarray) -> Network:
    """A copy of ``net`` whose parameter defaults and initial values are ``P`` and ``y0``
    (canonical units), e.g. to export one scenario's patient as SBML."""
    from dataclasses import replace

    P = np.asarray(P, dtype=float).reshape(-1)
    y0 = np.asarray(y0, dtype=float).reshape(-1)
    params = tuple(replace(p, value=float(v)) for p, v in zip(net.params, P, strict=True))
    species = tuple(replace(s, initial=float(v)) for s, v in zip(net.species, y0, strict=True))
    return replace(net, params=params, species=species)


def mass_action(k: sp.Expr, *reactants: sp.Expr) -> sp.Expr:
    """Mass-action rate ``k · Π reactants``."""
    out = k
    for r in reactants:
        out = out * r
    return out


def free_names(exprs: Iterable[sp.Expr]) -> set[str]:
    return {str(s) for e in exprs for s in sp.sympify(e).free_symbols}


_ = math  # math is used by generated code only
