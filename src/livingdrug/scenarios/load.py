"""Read, validate, write, hash and resolve scenario files.

Scenario files are data, never code: TOML parsed by :mod:`tomllib`, a size limit before
parsing, quantity strings checked against a strict pattern before pint sees them (pint's
parser evaluates arithmetic), and every problem reported as one :class:`ScenarioError`
naming the file, the field, the value, what was expected and how to fix it.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import json
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..network import Network
from ..units import UnitError, _unit, to_canonical
from .schema import (
    _MISSING,
    DEFAULT_HYBRID_THRESHOLD,
    DEFAULT_TAU_EPSILON,
    ENGINES,
    MAX_DAYS,
    MAX_FILE_BYTES,
    MAX_OUTPUT_POINTS,
    MAX_REPLICATES,
    STOCHASTIC_ENGINES,
    Dosing,
    FrozenDict,
    ResolvedScenario,
    Scenario,
    ScenarioError,
    Simulation,
    freeze,
    show_value,
    thaw,
)

__all__ = [
    "load_scenario",
    "list_scenarios",
    "default_scenario_name",
    "scenario_from_dict",
    "validate_scenario",
    "dump_scenario",
    "scenario_hash",
    "resolve",
    "with_dose",
    "with_days",
    "with_seed",
    "with_parameters",
    "with_initial",
    "with_engine",
    "with_replicates",
    "builtin_dir",
]

DEFAULT_SCENARIO = "cd19-ball"
#: bump when the meaning of the hashed JSON changes
HASH_FORMAT = 1

#: largest total dose accepted (cells); the largest clinical doses are ~1e9–1e10
MAX_DOSE_CELLS = 1e13
#: admissible body weight (kg); mice weigh ~0.02 kg
MIN_WEIGHT_KG, MAX_WEIGHT_KG = 1e-3, 1000.0
MAX_SEED = 2**64 - 1
#: admissible hybrid threshold (cells): below one cell nothing would be exact; above 1e9
#: cells an exact simulation of the "small" populations would itself be hopeless
MIN_HYBRID_THRESHOLD, MAX_HYBRID_THRESHOLD = 1.0, 1e9

_TOP_KEYS = (
    "name",
    "title",
    "description",
    "model",
    "model_options",
    "patient",
    "dosing",
    "parameters",
    "initial",
    "simulation",
    "population",
    "targets",
    "survival",
)
_SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "patient": ("weight",),
    "dosing": ("dose", "time"),
    "simulation": (
        "days",
        "start",
        "output_interval",
        "output_after",
        "engine",
        "rtol",
        "atol",
        "seed",
        "replicates",
        "hybrid_threshold",
        "tau_epsilon",
    ),
}
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")

# --- quantity strings: a strict gate before pint (whose parser evaluates arithmetic) -------
_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,4})?"
_ATOM = r"\(*[A-Za-zµμ_%][A-Za-z_µμ%]*(?:(?:\^|\*\*)[+-]?\d{1,2})?\)*"
_UNIT = rf"(?:1/)?{_ATOM}(?:[*/· ]{_ATOM})*"
_QTY_RE = re.compile(rf"({_NUM}) ?({_UNIT})?")
_MAX_QTY_CHARS = 100


def _normalise_quantity_text(text: str) -> str:
    text = re.sub(r"\s+", " ", text.strip())
    return re.sub(r" ?([*/^·()]) ?", r"\1", text)


# ---------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------


class _Ctx:
    """Where we are: file name for messages and the model registry to use."""

    def __init__(self, file: str, models: Mapping[str, Any] | None) -> None:
        self.file = file
        self.models = models

    def error(
        self, field: str, value: Any = _MISSING, *, expected: str = "", hint: str = ""
    ) -> ScenarioError:
        return ScenarioError(file=self.file, field=field, value=value, expected=expected, hint=hint)


def _closest(word: str, options: list[str] | tuple[str, ...]) -> str:
    match = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.5)
    return match[0] if match else ""


def _listing(names: Any, limit: int = 12) -> str:
    names = sorted(str(n) for n in names)
    text = ", ".join(names[:limit])
    return text + (f", … ({len(names)} in all)" if len(names) > limit else "")


def _unknown_key(
    ctx: _Ctx, field: str, key: str, value: Any, valid: tuple[str, ...] | list[str], what: str = ""
) -> ScenarioError:
    best = _closest(key, valid)
    fix = f'did you mean "{best}"?' if best else "remove it or fix the spelling"
    if what:
        return ctx.error(field, value, expected=what, hint=f"unknown name; {fix} (known: {_listing(valid)})")
    return ctx.error(field, value, expected=f"one of {_listing(valid)}", hint=f"unknown name; {fix}")


def _key(k: Any) -> str:
    """A key as it would be written in TOML (quoted when not a bare key)."""
    k = str(k)
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fmt(x: float) -> str:
    """Shortest text that reads back as exactly ``x`` (``1e8``, ``0.25``, ``365``)."""
    x = float(x)
    if not math.isfinite(x):
        return repr(x)
    best = repr(x).removesuffix(".0")
    for digits in range(17):
        sci = f"{x:.{digits}e}"
        if float(sci) == x:
            mant, exp = sci.split("e")
            sci = f"{mant}e{int(exp)}"
            if len(sci) < len(best):
                best = sci
            break
    return best


def _describe(unit: str) -> str:
    try:
        dim = _unit(unit).dimensionality
    except Exception:
        return "a quantity"
    words = {
        "d": "a time",
        "1/d": "a rate",
        "cell": "a number of cells",
        "cell/uL": "a concentration",
        "kg": "a body weight",
        "L": "a volume",
        "pg/mL": "a cytokine concentration",
        "copies/ug": "a transgene level",
        "cell/kg": "a dose per body weight",
    }
    for canon, word in words.items():
        if _unit(canon).dimensionality == dim:
            return word
    if _unit("1").dimensionality == dim:
        return "a number"
    return "a quantity"


def _example(value: Any) -> str:
    if _is_number(value):
        try:
            f = float(value)
            if math.isfinite(f):
                return _fmt(f)
        except OverflowError:
            pass
        return "1"
    if isinstance(value, str):
        m = re.match(rf"\s*({_NUM})", value)
        if m:
            try:
                if math.isfinite(float(m.group(1))):
                    return m.group(1)
            except (ValueError, OverflowError):
                pass
    return "1"


def _number(ctx: _Ctx, field: str, value: Any, *, expected: str, hint: str = "") -> float:
    """A finite float from a TOML int/float (never bool)."""
    if not _is_number(value):
        raise ctx.error(field, value, expected=expected, hint=hint or "write a plain number")
    try:
        f = float(value)
    except OverflowError:
        f = math.inf
    if not math.isfinite(f):
        raise ctx.error(field, value, expected=expected, hint="write a finite number")
    return f


def _quantity(
    ctx: _Ctx, field: str, value: Any, unit: str, *, bare_unit: str | None = None, what: str = ""
) -> float:
    """Parse ``value`` (``"0.9 1/d"``) and return its magnitude in ``unit``.

    Bare numbers are taken in ``bare_unit`` when given (e.g. days for time fields), and are
    otherwise accepted only for dimensionless quantities.
    """
    what = what or _describe(unit)
    expected = f"{what} in {unit}" if not _unit(unit).dimensionless else what
    example = f'write e.g. "{_example(value)} {unit}"'
    if _is_number(value):
        f = _number(ctx, field, value, expected=expected, hint=example)
        if bare_unit is not None:
            value = f"{_fmt(f)} {bare_unit}"
        elif _unit(unit).dimensionless:
            return f
        else:
            raise ctx.error(field, value, expected=expected, hint=f"the unit is missing; {example}")
    if not isinstance(value, str):
        raise ctx.error(field, value, expected=expected, hint=example)
    if len(value) > _MAX_QTY_CHARS or not _QTY_RE.fullmatch(_normalise_quantity_text(value)):
        raise ctx.error(
            field, value, expected=expected, hint=f"write a number and a unit, {example[6:]}"
        )
    try:
        out = to_canonical(value, unit, field=field)
    except UnitError as exc:
        text = str(exc)
        if "no unit" in text:
            hint = f"the unit is missing; {example}"
        elif "not a finite" in text:
            hint = "write a finite number"
        else:
            hint = example
        raise ctx.error(field, value, expected=expected, hint=hint) from None
    except Exception:  # pint raises several exception types on odd unit text
        raise ctx.error(field, value, expected=expected, hint=example) from None
    if not math.isfinite(out):
        raise ctx.error(field, value, expected=expected, hint="write a finite number")
    return out


def _table(ctx: _Ctx, field: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ctx.error(
            field,
            value,
            expected=f"a table [{field}]",
            hint=f"write it as a section: [{field}] followed by key = value lines",
        )
    for k in value:
        if not isinstance(k, str):
            raise ctx.error(f"{field}.{k}", expected="a text key", hint="keys are names")
    return value


def _check_keys(ctx: _Ctx, field: str, table: Mapping[str, Any], valid: tuple[str, ...]) -> None:
    for k, v in table.items():
        if k not in valid:
            raise _unknown_key(ctx, f"{field}.{_key(k)}" if field else _key(k), k, v, valid)


def _text(ctx: _Ctx, field: str, value: Any, *, maxlen: int = 10_000) -> str:
    if not isinstance(value, str):
        raise ctx.error(field, value, expected="a text in quotes", hint=f'write {field.split(".")[-1]} = "…"')
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ctx.error(field, value, expected="valid Unicode text", hint="remove the invalid characters") from None
    if len(value) > maxlen:
        raise ctx.error(field, value, expected=f"at most {maxlen} characters", hint="shorten it")
    return value


# ---------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------


def _registry(models: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if models is not None:
        return models
    try:
        from .. import models as library
    except ImportError:  # pragma: no cover - the model library is part of the package
        return {}
    return getattr(library, "MODELS", {}) or {}


_NETWORKS: dict[tuple[int, str, str], tuple[Any, Network]] = {}


def _build(spec: Any, model: str, options: Mapping[str, Any]) -> Network:
    key = (id(spec), model, json.dumps(dict(options), sort_keys=True, default=str))
    hit = _NETWORKS.get(key)
    if hit is not None and hit[0] is spec:
        return hit[1]
    net: Network = spec.build(**dict(options))
    _NETWORKS[key] = (spec, net)
    return net


def _model_network(ctx: _Ctx, model: str, options: Mapping[str, Any]) -> Network:
    registry = _registry(ctx.models)
    if model not in registry:
        best = _closest(model, list(registry))
        hint = f'did you mean "{best}"?' if best else "check the spelling"
        raise ctx.error(
            "model",
            model,
            expected=f"one of the models: {_listing(registry) or '(none installed)'}",
            hint=hint,
        )
    spec = registry[model]
    allowed = _option_defaults(spec)
    open_ended = allowed.pop("*", None) is not None  # build(**kwargs): let build() judge
    for k, v in options.items():
        if k not in allowed and open_ended:
            continue
        if k not in allowed:
            best = _closest(k, list(allowed))
            raise ctx.error(
                f"model_options.{_key(k)}",
                v,
                expected=f"an option of model {model}: {_listing(allowed) or '(it takes none)'}",
                hint=f'did you mean "{best}"?' if best else "remove it",
            )
        default = allowed[k]
        if isinstance(default, (tuple, list, set, frozenset)):
            if default and v not in default:
                raise ctx.error(
                    f"model_options.{k}",
                    v,
                    expected="one of " + ", ".join(json.dumps(c) for c in default),
                    hint="pick one of these",
                )
        elif default is not _MISSING and default is not None and not _same_kind(v, default):
            raise ctx.error(
                f"model_options.{k}",
                v,
                expected=f"{_kind_word(default)} (the default is {show_value(default)})",
                hint=f"write e.g. {k} = {show_value(default)}",
            )
    try:
        net = _build(spec, model, options)
    except Exception as exc:
        raise ctx.error(
            "model_options",
            dict(options),
            expected=f"options model {model} accepts",
            hint=f"building the model failed: {type(exc).__name__}: {exc}",
        ) from None
    return net


def _option_defaults(spec: Any) -> dict[str, Any]:
    """Option names a model takes, with their defaults (``_MISSING`` when unknown).

    Names come from ``spec.options`` and from the keyword parameters of ``spec.build``.
    """
    out: dict[str, Any] = {}
    try:
        sig = inspect.signature(spec.build)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        for p in sig.parameters.values():
            if p.kind is p.VAR_KEYWORD:
                out["*"] = _MISSING
            elif p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
                out[p.name] = _MISSING if p.default is p.empty else p.default
    for k, v in (getattr(spec, "options", None) or {}).items():
        out[str(k)] = v
    return out


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float))
    if isinstance(default, str):
        return isinstance(value, str)
    return True


def _kind_word(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, (int, float)):
        return "a number"
    if isinstance(default, str):
        return "a text in quotes"
    return "a value"


def _dose_meta(net: Network) -> tuple[str, str] | None:
    dose = (net.meta or {}).get("dose")
    if not dose:
        return None
    return str(dose["param"]), str(dose["time_param"])


# ---------------------------------------------------------------------------------------
# virtual populations ([population] of a scenario or a comparison)
# ---------------------------------------------------------------------------------------

_POP_KEYS = ("patients", "seed", "parameters", "covariates", "characteristics", "effects", "correlations")
_VAR_KEYS = ("median", "cv", "distribution", "lower", "upper", "values", "probabilities")
_CHAR_KEYS = (*_VAR_KEYS, "unit")
_EFFECT_KEYS = ("parameter", "covariate", "model", "reference", "coefficient")
#: virtual patients of a population when the file does not say
DEFAULT_POPULATION_SIZE = 100


def parse_variability(ctx: _Ctx, field: str, name: str, raw: Any, unit: str | None,
                      keys: tuple[str, ...] = _VAR_KEYS) -> Any:
    """One ``[... .NAME]`` table (median, cv, distribution, lower, upper, values,
    probabilities; quantities in ``unit``, plain numbers when ``unit`` is ``None``) as a
    :class:`~livingdrug.trials.population.Variability`."""
    from ..trials.population import PopulationInputError, Variability

    t = _table(ctx, field, raw)
    _check_keys(ctx, field, t, keys)
    dist = _text(ctx, f"{field}.distribution", t["distribution"], maxlen=20) if "distribution" in t else "lognormal"
    kw: dict[str, Any] = {"distribution": dist,
                          "unit": unit if unit is not None else _text(ctx, f"{field}.unit", t.get("unit", "1"), maxlen=40)}

    def qty(f: str, v: Any) -> float:
        if unit is None:
            return _number(ctx, f, v, expected="a number (in the unit named by unit = …)")
        return _quantity(ctx, f, v, unit)

    if "cv" in t:
        kw["cv"] = _number(ctx, f"{field}.cv", t["cv"], expected="a coefficient of variation in [0, 10]")
    elif dist in ("lognormal", "normal"):
        raise ctx.error(f"{field}.cv", expected="a coefficient of variation (e.g. cv = 0.3 for 30 %)",
                        hint="add cv = …")
    for key in ("median", "lower", "upper"):
        if key in t:
            kw[key] = qty(f"{field}.{key}", t[key])
    for key in ("values", "probabilities"):
        if key in t:
            if not isinstance(t[key], list) or not 0 < len(t[key]) <= 1000:
                raise ctx.error(f"{field}.{key}", t[key], expected="a list such as [1, 2, 3]")
            kw[key] = tuple(qty(f"{field}.{key}[{k}]", v) if key == "values" else
                            _number(ctx, f"{field}.{key}[{k}]", v, expected="a probability")
                            for k, v in enumerate(t[key]))
    try:
        return Variability(name, **kw)
    except PopulationInputError as exc:
        sub = exc.field.split(".", 1)[-1] if "." in exc.field else ""
        raise ctx.error(f"{field}.{sub}" if sub else field, exc.value, expected=exc.expected, hint=exc.hint) from None


def parse_population(ctx: _Ctx, raw: Any, param_unit: Callable[[str, str], str],
                     covariate_unit: Callable[[str, str], str]) -> tuple[Any, int]:
    """``([population] as a Population, seed)``.  ``param_unit(field, name)`` and
    ``covariate_unit(field, name)`` give the canonical unit of a parameter / state covariate or
    raise the :class:`ScenarioError` naming an unknown one.  Characteristics are plain numbers
    in the unit they name (``unit = "year"``)."""
    from ..trials.population import MAX_PATIENTS, Effect, Population, PopulationInputError

    pop = _table(ctx, "population", raw)
    _check_keys(ctx, "population", pop, _POP_KEYS)
    size = pop.get("patients", DEFAULT_POPULATION_SIZE)
    if not (_is_number(size) and float(size) == int(size) and 1 <= int(size) <= MAX_PATIENTS):
        raise ctx.error("population.patients", size, expected=f"a whole number from 1 to {MAX_PATIENTS:,}",
                        hint="write patients = 200")
    seed = pop.get("seed", 0)
    if not (_is_number(seed) and float(seed) == int(seed) and 0 <= int(seed) <= MAX_SEED):
        raise ctx.error("population.seed", seed, expected="a whole number ≥ 0", hint="write seed = 0")
    params = tuple(parse_variability(ctx, f"population.parameters.{p}", p, v, param_unit(f"population.parameters.{p}", p))
                   for p, v in _table(ctx, "population.parameters", pop.get("parameters", {})).items())
    covs = tuple(parse_variability(ctx, f"population.covariates.{c}", c, v, covariate_unit(f"population.covariates.{c}", c))
                 for c, v in _table(ctx, "population.covariates", pop.get("covariates", {})).items())
    chars = [parse_variability(ctx, f"population.characteristics.{c}", c, v, None, _CHAR_KEYS)
             for c, v in _table(ctx, "population.characteristics", pop.get("characteristics", {})).items()]
    names = [v.name for v in (*params, *covs, *chars)]
    for n in names:
        if names.count(n) > 1:
            raise ctx.error(f"population.characteristics.{n}", n, expected="each quantity varied once")
    effects = []
    eff_raw = pop.get("effects", [])
    if not isinstance(eff_raw, list):
        raise ctx.error("population.effects", eff_raw, expected="[[population.effects]] tables")
    for k, e in enumerate(eff_raw):
        f = f"population.effects[{k}]"
        t = _table(ctx, f, e)
        _check_keys(ctx, f, t, _EFFECT_KEYS)
        for key in _EFFECT_KEYS:
            if key not in t:
                raise ctx.error(f"{f}.{key}", expected=f"the effect's {key}",
                                hint='e.g. parameter = "k_exp", covariate = "age", model = "power", '
                                     "reference = 50, coefficient = -0.3")
        par = _text(ctx, f"{f}.parameter", t["parameter"], maxlen=100)
        param_unit(f"{f}.parameter", par)  # a parameter of the model (else a named error)
        cov = _text(ctx, f"{f}.covariate", t["covariate"], maxlen=100)
        if cov not in names:
            raise ctx.error(f"{f}.covariate", cov, expected=f"a varying quantity of the population ({_listing(names)})",
                            hint="vary it under [population.characteristics.NAME] (or parameters/covariates)")
        varied = next(v for v in (*params, *covs, *chars) if v.name == cov)
        ref = _number(ctx, f"{f}.reference", t["reference"], expected="the covariate's reference value") \
            if varied in chars else _quantity(ctx, f"{f}.reference", t["reference"], varied.unit)
        try:
            effects.append(Effect(par, cov, _text(ctx, f"{f}.model", t["model"], maxlen=20), ref,
                                  _number(ctx, f"{f}.coefficient", t["coefficient"], expected="a number")))
        except PopulationInputError as exc:
            raise ctx.error(f"{f}.{exc.field.rsplit('.', 1)[-1]}", exc.value, expected=exc.expected, hint=exc.hint) from None
    corr = []
    corr_raw = pop.get("correlations", [])
    if not isinstance(corr_raw, list):
        raise ctx.error("population.correlations", corr_raw, expected="[[population.correlations]] tables")
    for k, c in enumerate(corr_raw):
        f = f"population.correlations[{k}]"
        t = _table(ctx, f, c)
        _check_keys(ctx, f, t, ("between", "rho"))
        pair = t.get("between")
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise ctx.error(f"{f}.between", pair, expected='two names, e.g. between = ["k_exp", "leukaemia"]')
        corr.append((pair[0], pair[1], _number(ctx, f"{f}.rho", t.get("rho"), expected="a correlation in (−1, 1)")))
    try:
        population = Population(int(size), params, covs, tuple(chars), tuple(effects), tuple(corr))
    except PopulationInputError as exc:
        raise ctx.error(exc.field, exc.value, expected=exc.expected, hint=exc.hint) from None
    return population, int(seed)


#: fields of [survival] → (unit, bare-number unit) (livingdrug.trials.survival.SurvivalModel)
_SURVIVAL_FIELDS: dict[str, tuple[str, str | None]] = {
    "h_bg": ("1/d", None), "h_d": ("1/d", None), "b_ref": ("cell", None), "beta": ("1", None),
    "follow_up": ("d", "d"),
}


def parse_survival(ctx: _Ctx, raw: Any, net: Network) -> Any:
    """``[survival]``: the hazard-of-death model of the scenario's virtual patients
    (:class:`~livingdrug.trials.survival.SurvivalModel`): fields ``h_bg`` and ``h_d`` (1/d),
    ``b_ref`` (cell), ``beta`` (dimensionless), ``follow_up`` (d after infusion); the fields
    not given keep the disease default.  Errors name ``survival.<field>``."""
    from ..trials.survival import DEFAULTS, SurvivalInputError, SurvivalModel, default_survival

    tab = _table(ctx, "survival", raw)
    _check_keys(ctx, "survival", tab, tuple(_SURVIVAL_FIELDS))
    base = default_survival(net)
    values: dict[str, float] = {}
    for k, v in tab.items():
        unit, bare = _SURVIVAL_FIELDS[k]
        values[k] = _quantity(ctx, f"survival.{k}", v, unit, bare_unit=bare)
    if base is None:
        missing = [k for k in ("h_bg", "h_d", "b_ref") if k not in values]
        if missing:
            raise ctx.error(f"survival.{missing[0]}", expected=f"a value: model {net.name} has no default survival model "
                            f"(defaults exist for {', '.join(DEFAULTS)})",
                            hint='give h_bg, h_d and b_ref, e.g. h_bg = "1.7e-4 1/d", h_d = "5e-3 1/d", b_ref = "1e11 cell"')
    try:
        if base is None:
            base = SurvivalModel(values["h_bg"], values["h_d"], values["b_ref"], source="[survival]")
        return replace(base, **values, source=base.source + (" (overridden by [survival]: " + ", ".join(values) + ")"
                                                             if values else ""))
    except SurvivalInputError as exc:
        raise ctx.error(f"survival.{exc.field}", tab.get(exc.field, exc.value), expected=exc.expected,
                        hint="see docs/trials.md (death model)") from None


#: most published targets of one scenario
MAX_TARGETS = 100


def parse_targets(ctx: _Ctx, raw: Any) -> tuple[Any, ...]:
    """``[[targets]]``: published figures to calibrate the virtual population to, each table
    read by :meth:`livingdrug.trials.calibration.Target.from_dict`; an error names
    ``targets[k].field`` (k counted from 0)."""
    from ..trials.calibration import CalibrationInputError, Target

    if not isinstance(raw, (list, tuple)) or not raw:
        raise ctx.error("targets", raw, expected="an array of [[targets]] tables (at least one)",
                        hint='write [[targets]] with name, kind, column, value and source (see docs/calibration.md)')
    if len(raw) > MAX_TARGETS:
        raise ctx.error("targets", f"{len(raw)} tables", expected=f"at most {MAX_TARGETS} targets")
    out = []
    for k, item in enumerate(raw):
        field = f"targets[{k}]"
        if not isinstance(item, Mapping):
            raise ctx.error(field, item, expected="a [[targets]] table", hint="name, kind, column, value, source, …")
        try:
            out.append(Target.from_dict(thaw(freeze(item))))
        except CalibrationInputError as exc:
            # exc.field is "target 'NAME'.FIELD" (or "target"/"target.name"): keep FIELD
            sub = exc.field.rsplit(".", 1)[-1] if "." in exc.field else ""
            raise ctx.error(f"{field}.{sub}" if sub else field, exc.value, expected=exc.expected,
                            hint=exc.hint) from None
        except TypeError as exc:  # a value of the wrong type that the dataclass cannot take
            raise ctx.error(field, item, expected="target fields of the documented types", hint=str(exc)) from None
    names = [t.name for t in out]
    for k, n in enumerate(names):
        if names.index(n) != k:
            raise ctx.error(f"targets[{k}].name", n, expected="a name not used by another target",
                            hint=f"targets[{names.index(n)}] is already called {n!r}")
    return tuple(out)


def model_covariates(ctx: _Ctx, model: str) -> dict[str, str]:
    """State covariates (name → unit) of a registered model, ``{}`` if it has none."""
    spec = _registry(ctx.models).get(model)
    if spec is None or getattr(spec, "patient_state", None) is None:
        return {}
    return dict(getattr(spec, "covariates", {}))


def unknown_covariate(ctx: _Ctx, field: str, name: str, model: str, known: Mapping[str, str], where: str = "") -> ScenarioError:
    best = _closest(name, list(known))
    return ctx.error(field, name, expected=f"a state covariate of model {model!r}{where}",
                     hint=(f'did you mean "{best}"? (known: {_listing(known)})' if best else f"known: {_listing(known)}")
                     if known else f"model {model!r} defines no patient state; vary its parameters instead")


# ---------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------


def _validate(
    d: Any, ctx: _Ctx, *, network: Network | None = None, stem: str | None = None
) -> Scenario:
    if not isinstance(d, Mapping):
        raise ctx.error("", d, expected="a table of scenario settings", hint="start from a built-in scenario")
    for k in d:
        if not isinstance(k, str):
            raise ctx.error(str(k), expected="a text key", hint="keys are names")
    _check_keys(ctx, "", d, _TOP_KEYS)
    raw: dict[str, Any] = {}

    # --- identity ------------------------------------------------------------------------
    if "name" in d:
        name = _text(ctx, "name", d["name"], maxlen=64)
    elif stem is not None and _NAME_RE.fullmatch(stem):
        name = stem
    else:
        raise ctx.error("name", expected="a scenario name", hint='add name = "my-scenario" (a-z, 0-9, -)')
    if not _NAME_RE.fullmatch(name):
        raise ctx.error(
            "name", name, expected="lower-case letters, digits and '-' (at most 64)", hint='e.g. name = "cd19-ball"'
        )
    raw["name"] = name
    title = _text(ctx, "title", d["title"], maxlen=200) if "title" in d else name
    if "title" in d:
        raw["title"] = title
    description = _text(ctx, "description", d["description"]) if "description" in d else ""
    if "description" in d:
        raw["description"] = description

    # --- model ---------------------------------------------------------------------------
    if "model" not in d:
        known = _listing(_registry(ctx.models))
        raise ctx.error("model", expected=f"a model name ({known})", hint='add e.g. model = "car_t"')
    model = _text(ctx, "model", d["model"], maxlen=100)
    raw["model"] = model
    options: dict[str, Any] = {}
    if "model_options" in d:
        for k, v in _table(ctx, "model_options", d["model_options"]).items():
            if isinstance(v, bool) or isinstance(v, (str, int)):
                options[k] = v
            elif isinstance(v, float) and math.isfinite(v):
                options[k] = v
            else:
                raise ctx.error(
                    f"model_options.{_key(k)}", v, expected="a text, number or true/false", hint="write a single value"
                )
        if options:
            raw["model_options"] = dict(options)
    net = network if network is not None else _model_network(ctx, model, options)
    meta = net.meta or {}
    dose_meta = _dose_meta(net)
    weight_param = meta.get("weight_param")

    # --- patient -------------------------------------------------------------------------
    weight: float | None = None
    if "patient" in d:
        patient = _table(ctx, "patient", d["patient"])
        _check_keys(ctx, "patient", patient, _SECTION_KEYS["patient"])
        if "weight" in patient:
            weight = _quantity(ctx, "patient.weight", patient["weight"], "kg")
            if not (MIN_WEIGHT_KG <= weight <= MAX_WEIGHT_KG):
                raise ctx.error(
                    "patient.weight",
                    patient["weight"],
                    expected=f"a body weight between {MIN_WEIGHT_KG} and {MAX_WEIGHT_KG:g} kg",
                    hint='write e.g. "70 kg"',
                )
            if weight_param:
                _check_bounds(ctx, net, str(weight_param), weight, "patient.weight", patient["weight"])
        raw["patient"] = dict(patient)

    # --- simulation ----------------------------------------------------------------------
    if "simulation" not in d:
        raise ctx.error("simulation.days", expected="the end time in days", hint="add [simulation] with days = 365")
    sim = _table(ctx, "simulation", d["simulation"])
    _check_keys(ctx, "simulation", sim, _SECTION_KEYS["simulation"])
    raw["simulation"] = dict(sim)
    if "days" not in sim:
        raise ctx.error("simulation.days", expected="the end time in days", hint="add days = 365 under [simulation]")
    days = _quantity(ctx, "simulation.days", sim["days"], "d", bare_unit="d", what="an end time")
    if not (0 < days <= MAX_DAYS):
        raise ctx.error(
            "simulation.days",
            sim["days"],
            expected=f"an end time above 0 and at most {MAX_DAYS:g} d",
            hint="write e.g. days = 365",
        )
    default_start = meta.get("time_start", 0.0)
    if "start" in sim:
        start = _quantity(ctx, "simulation.start", sim["start"], "d", bare_unit="d", what="a start time")
    else:
        start = float(default_start)
    if not (-MAX_DAYS <= start < days):
        raise ctx.error(
            "simulation.start",
            sim.get("start", start),
            expected=f"a start time before the end time ({_fmt(days)} d)",
            hint='write e.g. start = "0 d", or raise days',
        )
    interval = 1.0
    if "output_interval" in sim:
        interval = _quantity(
            ctx, "simulation.output_interval", sim["output_interval"], "d", bare_unit="d", what="a time step"
        )
        if interval <= 0:
            raise ctx.error(
                "simulation.output_interval",
                sim["output_interval"],
                expected="a time step above 0 d",
                hint='write e.g. "0.25 d" or "6 h"',
            )
        if (days - start) / interval + 1 > MAX_OUTPUT_POINTS:
            raise ctx.error(
                "simulation.output_interval",
                sim["output_interval"],
                expected=f"at most {MAX_OUTPUT_POINTS:,} output points",
                hint=f'use a step of at least {(days - start) / (MAX_OUTPUT_POINTS - 1) * 1.001:.3g} d',
            )
    after = _output_after(ctx, sim, start) if "output_after" in sim else ()
    if after:
        edges = [start, *[min(t, days) for t, _ in after], days]
        steps = [interval, *[dt for _, dt in after]]
        parts = [(b - a) / dt + 1 for a, b, dt in zip(edges, edges[1:], steps, strict=False)]
        if sum(parts) > MAX_OUTPUT_POINTS:
            k = int(np.argmax(parts))
            field, value = (("simulation.output_interval", sim.get("output_interval", 1)) if k == 0 else
                            (f"simulation.output_after[{k - 1}].interval", sim["output_after"][k - 1]["interval"]))
            raise ctx.error(field, value, expected=f"at most {MAX_OUTPUT_POINTS:,} output points in all "
                            f"(this part of the grid has {parts[k]:,.0f})", hint="use a longer interval")
    engine = "ode"
    if "engine" in sim:
        engine = _text(ctx, "simulation.engine", sim["engine"], maxlen=50)
        if engine not in ENGINES:
            best = _closest(engine, ENGINES)
            raise ctx.error(
                "simulation.engine",
                engine,
                expected="one of " + ", ".join(f'"{e}"' for e in ENGINES),
                hint=f'did you mean "{best}"?' if best else 'write e.g. engine = "ode"',
            )
    ode_only = list((net.meta or {}).get("ode_only_species", ()))
    if engine in STOCHASTIC_ENGINES and engine != "hybrid" and ode_only:
        raise ctx.error(
            "simulation.engine",
            engine,
            expected=f"a model of cell counts for the {engine} engine; {ode_only[0]} is a concentration "
            f"({net.species_by_name(ode_only[0]).unit}) of the model's cytokine/drug block",
            hint='use --engine hybrid (it integrates concentrations deterministically) or --engine ode, '
            "or set toxicity = false in [model_options] to run the cell-only model with this engine",
        )
    rtol = 1e-6
    if "rtol" in sim:
        rtol = _number(ctx, "simulation.rtol", sim["rtol"], expected="a number between 0 and 0.1")
        if not (0 < rtol < 0.1):
            raise ctx.error(
                "simulation.rtol", sim["rtol"], expected="a number between 0 and 0.1", hint="write e.g. rtol = 1e-6"
            )
    atol = 1e-9
    if "atol" in sim:
        atol = _number(ctx, "simulation.atol", sim["atol"], expected="a number above 0")
        if atol <= 0:
            raise ctx.error("simulation.atol", sim["atol"], expected="a number above 0", hint="write e.g. atol = 1e-9")
    seed = 0
    if "seed" in sim:
        seed_v = sim["seed"]
        if not isinstance(seed_v, int) or isinstance(seed_v, bool) or not (0 <= seed_v <= MAX_SEED):
            raise ctx.error(
                "simulation.seed",
                seed_v,
                expected="a whole number from 0 to 2**64 - 1",
                hint="write e.g. seed = 0",
            )
        seed = int(seed_v)
    replicates: int | None = None
    if "replicates" in sim:
        rep_v = sim["replicates"]
        if not isinstance(rep_v, int) or isinstance(rep_v, bool) or not (1 <= rep_v <= MAX_REPLICATES):
            raise ctx.error(
                "simulation.replicates",
                rep_v,
                expected=f"a whole number of stochastic replicates from 1 to {MAX_REPLICATES:,}",
                hint="write e.g. replicates = 1000 (without quotes)",
            )
        replicates = int(rep_v)
    threshold = DEFAULT_HYBRID_THRESHOLD
    if "hybrid_threshold" in sim:
        threshold = _quantity(
            ctx, "simulation.hybrid_threshold", sim["hybrid_threshold"], "cell", bare_unit="cell",
            what="a population size",
        )
        if not (MIN_HYBRID_THRESHOLD <= threshold <= MAX_HYBRID_THRESHOLD):
            raise ctx.error(
                "simulation.hybrid_threshold",
                sim["hybrid_threshold"],
                expected=f"a population size from {MIN_HYBRID_THRESHOLD:g} to {MAX_HYBRID_THRESHOLD:g} cell",
                hint='write e.g. hybrid_threshold = "100 cell"',
            )
    epsilon = DEFAULT_TAU_EPSILON
    if "tau_epsilon" in sim:
        epsilon = _number(
            ctx, "simulation.tau_epsilon", sim["tau_epsilon"], expected="a number between 0 and 1",
            hint="write e.g. tau_epsilon = 0.03",
        )
        if not (0 < epsilon < 1):
            raise ctx.error(
                "simulation.tau_epsilon",
                sim["tau_epsilon"],
                expected="a number between 0 and 1 (exclusive)",
                hint=f"smaller is more accurate and slower; the default is {DEFAULT_TAU_EPSILON}",
            )
    simulation = Simulation(
        days=days,
        start=start,
        output_interval=interval,
        engine=engine,
        rtol=rtol,
        atol=atol,
        seed=seed,
        replicates=replicates,
        hybrid_threshold=threshold,
        tau_epsilon=epsilon,
        output_after=after,
    )

    # --- dosing --------------------------------------------------------------------------
    dosing: Dosing | None = None
    if "dosing" in d:
        dtab = _table(ctx, "dosing", d["dosing"])
        _check_keys(ctx, "dosing", dtab, _SECTION_KEYS["dosing"])
        raw["dosing"] = dict(dtab)
        if dose_meta is None:
            raise ctx.error(
                "dosing", dict(dtab), expected=f"no [dosing]: model {model} takes no dose", hint="remove the [dosing] section"
            )
        if "dose" not in dtab:
            raise ctx.error("dosing.dose", expected="the CAR+ cells infused", hint='add dose = "1e8 cell" under [dosing]')
        dose, per_kg = _dose(ctx, dtab["dose"])
        if per_kg and weight is None:
            raise ctx.error(
                "patient.weight",
                expected="a body weight, because dosing.dose is per kg",
                hint='add [patient] with weight = "70 kg"',
            )
        total = dose * weight if per_kg and weight is not None else dose
        if total > MAX_DOSE_CELLS:
            raise ctx.error(
                "dosing.dose",
                dtab["dose"],
                expected=f"at most {MAX_DOSE_CELLS:.0e} cells in all",
                hint="check the exponent; clinical doses are about 1e6 to 1e9 cells",
            )
        _check_bounds(ctx, net, dose_meta[0], total, "dosing.dose", dtab["dose"])
        if "time" in dtab:
            t_dose = _quantity(ctx, "dosing.time", dtab["time"], "d", bare_unit="d", what="a time")
        else:
            t_dose = float(net.param(dose_meta[1]).value)
        if not (start <= t_dose <= days):
            raise ctx.error(
                "dosing.time",
                dtab.get("time", t_dose),
                expected=f"a time within the simulation ({_fmt(start)} to {_fmt(days)} d)",
                hint="move the dose or change simulation.start/days",
            )
        _check_bounds(ctx, net, dose_meta[1], t_dose, "dosing.time", dtab.get("time", t_dose))
        dosing = Dosing(dose=dose, per_kg=per_kg, time=t_dose)
    elif dose_meta is not None:
        raise ctx.error(
            "dosing",
            expected=f"a [dosing] section: model {model} takes a dose",
            hint='add [dosing] with dose = "1e8 cell" and time = "0 d"',
        )

    # --- parameters and initial values ----------------------------------------------------
    reserved: dict[str, str] = {}
    if dose_meta is not None:
        reserved[dose_meta[0]] = "dosing.dose"
        reserved[dose_meta[1]] = "dosing.time"
    if weight_param:
        reserved[str(weight_param)] = "patient.weight"
    params: dict[str, float] = {}
    if "parameters" in d:
        ptab = _table(ctx, "parameters", d["parameters"])
        names = list(net.param_names)
        for k, v in ptab.items():
            field = f"parameters.{_key(k)}"
            if k in reserved:
                raise ctx.error(field, v, expected=f"the value under {reserved[k]}", hint=f"set it as {reserved[k]} instead")
            if k not in names:
                raise _unknown_key(ctx, field, k, v, names, f"a parameter of model {model}")
            p = net.param(k)
            val = _quantity(ctx, field, v, p.unit)
            _check_bounds(ctx, net, k, val, field, v)
            params[k] = val
        raw["parameters"] = dict(ptab)
    initial: dict[str, float] = {}
    if "initial" in d:
        itab = _table(ctx, "initial", d["initial"])
        snames = list(net.species_names)
        for k, v in itab.items():
            field = f"initial.{_key(k)}"
            if k not in snames:
                raise _unknown_key(ctx, field, k, v, snames, f"a species of model {model}")
            s = net.species_by_name(k)
            val = _quantity(ctx, field, v, s.unit)
            if s.nonnegative and val < 0:
                raise ctx.error(
                    field, v, expected=f"an amount ≥ 0 {s.unit}", hint=f'write e.g. "0 {s.unit}"'
                )
            if abs(val) > 1e30:
                raise ctx.error(field, v, expected="a plausible amount", hint="check the exponent")
            initial[k] = val
        raw["initial"] = dict(itab)

    population = None
    if "population" in d:
        covs = model_covariates(ctx, model)

        def param_unit(field: str, pname: str) -> str:
            if pname not in net.param_names:
                raise _unknown_key(ctx, field, pname, pname, list(net.param_names), f"a parameter of model {model}")
            return str(net.param(pname).unit)

        def cov_unit(field: str, cname: str) -> str:
            if cname not in covs:
                raise unknown_covariate(ctx, field, cname, model, covs)
            return covs[cname]

        population, _pseed = parse_population(ctx, d["population"], param_unit, cov_unit)
        raw["population"] = thaw(freeze(d["population"]))

    targets: tuple[Any, ...] = ()
    if "targets" in d:
        targets = parse_targets(ctx, d["targets"])
        raw["targets"] = thaw(freeze(d["targets"]))

    survival = None
    if "survival" in d:
        survival = parse_survival(ctx, d["survival"], net)
        raw["survival"] = thaw(freeze(d["survival"]))

    return Scenario(
        name=name,
        title=title,
        description=description,
        model=model,
        model_options=FrozenDict(options),
        weight_kg=weight,
        dosing=dosing,
        parameters=FrozenDict(params),
        initial=FrozenDict(initial),
        simulation=simulation,
        raw=freeze(raw),
        source=ctx.file,
        network=net,
        population=population,
        targets=targets,
        survival=survival,
    )


def _check_bounds(ctx: _Ctx, net: Network, pname: str, value: float, field: str, written: Any) -> None:
    try:
        p = net.param(pname)
    except KeyError:
        return
    lo, hi = p.bounds
    if not (lo <= value <= hi):
        unit = "" if _unit(p.unit).dimensionless else f" {p.unit}"
        raise ctx.error(
            field,
            written,
            expected=f"a value in [{lo:g}, {hi:g}]{unit} (bounds of {p.name})",
            hint=f"the default is {_fmt(p.value)}{unit}",
        )


def _dose(ctx: _Ctx, value: Any) -> tuple[float, bool]:
    expected = 'a number of cells ("1e8 cell") or cells per kg ("3.1e6 cell/kg")'
    if not isinstance(value, str):
        hint = f'write e.g. "{_example(value)} cell"'
        raise ctx.error("dosing.dose", value, expected=expected, hint=hint)
    try:
        dose, per_kg = _quantity(ctx, "dosing.dose", value, "cell"), False
    except ScenarioError:
        try:
            dose, per_kg = _quantity(ctx, "dosing.dose", value, "cell/kg"), True
        except ScenarioError:
            raise ctx.error(
                "dosing.dose", value, expected=expected, hint=f'write e.g. "{_example(value)} cell"'
            ) from None
    if dose <= 0:
        raise ctx.error("dosing.dose", value, expected="a dose above 0", hint='write e.g. "1e8 cell"')
    return dose, per_kg


def _guarded(ctx: _Ctx, fn: Callable[[], Scenario]) -> Scenario:
    """Run ``fn``; anything but a ScenarioError is a bug, reported as a ScenarioError."""
    try:
        return fn()
    except ScenarioError:
        raise
    except Exception as exc:  # safety net: no other exception may escape for any input
        raise ScenarioError(
            file=ctx.file,
            expected="a valid scenario",
            hint=f"internal error while reading it ({type(exc).__name__}: {exc}); please report this",
        ) from exc


# ---------------------------------------------------------------------------------------
# public API: reading
# ---------------------------------------------------------------------------------------


def builtin_dir() -> Path:
    """Folder of the built-in scenario files."""
    return Path(str(resources.files("livingdrug.scenarios").joinpath("builtin")))


def _builtin_names() -> list[str]:
    return sorted(p.stem for p in builtin_dir().glob("*.toml"))


def default_scenario_name() -> str:
    """The scenario used when none is named: ``"cd19-ball"``."""
    return DEFAULT_SCENARIO


def list_scenarios() -> list[tuple[str, str]]:
    """``(name, title)`` of every built-in scenario, sorted by name."""
    out = []
    for name in _builtin_names():
        try:
            doc = tomllib.loads((builtin_dir() / f"{name}.toml").read_text(encoding="utf-8"))
            title = str(doc.get("title", name))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            title = name
        out.append((name, title))
    return out


def _read_toml(path: Path, shown: str) -> dict[str, Any]:
    def err(hint: str, expected: str = "a scenario file (.toml)", **kw: Any) -> ScenarioError:
        return ScenarioError(file=shown, expected=expected, hint=hint, **kw)

    try:
        st = path.stat()
    except FileNotFoundError:
        raise err("file not found; check the path", expected="an existing file") from None
    except OSError as exc:
        raise err(f"cannot read it ({exc.strerror or exc})", expected="a readable file") from None
    if not path.is_file():
        raise err("it is not a file (a folder?); give the path of a .toml file", expected="a file")
    if st.st_size > MAX_FILE_BYTES:
        raise err(
            f"it has {st.st_size:,} bytes; scenario files are data, split or trim it",
            expected=f"a file of at most {MAX_FILE_BYTES:,} bytes",
        )
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise err(f"cannot read it ({exc.strerror or exc})", expected="a readable file") from None
    if len(data) > MAX_FILE_BYTES:
        raise err("the file is too large", expected=f"a file of at most {MAX_FILE_BYTES:,} bytes")
    return parse_toml_bytes(data, shown)


def parse_toml_bytes(data: bytes, shown: str = "<bytes>") -> dict[str, Any]:
    """Decode UTF-8 and parse TOML, reporting problems as :class:`ScenarioError`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ScenarioError(
            file=shown,
            expected="UTF-8 text",
            hint="save the file as UTF-8 (it looks binary or uses another encoding)",
            line=line,
            column=col,
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        reason = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", msg)
        hint = 'write settings as key = "value" lines under [section] headers'
        reason = reason[:1].lower() + reason[1:]
        field = ""
        if m:
            lines = text.splitlines()
            row = lines[int(m.group(1)) - 1] if 0 < int(m.group(1)) <= len(lines) else ""
            unquoted = re.match(r"\s*([A-Za-z0-9_-]+)\s*=\s*([-+]?[0-9.][0-9.eE+-]*\s*[^\s\"'#].*?)\s*(#.*)?$", row)
            if unquoted and len(row) < 200:
                field = unquoted.group(1)
                hint = f'a quantity with a unit is text in quotes: write {field} = "{unquoted.group(2)}"'
        raise ScenarioError(
            file=shown,
            field=field,
            expected=f"valid TOML ({reason})",
            hint=hint,
            line=int(m.group(1)) if m else None,
            column=int(m.group(2)) if m else None,
        ) from None
    except Exception as exc:  # e.g. RecursionError on absurdly nested arrays
        raise ScenarioError(
            file=shown, expected="valid TOML", hint=f"it cannot be parsed ({type(exc).__name__})"
        ) from None


def read_identity(ctx: _Ctx, raw: Any, top_keys: tuple[str, ...]) -> tuple[str, str, str]:
    """``(name, title, description)`` of a parsed scenario-like file after checking it is a
    table with only ``top_keys`` (name defaults to the file's stem, title to the name)."""
    if not isinstance(raw, Mapping):
        raise ctx.error("", raw, expected="a table of settings")
    _check_keys(ctx, "", raw, top_keys)
    name = _text(ctx, "name", raw.get("name", Path(ctx.file).stem), maxlen=64)
    title = _text(ctx, "title", raw.get("title", name), maxlen=200)
    return name, title, _text(ctx, "description", raw.get("description", ""))


def content_hash(raw: Any) -> str:
    """SHA-256 of parsed TOML data in canonical JSON (sorted keys), so that formatting and
    comments do not change it."""
    def plain(x: Any) -> Any:
        if isinstance(x, Mapping):
            return {str(k): plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        return x

    canon = json.dumps(plain(raw), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canon.encode()).hexdigest()


def builtin_titles(folder: Path) -> list[tuple[str, str]]:
    """``(name, title)`` of every ``*.toml`` in ``folder`` (a built-in collection)."""
    out = []
    for p in sorted(folder.glob("*.toml")):
        try:
            title = str(tomllib.loads(p.read_text("utf-8")).get("title", p.stem))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            title = p.stem
        out.append((p.stem, title))
    return out


def read_named_toml(name_or_path: str | Path, folder: Path, what: str, list_command: str) -> tuple[dict[str, Any], str, str, Path]:
    """``(parsed TOML, text, name shown in messages, path)`` of a built-in called
    ``name_or_path`` in ``folder`` or of a .toml path; an unknown built-in name is a
    :class:`ScenarioError` naming the closest one (``what``: e.g. "logistics scenario")."""
    shown = s = str(name_or_path)
    looks_like_path = isinstance(name_or_path, Path) or s.endswith(".toml") or "/" in s or "\\" in s
    if not looks_like_path and not Path(s).is_file():
        names = sorted(p.stem for p in folder.glob("*.toml"))
        if s not in names:
            best = _closest(s, names)
            raise ScenarioError(file=shown, expected=f"a built-in {what} ({_listing(names)}) or a .toml path",
                                hint=f'did you mean "{best}"?' if best else f"list them with '{list_command}'")
        path = folder / f"{s}.toml"
        shown = f"{s}.toml"
    else:
        path = Path(name_or_path)
    raw = _read_toml(path, shown)
    return raw, path.read_text(encoding="utf-8"), shown, path


def load_scenario(name_or_path: str | Path, *, models: Mapping[str, Any] | None = None) -> Scenario:
    """Load a built-in scenario by name (``"cd19-ball"``) or a scenario file by path.

    ``models`` replaces the model library (``livingdrug.models.MODELS``) for user models.
    Every problem raises :class:`ScenarioError`.
    """
    shown = str(name_or_path)
    if isinstance(name_or_path, str):
        looks_like_path = name_or_path.endswith(".toml") or "/" in name_or_path or "\\" in name_or_path
        builtins = [] if looks_like_path else _builtin_names()
        if not looks_like_path and (name_or_path in builtins or not Path(name_or_path).is_file()):
            if name_or_path not in builtins:
                best = _closest(name_or_path, builtins)
                raise ScenarioError(
                    file=shown,
                    expected=f"a built-in scenario ({_listing(builtins)}) or a path to a .toml file",
                    hint=f'did you mean "{best}"?' if best else "list them with 'livingdrug scenarios' (or list_scenarios() in Python)",
                )
            path = builtin_dir() / f"{name_or_path}.toml"
            shown = f"{name_or_path}.toml"
        else:
            path = Path(name_or_path)
    elif isinstance(name_or_path, Path):
        path = name_or_path
    else:
        raise ScenarioError(
            file=repr(name_or_path), expected="a scenario name or path", hint="pass a str or pathlib.Path"
        )
    ctx = _Ctx(shown, models)
    return _guarded(ctx, lambda: _validate(_read_toml(path, shown), ctx, stem=path.stem))


def scenario_from_dict(
    d: Mapping[str, Any], *, source: str = "<dict>", models: Mapping[str, Any] | None = None
) -> Scenario:
    """Validate a scenario given as a dict (the TOML document's structure)."""
    ctx = _Ctx(source, models)
    return _guarded(ctx, lambda: _validate(d, ctx))


def scenario_from_toml(
    text: str | bytes, *, source: str = "<string>", models: Mapping[str, Any] | None = None
) -> Scenario:
    """Validate a scenario given as TOML text (e.g. an upload)."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    ctx = _Ctx(source, models)
    if len(data) > MAX_FILE_BYTES:
        raise ScenarioError(
            file=source, expected=f"at most {MAX_FILE_BYTES:,} bytes", hint="scenario files are data; trim it"
        )
    return _guarded(ctx, lambda: _validate(parse_toml_bytes(data, source), ctx))


def validate_scenario(path: str | Path, *, models: Mapping[str, Any] | None = None) -> Scenario:
    """Load a scenario file and resolve it (so every check runs); return the scenario."""
    s = load_scenario(Path(path) if isinstance(path, str) else path, models=models)
    resolve(s)
    return s


# ---------------------------------------------------------------------------------------
# writing and hashing
# ---------------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else _toml_str(k)


def _toml_str(s: str) -> str:
    if "\n" in s and not any(ord(c) < 32 and c not in "\n\t" or c == "\x7f" for c in s):
        body = s.replace("\\", "\\\\").replace('"', '\\"')
        return '"""\n' + body + '"""'
    out = json.dumps(s, ensure_ascii=False)
    return out.replace("\x7f", "\\u007f")


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        text = _fmt(v)
        return text if any(c in text for c in ".e") else text + ".0"
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def dump_scenario(s: Scenario) -> str:
    """The scenario as TOML text (what the user wrote, in a fixed order); loads back equal."""
    raw = thaw(s.raw)
    lines = []
    for k in ("name", "title", "description", "model"):
        if k in raw:
            lines.append(f"{k} = {_toml_value(raw[k])}")
    for section in ("model_options", "patient", "dosing", "parameters", "initial", "simulation"):
        table = raw.get(section)
        if table is None:
            continue
        lines.append("")
        lines.append(f"[{section}]")
        order = _SECTION_KEYS.get(section)
        keys = [k for k in order if k in table] if order else list(table)
        for k in keys:
            lines.append(f"{_toml_key(k)} = {_toml_value(table[k])}")
    if "population" in raw:
        pop = raw["population"]
        lines += ["", "[population]"]
        lines += [f"{k} = {_toml_value(pop[k])}" for k in ("patients", "seed") if k in pop]
        for group in ("parameters", "covariates", "characteristics"):
            for vname, vt in (pop.get(group) or {}).items():
                lines += ["", f"[population.{group}.{_toml_key(vname)}]"]
                lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in vt.items()]
        for group in ("effects", "correlations"):
            for vt in pop.get(group) or []:
                lines += ["", f"[[population.{group}]]"]
                lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in vt.items()]
    if "survival" in raw:
        lines += ["", "[survival]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in raw["survival"].items()]
    for tt in raw.get("targets") or ():
        lines += ["", "[[targets]]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in tt.items()]
    return "\n".join(lines) + "\n"


def _canonical(s: Scenario) -> dict[str, Any]:
    r = resolve(s)
    out: dict[str, Any] = {
        "format": HASH_FORMAT,
        "model": s.model,
        "model_options": dict(s.model_options),
        "parameters": dict(zip(r.param_names, map(float, r.P), strict=True)),
        "initial": dict(zip(r.species_names, map(float, r.y0), strict=True)),
        "weight_kg": s.weight_kg,
        "dose_cells": r.dose_cells,
        "dose_time": r.dose_time,
        "t_start": r.t_start,
        "t_end": r.t_end,
        "output_interval": s.simulation.output_interval,
        # only when set: hashes of scenarios with one output interval are unchanged
        **({"output_after": [list(a) for a in s.simulation.output_after]} if s.simulation.output_after else {}),
        "engine": r.engine,
        "rtol": r.rtol,
        "atol": r.atol,
        "seed": r.seed,
    }
    if s.population is not None:  # only when present: hashes of scenarios without one are unchanged
        out["population"] = {
            "patients": s.population.size,
            "seed": int((thaw(s.raw).get("population") or {}).get("seed", 0)),
            "variables": [[g, v.name, v.distribution, v.median, v.cv, _bound(v.lower), _bound(v.upper)]
                          + ([list(v.values), list(v.probabilities)] if v.values else [])
                          for g, vs in (("parameters", s.population.parameters), ("covariates", s.population.covariates),
                                        ("characteristics", s.population.characteristics))
                          for v in vs],
            **({"effects": [[e.parameter, e.covariate, e.model, e.reference, e.coefficient] for e in s.population.effects]}
               if s.population.effects else {}),
            **({"correlations": [list(c) for c in s.population.correlations]} if s.population.correlations else {}),
        }
    if s.survival is not None:  # only when present: hashes of scenarios without [survival] are unchanged
        sv = s.survival
        out["survival"] = [sv.h_bg, sv.h_d, sv.b_ref, sv.beta, sv.follow_up]
    if s.targets:  # only when present: hashes of scenarios without targets are unchanged
        out["targets"] = [_target_json(t) for t in s.targets]
    # stochastic settings count only where they change the simulation, so the hash of an
    # ODE scenario is what it was before these fields existed
    if r.engine in STOCHASTIC_ENGINES:
        out["replicates"] = r.replicates
    if r.engine == "hybrid":
        out["hybrid_threshold"] = r.hybrid_threshold
    if r.engine == "tau":
        out["tau_epsilon"] = r.tau_epsilon
    return out


def _target_json(t: Any) -> dict[str, Any]:
    """A target as plain JSON data (tuples as lists)."""
    import dataclasses

    def plain(v: Any) -> Any:
        return [plain(x) for x in v] if isinstance(v, (list, tuple)) else v

    return {f.name: plain(getattr(t, f.name)) for f in dataclasses.fields(t)}


def _bound(x: float) -> float | str:
    """A truncation bound for JSON (infinite bounds as text)."""
    return x if math.isfinite(x) else ("inf" if x > 0 else "-inf")


def scenario_json(s: Scenario) -> str:
    """Canonical JSON of the resolved scenario (what :func:`scenario_hash` hashes)."""
    return json.dumps(_canonical(s), sort_keys=True, separators=(",", ":"), allow_nan=False)


def scenario_hash(s: Scenario) -> str:
    """sha256 (hex) of the canonical JSON of the resolved scenario.

    It covers everything that changes a simulation (model, options, every parameter and
    initial value after overrides and dosing, times, engine settings, seed; for a stochastic
    engine the number of replicates and that engine's own setting — ``hybrid_threshold`` or
    ``tau_epsilon``) and nothing that does not (name, title, description, how a quantity was
    spelled, settings of an engine the scenario does not use).
    """
    return hashlib.sha256(scenario_json(s).encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------
# resolving
# ---------------------------------------------------------------------------------------


def _network_of(s: Scenario) -> Network:
    if s.network is not None:
        return s.network
    ctx = _Ctx(s.source, None)
    return _model_network(ctx, s.model, s.model_options)


def _output_after(ctx: _Ctx, sim: Mapping[str, Any], start: float) -> tuple[tuple[float, float], ...]:
    """``[[simulation.output_after]]`` (or ``output_after = [{ time = "28 d", interval = "1 d" }]``):
    ``(time, interval)`` pairs in days, times after ``start`` and increasing, intervals > 0."""
    raw = sim["output_after"]
    example = 'write output_after = [{ time = "28 d", interval = "1 d" }]'
    if not isinstance(raw, list) or not 0 < len(raw) <= 100:
        raise ctx.error("simulation.output_after", raw, expected="a list of 1 to 100 { time, interval } tables",
                        hint=example)
    out: list[tuple[float, float]] = []
    for k, item in enumerate(raw):
        f = f"simulation.output_after[{k}]"
        t = _table(ctx, f, item)
        _check_keys(ctx, f, t, ("time", "interval"))
        for key in ("time", "interval"):
            if key not in t:
                raise ctx.error(f"{f}.{key}", expected=f"the {key} of this part of the output grid", hint=example)
        at = _quantity(ctx, f"{f}.time", t["time"], "d", bare_unit="d", what="a time")
        lower = out[-1][0] if out else start
        if not at > lower:
            raise ctx.error(f"{f}.time", t["time"],
                            expected=f"a time after {'the previous switch' if out else 'the start'} ({_fmt(lower)} d)",
                            hint="list the switches in time order, after simulation.start")
        dt = _quantity(ctx, f"{f}.interval", t["interval"], "d", bare_unit="d", what="a time step")
        if not dt > 0:
            raise ctx.error(f"{f}.interval", t["interval"], expected="a time step above 0 d", hint='write e.g. "1 d"')
        out.append((at, dt))
    return tuple(out)


def output_times(t_start: float, t_end: float, interval: float,
                 after: tuple[tuple[float, float], ...] = ()) -> np.ndarray:
    """``t_start, t_start + dt, …`` up to and including ``t_end``; with ``after``
    (``(time, interval)`` pairs, times increasing) the grid switches at each ``time`` (always an
    output) to its own interval — e.g. 6-hourly through the first month, then daily, as a
    sampling design (mrgsolve's ``tgrid`` unions do the same).  Switch times at or after
    ``t_end`` are never reached."""
    if after and after[0][0] < t_end:
        (t_switch, dt_next), rest = after[0], after[1:]
        head = output_times(t_start, t_switch, interval)
        return np.concatenate([head[:-1], output_times(t_switch, t_end, dt_next, rest)])
    n = int(math.floor((t_end - t_start) / interval * (1 + 1e-12))) + 1
    t = t_start + interval * np.arange(n, dtype=float)
    t = t[t <= t_end]
    if t[-1] < t_end - 1e-9 * max(1.0, abs(t_end)):
        t = np.append(t, t_end)
    else:
        t[-1] = t_end
    return t


def resolve(s: Scenario) -> ResolvedScenario:
    """Build the model and return ``P[m]``, ``y0[k]``, times and engine settings (canonical).

    The dose (cells/kg × weight for a per-kg dose) and its time go into the model's dose
    parameters (``network.meta["dose"]``); the weight into ``meta["weight_param"]``.
    """
    net = _network_of(s)
    overrides = dict(s.parameters)
    meta = net.meta or {}
    dose_meta = _dose_meta(net)
    dose_cells = dose_time = None
    if s.dosing is not None and dose_meta is not None:
        dose_cells = s.dosing.cells(s.weight_kg)
        dose_time = s.dosing.time
        overrides[dose_meta[0]] = dose_cells
        overrides[dose_meta[1]] = dose_time
    wp = meta.get("weight_param")
    if wp and s.weight_kg is not None:
        overrides[str(wp)] = s.weight_kg
    P = net.parameter_vector(overrides)
    y0 = net.initial_state(dict(s.initial))
    sim = s.simulation
    t_out = output_times(sim.start, sim.days, sim.output_interval, sim.output_after)
    for a in (P, y0, t_out):
        a.setflags(write=False)
    return ResolvedScenario(
        scenario=s,
        network=net,
        P=P,
        y0=y0,
        t_start=sim.start,
        t_end=sim.days,
        t_out=t_out,
        engine=sim.engine,
        rtol=sim.rtol,
        atol=sim.atol,
        seed=sim.seed,
        dose_cells=dose_cells,
        dose_time=dose_time,
        replicates=sim.n_replicates,
        hybrid_threshold=sim.hybrid_threshold,
        tau_epsilon=sim.tau_epsilon,
    )


# ---------------------------------------------------------------------------------------
# pure variants
# ---------------------------------------------------------------------------------------


def _revalidate(s: Scenario, raw: dict[str, Any]) -> Scenario:
    ctx = _Ctx(s.source, None)
    out = _guarded(ctx, lambda: _validate(raw, ctx, network=_network_of(s)))
    return replace(out, source=s.source)


def with_dose(s: Scenario, cells: float | str) -> Scenario:
    """The scenario with a new dose: a number of cells, or a quantity such as ``"3.1e6 cell/kg"``."""
    raw = thaw(s.raw)
    dosing = raw.setdefault("dosing", {})
    dosing["dose"] = f"{_fmt(float(cells))} cell" if _is_number(cells) else cells
    return _revalidate(s, raw)


def with_days(s: Scenario, days: float | str) -> Scenario:
    """The scenario with a new end time (days, or a quantity such as ``"52 week"``)."""
    raw = thaw(s.raw)
    raw.setdefault("simulation", {})["days"] = days
    return _revalidate(s, raw)


def with_seed(s: Scenario, seed: int) -> Scenario:
    """The scenario with a new random seed."""
    raw = thaw(s.raw)
    raw.setdefault("simulation", {})["seed"] = seed
    return _revalidate(s, raw)


def _with_quantities(s: Scenario, section: str, values: Mapping[str, float | str], unit_of: Any) -> Scenario:
    """``s`` with entries of table ``section`` overridden; a plain number for a known name
    (``unit_of(name)`` its unit, ``None`` if unknown) is written in that unit."""
    raw = thaw(s.raw)
    table = raw.setdefault(section, {})
    for k, v in values.items():
        unit = unit_of(k)
        if _is_number(v) and unit is not None and not _unit(unit).dimensionless:
            try:
                v = f"{_fmt(float(v))} {unit}"
            except OverflowError:
                pass
        table[k] = v
    return _revalidate(s, raw)


def with_parameters(s: Scenario, **values: float | str) -> Scenario:
    """The scenario with parameter overrides: quantities (``rho_max="0.9 1/d"``) or plain
    numbers, which are taken in the parameter's own (canonical) unit."""
    net = _network_of(s)
    return _with_quantities(
        s, "parameters", values, lambda k: net.param(k).unit if k in net.param_names else None
    )


def with_initial(s: Scenario, **values: float | str) -> Scenario:
    """The scenario with initial-value overrides: quantities (``L_M="1e4 cell"``) or plain
    numbers, which are taken in the species' own (canonical) unit."""
    net = _network_of(s)
    return _with_quantities(
        s, "initial", values,
        lambda k: net.species_by_name(k).unit if k in net.species_names else None,
    )


def with_engine(s: Scenario, engine: str) -> Scenario:
    """The scenario with another engine (``"ode"``, ``"ssa"``, ``"tau"`` or ``"hybrid"``)."""
    raw = thaw(s.raw)
    raw.setdefault("simulation", {})["engine"] = engine
    return _revalidate(s, raw)


def with_replicates(s: Scenario, replicates: int) -> Scenario:
    """The scenario with another number of stochastic replicates."""
    raw = thaw(s.raw)
    raw.setdefault("simulation", {})["replicates"] = replicates
    return _revalidate(s, raw)
