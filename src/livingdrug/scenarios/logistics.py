"""Logistics scenario files: a treatment programme (``livingdrug logistics``) as TOML.

Same rules as model scenarios: data, never code; a size limit; quantities with units
(``"7 d"``, ``"0.02 1/d"``; bare numbers in time fields are days); every problem is one
:class:`ScenarioError` naming the file, the field, the value, what was expected and the fix —
including inconsistent settings (zero capacity, negative rates, a shelf life shorter than the
replenishment lead time, lymphodepletion starting earlier than the infusion window allows).
Built-ins live in ``livingdrug/logistics/builtin/*.toml``.  The format is in docs/logistics.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..logistics import STEPS, Inventory, LogisticsInputError, Process, Programme
from .load import (
    MAX_SEED,
    _check_keys,
    _closest,
    _Ctx,
    _is_number,
    _number,
    _quantity,
    _table,
    _text,
    builtin_titles,
    content_hash,
    read_identity,
    read_named_toml,
)
from .schema import ScenarioError

__all__ = ["LogisticsScenario", "load_logistics", "list_logistics", "logistics_builtin_dir",
           "logistics_from_dict"]


@dataclass(frozen=True)
class LogisticsScenario:
    """A validated logistics scenario: ``programme``, ``seed``, the source ``text`` (TOML, for
    the manifest) and its ``sha256`` hash."""

    name: str
    title: str
    description: str
    programme: Programme
    seed: int
    source: str
    text: str
    sha256: str


# (toml section, key) -> (dataclass, attribute, unit or kind)
#   unit "d", "1/d": quantities; "int": whole number; "float": plain number; "str": text
_FIELDS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("programme", "months"): ("programme", "months", "float"),
    ("programme", "follow"): ("programme", "follow_days", "d"),
    ("programme", "referrals_per_week"): ("programme", "referrals_per_week", "float"),
    ("programme", "screening"): ("programme", "screening_days", "d"),
    ("programme", "p_ineligible"): ("programme", "p_ineligible", "float"),
    ("programme", "scheduling"): ("programme", "scheduling_days", "d"),
    ("programme", "scheduling_cv"): ("programme", "scheduling_cv", "float"),
    ("programme", "lymphodepletion_lead"): ("programme", "lymphodepletion_days", "d"),
    ("programme", "infusion_window"): ("programme", "infusion_window_days", "d"),
    ("programme", "f_contam"): ("programme", "f_contam", "float"),
    ("capacity", "apheresis_slots_per_week"): ("programme", "apheresis_slots_per_week", "int"),
    ("capacity", "suites"): ("programme", "suites", "int"),
    ("capacity", "max_manufacturing_attempts"): ("programme", "max_attempts", "int"),
    ("capacity", "remanufacture_from"): ("programme", "remanufacture_from", "str"),
    ("waiting", "hazard0"): ("programme", "hazard0_per_day", "1/d"),
    ("waiting", "hazard_growth"): ("programme", "hazard_growth_per_day", "1/d"),
    ("waiting", "p_death_given_dropout"): ("programme", "p_death_given_dropout", "float"),
    ("waiting", "bridging_fraction"): ("programme", "bridging_fraction", "float"),
    ("waiting", "bridging_hazard_ratio"): ("programme", "bridging_hazard_ratio", "float"),
    ("waiting", "bridging_growth_factor"): ("programme", "bridging_growth_factor", "float"),
    ("response", "p_response0"): ("programme", "p_response0", "float"),
    ("response", "burden_doubling"): ("programme", "burden_doubling_days", "d"),
    ("response", "burden_exponent"): ("programme", "response_burden_exponent", "float"),
    ("process", "name"): ("process", "name", "str"),
    ("process", "culture"): ("process", "culture_days", "d"),
    ("process", "duration_cv"): ("process", "duration_cv", "float"),
    ("process", "seeded_cells"): ("process", "seeded_cells", "cell"),
    ("process", "target_dose"): ("process", "target_dose", "cell"),
    ("process", "min_dose"): ("process", "min_dose", "cell"),
    ("process", "transduction_efficiency"): ("process", "transduction_efficiency", "float"),
    ("process", "transduction_concentration"): ("process", "transduction_concentration", "float"),
    ("process", "doubling"): ("process", "doubling_days", "d"),
    ("process", "lag"): ("process", "lag_days", "d"),
    ("process", "expansion_log_sd"): ("process", "expansion_log_sd", "float"),
    ("process", "s0"): ("process", "s0", "float"),
    ("process", "m0"): ("process", "m0", "float"),
    ("process", "k_diff"): ("process", "k_diff", "1/d"),
    ("process", "k_fit"): ("process", "k_fit", "1/d"),
    ("process", "reference_culture"): ("process", "reference_culture_days", "d"),
    ("inventory", "doses_per_batch"): ("inventory", "doses_per_batch", "int"),
    ("inventory", "initial_batches"): ("inventory", "initial_batches", "int"),
    ("inventory", "reorder_point"): ("inventory", "reorder_point", "int"),
    ("inventory", "lead"): ("inventory", "lead_days", "d"),
    ("inventory", "shelf_life"): ("inventory", "shelf_life_days", "d"),
    ("inventory", "p_batch_fail"): ("inventory", "p_batch_fail", "float"),
}
_STEP_KEYS = tuple(s for s in STEPS if s != "expansion")
_SECTIONS = ("programme", "capacity", "waiting", "response", "process", "inventory", "simulation")
_TOP = ("name", "title", "description", "kind", *_SECTIONS)
#: dataclass error field -> toml field
_BACK = {f"{cls if cls != 'programme' else sec}.{attr}": f"{sec}.{key}" for (sec, key), (cls, attr, _) in _FIELDS.items()}
_BACK.update({f"programme.{attr}": f"{sec}.{key}" for (sec, key), (cls, attr, _) in _FIELDS.items() if cls == "programme"})
_BACK.update({f"process.{s}_days": f"process.{s}" for s in _STEP_KEYS})
_BACK.update({f"process.p_fail.{s}": f"process.p_fail.{s}" for s in STEPS})


def logistics_builtin_dir() -> Path:
    """Folder of the built-in logistics scenarios."""
    return Path(str(resources.files("livingdrug.logistics").joinpath("builtin")))


def list_logistics() -> list[tuple[str, str]]:
    """``(name, title)`` of every built-in logistics scenario."""
    return builtin_titles(logistics_builtin_dir())


def _value(ctx: _Ctx, field: str, value: Any, kind: str) -> Any:
    if kind == "str":
        return _text(ctx, field, value, maxlen=200)
    if kind == "int":
        if not _is_number(value) or not math.isfinite(value) or float(value) != int(value):
            raise ctx.error(field, value, expected="a whole number", hint=f"write e.g. {field.split('.')[-1]} = 4")
        return int(value)
    if kind == "float":
        return _number(ctx, field, value, expected="a plain number")
    return _quantity(ctx, field, value, kind, bare_unit="d" if kind == "d" else None)


def logistics_from_dict(raw: Mapping[str, Any], *, source: str = "<dict>", text: str = "") -> LogisticsScenario:
    """Validate a parsed logistics scenario; every problem raises :class:`ScenarioError`."""
    ctx = _Ctx(source, None)
    try:
        return _validate(ctx, raw, text)
    except ScenarioError:
        raise
    except LogisticsInputError as exc:
        raise ScenarioError(file=source, field=_BACK.get(exc.field, exc.field), value=exc.value,
                            expected=exc.expected, hint=exc.hint) from None
    except Exception as exc:  # no other exception may escape for any input
        raise ScenarioError(file=source, expected="a valid logistics scenario",
                            hint=f"internal error while reading it ({type(exc).__name__}: {exc}); please report this") from exc


def _validate(ctx: _Ctx, raw: Mapping[str, Any], text: str) -> LogisticsScenario:
    name, title, description = read_identity(ctx, raw, _TOP)
    kind = raw.get("kind", "autologous")
    if kind not in ("autologous", "off-the-shelf"):
        best = _closest(str(kind), ["autologous", "off-the-shelf"])
        raise ctx.error("kind", kind, expected='"autologous" or "off-the-shelf"',
                        hint=f'did you mean "{best}"?' if best else 'write kind = "autologous"')
    kw: dict[str, dict[str, Any]] = {"programme": {}, "process": {}, "inventory": {}}
    step_days: dict[str, float] = {}
    p_fail: dict[str, float] = {}
    seed = 0
    for sec in _SECTIONS:
        if sec not in raw:
            continue
        table = _table(ctx, sec, raw[sec])
        if sec == "simulation":
            _check_keys(ctx, sec, table, ("seed",))
            if "seed" in table:
                v = table["seed"]
                if not (_is_number(v) and float(v) == int(v) and 0 <= int(v) <= MAX_SEED):
                    raise ctx.error("simulation.seed", v, expected="a whole number ≥ 0", hint="write seed = 0")
                seed = int(v)
            continue
        valid = tuple(k for (s, k) in _FIELDS if s == sec)
        if sec == "process":
            valid = valid + _STEP_KEYS + ("p_fail",)
        _check_keys(ctx, sec, table, valid)
        for key, value in table.items():
            field = f"{sec}.{key}"
            if sec == "process" and key in _STEP_KEYS:
                step_days[key] = _quantity(ctx, field, value, "d", bare_unit="d")
            elif sec == "process" and key == "p_fail":
                if _is_number(value):
                    p = _number(ctx, field, value, expected="a probability in [0, 1)")
                    p_fail.update({s: p for s in STEPS})
                else:
                    sub = _table(ctx, field, value)
                    _check_keys(ctx, field, sub, STEPS)
                    for s, v in sub.items():
                        p_fail[s] = _number(ctx, f"{field}.{s}", v, expected="a probability in [0, 1)")
            else:
                cls, attr, unit = _FIELDS[(sec, key)]
                kw[cls][attr] = _value(ctx, field, value, unit)
    if kind == "autologous" and "inventory" in raw:
        raise ctx.error("inventory", expected='no [inventory] for kind = "autologous"',
                        hint='remove [inventory] or write kind = "off-the-shelf"')
    if kind == "off-the-shelf" and "inventory" not in raw:
        raise ctx.error("inventory", expected='an [inventory] table for kind = "off-the-shelf"',
                        hint="add [inventory] with doses_per_batch, lead and shelf_life")
    if step_days:
        default = Process().step_days
        kw["process"]["step_days"] = {**default, **step_days}
    if p_fail:
        kw["process"]["p_fail"] = {**Process().p_fail, **p_fail}
    process = Process(**kw["process"])
    inventory = Inventory(**kw["inventory"]) if kind == "off-the-shelf" else None
    programme = Programme(kind=kind, process=process, inventory=inventory, **kw["programme"])
    return LogisticsScenario(name, title, description, programme, seed, ctx.file, text,
                             content_hash(raw))




def load_logistics(name_or_path: str | Path) -> LogisticsScenario:
    """Load a built-in logistics scenario by name (``"autologous-centre"``) or a TOML file."""
    raw, text, shown, _ = read_named_toml(name_or_path, logistics_builtin_dir(), "logistics scenario",
                                          "livingdrug logistics --list")
    return logistics_from_dict(raw, source=shown, text=text)
