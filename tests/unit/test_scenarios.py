"""Scenario files: loading, units, errors, dump/hash, resolve and pure variants.

These tests use a small stand-in model registry (so they do not depend on the science in
``livingdrug.models``); ``test_scenarios_builtin.py`` checks the shipped scenarios against
the real model library.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from livingdrug.network import At, Event, Network, Reaction, Species, sym
from livingdrug.params import Param
from livingdrug.scenarios import (
    MAX_FILE_BYTES,
    Scenario,
    ScenarioError,
    dump_scenario,
    load_scenario,
    resolve,
    scenario_from_dict,
    scenario_from_toml,
    scenario_hash,
    validate_scenario,
    with_days,
    with_dose,
    with_parameters,
    with_seed,
)

# ---------------------------------------------------------------------------------------
# stand-in model library
# ---------------------------------------------------------------------------------------


def build_toy(*, variant: str = "a") -> Network:
    """Tumour T killed by CAR-T C; C infused by a timed dose event."""
    T, C = sym("T"), sym("C")
    r, k, d = sym("r"), sym("k"), sym("d")
    params = (
        Param("r", 0.1 if variant == "a" else 0.2, "1/d", (0.0, 5.0)),
        Param("k", 1e-9, "1/(cell*d)", (0.0, 1.0)),
        Param("d", 0.05, "1/d", (0.0, 5.0)),
        Param("frac", 0.5, "1", (0.0, 1.0)),
        Param("conc", 10.0, "cell/uL", (0.0, 1e6)),
        Param("dose", 1e8, "cell", (0.0, 1e11)),
        Param("t_dose", 0.0, "d", (-60.0, 365.0)),
        Param("weight", 70.0, "kg", (0.01, 300.0)),
    )
    species = (Species("T", "cell", 1e9), Species("C", "cell", 0.0), Species("il6", "pg/mL", 1.0))
    reactions = (
        Reaction("grow", {"T": 1}, r * T),
        Reaction("kill", {"T": -1}, k * C * T),
        Reaction("die", {"C": -1}, d * C),
    )
    events = (Event("infusion", At(sym("t_dose")), {"C": C + sym("dose") * sym("frac") * 2}),)
    return Network(
        name="toy",
        species=species,
        params=params,
        reactions=reactions,
        events=events,
        meta={"dose": {"param": "dose", "time_param": "t_dose"}, "weight_param": "weight", "time_start": -1.0},
    )


def build_nodose() -> Network:
    x = sym("x")
    return Network(
        name="nodose",
        species=(Species("x", "cell", 100.0),),
        params=(Param("g", 0.3, "1/d", (0.0, 2.0)),),
        reactions=(Reaction("grow", {"x": 1}, sym("g") * x),),
    )


def build_broken(**_: Any) -> Network:
    raise RuntimeError("boom")


@dataclass(frozen=True)
class Spec:
    name: str
    title: str
    reference: str
    build: Any
    options: dict = field(default_factory=dict)


MODELS = {
    "toy": Spec("toy", "Toy", "none", build_toy, {"variant": ("a", "b")}),
    "nodose": Spec("nodose", "No dose", "none", build_nodose),
    "broken": Spec("broken", "Broken", "none", build_broken, {"x": ()}),
}


def base() -> dict[str, Any]:
    return {
        "name": "toy-1",
        "title": "Toy scenario",
        "model": "toy",
        "patient": {"weight": "70 kg"},
        "dosing": {"dose": "1e8 cell", "time": "0 d"},
        "parameters": {"r": "0.2 1/d"},
        "initial": {"T": "5e9 cell"},
        "simulation": {"days": 100, "output_interval": "1 d", "seed": 3},
    }


def load(d: dict[str, Any], source: str = "toy.toml") -> Scenario:
    return scenario_from_dict(d, source=source, models=MODELS)


def error_of(d: dict[str, Any]) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load(d)
    return info.value


def mutate(path: str, value: Any = None, *, delete: bool = False) -> dict[str, Any]:
    d = base()
    keys = path.split(".")
    node = d
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    if delete:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value
    return d


# ---------------------------------------------------------------------------------------
# valid scenarios and unit conversion
# ---------------------------------------------------------------------------------------


def test_valid_scenario_canonical_values() -> None:
    s = load(base())
    assert s.name == "toy-1" and s.model == "toy"
    assert s.weight_kg == 70.0
    assert s.dosing is not None and s.dosing.dose == 1e8 and not s.dosing.per_kg
    assert s.parameters == {"r": 0.2}
    assert s.initial == {"T": 5e9}
    assert s.simulation.days == 100 and s.simulation.start == -1.0  # model's time_start
    assert s.simulation.seed == 3 and s.simulation.engine == "ode"
    assert s.source == "toy.toml"
    hash(s)  # frozen and hashable


def test_units_hours_to_days_and_per_kg_dose() -> None:
    d = base()
    d["dosing"] = {"dose": "3.1e6 cell/kg", "time": "12 h"}
    d["patient"] = {"weight": "50000 g"}
    d["simulation"] = {"days": "2 week", "start": "-36 h", "output_interval": "6 h"}
    s = load(d)
    assert s.weight_kg == pytest.approx(50.0)
    assert s.dosing is not None and s.dosing.per_kg and s.dosing.time == pytest.approx(0.5)
    assert s.dose_cells == pytest.approx(3.1e6 * 50)
    assert s.simulation.days == pytest.approx(14.0)
    assert s.simulation.start == pytest.approx(-1.5)
    assert s.simulation.output_interval == pytest.approx(0.25)
    r = resolve(s)
    P = dict(zip(r.param_names, r.P, strict=True))
    assert P["dose"] == pytest.approx(1.55e8)
    assert P["t_dose"] == pytest.approx(0.5)
    assert P["weight"] == pytest.approx(50.0)
    assert r.dose_cells == pytest.approx(1.55e8) and r.dose_time == pytest.approx(0.5)


def test_unit_conversion_of_parameters_and_initial_values() -> None:
    d = base()
    d["parameters"] = {"r": "0.1 1/h", "k": "1e-9 1/(cell*d)", "frac": 0.25, "conc": "1e4 cell/mL"}
    d["initial"] = {"il6": "0.002 ng/mL", "T": "1e9 cells"}
    d["simulation"]["days"] = "30 d"
    s = load(d)
    assert s.parameters["r"] == pytest.approx(2.4)
    assert s.parameters["frac"] == 0.25
    assert s.parameters["conc"] == pytest.approx(10.0)
    assert s.initial["il6"] == pytest.approx(2.0)


def test_bounds_check_after_unit_conversion() -> None:
    d = base()
    d["parameters"] = {"r": "0.5 1/h"}  # 12 /d > upper bound 5 /d
    e = error_of(d)
    assert e.field == "parameters.r" and "[0, 5] 1/d" in str(e)


def test_resolve_arrays() -> None:
    s = load(base())
    r = resolve(s)
    net = r.network
    assert r.P.shape == (len(net.params),) and r.y0.shape == (len(net.species),)
    assert dict(zip(r.species_names, r.y0, strict=True))["T"] == 5e9
    assert dict(zip(r.param_names, r.P, strict=True))["r"] == 0.2
    assert r.t_start == -1.0 and r.t_end == 100.0
    assert r.t_out[0] == -1.0 and r.t_out[-1] == 100.0 and len(r.t_out) == 102
    assert np.all(np.diff(r.t_out) > 0)
    assert not r.P.flags.writeable and not r.y0.flags.writeable
    assert r.engine_settings() == {"engine": "ode", "rtol": 1e-6, "atol": 1e-9, "seed": 3}


def test_output_times_include_end_when_not_a_multiple() -> None:
    d = base()
    d["simulation"] = {"days": 10, "start": "0 d", "output_interval": "3 d"}
    r = resolve(load(d))
    assert list(r.t_out) == [0.0, 3.0, 6.0, 9.0, 10.0]


def test_output_after_switches_the_grid() -> None:
    """A two-rate sampling design: every 0.25 d to day 2, daily to day 5, then every 2.5 d;
    each switch time is an output, the end is always included."""
    d = base()
    d["simulation"] = {"days": 10, "start": "0 d", "output_interval": "6 h",
                       "output_after": [{"time": "2 d", "interval": "1 d"}, {"time": 5, "interval": "60 h"}]}
    s = load(d)
    assert s.simulation.output_after == ((2.0, 1.0), (5.0, 2.5))
    assert list(resolve(s).t_out) == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0]
    # a switch at or after the end is never reached (e.g. a shorter --days)
    assert list(resolve(with_days(s, 3)).t_out) == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 3.0]
    assert list(resolve(with_days(s, 1)).t_out) == [0.0, 0.25, 0.5, 0.75, 1.0]
    # without output_after the hash is what it was; with it, it changes with every value
    plain = load(base())
    d2 = base()
    d2["simulation"] = {**d2["simulation"], "output_after": [{"time": "50 d", "interval": "2 d"}]}
    d3 = base()
    d3["simulation"] = {**d3["simulation"], "output_after": [{"time": "50 d", "interval": "3 d"}]}
    hashes = {scenario_hash(plain), scenario_hash(load(d2)), scenario_hash(load(d3))}
    assert len(hashes) == 3


def test_output_after_round_trips_through_toml(tmp_path: Path) -> None:
    d = base()
    d["simulation"] = {**d["simulation"], "output_after": [{"time": "28 d", "interval": "7 d"}]}
    s = load(d)
    text = dump_scenario(s)
    assert 'output_after = [{ time = "28 d", interval = "7 d" }]' in text
    s2 = scenario_from_toml(text, models=MODELS)
    assert s2.simulation == s.simulation and scenario_hash(s2) == scenario_hash(s)


@pytest.mark.parametrize(
    ("value", "field", "needles"),
    [
        ("1 d", "simulation.output_after", ["list of 1 to 100", 'time = "28 d"']),
        ([], "simulation.output_after", ["list of 1 to 100"]),
        ([{"time": "-5 d", "interval": "1 d"}], "simulation.output_after[0].time", ["after the start (0 d)"]),
        ([{"time": "50 d", "interval": "1 d"}, {"time": "40 d", "interval": "2 d"}],
         "simulation.output_after[1].time", ["after the previous switch (50 d)"]),
        ([{"time": "50 d", "interval": "0 d"}], "simulation.output_after[0].interval", ["above 0"]),
        ([{"time": "50 d", "interval": "1 cell"}], "simulation.output_after[0].interval", ["a time step in d"]),
        ([{"time": "50 d"}], "simulation.output_after[0].interval", ["interval of this part"]),
        ([{"time": "50 d", "interval": "1 d", "every": 2}], "simulation.output_after[0].every", ["unknown name"]),
        ([{"time": "50 d", "interval": "1 s"}], "simulation.output_after[0].interval",
         ["1,000,000 output points in all", "4,320,001"]),
    ],
)
def test_output_after_errors_name_the_part(value: Any, field: str, needles: list[str]) -> None:
    d = base()
    d["simulation"] = {"days": 100, "start": "0 d", "output_interval": "1 d", "output_after": value}
    e = error_of(d)
    assert e.field == field, str(e)
    for n in needles:
        assert n in str(e), (n, str(e))


def test_model_without_dose_and_model_options() -> None:
    s = load({"name": "n", "model": "nodose", "simulation": {"days": 5}})
    assert s.dosing is None and s.dose_cells is None
    r = resolve(s)
    assert r.dose_cells is None and r.t_start == 0.0
    d = base()
    d["model_options"] = {"variant": "b"}
    d["parameters"] = {}
    s2 = load(d)
    assert dict(zip(resolve(s2).param_names, resolve(s2).P, strict=True))["r"] == 0.2
    assert scenario_hash(s2) != scenario_hash(load(base() | {"parameters": {}}))


def test_name_defaults_to_file_stem(tmp_path: Path) -> None:
    d = base()
    del d["name"]
    p = tmp_path / "my-case.toml"
    p.write_text(dump_scenario(load(base())).replace('name = "toy-1"\n', ""))
    assert load_scenario(p, models=MODELS).name == "my-case"
    e = error_of(d)
    assert e.field == "name"


# ---------------------------------------------------------------------------------------
# dump, hash, variants
# ---------------------------------------------------------------------------------------


def test_dump_load_round_trip(tmp_path: Path) -> None:
    d = base()
    d["description"] = 'multi\nline "quoted" \\ text µ'
    d["dosing"] = {"dose": "3.1e6 cell/kg", "time": "12 h"}
    d["model_options"] = {"variant": "b"}
    s = load(d)
    text = dump_scenario(s)
    p = tmp_path / "x.toml"
    p.write_text(text, encoding="utf-8")
    s2 = load_scenario(p, models=MODELS)
    assert s2 == s
    assert scenario_hash(s2) == scenario_hash(s)
    assert dump_scenario(s2) == text
    s3 = scenario_from_toml(text, models=MODELS)
    assert scenario_hash(s3) == scenario_hash(s)


def test_hash_is_stable_and_ignores_spelling() -> None:
    s = load(base())
    h = scenario_hash(s)
    assert len(h) == 64 and h == scenario_hash(load(base()))
    d = base()
    d["parameters"] = {"r": "0.2 d^-1"}
    d["title"] = "another title"
    d["initial"] = {"T": "5000000000 cells"}
    assert scenario_hash(load(d)) == h


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("parameters.r", "0.21 1/d"),
        ("initial.T", "6e9 cell"),
        ("dosing.dose", "2e8 cell"),
        ("dosing.time", "1 d"),
        ("patient.weight", "71 kg"),
        ("simulation.days", 101),
        ("simulation.start", "-2 d"),
        ("simulation.output_interval", "0.5 d"),
        ("simulation.rtol", 1e-7),
        ("simulation.atol", 1e-8),
        ("simulation.seed", 4),
        ("simulation.engine", "ssa"),
    ],
)
def test_hash_changes_when_a_value_changes(path: str, value: Any) -> None:
    assert scenario_hash(load(mutate(path, value))) != scenario_hash(load(base()))


def test_pure_variants() -> None:
    s = load(base())
    s_dose = with_dose(s, 3e8)
    assert s_dose.dose_cells == 3e8 and s.dose_cells == 1e8
    assert with_dose(s, "2e6 cell/kg").dose_cells == pytest.approx(1.4e8)
    assert with_days(s, 50).simulation.days == 50.0
    assert with_days(s, "2 week").simulation.days == pytest.approx(14.0)
    assert with_seed(s, 9).simulation.seed == 9
    s_p = with_parameters(s, r=0.3, d="0.1 1/d", frac=0.1)
    assert dict(s_p.parameters) == {"r": 0.3, "d": 0.1, "frac": 0.1}
    assert s_p.source == s.source
    for v in (s_dose, s_p):
        assert scenario_hash(v) != scenario_hash(s)
        assert scenario_hash(scenario_from_toml(dump_scenario(v), models=MODELS)) == scenario_hash(v)
    with pytest.raises(ScenarioError, match="parameters.r"):
        with_parameters(s, r=-1.0)
    with pytest.raises(ScenarioError, match="dosing.dose"):
        with_dose(s, 0)
    with pytest.raises(ScenarioError, match="simulation.seed"):
        with_seed(s, -1)
    with pytest.raises(ScenarioError, match="simulation.days"):
        with_days(s, 0)


def test_error_is_picklable() -> None:
    e = error_of(mutate("parameters.r", "0.9 cell"))
    e2 = pickle.loads(pickle.dumps(e))
    assert str(e2) == str(e) and e2.field == e.field and e2.value == e.value


# ---------------------------------------------------------------------------------------
# errors: each names file, field, value, what was expected and how to fix it
# ---------------------------------------------------------------------------------------


def test_wrong_unit_message() -> None:
    e = error_of(mutate("parameters.r", "0.9 cell"))
    assert str(e) == 'toy.toml: parameters.r = "0.9 cell": expected a rate in 1/d; write e.g. "0.9 1/d"'
    assert (e.file, e.field, e.value) == ("toy.toml", "parameters.r", "0.9 cell")
    assert e.expected == "a rate in 1/d" and e.hint == 'write e.g. "0.9 1/d"'


@pytest.mark.parametrize(
    ("path", "value", "needles"),
    [
        ("parameters.r", 0.9, ["parameters.r = 0.9", "unit is missing", '"0.9 1/d"']),
        ("parameters.r", "fast", ["parameters.r", "a rate in 1/d", "write a number and a unit"]),
        ("parameters.r", "0.9 furlongs", ["parameters.r", '"0.9 1/d"']),
        ("parameters.r", [1, 2], ["parameters.r", "a rate in 1/d"]),
        ("parameters.r", True, ["parameters.r", "a rate"]),
        ("parameters.frac", "0.5 d", ["parameters.frac", "expected a number"]),
        ("parameters.frac", 1.5, ["parameters.frac", "[0, 1]", "default is 0.5"]),
        ("parameters.r", "-0.1 1/d", ["parameters.r", "[0, 5]"]),
        ("parameters.r", "nan 1/d", ["parameters.r"]),
        ("parameters.r", "1e999 1/d", ["parameters.r", "finite"]),
        ("parameters.r", math.inf, ["parameters.r", "finite"]),
        ("parameters.r", 10**400, ["parameters.r", "finite"]),
        ("parameters.dose", "1e8 cell", ["parameters.dose", "dosing.dose"]),
        ("parameters.weight", "70 kg", ["parameters.weight", "patient.weight"]),
        ("parameters.rr", "1 1/d", ["parameters.rr", 'did you mean "r"', "a parameter of model toy"]),
        ("initial.TT", "1 cell", ["initial.TT", 'did you mean "T"', "a species of model toy"]),
        ("initial.T", "-5 cell", ["initial.T", "≥ 0"]),
        ("initial.T", "5 cell/uL", ["initial.T", "a number of cells in cell"]),
        ("initial.il6", "5 cell", ["initial.il6", "pg/mL"]),
        ("dosing.dose", "0 cell", ["dosing.dose", "above 0"]),
        ("dosing.dose", "-1e8 cell", ["dosing.dose", "above 0"]),
        ("dosing.dose", 1e8, ["dosing.dose = 100000000.0", '"1e8 cell"']),
        ("dosing.dose", "1e8 kg", ["dosing.dose", "cells per kg"]),
        ("dosing.dose", "1e20 cell", ["dosing.dose", "at most"]),
        ("dosing.time", "500 d", ["dosing.time", "within the simulation"]),
        ("dosing.time", "1 cell", ["dosing.time", "a time in d"]),
        ("dosing.tim", "1 d", ["dosing.tim", 'did you mean "time"']),
        ("patient.weight", "70", ["patient.weight", "unit is missing", '"70 kg"']),
        ("patient.weight", "-70 kg", ["patient.weight", "body weight between"]),
        ("patient.weight", "7000 kg", ["patient.weight"]),
        ("patient.wieght", "70 kg", ["patient.wieght", 'did you mean "weight"']),
        ("simulation.days", 0, ["simulation.days = 0", "above 0"]),
        ("simulation.days", -5, ["simulation.days", "above 0"]),
        ("simulation.days", 36_501, ["simulation.days", "at most 36500"]),
        ("simulation.days", "1 cell", ["simulation.days", "an end time in d"]),
        ("simulation.days", "365", ["simulation.days", "unit is missing"]),
        ("simulation.start", "200 d", ["simulation.start", "before the end time"]),
        ("simulation.output_interval", "0 d", ["simulation.output_interval", "above 0"]),
        ("simulation.output_interval", "-1 d", ["simulation.output_interval", "above 0"]),
        ("simulation.output_interval", "1 s", ["simulation.output_interval", "1,000,000", "at least"]),
        ("simulation.rtol", 0.5, ["simulation.rtol = 0.5", "between 0 and 0.1"]),
        ("simulation.rtol", 0, ["simulation.rtol", "between 0 and 0.1"]),
        ("simulation.rtol", "1e-6", ["simulation.rtol", "plain number"]),
        ("simulation.atol", -1e-9, ["simulation.atol", "above 0"]),
        ("simulation.seed", -1, ["simulation.seed", "whole number"]),
        ("simulation.seed", 1.5, ["simulation.seed", "whole number"]),
        ("simulation.seed", 2**70, ["simulation.seed"]),
        ("simulation.engine", "odee", ["simulation.engine", 'did you mean "ode"']),
        ("simulation.engines", "ode", ["simulation.engines", 'did you mean "engine"']),
        ("simulation", 365, ["simulation = 365", "a table [simulation]"]),
        ("patient", "70 kg", ["patient", "a table [patient]"]),
        ("model", "toyy", ["model = \"toyy\"", 'did you mean "toy"', "one of the models"]),
        ("model", 3, ["model = 3", "a text"]),
        ("model_options.variant", "c", ["model_options.variant", '"a", "b"']),
        ("model_options.varient", "a", ["model_options.varient", 'did you mean "variant"']),
        ("name", "Bad Name", ["name", "lower-case"]),
        ("title", 5, ["title = 5", "a text"]),
        ("simulatoin", {"days": 5}, ["simulatoin", 'did you mean "simulation"']),
        ("paramters", {}, ["paramters", 'did you mean "parameters"']),
    ],
)
def test_error_messages(path: str, value: Any, needles: list[str]) -> None:
    e = error_of(mutate(path, value))
    text = str(e)
    assert text.startswith("toy.toml: ")
    assert e.field.split(".")[0] == path.split(".")[0] or e.field == path
    for n in needles:
        assert n in text, (n, text)
    assert "internal error" not in text


@pytest.mark.parametrize(
    ("path", "field", "needle"),
    [
        ("model", "model", 'model = "car_t"'),
        ("simulation", "simulation.days", "days = 365"),
        ("simulation.days", "simulation.days", "days = 365"),
        ("dosing", "dosing", "takes a dose"),
        ("dosing.dose", "dosing.dose", 'dose = "1e8 cell"'),
    ],
)
def test_missing_required_values(path: str, field: str, needle: str) -> None:
    e = error_of(mutate(path, delete=True))
    assert e.field == field and needle in str(e)
    assert e.value is None and e.missing


def test_weight_required_for_per_kg_dose() -> None:
    d = mutate("dosing.dose", "3e6 cell/kg")
    del d["patient"]
    e = error_of(d)
    assert e.field == "patient.weight" and "per kg" in str(e) and '"70 kg"' in str(e)


def test_dosing_for_model_without_dose() -> None:
    e = error_of({"name": "n", "model": "nodose", "dosing": {"dose": "1 cell"}, "simulation": {"days": 5}})
    assert e.field == "dosing" and "takes no dose" in str(e) and "remove" in str(e)


def test_broken_model_build_is_a_scenario_error() -> None:
    e = error_of({"name": "n", "model": "broken", "model_options": {"x": 1}, "simulation": {"days": 5}})
    assert e.field == "model_options" and "boom" in str(e)


def test_not_a_mapping() -> None:
    with pytest.raises(ScenarioError, match="a table of scenario settings"):
        scenario_from_dict([1, 2], models=MODELS)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------


def test_malformed_toml_has_line_and_column(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text('name = "x"\nmodel = \n')
    with pytest.raises(ScenarioError) as info:
        load_scenario(p, models=MODELS)
    e = info.value
    assert e.line == 2 and e.column is not None
    assert str(e).startswith(f"{p}:2:") and "valid TOML" in str(e) and "key = " in str(e)


def test_binary_file(tmp_path: Path) -> None:
    p = tmp_path / "bin.toml"
    p.write_bytes(b"name = 'x'\n\xff\xfe\x00")
    with pytest.raises(ScenarioError, match="UTF-8"):
        load_scenario(p, models=MODELS)


def test_file_not_found_not_a_file_too_large(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="file not found") as info:
        load_scenario(tmp_path / "nope.toml", models=MODELS)
    assert str(tmp_path / "nope.toml") in str(info.value)
    with pytest.raises(ScenarioError, match="not a file"):
        load_scenario(tmp_path, models=MODELS)
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(ScenarioError, match="at most 1,000,000 bytes"):
        load_scenario(big, models=MODELS)
    with pytest.raises(ScenarioError, match="at most"):
        scenario_from_toml("#" * (MAX_FILE_BYTES + 1), models=MODELS)


def test_unknown_builtin_name_lists_known() -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario("cd19-bal", models=MODELS)
    text = str(info.value)
    assert "cd19-ball" in text and "did you mean" in text and "built-in scenario" in text


def test_validate_scenario_from_path(tmp_path: Path) -> None:
    p = tmp_path / "ok.toml"
    p.write_text(dump_scenario(load(base())))
    s = validate_scenario(str(p), models=MODELS)
    assert s.name == "toy-1" and s.source == str(p)


def test_toml_file_with_every_section(tmp_path: Path) -> None:
    text = '''
name = "full"
title = "Everything"
description = "All sections"
model = "toy"
[model_options]
variant = "a"
[patient]
weight = "20 kg"
[dosing]
dose = "1e6 cell/kg"
time = "36 h"
[parameters]
d = "0.2 1/d"
[initial]
C = "0 cell"
[simulation]
days = "90 d"
start = "-5 d"
output_interval = "12 h"
engine = "ode"
rtol = 1e-5
atol = 1e-8
seed = 42
'''
    p = tmp_path / "full.toml"
    p.write_text(text)
    s = load_scenario(p, models=MODELS)
    assert s.dose_cells == pytest.approx(2e7) and s.dosing is not None and s.dosing.time == 1.5
    assert s.simulation.start == -5.0 and len(resolve(s).t_out) == 191


def test_unquoted_quantity_hint(tmp_path: Path) -> None:
    p = tmp_path / "q.toml"
    p.write_text('name = "q"\nmodel = "toy"\n[dosing]\ndose = 1e8 cells\n')
    with pytest.raises(ScenarioError) as info:
        load_scenario(p, models=MODELS)
    e = info.value
    assert e.line == 4 and e.field == "dose"
    assert 'write dose = "1e8 cells"' in str(e)


def test_scenario_pickles() -> None:
    s = load(base())
    s2 = pickle.loads(pickle.dumps(s))
    assert s2 == s and scenario_hash(s2) == scenario_hash(s)
