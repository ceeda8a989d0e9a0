"""The ensemble pipeline: inputs it refuses, engine dispatch, failures, memory limit, sweeps."""

from __future__ import annotations

import json
import math
import sys
import types

import numpy as np
import pytest
from ensemble_models import MODELS, Spec, bd_toml

import livingdrug as ld
from livingdrug import ensemble
from livingdrug.ensemble import (
    ENGINE_TABLE,
    apply_sweep_value,
    draw_count,
    estimate_exact_firings,
    parse_sweep,
    sweep_values,
)
from livingdrug.network import (
    At,
    Event,
    Network,
    Observable,
    Reaction,
    Species,
    compile_network,
    sym,
)
from livingdrug.params import Param
from livingdrug.scenarios import (
    ScenarioError,
    dump_scenario,
    load_scenario,
    scenario_from_toml,
    with_engine,
)


def _bd(**kw):
    return scenario_from_toml(bd_toml(**kw), source="bd.toml", models=MODELS)


def test_hopeless_exact_run_is_refused_with_a_recommendation() -> None:
    # the default patient without the toxicity block (cytokines are concentrations, not counts)
    text = dump_scenario(load_scenario("cd19-ball")).replace("[patient]", "[model_options]\ntoxicity = false\n\n[patient]", 1)
    s = with_engine(scenario_from_toml(text, source="cd19-ball.toml"), "ssa")
    with pytest.raises(ScenarioError) as e:
        ld.simulate(s, replicates=10)
    msg = str(e.value)
    assert e.value.field == "simulation.engine" and "--engine hybrid" in msg and "--engine tau" in msg
    assert "firings" in msg and "cd19-ball.toml" in msg


def test_firing_estimate_counts_the_dose() -> None:
    """a0 = (λ + μ)·n: 1.5/d × 2 cells at the start; a dose event of 1000 cells at t = 1 d
    raises it to 1.5 × 1002 /d over the 10-day run."""
    n = sym("n")
    net = Network(
        "dosed_bd",
        species=(Species("n", "cell", 2.0),),
        params=(Param("lam", 1.0, "1/d"), Param("mu", 0.5, "1/d")),
        reactions=(Reaction("b", {"n": 1}, sym("lam") * n), Reaction("d", {"n": -1}, sym("mu") * n)),
        events=(Event("dose", At(1.0), {"n": n + 1000.0}),),
    )
    a0, firings = estimate_exact_firings(compile_network(net), [2.0], [1.0, 0.5], 0.0, 10.0)
    assert a0 == pytest.approx(1.5 * 1002) and firings == pytest.approx(1.5 * 1002 * 10)
    a0, _ = estimate_exact_firings(compile_network(net), [2.0], [1.0, 0.5], 0.0, 0.5)  # dose after the end
    assert a0 == pytest.approx(3.0)


def test_guard_limit_can_be_set() -> None:
    s = _bd(days=12, replicates=50)
    with pytest.raises(ScenarioError, match="firings"):
        ld.simulate(s, max_exact_firings=10.0)
    r = ld.simulate(s)
    est = r.summary["firing_estimate"]
    assert est["per_replicate"] == pytest.approx(1.5 * 2 * 12) and est["total"] == pytest.approx(50 * 36)


def test_non_integer_initial_counts_are_refused_naming_the_species() -> None:
    """Kimmel 2021 is written in cells/µL: 0.36 CAR-T cells/µL is no number of cells."""
    s = with_engine(load_scenario("kimmel2021"), "tau")
    with pytest.raises(ScenarioError) as e:
        ld.simulate(s, replicates=5)
    assert e.value.field == "initial.C" and "0.36" in str(e.value) and "whole number" in str(e.value)


def test_initial_counts_are_rounded_when_immaterial() -> None:
    net = MODELS["bd_tumour"].build()
    y = ensemble.integer_counts(net, [2.02])
    assert y.tolist() == [2.0]
    with pytest.raises(ScenarioError, match="initial.n"):
        ensemble.integer_counts(net, [2.5])


def _half_cell_model() -> Network:
    """Cells with a death rate law μ(n − 1.5) that turns negative at one cell (a failed
    replicate whenever the count reaches 1), births λn, and an event adding half a cell at
    t = 0.5 d (the engines round it; the ensemble warns about the fraction)."""
    n = sym("n")
    return Network(
        "half_cell",
        species=(Species("n", "cell", 3.0),),
        params=(Param("mu", 1.0, "1/d"), Param("lam", 1.0, "1/d")),
        reactions=(Reaction("d", {"n": -1}, sym("mu") * (n - 1.5)),
                   Reaction("b", {"n": 1}, sym("lam") * n)),
        observables=(Observable("tumour", n, "cell", role="tumour_total"),),
        events=(Event("half", At(0.5), {"n": n + 0.5}),),
    )


def test_failed_replicates_are_counted_listed_and_excluded() -> None:
    models = {"half_cell": Spec("half_cell", _half_cell_model)}
    toml = 'name = "h"\nmodel = "half_cell"\n[simulation]\ndays = 5\nengine = "ssa"\nreplicates = 40\nseed = 4\n'
    r = ld.simulate(scenario_from_toml(toml, models=models), chunk_size=6)
    s = r.summary
    assert s["failed"] > 0 and s["ok"] + s["failed"] == 40
    assert s["probabilities"]["cure"]["trials"] == s["ok"]
    failed = r.endpoints[r.endpoints["status"] != 0]
    assert len(failed) == s["failed"] == len(s["failed_replicates"])
    listed = {f["replicate"] for f in s["failed_replicates"]}
    assert listed == set(failed["replicate"].tolist())
    for f in s["failed_replicates"]:  # messages name the replicate's index in the whole run
        assert f["message"].startswith(f"replicate {f['replicate']}: ") and "negative" in f["message"]
    assert any("half" in w and "0.5" in w for w in s["warnings"])


def test_engine_table_dispatches_hybrid_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def solve_hybrid(compiled, y0, P, t_eval, *, seed, replicates=None, replicate_offset=0, t0=None,
                     threshold=100.0, rtol=1e-6, atol=1e-6, max_events=10**8, parallel=True):
        calls.append({"threshold": threshold, "rtol": rtol, "atol": atol, "offset": replicate_offset})
        return ld.solve_ssa(compiled, y0, P, t_eval, seed=seed, replicates=replicates,
                            replicate_offset=replicate_offset, t0=t0)

    fake = types.ModuleType("livingdrug.engines.hybrid")
    fake.solve_hybrid = solve_hybrid  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "livingdrug.engines.hybrid", fake)
    text = bd_toml(days=6, engine="hybrid", replicates=30).replace("[simulation]", "[simulation]\nhybrid_threshold = \"250 cell\"\nrtol = 1e-5")
    r = ld.simulate(scenario_from_toml(text, models=MODELS), chunk_size=16)
    assert [c["offset"] for c in calls] == [0, 16]
    assert calls[0]["threshold"] == 250.0 and calls[0]["rtol"] == 1e-5 and calls[0]["atol"] == 1e-9
    assert r.manifest["engine"]["engine"] == "hybrid" and r.manifest["engine"]["threshold"] == 250.0
    ssa = ld.simulate(_bd(days=6, replicates=30))  # the fake delegates to the SSA: same streams
    assert np.array_equal(r.dataset["tumour"].values, ssa.dataset["tumour"].values)


def test_missing_engine_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ENGINE_TABLE, "hybrid", ENGINE_TABLE["hybrid"].__class__(
        "livingdrug.engines.no_such_engine", "solve_hybrid", "missing", lambda rs: {}))
    with pytest.raises(ScenarioError) as e:
        ld.simulate(_bd(engine="hybrid", replicates=3))
    assert e.value.field == "simulation.engine" and 'use engine "tau"' in str(e.value)


def test_trajectory_memory_limit_keeps_a_subsample_and_bands() -> None:
    s = _bd(days=10, replicates=100)
    full = ld.simulate(s)
    r = ensemble.run_ensemble(s, max_trajectory_values=11 * 30)  # 11 times × 1 observable × 30
    assert r.dataset.sizes["replicate"] == 30 and r.summary["trajectories_kept"] == 30
    assert len(r.endpoints) == 100 and r.endpoints.equals(full.endpoints)
    expected = np.quantile(full.dataset["tumour"].values[:30], 0.5, axis=0)
    assert np.array_equal(r.bands["tumour"].sel(quantile=0.5).values, expected)
    # the extinct fraction is over all replicates, not only the kept ones
    assert np.array_equal(r.bands["p_extinct"].values, full.bands["p_extinct"].values)


def test_ode_scenarios_still_return_a_simulation_result() -> None:
    r = ld.simulate("kimmel2021", days=20)
    assert isinstance(r, ld.SimulationResult) and r.manifest["engine"]["engine"] == "ode"


def test_replicates_are_written_into_the_manifest_scenario() -> None:
    r = ld.simulate(_bd(replicates=10), replicates=12, seed=9)
    assert len(r.endpoints) == 12
    toml = r.manifest["scenario"]["toml"]
    assert "replicates = 12" in toml and "seed = 9" in toml and 'engine = "ssa"' in toml
    assert json.loads(r.dataset.attrs["engine_settings"])["replicates"] == 12


@pytest.mark.parametrize("lam", [0.05, 0.7, 3.0])
def test_zero_truncated_poisson_draws(lam: float) -> None:
    """Mean λ/(1 − e^{−λ}) and P(K = 1) = λe^{−λ}/(1 − e^{−λ}) of the zero-truncated law."""
    rng = np.random.default_rng(123)
    n = 20000
    k = np.array([draw_count(rng, lam, at_least_one=True) for _ in range(n)])
    assert k.min() >= 1
    mean = lam / -math.expm1(-lam)
    var = mean * (1 + lam - mean)
    assert abs(k.mean() - mean) < 4.5 * math.sqrt(var / n)
    p1 = lam * math.exp(-lam) / -math.expm1(-lam)
    assert abs((k == 1).mean() - p1) < 4.5 * math.sqrt(p1 * (1 - p1) / n)
    plain = np.array([draw_count(rng, lam, at_least_one=False) for _ in range(n)])
    assert abs(plain.mean() - lam) < 4.5 * math.sqrt(lam / n)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("dose=1e6:1e9:cubic:7", "'cubic' is neither"),
        ("dose=1e6:1e9:log", "four fields"),
        ("dose", "NAME=LO:HI"),
        ("dose=abc:1:log:3", "NAME=LO:HI"),
        ("dose=1e9:1e6:log:7", "must be smaller"),
        ("dose=0:1e6:log:7", "LO > 0"),
        ("dose=1:2:lin:1", "between 2 and 50"),
        ("dose=1:2:lin:500", "between 2 and 50"),
    ],
)
def test_bad_sweep_text_names_the_value_and_the_form(text: str, needle: str) -> None:
    with pytest.raises(ScenarioError) as e:
        parse_sweep(text)
    msg = str(e.value)
    assert needle in msg and "NAME=LO:HI:log|lin:N" in msg and f'--sweep = "{text}"' in msg, msg


def test_sweep_values_and_targets() -> None:
    spec = parse_sweep("dose=1e6:1e9:log:7")
    v = sweep_values(spec)
    assert v[0] == 1e6 and v[-1] == 1e9 and np.allclose(np.diff(np.log10(v)), 0.5)
    assert sweep_values(parse_sweep("k=0:1:lin:5")).tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    s = load_scenario("cd19-ball")
    d, kind, unit = apply_sweep_value(s, "dose", 3e8)
    assert d.dose_cells == 3e8 and kind == "parameter" and unit == "cell"
    k, kind, unit = apply_sweep_value(s, "k_kill", 8.0)
    assert k.parameters["k_kill"] == 8.0 and unit == "1/d"
    i, kind, _ = apply_sweep_value(s, "L_M", 1e9)
    assert kind == "initial" and i.initial["L_M"] == 1e9
    with pytest.raises(ScenarioError, match='did you mean "k_kill"'):
        apply_sweep_value(s, "k_kil", 1.0)
    with pytest.raises(ScenarioError, match="dosing.time"):
        apply_sweep_value(s, "t_inf", 1.0)
    with pytest.raises(ScenarioError, match="parameters.k_kill"):
        apply_sweep_value(s, "k_kill", 1e3)  # outside the parameter's bounds


def test_sweep_needs_a_stochastic_engine() -> None:
    with pytest.raises(ScenarioError, match="stochastic engine"):
        ld.sweep("kimmel2021", "r_B=0.01:0.1:log:3")


def test_partial_summary_of_a_sweep_covers_the_finished_chunks() -> None:
    s = _bd(days=5, replicates=20)
    chunks: list[ensemble.ChunkReport] = []
    ld.sweep(s, "n=1:2:lin:2", chunk_size=8, on_chunk=chunks.append)
    assert [(c.value_index, c.first, c.count) for c in chunks] == [(0, 0, 8), (0, 8, 8), (0, 16, 4), (1, 0, 8), (1, 8, 8), (1, 16, 4)]
    assert [c.done for c in chunks] == [8, 16, 20, 28, 36, 40] and chunks[0].total == 40
    part = ensemble.partial_summary(s, chunks[:4], sweep="n=1:2:lin:2")
    assert part["partial"] and part["values_reached"] == 2 and part["replicates"] == 28
    assert part["per_value"][0]["replicates"] == 20 and part["per_value"][0]["partial"] is True
    assert part["per_value"][1]["replicates"] == 8 and part["per_value"][1]["replicates_requested"] == 20


def test_clone_outputs_hook(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from livingdrug.report import ensemble_figures, figures

    r = ld.simulate(_bd(days=5, replicates=10))
    assert ensemble_figures._clone_outputs(r) == {}
    assert ensemble_figures._clone_outputs(r, tmp_path) == {}  # no meta["clones"]
    net = replace(r.network, meta={"clones": {"a": ["n"]}})
    ds = r.dataset.assign(clone_a=r.dataset["tumour"])
    with_clones = replace(r, network=net, dataset=ds)
    seen = {}

    def fake(t, sizes, names, **kw):  # noqa: ANN001, ANN003, ANN202
        import matplotlib.pyplot as plt

        seen.update(sizes=sizes, names=names, kw=kw)
        return plt.figure()

    monkeypatch.setattr(figures, "clone_composition_figure", fake, raising=False)
    out = ensemble_figures._clone_outputs(with_clones, tmp_path)
    assert list(out) == ["clone_composition.png"] and out["clone_composition.png"].exists()
    assert seen["names"] == ["a"] and seen["sizes"].shape == (6, 1)  # (time, clone)
    assert np.array_equal(seen["sizes"][:, 0], r.dataset["tumour"].values.mean(axis=0))  # mean over replicates
