"""Property tests: for any input a scenario either loads or raises ScenarioError — nothing else.

Inputs: random TOML-like dicts, random mutations of a valid scenario (wrong types, random unit
strings, numbers including negative/NaN/inf/huge, deleted required keys, extra keys), random
TOML text and random bytes as a file.  Whatever loads must dump and load back to the same hash.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livingdrug.network import At, Event, Network, Reaction, Species, sym
from livingdrug.params import Param
from livingdrug.scenarios import (
    Scenario,
    ScenarioError,
    dump_scenario,
    load_scenario,
    resolve,
    scenario_from_dict,
    scenario_from_toml,
    scenario_hash,
)
from livingdrug.scenarios.schema import thaw

SETTINGS = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _build_toy(*, variant: str = "a") -> Network:
    T, C = sym("T"), sym("C")
    return Network(
        name="toy",
        species=(Species("T", "cell", 1e9), Species("C", "cell", 0.0), Species("il6", "pg/mL", 1.0)),
        params=(
            Param("r", 0.1, "1/d", (0.0, 5.0)),
            Param("k", 1e-9, "1/(cell*d)", (0.0, 1.0)),
            Param("frac", 0.5, "1", (0.0, 1.0)),
            Param("dose", 1e8, "cell", (0.0, 1e11)),
            Param("t_dose", 0.0, "d", (-60.0, 365.0)),
            Param("weight", 70.0, "kg", (0.01, 300.0)),
        ),
        reactions=(Reaction("grow", {"T": 1}, sym("r") * T), Reaction("kill", {"T": -1}, sym("k") * C * T)),
        events=(Event("infusion", At(sym("t_dose")), {"C": C + sym("dose")}),),
        meta={"dose": {"param": "dose", "time_param": "t_dose"}, "weight_param": "weight", "time_start": -1.0},
    )


@dataclass(frozen=True)
class _Spec:
    name: str
    title: str
    reference: str
    build: Any
    options: dict = field(default_factory=dict)


MODELS = {"toy": _Spec("toy", "Toy", "none", _build_toy, {"variant": ("a", "b")})}

BASE: dict[str, Any] = {
    "name": "toy-1",
    "title": "Toy",
    "description": "a toy",
    "model": "toy",
    "model_options": {"variant": "a"},
    "patient": {"weight": "70 kg"},
    "dosing": {"dose": "3e6 cell/kg", "time": "12 h"},
    "parameters": {"r": "0.2 1/d", "frac": 0.3, "k": "1e-9 1/(cell*d)"},
    "initial": {"T": "5e9 cell", "il6": "2 pg/mL"},
    "simulation": {
        "days": 100,
        "start": "-2 d",
        "output_interval": "1 d",
        "engine": "ode",
        "rtol": 1e-6,
        "atol": 1e-9,
        "seed": 3,
    },
}

PATHS = [
    (k,) for k in BASE
] + [(section, k) for section, table in BASE.items() if isinstance(table, dict) for k in table]

UNITS = ["d", "h", "1/d", "1/h", "cell", "cells", "cell/kg", "kg", "g", "cell/uL", "cell/µL", "pg/mL",
         "mL", "L", "1/(cell*d)", "copies/ug", "week", "s", "furlong", "d^2", "", "%", "1/", "(", "**"]

numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1, 0.0, -0.0, 1e308, -1e308, 5e-324, 2**63, 2**64, math.nan, math.inf]),
)
unit_strings = st.builds(
    lambda n, u, sep: f"{n}{sep}{u}",
    st.one_of(numbers.map(str), st.sampled_from(["1e8", "-5", "nan", "inf", "1e999", ".5", "2**9**9"])),
    st.one_of(st.sampled_from(UNITS), st.text(max_size=12)),
    st.sampled_from([" ", "", "  ", "\t"]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    st.text(max_size=30),
    unit_strings,
    st.sampled_from(["toy", "ode", "ssa", "a", "b", "cd19-ball", "car_t"]),
    st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2100, 1, 1)),
    st.dates(),
)
keys = st.one_of(
    st.sampled_from(sorted({p[-1] for p in PATHS} | {"T", "C", "r", "frac", "dose", "weight"})),
    st.text(max_size=10),
)
toml_like = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=20,
)


def _check_loaded(s: Scenario) -> None:
    """Whatever loads resolves, and dumps/loads back to the same hash."""
    resolve(s)
    text = dump_scenario(s)
    s2 = scenario_from_toml(text, models=MODELS)
    assert scenario_hash(s2) == scenario_hash(s)
    assert s2 == s


def _try(fn: Any) -> Scenario | None:
    try:
        s = fn()
    except ScenarioError as e:
        assert "internal error" not in str(e), str(e)
        assert isinstance(str(e), str) and str(e)
        return None
    _check_loaded(s)
    return s


def test_base_is_valid() -> None:
    s = scenario_from_dict(BASE, models=MODELS)
    _check_loaded(s)


@SETTINGS
@given(d=st.dictionaries(keys, toml_like, max_size=8))
def test_random_dicts(d: dict[str, Any]) -> None:
    _try(lambda: scenario_from_dict(d, models=MODELS))


@SETTINGS
@given(d=st.fixed_dictionaries({}, optional={k: toml_like for k in BASE}))
def test_random_dicts_with_known_keys(d: dict[str, Any]) -> None:
    _try(lambda: scenario_from_dict(d, models=MODELS))


@st.composite
def mutations(draw: st.DrawFn) -> dict[str, Any]:
    d = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(PATHS))
        op = draw(st.sampled_from(["set", "set_unit", "set_number", "delete", "extra", "wrong_type"]))
        node: Any = d
        for k in path[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        last = path[-1]
        if op == "set":
            node[last] = draw(toml_like)
        elif op == "set_unit":
            node[last] = draw(unit_strings)
        elif op == "set_number":
            node[last] = draw(numbers)
        elif op == "delete":
            node.pop(last, None)
        elif op == "extra":
            node[draw(keys)] = draw(toml_like)
        else:
            node[last] = draw(st.sampled_from([[1, 2], {"a": 1}, True, None, "x", 3]))
    return d


@SETTINGS
@given(d=mutations())
def test_mutated_scenarios(d: dict[str, Any]) -> None:
    _try(lambda: scenario_from_dict(d, models=MODELS))


def _toml_lines(draw: Any) -> str:
    lines = []
    for _ in range(draw(st.integers(min_value=0, max_value=10))):
        kind = draw(st.sampled_from(["kv", "section", "junk"]))
        if kind == "section":
            lines.append(f"[{draw(st.sampled_from(['patient', 'dosing', 'simulation', 'parameters', 'initial', 'x', 'a.b']))}]")
        elif kind == "kv":
            value = draw(
                st.one_of(
                    unit_strings.map(lambda s: '"' + s.replace("\\", "").replace('"', "") + '"'),
                    numbers.map(lambda x: str(x).lower() if not isinstance(x, float) or math.isfinite(x) else "nan"),
                    st.sampled_from(['"toy"', "true", "[1, 2]", "{a = 1}", "1979-05-27", "'x'", '"""x"""', "[[[]]]"]),
                )
            )
            lines.append(f"{draw(keys.filter(lambda k: k.isidentifier()) | st.sampled_from(['days', 'dose']))} = {value}")
        else:
            lines.append(draw(st.text(max_size=20)))
    return "\n".join(lines)


@SETTINGS
@given(data=st.data())
def test_random_toml_text(data: st.DataObject) -> None:
    text = _toml_lines(data.draw)
    _try(lambda: scenario_from_toml(text, models=MODELS))
    # the same lines after a valid head: more of them reach validation
    head = 'name = "toy-1"\nmodel = "toy"\n'
    _try(lambda: scenario_from_toml(head + text, models=MODELS))


@SETTINGS
@given(d=mutations())
def test_mutations_through_text(d: dict[str, Any]) -> None:
    """Dump the valid base, splice in mutated values as TOML text, then load."""
    try:
        s = scenario_from_dict(d, models=MODELS)
    except ScenarioError:
        return
    _check_loaded(s)
    assert thaw(s.raw)["model"] == "toy"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.one_of(st.binary(max_size=400), st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_random_bytes_as_file(tmp_path_factory: pytest.TempPathFactory, blob: bytes) -> None:
    p = Path(tmp_path_factory.mktemp("blob")) / "random.toml"
    p.write_bytes(blob)
    _try(lambda: load_scenario(p, models=MODELS))
    _try(lambda: load_scenario(str(p), models=MODELS))


def test_deeply_nested_toml_is_a_scenario_error(tmp_path: Path) -> None:
    p = tmp_path / "deep.toml"
    p.write_text("x = " + "[" * 50_000 + "]" * 50_000)
    with pytest.raises(ScenarioError):
        load_scenario(p, models=MODELS)


@pytest.mark.parametrize(
    "text", ["2**9**9**9 d", "9" * 90 + " d", "1e8 cell" + " " * 90, "1 d**99", "(((((d)))))", "1 " + "d*" * 40 + "d"]
)
def test_hostile_quantity_strings_are_cheap_errors(text: str) -> None:
    d = copy.deepcopy(BASE)
    d["simulation"]["days"] = text
    _try(lambda: scenario_from_dict(d, models=MODELS))


# ---- the real model library: mutations of the built-in default scenario ------------------


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_mutated_builtin_default(data: st.DataObject) -> None:
    base = thaw(load_scenario("cd19-ball").raw)
    path = data.draw(st.sampled_from([("dosing", "dose"), ("dosing", "time"), ("patient", "weight"),
                                      ("simulation", "days"), ("simulation", "start"), ("model",),
                                      ("parameters", "k_exp"), ("initial", "L_M"), ("model_options", "lymphodepletion"),
                                      ("model_options", "leukaemia")]))
    value = data.draw(toml_like)
    node = base
    for k in path[:-1]:
        node = node.setdefault(k, {})
    node[path[-1]] = value
    try:
        s = scenario_from_dict(base)
    except ScenarioError as e:
        assert "internal error" not in str(e), str(e)
        return
    resolve(s)
    assert scenario_hash(scenario_from_toml(dump_scenario(s))) == scenario_hash(s)
