"""Scenario fields of stochastic runs: replicates, hybrid_threshold, tau_epsilon."""

from __future__ import annotations

import pytest

from livingdrug.scenarios import (
    DEFAULT_REPLICATES,
    ScenarioError,
    dump_scenario,
    load_scenario,
    resolve,
    scenario_from_toml,
    scenario_hash,
    scenario_json,
    with_engine,
    with_initial,
    with_replicates,
)

BASE = """name = "s"
model = "kimmel2021"
[simulation]
days = 30
{extra}
"""


def load(extra: str = ""):
    return scenario_from_toml(BASE.format(extra=extra), source="s.toml")


def test_defaults_depend_on_the_engine() -> None:
    assert resolve(load()).replicates == 1
    rs = resolve(load('engine = "tau"'))
    assert rs.replicates == DEFAULT_REPLICATES == 1000
    assert rs.tau_epsilon == 0.03 and rs.hybrid_threshold == 100.0
    assert rs.engine_settings() == {
        "engine": "tau", "rtol": 1e-6, "atol": 1e-9, "seed": 0, "replicates": 1000, "tau_epsilon": 0.03
    }


def test_values_are_read_with_units() -> None:
    s = load('engine = "hybrid"\nreplicates = 64\nhybrid_threshold = "1e3 cell"\ntau_epsilon = 0.01')
    rs = resolve(s)
    assert (rs.replicates, rs.hybrid_threshold, rs.tau_epsilon) == (64, 1000.0, 0.01)
    assert resolve(load("hybrid_threshold = 50")).hybrid_threshold == 50.0  # bare number: cells


@pytest.mark.parametrize(
    ("extra", "field", "needle"),
    [
        ("replicates = 0", "simulation.replicates", "from 1 to"),
        ("replicates = 2.5", "simulation.replicates", "whole number"),
        ('replicates = "100"', "simulation.replicates", "without quotes"),
        ("replicates = true", "simulation.replicates", "whole number"),
        ("replicates = 100000000", "simulation.replicates", "10,000,000"),
        ('hybrid_threshold = "100 d"', "simulation.hybrid_threshold", "cell"),
        ('hybrid_threshold = "0.1 cell"', "simulation.hybrid_threshold", "from 1 to 1e+09"),
        ("tau_epsilon = 1.5", "simulation.tau_epsilon", "between 0 and 1"),
        ('tau_epsilon = "0.03"', "simulation.tau_epsilon", "between 0 and 1"),
        ("tau_epsilon = 0", "simulation.tau_epsilon", "between 0 and 1"),
        ("replicate = 10", "simulation.replicate", 'did you mean "replicates"'),
    ],
)
def test_bad_values_name_file_field_value_and_fix(extra: str, field: str, needle: str) -> None:
    with pytest.raises(ScenarioError) as e:
        load(extra)
    msg = str(e.value)
    assert e.value.field == field and "s.toml" in msg and needle in msg, msg


def test_round_trip_and_hash() -> None:
    s = load('engine = "ssa"\nreplicates = 300\nhybrid_threshold = "200 cell"\ntau_epsilon = 0.02')
    text = dump_scenario(s)
    assert "replicates = 300" in text and 'hybrid_threshold = "200 cell"' in text and "tau_epsilon = 0.02" in text
    again = scenario_from_toml(text)
    assert again == s and scenario_hash(again) == scenario_hash(s)
    # spelling does not change the hash; the number of replicates does
    assert scenario_hash(load('engine = "ssa"\nreplicates = 300')) == scenario_hash(s)
    assert scenario_hash(load('engine = "ssa"\nreplicates = 301')) != scenario_hash(s)
    # the setting of the engine in use counts, that of another engine does not
    assert scenario_hash(load('engine = "tau"\ntau_epsilon = 0.02')) != scenario_hash(load('engine = "tau"'))
    assert scenario_hash(load('engine = "tau"\nhybrid_threshold = 5')) == scenario_hash(load('engine = "tau"'))
    assert scenario_hash(load('engine = "hybrid"\nhybrid_threshold = 5')) != scenario_hash(load('engine = "hybrid"'))


def test_ode_hash_is_unchanged_by_stochastic_fields() -> None:
    """An ODE scenario hashes as before these fields existed (old manifests stay valid)."""
    plain = load()
    assert scenario_hash(load("replicates = 50\ntau_epsilon = 0.1\nhybrid_threshold = 10")) == scenario_hash(plain)
    assert "replicates" not in scenario_json(plain)


def test_variants_write_into_the_scenario() -> None:
    s = load_scenario("kimmel2021")
    v = with_replicates(with_engine(s, "tau"), 25)
    assert v.simulation.engine == "tau" and v.simulation.replicates == 25
    assert s.simulation.engine == "ode"  # frozen: the original is untouched
    assert 'engine = "tau"' in dump_scenario(v) and "replicates = 25" in dump_scenario(v)
    with pytest.raises(ScenarioError, match="simulation.engine"):
        with_engine(s, "warp")
    w = with_initial(s, B=50.0)  # a number: the species' own unit (mL)
    assert resolve(w).y0[list(w.network.species_names).index("B")] == 50.0
    assert w.raw["initial"]["B"] == "50 mL"
