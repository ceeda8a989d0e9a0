"""Comparison files: several treatments given to the same virtual patients (``livingdrug compare``).

A comparison names a virtual population (size, seed, inter-individual variability of
parameters and of the disease at referral) and two or more *arms*.  Each arm is a model
scenario (the product and the patient model: ``cd19-ball``, ``cd19-carnk`` or a file) and,
optionally, a logistics scenario (how long each patient waits from referral to infusion and
who drops out: ``autologous-centre``, ``off-the-shelf-centre`` or a file).  Same rules as
every scenario file: data, never code; quantities with units; every problem is one
:class:`ScenarioError` naming the file, field, value, what was expected and the fix.
Built-ins live in ``livingdrug/scenarios/builtin/comparisons/*.toml``; the format is in
docs/comparison.md.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..trials.population import Population, PopulationInputError, Variability
from .load import (
    _check_keys,
    _closest,
    _Ctx,
    _is_number,
    _listing,
    _network_of,
    _table,
    _text,
    builtin_titles,
    content_hash,
    load_scenario,
    model_covariates,
    parse_population,
    parse_variability,
    read_identity,
    read_named_toml,
    unknown_covariate,
)
from .logistics import LogisticsScenario, load_logistics
from .schema import Scenario, ScenarioError

__all__ = ["ComparisonArm", "ComparisonScenario", "load_comparison", "list_comparisons", "comparison_from_dict",
           "comparison_builtin_dir", "is_comparison", "PRODUCT_SOURCES", "MANUFACTURED_PARAMS", "MAX_ARMS"]

#: where an arm's product comes from: the scenario as written, or the product its logistics made
PRODUCT_SOURCES = ("scenario", "manufactured")
#: model parameters a manufactured product sets (:func:`livingdrug.logistics.product_parameters`;
#: ``eta_tx`` too where the model has it, i.e. with ``car_leukaemia``)
MANUFACTURED_PARAMS = ("dose", "f_S", "f_E", "f_M", "VCN", "k_exp")
MAX_ARMS = 8
_TOP = ("name", "title", "description", "population", "arms", "design")
#: how patients meet the arms: every patient every arm (in silico cross-over), or one arm each
ALLOCATIONS = ("paired", "randomised")
_ARM = ("name", "scenario", "logistics", "product", "parameters")


@dataclass(frozen=True)
class ComparisonArm:
    """One arm: ``scenario`` (the model scenario), ``logistics`` (or ``None``: every patient
    infused without waiting), ``product`` (one of :data:`PRODUCT_SOURCES`) and arm-specific
    variability ``parameters`` (e.g. of the product's expansion rate)."""

    name: str
    scenario: Scenario
    logistics: LogisticsScenario | None
    product: str
    parameters: tuple[Variability, ...]


@dataclass(frozen=True)
class ComparisonScenario:
    """A validated comparison (canonical units); ``text`` is the file as written and ``hash``
    the SHA-256 of its parsed content."""

    name: str
    title: str
    description: str
    population: Population
    seed: int
    arms: tuple[ComparisonArm, ...]
    source: str
    text: str
    hash: str
    allocation: str = "paired"
    ratio: tuple[float, ...] = ()


def comparison_builtin_dir() -> Path:
    """Folder of the built-in comparisons."""
    return Path(str(resources.files("livingdrug.scenarios").joinpath("builtin", "comparisons")))


def _names() -> list[str]:
    return sorted(p.stem for p in comparison_builtin_dir().glob("*.toml"))


def list_comparisons() -> list[tuple[str, str]]:
    """``(name, title)`` of every built-in comparison."""
    return builtin_titles(comparison_builtin_dir())


def is_comparison(name_or_path: str | Path) -> bool:
    """True for a built-in comparison name or a readable .toml file with ``[[arms]]``."""
    s = str(name_or_path)
    if s in _names():
        return True
    p = Path(s)
    try:
        if p.is_file() and p.stat().st_size <= 1_000_000:
            return "arms" in tomllib.loads(p.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False
    return False


def _arm_file(base: Path | None, value: str) -> str | Path:
    """A built-in name as it is; a relative path is taken relative to the comparison file."""
    looks_like_path = value.endswith(".toml") or "/" in value or "\\" in value
    if looks_like_path and base is not None and not Path(value).is_absolute():
        cand = base / value
        if cand.is_file():
            return cand
    return value


def _wrap(ctx: _Ctx, field: str, fn: Any) -> Any:
    try:
        return fn()
    except ScenarioError as exc:
        raise ctx.error(field, exc.file, expected="a valid scenario", hint=str(exc)) from None


def comparison_from_dict(raw: Mapping[str, Any], *, source: str = "<dict>", text: str = "",
                         base: Path | None = None) -> ComparisonScenario:
    """Validate a parsed comparison; every problem raises :class:`ScenarioError`.  ``base``:
    folder against which relative arm file paths are resolved."""
    ctx = _Ctx(source, None)
    try:
        return _validate(ctx, raw, text, base)
    except ScenarioError:
        raise
    except PopulationInputError as exc:
        raise ScenarioError(file=source, field=exc.field, value=exc.value, expected=exc.expected, hint=exc.hint) from None
    except Exception as exc:  # no other exception may escape for any input
        raise ScenarioError(file=source, expected="a valid comparison",
                            hint=f"internal error while reading it ({type(exc).__name__}: {exc}); please report this") from exc


def _validate(ctx: _Ctx, raw: Mapping[str, Any], text: str, base: Path | None) -> ComparisonScenario:

    name, title, description = read_identity(ctx, raw, _TOP)

    arms_raw = raw.get("arms")
    if not isinstance(arms_raw, list) or not arms_raw:
        raise ctx.error("arms", arms_raw if arms_raw is not None else None, expected="one or more [[arms]] tables",
                        hint='add [[arms]] with name = "…" and scenario = "cd19-ball"')
    if len(arms_raw) > MAX_ARMS:
        raise ctx.error("arms", len(arms_raw), expected=f"at most {MAX_ARMS} arms")
    arm_specs = []
    for k, a in enumerate(arms_raw):
        f = f"arms[{k}]"
        t = _table(ctx, f, a)
        _check_keys(ctx, f, t, _ARM)
        if "scenario" not in t:
            raise ctx.error(f"{f}.scenario", expected="a model scenario (built-in name or .toml path)",
                            hint='write scenario = "cd19-ball"')
        arm_name = _text(ctx, f"{f}.name", t.get("name", f"arm {k + 1}"), maxlen=80)
        sc = _wrap(ctx, f"{f}.scenario", lambda t=t, f=f: load_scenario(_arm_file(base, _text(ctx, f"{f}.scenario", t["scenario"], maxlen=500))))
        lg = None
        if "logistics" in t:
            lg = _wrap(ctx, f"{f}.logistics",
                       lambda t=t, f=f: load_logistics(_arm_file(base, _text(ctx, f"{f}.logistics", t["logistics"], maxlen=500))))
        product = t.get("product", "scenario")
        if product not in PRODUCT_SOURCES:
            best = _closest(str(product), list(PRODUCT_SOURCES))
            raise ctx.error(f"{f}.product", product, expected=" or ".join(f'"{p}"' for p in PRODUCT_SOURCES),
                            hint=f'did you mean "{best}"?' if best else 'write product = "scenario"')
        net = _network_of(sc)
        if product == "manufactured":
            if lg is None or lg.programme.kind != "autologous":
                raise ctx.error(f"{f}.product", product, expected="an autologous logistics scenario in the same arm",
                                hint='a product is manufactured per patient only in an autologous programme; '
                                     'add logistics = "autologous-centre" or write product = "scenario"')
            missing = [p for p in MANUFACTURED_PARAMS if p not in net.param_names]
            if missing:
                raise ctx.error(f"{f}.product", product,
                                expected=f"a model with the product parameters {', '.join(MANUFACTURED_PARAMS)}",
                                hint=f"model {sc.model!r} lacks {', '.join(missing)}; write product = \"scenario\"")
        if sc.simulation.engine != "ode":
            raise ctx.error(f"{f}.scenario", sc.name, expected="a scenario for the ODE engine",
                            hint=f"comparisons and trials run every arm with the ODE engine, but this scenario "
                                 f"asks for {sc.simulation.engine!r}; use a deterministic scenario")
        if sc.dosing is None:
            raise ctx.error(f"{f}.scenario", sc.name, expected="a scenario with a dose of cells",
                            hint="comparisons compare treatments; pick a scenario with [dosing]")
        arm_params = tuple(
            parse_variability(ctx, f"{f}.parameters.{p}", p, v, _param_unit(ctx, f"{f}.parameters.{p}", net, p))
            for p, v in _table(ctx, f"{f}.parameters", t.get("parameters", {})).items())
        arm_specs.append((arm_name, sc, lg, product, arm_params, net))
    names = [a[0] for a in arm_specs]
    for k, n in enumerate(names):
        if names.index(n) != k:
            raise ctx.error(f"arms[{k}].name", n, expected="a name no other arm has")

    def param_unit(field: str, p: str) -> str:
        units = {_param_unit(ctx, field, a[5], p, arm=a[0]) for a in arm_specs}
        if len(units) > 1:
            raise ctx.error(field, p, expected="a parameter with the same unit in every arm",
                            hint=f"the arms' models give it different units ({', '.join(sorted(units))}); vary it per arm")
        return units.pop()

    def cov_unit(field: str, c: str) -> str:
        unit = ""
        for a in arm_specs:
            known = model_covariates(ctx, a[1].model)
            if c not in known:
                raise unknown_covariate(ctx, field, c, a[1].model, known, where=f" (arm {a[0]!r})")
            unit = known[c]
        return unit

    population, seed = parse_population(ctx, raw.get("population", {}), param_unit, cov_unit)
    shared = {v.name for v in population.variables}
    for k, a in enumerate(arm_specs):
        both = sorted(shared & {v.name for v in a[4]})
        if both:
            raise ctx.error(f"arms[{k}].parameters.{both[0]}", both[0], expected="a parameter not already varied in [population]",
                            hint="vary it once: in [population.parameters] (all arms) or in the arm")
        arms = tuple(ComparisonArm(n, sc, lg, prod, ap) for n, sc, lg, prod, ap, _ in arm_specs)
    allocation: str = "paired"
    ratio: tuple[float, ...] = ()
    if "design" in raw:
        dt = _table(ctx, "design", raw["design"])
        _check_keys(ctx, "design", dt, ("allocation", "ratio"))
        allocation = dt.get("allocation", "paired")
        if allocation not in ALLOCATIONS:
            raise ctx.error("design.allocation", allocation, expected=" or ".join(f'"{a}"' for a in ALLOCATIONS),
                            hint='"paired": every patient receives every arm; "randomised": one arm each')
        if allocation == "randomised":
            if len(arms_raw) < 2:
                raise ctx.error("design.allocation", allocation, expected="at least two arms to randomise between")
            if any(a[2] is not None for a in arm_specs):
                raise ctx.error("design.allocation", allocation, expected="arms without a logistics programme",
                                hint="randomised arms with programmes would each see every referral (capacity "
                                     "load); compare programmes with allocation = \"paired\"")
            r = dt.get("ratio", [1] * len(arms_raw))
            if not (isinstance(r, list) and len(r) == len(arms_raw) and all(_is_number(x) and x > 0 for x in r)):
                raise ctx.error("design.ratio", r, expected=f"{len(arms_raw)} positive numbers, one per arm",
                                hint="e.g. ratio = [1, 1] or [2, 1]")
            ratio = tuple(float(x) for x in r)
        elif "ratio" in dt:
            raise ctx.error("design.ratio", dt["ratio"], expected='no ratio for allocation = "paired"')
    return ComparisonScenario(name, title, description, population, seed, arms, ctx.file, text,
                              content_hash(raw), allocation, ratio)


def _param_unit(ctx: _Ctx, field: str, net: Any, name: str, arm: str = "") -> str:
    if name not in net.param_names:
        best = _closest(name, list(net.param_names))
        where = f" (arm {arm!r})" if arm else ""
        raise ctx.error(field, name, expected=f"a parameter of model {net.name!r}{where}",
                        hint=f'did you mean "{best}"?' if best else f"known: {_listing(net.param_names)}")
    return str(net.param(name).unit)




def load_comparison(name_or_path: str | Path) -> ComparisonScenario:
    """Load a built-in comparison by name (``"cart-vs-carnk"``) or a comparison TOML file
    (relative arm paths are taken relative to its folder)."""
    raw, text, shown, path = read_named_toml(name_or_path, comparison_builtin_dir(), "comparison",
                                             "livingdrug compare --list")
    base = None if path.parent == comparison_builtin_dir() else path.parent
    return comparison_from_dict(raw, source=shown, text=text, base=base)
