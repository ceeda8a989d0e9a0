"""The shipped scenarios load against the real model library and encode the published protocols."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from livingdrug.models import MODELS
from livingdrug.scenarios import (
    ScenarioError,
    builtin_dir,
    default_scenario_name,
    dump_scenario,
    list_scenarios,
    load_scenario,
    resolve,
    scenario_from_toml,
    scenario_hash,
    validate_scenario,
    with_dose,
    with_parameters,
)

BUILTINS = [
    "bcma-myeloma",
    "cartmath-hdlm2",
    "cartmath-raji",
    "cd19-ball",
    "cd19-carnk",
    "cd19-lbcl",
    "crs-management",
    "cure-probability",
    "eliana",
    "karmma",
    "kimmel2021",
    "liu2020-carnk",
    "one-cell-kills",
    "one-clone-saves",
    "stein2019",
    "zuma-1",
]


def _values(names: tuple[str, ...], arr: np.ndarray) -> dict[str, float]:
    return dict(zip(names, map(float, arr), strict=True))


def test_list_and_default() -> None:
    listed = list_scenarios()
    assert [n for n, _ in listed] == BUILTINS
    assert all(title and isinstance(title, str) for _, title in listed)
    assert default_scenario_name() == "cd19-ball"
    assert dict(listed)["cd19-ball"] == "CD19 CAR-T in relapsed B-ALL (default)"


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_loads_resolves_and_round_trips(name: str) -> None:
    s = load_scenario(name)
    assert s.name == name and s.model in MODELS
    assert s.source == f"{name}.toml"
    r = resolve(s)
    assert np.all(np.isfinite(r.P)) and np.all(np.isfinite(r.y0))
    assert r.t_out[0] == r.t_start and r.t_out[-1] == r.t_end
    s2 = scenario_from_toml(dump_scenario(s))
    assert s2 == s and scenario_hash(s2) == scenario_hash(s)
    assert validate_scenario(builtin_dir() / f"{name}.toml") == s
    # loading by path gives the same scenario and hash
    assert scenario_hash(load_scenario(str(builtin_dir() / f"{name}.toml"))) == scenario_hash(s)


def test_builtin_hashes_differ_and_are_stable() -> None:
    hashes = {n: scenario_hash(load_scenario(n)) for n in BUILTINS}
    assert len(set(hashes.values())) == len(BUILTINS)
    assert hashes == {n: scenario_hash(load_scenario(n)) for n in BUILTINS}


def test_cd19_ball_default() -> None:
    s = load_scenario("cd19-ball")
    r = resolve(s)
    P = _values(r.param_names, r.P)
    assert s.model == "car_t" and s.simulation.days == 365
    assert r.dose_cells == 1e8 and r.dose_time == 0.0
    assert P["dose"] == 1e8 and P["t_inf"] == 0.0 and P["weight"] == 70.0
    assert s.parameters == {} and s.initial == {}


def test_cd19_per_kg_dose_uses_weight() -> None:
    s = with_dose(load_scenario("cd19-ball"), "3.1e6 cell/kg")
    r = resolve(s)
    assert r.dose_cells == pytest.approx(3.1e6 * 70)
    assert _values(r.param_names, r.P)["dose"] == pytest.approx(2.17e8)


def test_cartmath_protocols() -> None:
    """Barros, Paixão et al. 2021 Cancers 13:2941: HDLM-2 T(0)=2e6, 1.5e6 CAR-T at day 42;
    Raji T(0)=3e6, 1e7 CAR-T at day 7."""
    for name, t0, dose, day in (("cartmath-hdlm2", 2e6, 1.5e6, 42.0), ("cartmath-raji", 3e6, 1e7, 7.0)):
        r = resolve(load_scenario(name))
        assert _values(r.species_names, r.y0)["T"] == t0
        assert r.dose_cells == dose and r.dose_time == day
        P = _values(r.param_names, r.P)
        assert P["dose"] == dose and P["t_inf"] == day
    hd = _values(resolve(load_scenario("cartmath-hdlm2")).param_names, resolve(load_scenario("cartmath-hdlm2")).P)
    raji = _values(resolve(load_scenario("cartmath-raji")).param_names, resolve(load_scenario("cartmath-raji")).P)
    assert hd["phi"] == 0.265 and raji["phi"] == 0.83


def test_kimmel_initial_state() -> None:
    """Kimmel et al. 2021: N(0)=6, C(0)=0.36 cells/µL, B(0)=94.86 mL."""
    r = resolve(load_scenario("kimmel2021"))
    y0 = _values(r.species_names, r.y0)
    assert y0 == {"N": 6.0, "C": 0.36, "B": 94.86}
    assert r.dose_cells is None


def test_stein_typical_values() -> None:
    """Stein et al. 2019 Table 1 typical values."""
    r = resolve(load_scenario("stein2019"))
    P = _values(r.param_names, r.P)
    assert P["foldx"] == 3900 and P["Tmax"] == 9.3 and P["Cmax"] == 24000
    assert P["alpha"] == 0.16 and P["FB"] == 0.0079 and P["beta"] == 0.0032


def test_real_model_errors(tmp_path: Path) -> None:
    s = load_scenario("cd19-ball")
    with pytest.raises(ScenarioError) as info:
        with_parameters(s, k_exp="0.9 cell")
    assert str(info.value) == (
        'cd19-ball.toml: parameters.k_exp = "0.9 cell": expected a rate in 1/d; write e.g. "0.9 1/d"'
    )
    bad = tmp_path / "cd19.toml"
    bad.write_text(dump_scenario(s).replace('model = "car_t"', 'model = "car-t"'))
    with pytest.raises(ScenarioError, match='did you mean "car_t"') as info2:
        load_scenario(bad)
    assert "cartmath" in str(info2.value) and "stein2019" in str(info2.value)
    text = dump_scenario(load_scenario("cartmath-raji")).replace('variant = "raji"', 'variant = "daudi"')
    with pytest.raises(ScenarioError, match="model_options") as info3:
        scenario_from_toml(text, source="raji.toml")
    assert "daudi" in str(info3.value)
    text = dump_scenario(load_scenario("stein2019")) + '\n[dosing]\ndose = "1e8 cell"\n'
    with pytest.raises(ScenarioError, match="takes no dose"):
        scenario_from_toml(text)
