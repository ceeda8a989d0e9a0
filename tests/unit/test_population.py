"""Virtual populations: the variability laws, truncation, and per-patient streams."""

import math

import numpy as np
import pytest
from scipy.stats import norm

from livingdrug.trials import Population, PopulationInputError, Variability, sample_population

N = 20_000


def test_lognormal_has_the_nonmem_omega_and_median():
    # NONMEM convention: theta_i = theta_typ * exp(eta), eta ~ N(0, omega^2), omega^2 = ln(1 + CV^2)
    v = Variability("k", cv=0.5)
    x = sample_population([v], {"k": 2.0}, seed=1, patients=range(N))["k"]
    logs = np.log(x)
    omega = math.sqrt(math.log1p(0.25))
    assert abs(logs.mean() - math.log(2.0)) < 5 * omega / math.sqrt(N)
    assert abs(logs.var() - omega**2) < 5 * omega**2 * math.sqrt(2 / N)
    cv = x.std() / x.mean()  # CV of a log-normal is exactly the cv given
    assert abs(cv - 0.5) < 0.03


def test_normal_variability_has_mean_and_sd():
    v = Variability("w", cv=0.2, median=70.0, distribution="normal")
    x = sample_population([v], {}, seed=2, patients=range(N))["w"]
    assert abs(x.mean() - 70.0) < 5 * 14.0 / math.sqrt(N)
    assert abs(x.std() - 14.0) < 5 * 14.0 / math.sqrt(2 * N)


def test_truncation_follows_the_truncated_law_without_piling_up_at_the_bounds():
    v = Variability("w", cv=0.3, median=70.0, lower=60.0, upper=100.0)
    x = sample_population([v], {}, seed=3, patients=range(N))["w"]
    assert x.min() >= 60.0 and x.max() <= 100.0
    assert np.sum(x == 60.0) == 0 and np.sum(x == 100.0) == 0  # inverse CDF, not clipping
    omega = math.sqrt(math.log1p(0.09))
    z = lambda w: math.log(w / 70.0) / omega  # noqa: E731
    a, b, c = norm.cdf(z(60.0)), norm.cdf(z(100.0)), norm.cdf(z(75.0))
    p = (c - a) / (b - a)  # P(w < 75 | 60 <= w <= 100)
    assert abs(np.mean(x < 75.0) - p) < 5 * math.sqrt(p * (1 - p) / N)


def test_patients_draw_from_their_own_streams():
    vs = [Variability("a", cv=0.4), Variability("b", cv=1.0, median=3.0, lower=0.1, upper=30.0)]
    typ = {"a": 1.0}
    whole = sample_population(vs, typ, seed=7, patients=range(100))
    parts = [sample_population(vs, typ, seed=7, patients=r) for r in (range(0, 37), range(37, 100))]
    for k in whole:
        np.testing.assert_array_equal(whole[k], np.concatenate([p[k] for p in parts]))
    other = sample_population(vs, typ, seed=7, patients=range(100), stream=2)
    assert not np.any(other["a"] == whole["a"])  # another purpose, independent draws
    assert not np.array_equal(sample_population(vs, typ, seed=8, patients=range(100))["a"], whole["a"])


def test_zero_cv_gives_the_typical_value():
    x = sample_population([Variability("a", cv=0.0)], {"a": 4.2}, seed=0, patients=range(10))["a"]
    np.testing.assert_array_equal(x, 4.2)


@pytest.mark.parametrize(("kw", "field"), [
    ({"cv": -0.1}, "x.cv"),
    ({"cv": 0.3, "median": -1.0}, "x.median"),
    ({"cv": 0.3, "distribution": "gamma"}, "x.distribution"),
    ({"cv": 0.3, "lower": 5.0, "upper": 1.0}, "x.lower"),
    ({"cv": float("nan")}, "x.cv"),
])
def test_bad_variability_names_the_field(kw, field):
    with pytest.raises(PopulationInputError) as e:
        Variability("x", **kw)
    assert e.value.field == field and "expected" in str(e.value)


def test_bad_population_and_unknown_names():
    with pytest.raises(PopulationInputError, match="population.patients"):
        Population(0)
    with pytest.raises(PopulationInputError, match="listed once"):
        Population(5, (Variability("a", cv=0.1),), (Variability("a", cv=0.1),))
    with pytest.raises(PopulationInputError, match="known: b"):
        sample_population([Variability("a", cv=0.1)], {"b": 1.0}, seed=0, patients=range(3))
    with pytest.raises(PopulationInputError, match="within"):
        sample_population([Variability("a", cv=0.1, lower=2.0)], {"a": 1.0}, seed=0, patients=range(3))


def test_uniform_and_discrete_laws():
    u = sample_population([Variability("a", distribution="uniform", lower=2.0, upper=6.0)], {}, 4, range(N))["a"]
    assert u.min() >= 2.0 and u.max() <= 6.0
    assert abs(u.mean() - 4.0) < 5 * math.sqrt(16 / 12 / N) and abs(u.var() - 16 / 12) < 0.05
    v = Variability("lines", distribution="discrete", values=(1.0, 2.0, 3.0, 4.0), probabilities=(0.4, 0.3, 0.2, 0.1))
    x = sample_population([v], {}, 5, range(N))["lines"]
    for val, p in zip(v.values, v.probabilities, strict=True):
        assert abs(np.mean(x == val) - p) < 5 * math.sqrt(p * (1 - p) / N)
    with pytest.raises(PopulationInputError, match="probabilities"):
        Variability("x", distribution="discrete", values=(1.0, 2.0), probabilities=(0.5, 0.6))
    with pytest.raises(PopulationInputError, match="finite bounds"):
        Variability("x", distribution="uniform", lower=0.0)


def test_correlated_scores_through_a_gaussian_copula():
    pop = Population(N, (Variability("a", cv=0.5), Variability("b", cv=1.0)), correlations=(("a", "b", -0.6),))
    x = sample_population(pop.variables, {"a": 1.0, "b": 3.0}, 6, range(N), correlation=pop.correlation_matrix())
    r = np.corrcoef(np.log(x["a"]), np.log(x["b"]))[0, 1]  # log-normal: scores are the logs
    assert abs(r + 0.6) < 5 * (1 - 0.36) / math.sqrt(N)
    omega = math.sqrt(math.log1p(0.25))
    assert abs(np.log(x["a"]).std() - omega) < 0.01  # margins unchanged
    with pytest.raises(PopulationInputError, match="positive-definite"):
        Population(5, (Variability("a", cv=0.1), Variability("b", cv=0.1), Variability("c", cv=0.1)),
                   correlations=(("a", "b", 0.9), ("b", "c", 0.9), ("a", "c", -0.9)))
    with pytest.raises(PopulationInputError, match="between"):
        Population(5, (Variability("a", cv=0.1),), correlations=(("a", "zz", 0.3),))


def test_covariate_effects_scale_their_parameter():
    from livingdrug.trials.population import Effect, apply_effects

    vals = {"age": np.array([25.0, 50.0, 100.0]), "k": np.array([1.0, 2.0, 3.0])}
    out = apply_effects(vals, [Effect("k", "age", "power", 50.0, -0.5)], {"k": 9.0})
    np.testing.assert_allclose(out["k"], [1.0 * 2**0.5, 2.0, 3.0 / 2**0.5])
    out = apply_effects(vals, [Effect("m", "age", "exponential", 50.0, 0.01)], {"m": 4.0})
    np.testing.assert_allclose(out["m"], 4.0 * np.exp(0.01 * (vals["age"] - 50)))
    with pytest.raises(PopulationInputError, match="positive"):
        apply_effects(vals, [Effect("k", "age", "linear", 50.0, -0.05)], {})
    with pytest.raises(PopulationInputError, match="model"):
        Effect("k", "age", "quadratic", 50.0, 1.0)


def test_a_scenario_population_with_characteristics_effects_and_correlations(tmp_path):
    from livingdrug.comparison import arm_inputs, plan_arm
    from livingdrug.scenarios import (
        ScenarioError,
        dump_scenario,
        load_scenario,
        scenario_from_toml,
        scenario_hash,
    )
    from livingdrug.trial import trial_design

    base = dump_scenario(load_scenario("cd19-ball"))
    extra = """
[population.characteristics.age]
unit = "year"
distribution = "uniform"
lower = 18
upper = 80

[population.characteristics.prior_lines]
unit = "1"
distribution = "discrete"
values = [1, 2, 3, 4]
probabilities = [0.1, 0.4, 0.3, 0.2]

[[population.effects]]
parameter = "k_exp"
covariate = "age"
model = "power"
reference = 50
coefficient = -0.4

[[population.correlations]]
between = ["age", "weight"]
rho = 0.3
"""
    s = scenario_from_toml(base + extra, source="pop.toml")
    again = scenario_from_toml(dump_scenario(s), source="again.toml")
    assert again == s and scenario_hash(again) == scenario_hash(s) != scenario_hash(load_scenario("cd19-ball"))
    c = trial_design(s)
    inp = arm_inputs(c, plan_arm(c, 0, 40), np.arange(40))
    j = s.network.param_names.index("k_exp")
    typ = s.network.param("k_exp").value
    # k_exp = typical x its own log-normal draw x (age/50)^-0.4: undo the effect, recover the draw
    eta = np.log(inp.P[:, j] / typ / (inp.shared["age"] / 50.0) ** -0.4)
    assert np.all(np.abs(eta) < 5 * math.sqrt(math.log1p(0.09)))
    assert set(np.unique(inp.shared["prior_lines"])) <= {1.0, 2.0, 3.0, 4.0}
    bad = base + extra.replace('covariate = "age"', 'covariate = "bmi"')
    with pytest.raises(ScenarioError, match=r"population.effects\[0\].covariate"):
        scenario_from_toml(bad, source="bad.toml")
    bad = base + extra.replace('parameter = "k_exp"', 'parameter = "k_expp"')
    with pytest.raises(ScenarioError, match=r"population.effects\[0\].parameter"):
        scenario_from_toml(bad, source="bad.toml")
