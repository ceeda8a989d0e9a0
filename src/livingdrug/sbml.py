"""Export a :class:`~livingdrug.network.Network` as SBML Level 3 Version 2 (python-libsbml).

The document is built so that an SBML simulator (libroadrunner, COPASI, Tellurium …) computes
the same trajectories as livingdrug's own engines:

* one compartment ``c`` (size 1, constant); every species has ``hasOnlySubstanceUnits=true``
  so ``d(amount)/dt`` is exactly the network's mass balance;
* every :class:`~livingdrug.params.Param` is a constant global parameter (unit as an SBML
  unit definition where it can be expressed, and always as text in the notes);
* reactions carry the net stoichiometry; species read by the rate law but not changed by the
  reaction are modifiers; kinetic laws are MathML built directly from the sympy rate
  (natural log is ``ln``, the time symbol ``t`` is the ``time`` csymbol);
* observables are assignment rules on non-constant parameters;
* events: ``At(time)`` → trigger ``time >= time_expr`` (initialValue false, so an event at the
  start time fires at the start); ``When(expr, -1)`` → trigger ``expr < 0``, ``+1`` →
  ``expr > 0`` (initialValue true, so — as in the ODE engines — a condition that already holds
  at the start does not fire; it fires on a crossing).  ``once=True`` condition events get a
  guard parameter ``_once_<event>`` set to 1 when they fire; a direction-0 event ("either
  way") gets a sign parameter ``_sign_<event>`` flipped at each firing.  Priorities make
  simultaneous events fire in index order, and event assignments are evaluated when the event
  is *executed* (``useValuesFromTriggerTime=false``; with no delays this differs from ``true``
  only for simultaneous events, where it makes a second dose at the same time add to the
  first, as the engines do).  Within one event the assignments are simultaneous (SBML
  semantics).

Only export is provided; reading SBML is not a goal.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import sympy as sp

from .network import At, Network, T, When, sym

__all__ = ["to_sbml", "sympy_to_ast", "sympy_to_l3_formula", "SBMLExportError"]

_LEVEL, _VERSION = 3, 2
_COMPARTMENT = "c"


class SBMLExportError(ValueError):
    """The network contains something SBML cannot express (or libsbml rejected it)."""


def _libsbml() -> Any:
    import libsbml

    return libsbml


# ---------------------------------------------------------------------------------------
# sympy -> MathML AST
# ---------------------------------------------------------------------------------------


def _check(node: Any, what: str) -> Any:
    if node is None:
        raise SBMLExportError(f"libsbml could not build MathML for {what}")
    return node


class _AstBuilder:
    """Translate a sympy expression into a libsbml ``ASTNode`` tree."""

    def __init__(self, names: dict[sp.Symbol, str], time_origin: float = 0.0):
        self.ls = _libsbml()
        self.names = names
        self.time_origin = float(time_origin)

    # small constructors ---------------------------------------------------------------
    def node(self, kind: int, *children: Any) -> Any:
        n = self.ls.ASTNode(kind)
        for c in children:
            n.addChild(c)
        return n

    def real(self, value: float) -> Any:
        n = self.ls.ASTNode(self.ls.AST_REAL)
        n.setValue(float(value))
        return n

    def integer(self, value: int) -> Any:
        n = self.ls.ASTNode(self.ls.AST_INTEGER)
        n.setValue(int(value))
        return n

    def name(self, text: str) -> Any:
        n = self.ls.ASTNode(self.ls.AST_NAME)
        n.setName(text)
        return n

    def piecewise(self, pieces: list[tuple[Any, Any]], otherwise: Any | None) -> Any:
        n = self.ls.ASTNode(self.ls.AST_FUNCTION_PIECEWISE)
        for value, cond in pieces:
            n.addChild(value)
            n.addChild(cond)
        if otherwise is not None:
            n.addChild(otherwise)
        return n

    # translation ------------------------------------------------------------------------
    def build(self, expr: Any) -> Any:
        ls = self.ls
        e = sp.sympify(expr)
        if isinstance(e, sp.Symbol):
            if e == T:
                n = ls.ASTNode(ls.AST_NAME_TIME)
                n.setName("time")
                if self.time_origin != 0.0:  # model time = SBML time + origin
                    return self.node(ls.AST_PLUS, n, self.real(self.time_origin))
                return n
            if e not in self.names:
                raise SBMLExportError(f"unknown symbol {e} in an expression")
            return self.name(self.names[e])
        if e is sp.true:
            return ls.ASTNode(ls.AST_CONSTANT_TRUE)
        if e is sp.false:
            return ls.ASTNode(ls.AST_CONSTANT_FALSE)
        if e is sp.pi:
            return ls.ASTNode(ls.AST_CONSTANT_PI)
        if e is sp.E:
            return ls.ASTNode(ls.AST_CONSTANT_E)
        if e in (sp.oo, -sp.oo, sp.nan, sp.zoo):
            return self.real(float(e) if e is not sp.zoo else math.inf)
        if isinstance(e, sp.Integer):
            v = int(e)
            return self.integer(v) if abs(v) < 2**31 else self.real(float(v))
        if isinstance(e, sp.Rational):
            p, q = int(e.p), int(e.q)
            if abs(p) < 2**31 and abs(q) < 2**31:
                return self.node(ls.AST_DIVIDE, self.integer(p), self.integer(q))
            return self.real(float(e))
        if isinstance(e, sp.Float):
            return self.real(float(e))
        if isinstance(e, sp.Add):
            return self.node(ls.AST_PLUS, *(self.build(a) for a in e.args))
        if isinstance(e, sp.Mul):
            return self._mul(e)
        if isinstance(e, sp.Pow):
            base, ex = e.args
            if base is sp.E:
                return self.node(ls.AST_FUNCTION_EXP, self.build(ex))
            if ex == -1:
                return self.node(ls.AST_DIVIDE, self.integer(1), self.build(base))
            return self.node(ls.AST_POWER, self.build(base), self.build(ex))
        if isinstance(e, sp.Piecewise):
            pieces = []
            otherwise = None
            for value, cond in e.args:
                if cond is sp.true:
                    otherwise = self.build(value)
                    break
                pieces.append((self.build(value), self.build(cond)))
            return self.piecewise(pieces, otherwise)
        if isinstance(e, (sp.Max, sp.Min)):
            # nested piecewise: portable to every SBML level and simulator
            rel = ls.AST_RELATIONAL_GEQ if isinstance(e, sp.Max) else ls.AST_RELATIONAL_LEQ
            acc = self.build(e.args[0])
            for a in e.args[1:]:
                b = self.build(a)
                cond = self.node(rel, acc.deepCopy(), b.deepCopy())
                acc = self.piecewise([(acc, cond)], b)
            return acc
        if isinstance(e, sp.ITE):
            c, a, b = (self.build(x) for x in e.args)
            return self.node(
                ls.AST_LOGICAL_OR,
                self.node(ls.AST_LOGICAL_AND, c, a),
                self.node(ls.AST_LOGICAL_AND, self.node(ls.AST_LOGICAL_NOT, c.deepCopy()), b),
            )
        if isinstance(e, sp.Heaviside):
            x = e.args[0]
            h0 = e.args[1] if len(e.args) > 1 else sp.Rational(1, 2)
            return self.piecewise(
                [
                    (self.integer(0), self.build(sp.StrictLessThan(x, 0, evaluate=False))),
                    (self.build(h0), self.build(sp.Eq(x, 0, evaluate=False))),
                ],
                self.integer(1),
            )
        if isinstance(e, sp.sign):
            x = e.args[0]
            return self.piecewise(
                [
                    (self.integer(-1), self.build(sp.StrictLessThan(x, 0, evaluate=False))),
                    (self.integer(1), self.build(sp.StrictGreaterThan(x, 0, evaluate=False))),
                ],
                self.integer(0),
            )
        if isinstance(e, sp.log):
            if len(e.args) != 1:  # pragma: no cover - sympy rewrites log(x, b)
                return self.build(sp.log(e.args[0]) / sp.log(e.args[1]))
            return self.node(ls.AST_FUNCTION_LN, self.build(e.args[0]))
        rel = _RELATIONALS.get(type(e))
        if rel is not None:
            return self.node(getattr(ls, rel), *(self.build(a) for a in e.args))
        logical = _LOGICALS.get(type(e))
        if logical is not None:
            return self.node(getattr(ls, logical), *(self.build(a) for a in e.args))
        func = _FUNCTIONS.get(type(e))
        if func is not None:
            return self.node(getattr(ls, func), *(self.build(a) for a in e.args))
        raise SBMLExportError(
            f"cannot write {type(e).__name__} ({e}) as SBML MathML; "
            "supported: + - * / ^, exp, log (natural), sqrt, abs, min, max, piecewise, "
            "Heaviside, sign, trigonometric/hyperbolic functions, floor, ceiling, relations"
        )

    def _mul(self, e: sp.Mul) -> Any:
        ls = self.ls
        num: list[Any] = []
        den: list[Any] = []
        for a in e.args:
            if isinstance(a, sp.Pow) and a.args[1].is_number and a.args[1].is_negative:
                base, ex = a.args
                den.append(base if ex == -1 else sp.Pow(base, -ex, evaluate=False))
            elif isinstance(a, sp.Rational) and not isinstance(a, sp.Integer) and int(a.p) in (1, -1):
                if a.p == -1:
                    num.append(sp.Integer(-1))
                den.append(sp.Integer(a.q))
            else:
                num.append(a)
        if num == [sp.Integer(-1)] and not den:  # pragma: no cover - sympy never builds this
            return self.integer(-1)
        neg = False
        if num and num[0] == sp.Integer(-1):
            neg = True
            num = num[1:]

        def product(factors: list[Any]) -> Any:
            if not factors:
                return self.integer(1)
            if len(factors) == 1:
                return self.build(factors[0])
            return self.node(ls.AST_TIMES, *(self.build(f) for f in factors))

        out = product(num)
        if den:
            out = self.node(ls.AST_DIVIDE, out, product(den))
        if neg:
            out = self.node(ls.AST_MINUS, out)
        return out


_RELATIONALS: dict[type, str] = {
    sp.StrictLessThan: "AST_RELATIONAL_LT",
    sp.LessThan: "AST_RELATIONAL_LEQ",
    sp.StrictGreaterThan: "AST_RELATIONAL_GT",
    sp.GreaterThan: "AST_RELATIONAL_GEQ",
    sp.Equality: "AST_RELATIONAL_EQ",
    sp.Unequality: "AST_RELATIONAL_NEQ",
}
_LOGICALS: dict[type, str] = {sp.And: "AST_LOGICAL_AND", sp.Or: "AST_LOGICAL_OR", sp.Not: "AST_LOGICAL_NOT",
                              sp.Xor: "AST_LOGICAL_XOR"}
_FUNCTIONS: dict[type, str] = {
    sp.exp: "AST_FUNCTION_EXP",
    sp.Abs: "AST_FUNCTION_ABS",
    sp.floor: "AST_FUNCTION_FLOOR",
    sp.ceiling: "AST_FUNCTION_CEILING",
    sp.sin: "AST_FUNCTION_SIN",
    sp.cos: "AST_FUNCTION_COS",
    sp.tan: "AST_FUNCTION_TAN",
    sp.asin: "AST_FUNCTION_ARCSIN",
    sp.acos: "AST_FUNCTION_ARCCOS",
    sp.atan: "AST_FUNCTION_ARCTAN",
    sp.sinh: "AST_FUNCTION_SINH",
    sp.cosh: "AST_FUNCTION_COSH",
    sp.tanh: "AST_FUNCTION_TANH",
}


def sympy_to_ast(expr: Any, names: dict[sp.Symbol, str] | None = None) -> Any:
    """A libsbml ``ASTNode`` for ``expr``.  ``names`` maps symbols to SBML ids (default: the
    symbol's own name); the time symbol :data:`~livingdrug.network.T` becomes ``time``."""
    e = sp.sympify(expr)
    if names is None:
        names = {s: str(s) for s in e.free_symbols if s != T}
    return _AstBuilder(names).build(e)


def sympy_to_l3_formula(expr: Any, names: dict[sp.Symbol, str] | None = None) -> str:
    """The SBML Level 3 infix formula of ``expr`` (``ln`` for the natural log, ``^`` for
    powers, ``time`` for ``t``), as libsbml writes it.  ``libsbml.parseL3Formula`` reads it
    back to the same MathML."""
    ls = _libsbml()
    return str(ls.formulaToL3String(sympy_to_ast(expr, names)))


# ---------------------------------------------------------------------------------------
# units
# ---------------------------------------------------------------------------------------

# pint base dimension (name, exponent) -> SBML unit kind and the size of that kind in pint's
# base units (so e.g. litre = 1e-3 m³, gram = 1e-3 kg)
_KINDS: dict[tuple[str, float], tuple[str, float]] = {
    ("meter", 3.0): ("UNIT_KIND_LITRE", 1e-3),
    ("meter", 1.0): ("UNIT_KIND_METRE", 1.0),
    ("kilogram", 1.0): ("UNIT_KIND_GRAM", 1e-3),
    ("second", 1.0): ("UNIT_KIND_SECOND", 1.0),
    ("cell", 1.0): ("UNIT_KIND_ITEM", 1.0),
    ("copies", 1.0): ("UNIT_KIND_ITEM", 1.0),
    ("mole", 1.0): ("UNIT_KIND_MOLE", 1.0),
    ("kelvin", 1.0): ("UNIT_KIND_KELVIN", 1.0),
    ("ampere", 1.0): ("UNIT_KIND_AMPERE", 1.0),
    ("candela", 1.0): ("UNIT_KIND_CANDELA", 1.0),
}


def _unit_factors(unit: str) -> list[tuple[str, float, float]] | None:
    """``unit`` as SBML factors ``(kind, multiplier, exponent)``, or None if not expressible."""
    from .units import _unit, ureg

    u = _unit(unit)
    if u.dimensionless and not u._units:  # noqa: SLF001 - pint's public API has no accessor
        return []
    out: list[tuple[str, float, float]] = []
    for comp, exponent in u._units.items():  # noqa: SLF001
        q: Any = ureg.Quantity(1.0, comp).to_base_units()
        base = dict(q.units._units)  # noqa: SLF001
        if len(base) != 1:
            return None
        ((bname, bexp),) = base.items()
        kind = _KINDS.get((bname, float(bexp)))
        if kind is None:
            return None
        kind_name, size = kind
        out.append((kind_name, float(q.magnitude) / size, float(exponent)))  # type: ignore[arg-type]
    return out


class _Units:
    """Creates (and reuses) unit definitions in a model."""

    def __init__(self, model: Any):
        self.ls = _libsbml()
        self.model = model
        self.ids: dict[str, str | None] = {}

    def get(self, unit: str) -> str | None:
        if unit in self.ids:
            return self.ids[unit]
        try:
            factors = _unit_factors(unit)
        except Exception:  # pragma: no cover - any pint oddity: fall back to notes only
            factors = None
        uid: str | None
        if factors is None:
            uid = None
        elif not factors:
            uid = "dimensionless"
        else:
            uid = _unique_id("u_" + re.sub(r"\W", "_", unit.replace("/", "_per_")), self.used())
            ud = self.model.createUnitDefinition()
            ud.setId(uid)
            ud.setName(unit)
            for kind_name, mult, exponent in factors:
                un = ud.createUnit()
                un.setKind(getattr(self.ls, kind_name))
                un.setExponent(exponent)
                un.setScale(0)
                un.setMultiplier(mult)
        self.ids[unit] = uid
        return uid

    def used(self) -> set[str]:
        return {i for i in self.ids.values() if i}


def _unique_id(base: str, used: set[str]) -> str:
    sid = re.sub(r"[^A-Za-z0-9_]", "_", base)
    if not sid or sid[0].isdigit():
        sid = "_" + sid
    out, i = sid, 1
    while out in used:
        i += 1
        out = f"{sid}_{i}"
    return out


def _notes(text: str) -> str:
    from xml.sax.saxutils import escape

    return f'<body xmlns="http://www.w3.org/1999/xhtml"><p>{escape(text)}</p></body>'


# ---------------------------------------------------------------------------------------
# the document
# ---------------------------------------------------------------------------------------


def _ok(rc: int, what: str) -> None:
    ls = _libsbml()
    if rc != ls.LIBSBML_OPERATION_SUCCESS:
        raise SBMLExportError(f"libsbml: {what}: {ls.OperationReturnValue_toString(rc)}")


def to_sbml(net: Network, *, validate: bool = True, time_origin: float | None = None) -> str:
    """The SBML Level 3 Version 2 document of ``net`` as a string.

    SBML simulators start at time 0, so SBML ``time`` 0 is model time ``time_origin``
    (default: ``net.meta["time_start"]``, else 0): every ``t`` in the network is written as
    ``time + time_origin``.  E.g. the default CAR-T model starts at day −6 (lymphodepletion
    on day −5, infusion on day 0); in its SBML the infusion happens at ``time`` = 6.
    Timed events before the origin fire at time 0 in SBML (livingdrug's engines ignore
    events before the start); keep event times at or after the start.

    With ``validate`` (default) libsbml's consistency checks run and any error of severity
    ERROR or FATAL raises :class:`SBMLExportError` (warnings, e.g. about units, are allowed).
    """
    ls = _libsbml()
    doc = ls.SBMLDocument(_LEVEL, _VERSION)
    model = doc.createModel()
    used: set[str] = set()

    def take(base: str) -> str:
        sid = _unique_id(base, used)
        used.add(sid)
        return sid

    def setup_notes(obj: Any, text: str) -> None:
        if text:
            obj.setNotes(_notes(text))

    model.setId(take(net.name or "model"))
    model.setName(net.name)
    setup_notes(model, "\n".join(x for x in (net.description, f"Reference: {net.reference}" if net.reference else "",
                                             "Exported by livingdrug.") if x))
    origin = float(net.meta.get("time_start", 0.0)) if time_origin is None else float(time_origin)
    if origin != 0.0:
        setup_notes(model, f"{net.description}\nSBML time 0 is model time {origin:g} d: "
                    f"model time t = time + ({origin:g}).\nExported by livingdrug.")
    units = _Units(model)
    day = units.get("d")
    if day:
        model.setTimeUnits(day)

    comp = model.createCompartment()
    comp.setId(take(_COMPARTMENT))
    comp.setConstant(True)
    comp.setSize(1.0)
    comp.setSpatialDimensions(3)
    cid = comp.getId()

    names: dict[sp.Symbol, str] = {}
    # species and parameters keep their names when they are valid SBML ids
    for s in net.species:
        sid = take(s.name)
        names[s.symbol] = sid
        sp_ = model.createSpecies()
        sp_.setId(sid)
        sp_.setName(s.name)
        sp_.setCompartment(cid)
        sp_.setHasOnlySubstanceUnits(True)
        sp_.setBoundaryCondition(False)
        sp_.setConstant(False)
        _ok(sp_.setInitialAmount(float(s.initial)), f"species {s.name} initial amount")
        uid = units.get(s.unit)
        if uid:
            sp_.setSubstanceUnits(uid)
        setup_notes(sp_, f"unit: {s.unit}" + (f"; {s.description}" if s.description else ""))
    for p in net.params:
        pid = take(p.name)
        names[sym(p.name)] = pid
        par = model.createParameter()
        par.setId(pid)
        par.setName(p.name)
        par.setConstant(True)
        _ok(par.setValue(float(p.value)), f"parameter {p.name} value")
        uid = units.get(p.unit)
        if uid:
            par.setUnits(uid)
        text = f"unit: {p.unit}"
        if p.source:
            text += f"; source: {p.source}"
        if p.description:
            text += f"; {p.description}"
        setup_notes(par, text)
    for o in net.observables:
        oid = take(o.name)
        names[sym(o.name)] = oid
    builder = _AstBuilder(names, origin)

    def math_of(expr: Any, what: str) -> Any:
        try:
            return _check(builder.build(expr), what)
        except SBMLExportError as exc:
            raise SBMLExportError(f"{what}: {exc}") from None

    for o in net.observables:
        oid = names[sym(o.name)]
        par = model.createParameter()
        par.setId(oid)
        par.setName(o.name)
        par.setConstant(False)
        uid = units.get(o.unit)
        if uid:
            par.setUnits(uid)
        setup_notes(par, f"observable; unit: {o.unit}" + (f"; role: {o.role}" if o.role else "")
                    + (f"; {o.description}" if o.description else ""))
        rule = model.createAssignmentRule()
        rule.setVariable(oid)
        _ok(rule.setMath(math_of(o.expr, f"observable {o.name}")), f"observable {o.name}")

    species_syms = {s.symbol: s.name for s in net.species}
    for r in net.reactions:
        rid = take(r.name)
        rx = model.createReaction()
        rx.setId(rid)
        rx.setName(r.name)
        rx.setReversible(False)
        net_st: dict[str, float] = {}
        for n, v in r.stoich.items():
            net_st[n] = net_st.get(n, 0.0) + float(v)
        for n, v in net_st.items():
            if v < 0:
                ref = rx.createReactant()
                ref.setStoichiometry(-v)
            elif v > 0:
                ref = rx.createProduct()
                ref.setStoichiometry(v)
            else:
                continue
            ref.setSpecies(names[sym(n)])
            ref.setConstant(True)
        rate = sp.sympify(r.rate)
        read = sorted(species_syms[s] for s in rate.free_symbols if s in species_syms)
        for n in read:
            if net_st.get(n, 0.0) == 0.0:
                mod = rx.createModifier()
                mod.setSpecies(names[sym(n)])
        kl = rx.createKineticLaw()
        _ok(kl.setMath(math_of(rate, f"reaction {r.name} rate")), f"reaction {r.name} rate")
        setup_notes(rx, r.description)

    n_ev = len(net.events)
    for k, ev in enumerate(net.events):
        eid = take(ev.name)
        e = model.createEvent()
        e.setId(eid)
        e.setName(ev.name)
        e.setUseValuesFromTriggerTime(False)
        trig = e.createTrigger()
        trig.setPersistent(True)
        extra: list[tuple[str, Callable[[], Any]]] = []
        if isinstance(ev.trigger, At):
            trig.setInitialValue(False)
            cond = sp.GreaterThan(T, sp.sympify(ev.trigger.time), evaluate=False)
            tmath = math_of(cond, f"event {ev.name} time")
        elif isinstance(ev.trigger, When):
            trig.setInitialValue(True)
            x = sp.sympify(ev.trigger.expr)
            d = int(ev.trigger.direction)
            if d < 0:
                tmath = math_of(sp.StrictLessThan(x, 0, evaluate=False), f"event {ev.name} trigger")
            elif d > 0:
                tmath = math_of(sp.StrictGreaterThan(x, 0, evaluate=False), f"event {ev.name} trigger")
            else:
                # fires whenever x changes sign relative to the sign it had at the last firing
                sid = take(f"_sign_{ev.name}")
                par = model.createParameter()
                par.setId(sid)
                par.setConstant(False)
                par.setValue(1.0)
                setup_notes(par, f"helper of event {ev.name}: sign of its condition at the last crossing")
                ia = model.createInitialAssignment()
                ia.setSymbol(sid)
                ia.setMath(math_of(sp.Piecewise((-1, sp.StrictLessThan(x, 0, evaluate=False)), (1, True),
                                                evaluate=False), f"event {ev.name} sign"))
                s_sym = sp.Symbol(sid, real=True)
                builder.names[s_sym] = sid
                tmath = math_of(sp.StrictLessThan(s_sym * x, 0, evaluate=False), f"event {ev.name} trigger")
                flip = math_of(-s_sym, "sign flip")
                extra.append((sid, flip.deepCopy))
            if ev.once:
                gid = take(f"_once_{ev.name}")
                par = model.createParameter()
                par.setId(gid)
                par.setConstant(False)
                par.setValue(0.0)
                setup_notes(par, f"helper of event {ev.name}: 1 once it has fired (it fires at most once)")
                g_sym = sp.Symbol(gid, real=True)
                builder.names[g_sym] = gid
                guard = math_of(sp.Eq(g_sym, 0, evaluate=False), "guard")
                both = ls.ASTNode(ls.AST_LOGICAL_AND)
                both.addChild(tmath)
                both.addChild(guard)
                tmath = both
                extra.append((gid, _const_one(builder)))
        else:  # pragma: no cover - the dataclass admits only these two
            raise SBMLExportError(f"event {ev.name}: unknown trigger {ev.trigger!r}")
        _ok(trig.setMath(tmath), f"event {ev.name} trigger")
        pr = e.createPriority()
        _ok(pr.setMath(builder.integer(n_ev - k)), f"event {ev.name} priority")
        for n, v in ev.assign.items():
            ea = e.createEventAssignment()
            ea.setVariable(names[sym(n)])
            _ok(ea.setMath(math_of(v, f"event {ev.name} assignment to {n}")), f"event {ev.name}")
        for var, mk in extra:
            ea = e.createEventAssignment()
            ea.setVariable(var)
            _ok(ea.setMath(mk()), f"event {ev.name} helper")
        setup_notes(e, ev.description)

    if validate:
        errors = _errors(doc)
        if errors:
            raise SBMLExportError(f"network {net.name}: SBML document invalid:\n" + "\n".join(errors))
    return str(ls.writeSBMLToString(doc))


def _const_one(builder: _AstBuilder) -> Callable[[], Any]:
    def one() -> Any:
        return builder.integer(1)

    return one


def _errors(doc: Any) -> list[str]:
    """Messages of libsbml errors of severity ERROR or FATAL (after consistency checks)."""
    ls = _libsbml()
    doc.checkConsistency()
    out = []
    log = doc.getErrorLog()
    for i in range(log.getNumErrors()):
        err = log.getError(i)
        if err.getSeverity() >= ls.LIBSBML_SEV_ERROR:
            out.append(f"  [{err.getSeverityAsString()}] line {err.getLine()}: {err.getMessage().strip()}")
    return out


def validation_messages(sbml: str) -> list[tuple[str, str]]:
    """``(severity, message)`` of every libsbml finding (all severities) for an SBML string."""
    ls = _libsbml()
    doc = ls.readSBMLFromString(sbml)
    doc.checkConsistency()
    log = doc.getErrorLog()
    return [(log.getError(i).getSeverityAsString(), log.getError(i).getMessage().strip())
            for i in range(log.getNumErrors())]
