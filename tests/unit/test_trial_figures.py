"""Trial figures (livingdrug.report.trial_figures): each writes a PNG from a synthetic
per-patient table, and what is drawn is checked against closed forms and the shared
statistics helpers (Kaplan & Meier 1958; logistic regression by maximum likelihood)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg", force=True)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

import livingdrug.report.trial_figures as tf  # noqa: E402
from livingdrug.clinical.probability import kaplan_meier  # noqa: E402
from livingdrug.io.results import Batches  # noqa: E402
from livingdrug.report.trial_figures import (  # noqa: E402
    GRADE_COLOURS,
    Rows,
    best_percent_change,
    draw_exposure_response,
    draw_grade_bars,
    draw_kinetics_bands,
    draw_km,
    draw_waterfall,
    exposure_response,
    grade_bars,
    kinetics_bands,
    km_figure,
    logistic_fit,
    logistic_fit_scan,
    number_at_risk,
    waterfall,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _table(n_per_arm: int = 60, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arms = np.repeat(["CAR-T", "CAR-NK"], n_per_arm)
    n = arms.size
    infused = rng.random(n) < 0.85
    cmax = np.where(infused, 10 ** rng.uniform(0, 3, n), np.nan)  # cells/µL
    responded = infused & (rng.random(n) < 1 / (1 + np.exp(-(-2 + 1.8 * np.log10(np.where(infused, cmax, 1))))))
    base = 10 ** rng.uniform(10, 12, n)  # cell
    nadir = np.where(responded, base * 10 ** rng.uniform(-6, -1, n), base * 10 ** rng.uniform(-0.5, 0.6, n))
    grade = lambda p: np.where(infused, rng.choice(6, n, p=p), np.nan).astype(float)  # noqa: E731
    return {
        "arm": arms,
        "patient": np.arange(n, dtype=np.int64),
        "outcome": np.where(infused, "infused", "progression"),
        "responded": responded,
        "tumour_baseline": np.where(infused, base, np.nan),
        "tumour_nadir": np.where(infused, nadir, np.nan),
        "crs_max_grade": grade([0.3, 0.3, 0.2, 0.1, 0.08, 0.02]),
        "icans_max_grade": grade([0.6, 0.2, 0.1, 0.06, 0.04, 0.0]),
        "car_cmax": cmax,
        "efs_day": np.minimum(rng.exponential(300, n), 365.0).round(),
        "efs_event": rng.random(n) < 0.7,
    }


def _is_png(path) -> bool:
    data = path.read_bytes()
    return data[:8] == PNG_MAGIC and len(data) > 5_000


def test_every_writer_produces_a_png(tmp_path):
    tab = _table()
    t = np.linspace(0, 28, 29)
    vals = np.exp(-((t[None, :] - 10) ** 2) / 30) * 10 ** np.random.default_rng(3).uniform(0, 3, (40, 1))
    out = [
        waterfall(tab, tmp_path / "waterfall.png"),
        km_figure(tab, tmp_path / "km.png"),
        grade_bars(tab, tmp_path / "grades.png"),
        exposure_response(tab, tmp_path / "er.png"),
        kinetics_bands(t, vals, tmp_path / "kinetics.png", "CAR-T in blood", "cells/µL"),
    ]
    for p in out:
        assert p.exists() and _is_png(p), p
    assert sorted(x.name for x in tmp_path.iterdir()) == sorted(p.name for p in out)  # no temp files left


def test_best_percent_change_closed_form():
    np.testing.assert_allclose(best_percent_change([100.0, 10.0, 5.0], [0.0, 25.0, 5.0]), [-100.0, 150.0, 0.0])
    out = best_percent_change([np.nan, 0.0, 1.0], [1.0, 1.0, np.nan])
    assert np.all(np.isnan(out))


def test_waterfall_bars_are_sorted_and_coloured_by_response():
    tab = _table()
    fig = draw_waterfall(tab, cap=100.0)
    change = best_percent_change(tab["tumour_baseline"], tab["tumour_nadir"])
    assert np.nanmax(change) > 100  # some increases are capped
    for arm in ("CAR-T", "CAR-NK"):
        bars = [p for ax in fig.axes for p in ax.patches if p.get_gid() == f"waterfall:{arm}"]
        bars.sort(key=lambda b: b.get_x())
        heights = np.array([b.get_height() for b in bars])
        sel = (tab["arm"] == arm) & np.isfinite(change)
        assert heights.size == sel.sum()
        assert np.all(np.diff(heights) <= 0), "bars must go from the largest increase to the deepest reduction"
        expected = np.sort(np.minimum(change[sel], 100.0))[::-1]
        np.testing.assert_allclose(heights, expected, rtol=1e-12)
        # colour: responders green; the responders are the deep reductions here
        resp = tab["responded"][sel][np.argsort(-change[sel], kind="stable")]
        colours = [to_hex(b.get_facecolor()) for b in bars]
        assert colours == ["#228833" if r else "#ee6677" for r in resp]


def test_km_curves_come_from_the_shared_helper():
    tab = _table()
    fig = draw_km(tab)
    ax = fig.axes[0]
    for arm in ("CAR-T", "CAR-NK"):
        (line,) = [ln for ln in ax.lines if ln.get_gid() == f"km:{arm}"]
        m = tab["arm"] == arm
        km = kaplan_meier(tab["efs_day"][m], tab["efs_event"][m])
        np.testing.assert_allclose(line.get_xdata()[1:], km.time)
        np.testing.assert_allclose(line.get_ydata()[1:], km.survival)
        # a value read off the drawn step curve equals the helper's Ŝ(t)
        x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        tq = 120.0
        assert y[np.searchsorted(x, tq, side="right") - 1] == pytest.approx(float(km.at(tq)), rel=1e-12)
        # numbers at risk under the axis
        labels = {t.get_gid(): t.get_text() for t in ax.texts if (t.get_gid() or "").startswith(f"at_risk:{arm}:")}
        assert labels
        for gid, text in labels.items():
            tau = float(gid.rsplit(":", 1)[1])
            assert int(text) == int(np.sum(tab["efs_day"][m] >= tau))


def test_km_without_censoring_is_the_empirical_survival():
    # no censoring: Ŝ(t) = #{T_i > t}/n (Kaplan & Meier 1958)
    d = np.array([3.0, 5.0, 5.0, 8.0, 13.0, 21.0])
    fig = draw_km({"efs_day": d, "efs_event": np.ones(6, bool)}, by=None)
    (line,) = [ln for ln in fig.axes[0].lines if ln.get_gid() == "km:all patients"]
    x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    for t in (0.0, 3.0, 4.0, 5.0, 10.0, 21.0):
        assert y[np.searchsorted(x, t, side="right") - 1] == pytest.approx(np.mean(d > t))


def test_number_at_risk():
    assert number_at_risk([1, 2, 2, 5], [0, 2, 3, 5, 6]).tolist() == [4, 3, 1, 1, 0]


def test_grade_bars_are_percentages_of_the_infused():
    tab = _table()
    fig = draw_grade_bars(tab)
    for col in ("crs_max_grade", "icans_max_grade"):
        for arm in ("CAR-T", "CAR-NK"):
            g = tab[col][(tab["arm"] == arm)]
            g = g[np.isfinite(g)]
            segs = {int(p.get_gid().rsplit(":", 1)[1]): p for ax in fig.axes for p in ax.patches
                    if (p.get_gid() or "").startswith(f"{col}:{arm}:")}
            heights = {k: p.get_height() for k, p in segs.items()}
            assert sum(heights.values()) == pytest.approx(100.0)
            for grade in range(6):
                assert heights.get(grade, 0.0) == pytest.approx(100.0 * np.mean(g == grade))
            for k, p in segs.items():
                assert to_hex(p.get_facecolor()) == GRADE_COLOURS[k]


def test_grade_bars_reject_impossible_grades():
    tab = _table()
    tab["crs_max_grade"] = tab["crs_max_grade"].copy()
    tab["crs_max_grade"][0] = 7.0
    with pytest.raises(ValueError, match="crs_max_grade"):
        draw_grade_bars(tab)


def test_logistic_fit_recovers_known_coefficients():
    # synthetic truth: logit P = -3 + 2·log10(x), log10 x ~ U(0, 3)
    b0, b1, n = -3.0, 2.0, 4000
    rng = np.random.default_rng(20261125)
    lx = rng.uniform(0.0, 3.0, n)
    y = rng.random(n) < 1 / (1 + np.exp(-(b0 + b1 * lx)))
    fit = logistic_fit(10**lx, y)
    assert fit.estimable and fit.converged and fit.n == n
    # standard errors from the Fisher information at the true coefficients
    X = np.column_stack([np.ones(n), lx])
    p = 1 / (1 + np.exp(-(X @ [b0, b1])))
    se_true = np.sqrt(np.diag(np.linalg.inv((X * (p * (1 - p))[:, None]).T @ X)))
    assert abs(fit.intercept - b0) < 4 * se_true[0]
    assert abs(fit.slope - b1) < 4 * se_true[1]
    np.testing.assert_allclose(fit.se, se_true, rtol=0.1)  # observed vs expected information
    assert fit.ec50 == pytest.approx(10 ** (-fit.intercept / fit.slope))


def test_logistic_fit_matches_the_two_group_closed_form():
    # with two exposure levels the MLE reproduces both observed proportions exactly:
    # β1 = (logit p̂2 − logit p̂1)/(x2 − x1), Var = Σ 1/(n_g p̂_g (1 − p̂_g)) / (x2 − x1)²
    x = np.r_[np.full(40, 10.0), np.full(60, 1000.0)]
    y = np.r_[np.arange(40) < 10, np.arange(60) < 45]
    fit = logistic_fit(x, y)
    logit = lambda q: math.log(q / (1 - q))  # noqa: E731
    slope = (logit(45 / 60) - logit(10 / 40)) / 2.0
    np.testing.assert_allclose([fit.intercept, fit.slope], [logit(10 / 40) - slope * 1.0, slope], rtol=1e-6)
    var = (1 / (40 * 0.25 * 0.75) + 1 / (60 * 0.75 * 0.25)) / 4.0
    assert fit.se[1] == pytest.approx(math.sqrt(var), rel=1e-6)


def test_logistic_fit_reports_separation():
    fit = logistic_fit([1, 2, 3, 10, 20, 30], [0, 0, 0, 1, 1, 1])
    assert not fit.estimable and math.isnan(fit.slope)
    assert not logistic_fit([1, 2, 3], [1, 1, 1]).estimable
    # non-positive or missing exposures are left out
    assert logistic_fit([np.nan, 0.0, 1, 10, 100, 1000], [1, 1, 0, 1, 0, 1]).n == 4


def test_exposure_response_draws_the_fitted_curve():
    tab = _table(n_per_arm=150)
    fig = draw_exposure_response(tab)
    ax = fig.axes[0]
    (line,) = [ln for ln in ax.lines if ln.get_gid() == "logistic"]
    fit = logistic_fit(tab["car_cmax"], tab["responded"])
    np.testing.assert_allclose(line.get_ydata(), fit.predict(line.get_xdata()), rtol=1e-12)
    (pts,) = [ln for ln in ax.lines if ln.get_gid() == "binned"]
    ok = np.isfinite(tab["car_cmax"])
    assert len(pts.get_xdata()) == 5
    # binned proportions average back to the overall response rate, weighted by bin size
    assert 0.0 <= min(pts.get_ydata()) and max(pts.get_ydata()) <= 1.0
    assert np.mean(tab["responded"][ok]) == pytest.approx(
        np.average(pts.get_ydata(), weights=[int(t.get_text()[2:]) for t in ax.texts if t.get_text().startswith("n=")])
    )


def test_kinetics_bands_median_and_failed_rows():
    t = np.linspace(0, 28, 15)
    rng = np.random.default_rng(7)
    vals = 10 ** rng.normal(1, 0.5, (50, 1)) * np.exp(-0.1 * t)[None, :]
    vals[4, 3] = np.nan  # a failed simulation
    fig = draw_kinetics_bands(t, vals, "CAR-T in blood", "cells/µL")
    ax = fig.axes[0]
    (med,) = [ln for ln in ax.lines if ln.get_gid() == "median"]
    np.testing.assert_allclose(med.get_ydata(), np.median(np.delete(vals, 4, axis=0), axis=0), rtol=1e-12)
    assert "49 virtual patients; 1 failed" in ax.get_title()
    assert ax.get_yscale() == "log"
    with pytest.raises(ValueError, match=r"expected values \(n, 15\)"):
        draw_kinetics_bands(t, vals[:, :5], "CAR-T in blood", "cells/µL")


def test_missing_column_is_named():
    tab = _table()
    del tab["tumour_nadir"]
    with pytest.raises(ValueError, match="no column 'tumour_nadir'"):
        draw_waterfall(tab)


def test_a_large_waterfall_is_two_step_patches_with_the_same_bars(monkeypatch):
    """Above MAX_BARS patients a panel holds two filled step patches (responders, the others)
    instead of a patch per patient; bar by bar they hold the sorted, capped changes, each in its
    own colour's patch and 0 in the other's."""
    import livingdrug.report.trial_figures as tf

    monkeypatch.setattr(tf, "MAX_BARS", 50)
    tab = _table(n_per_arm=80)
    fig = draw_waterfall(tab, cap=100.0)
    change = best_percent_change(tab["tumour_baseline"], tab["tumour_nadir"])
    for arm in ("CAR-T", "CAR-NK"):
        assert not [p for ax in fig.axes for p in ax.patches if p.get_gid() == f"waterfall:{arm}"]
        (yes,) = [p for ax in fig.axes for p in ax.patches if p.get_gid() == f"waterfall:{arm}:responded"]
        (no,) = [p for ax in fig.axes for p in ax.patches if p.get_gid() == f"waterfall:{arm}:no response"]
        sel = (tab["arm"] == arm) & np.isfinite(change)
        order = np.argsort(-change[sel], kind="stable")
        expected = np.minimum(change[sel][order], 100.0)
        resp = tab["responded"][sel][order]

        m = int(sel.sum())
        v_yes, v_no = (_step_values_at_bars(patch, m) for patch in (yes, no))
        np.testing.assert_allclose(np.where(resp, v_yes, v_no), expected, rtol=1e-12)
        assert np.all(np.where(resp, v_no, v_yes) == 0.0)
        assert to_hex(yes.get_facecolor()) == "#228833" and to_hex(no.get_facecolor()) == "#ee6677"


def _step_values_at_bars(patch, m):
    """A waterfall step patch read at the centres of its m bars (equal runs are one step)."""
    v, edges, _ = patch.get_data()
    assert edges[0] == -0.5 and edges[-1] == m - 0.5
    return v[np.searchsorted(edges, np.arange(m), side="right") - 1]


# ---------------------------------------------------------------------------------------------
# read a batch at a time: the same pictures from a Parquet file in small batches, and bounded
# reductions above the per-patient limits
# ---------------------------------------------------------------------------------------------


def _parquet(tab: dict[str, np.ndarray], path) -> object:
    pq.write_table(pa.table({k: pa.array(v) for k, v in tab.items()}), path)
    return path


def _artists(fig) -> list:
    """Every drawn artist's data (lines, patches, collections, texts), in drawing order."""
    out = []
    for ax in fig.axes:
        out.append(("title", ax.get_title(), ax.get_xlim(), ax.get_ylim()))
        for ln in ax.lines:
            out.append(("line", ln.get_gid(), ln.get_label(), np.asarray(ln.get_xdata(), float).tolist(),
                        np.asarray(ln.get_ydata(), float).tolist()))
        for p in ax.patches:
            if hasattr(p, "get_data"):
                v, e, _ = p.get_data()
                out.append(("step", p.get_gid(), np.asarray(v).tolist(), np.asarray(e).tolist(),
                            to_hex(p.get_facecolor())))
            else:
                out.append(("patch", p.get_gid(), np.asarray(p.get_path().vertices).tolist(),
                            p.get_transform().transform(p.get_path().vertices).tolist(), to_hex(p.get_facecolor())))
        for c in ax.collections:
            out.append(("collection", [np.asarray(q.vertices).tolist() for q in c.get_paths()]))
        for t in ax.texts:
            out.append(("text", t.get_gid(), t.get_text(), t.get_position()))
    out.append(("suptitle", fig._suptitle.get_text() if fig._suptitle is not None else None))
    plt.close(fig)
    return out


def test_km_from_batches_is_the_in_memory_figure(tmp_path):
    tab = _table()
    path = _parquet(tab, tmp_path / "t.parquet")
    mem = draw_km(tab)
    ax = mem.axes[0]
    for arm in ("CAR-T", "CAR-NK"):
        (line,) = [ln for ln in ax.lines if ln.get_gid() == f"km:{arm}"]
        m = tab["arm"] == arm
        km = kaplan_meier(tab["efs_day"][m], tab["efs_event"][m])
        assert np.array_equal(line.get_xdata()[1:], km.time) and np.array_equal(line.get_ydata()[1:], km.survival)
        # censor marks: each distinct censoring time at Ŝ there
        cens = np.unique(tab["efs_day"][m][~tab["efs_event"][m]])
        (marks,) = [ln for ln in ax.lines if ln.get_marker() == "+" and to_hex(ln.get_color()) == to_hex(line.get_color())]
        np.testing.assert_array_equal(marks.get_xdata(), cens)
        np.testing.assert_array_equal(marks.get_ydata(), km.at(cens))
    assert _artists(mem) == _artists(draw_km(Batches(path, rows=7)))
    assert _artists(draw_km(tab, by=None)) == _artists(draw_km(Batches(path, rows=7), by=None))


def test_waterfall_grades_and_exposure_from_batches_are_the_in_memory_figures(tmp_path):
    tab = _table(n_per_arm=150)
    path = _parquet(tab, tmp_path / "t.parquet")
    for draw in (draw_waterfall, draw_grade_bars, draw_exposure_response):
        assert _artists(draw(tab)) == _artists(draw(Batches(path, rows=7))), draw.__name__
        assert _artists(draw(tab)) == _artists(draw(Rows(path, rows=7))), draw.__name__


def test_rows_filter_and_label_without_a_relabelled_column(tmp_path):
    tab = _table()
    path = _parquet(tab, tmp_path / "t.parquet")
    inf = tab["outcome"] == "infused"
    sub = {k: v[inf] for k, v in tab.items()}
    rows = Rows(path, where={"outcome": "infused"}, labels={"CAR-T": "T", "CAR-NK": "NK"}, rows=5)
    fig = draw_km(rows)
    gids = sorted(ln.get_gid() for ln in fig.axes[0].lines if ln.get_gid())
    assert gids == ["km:NK", "km:T"]
    relabelled = dict(sub, arm=np.where(sub["arm"] == "CAR-T", "T", "NK"))
    assert _artists(fig) == _artists(draw_km(relabelled))
    assert sum(len(b["patient"]) for b in rows(["patient"])) == int(inf.sum())
    assert all(len(b["patient"]) <= 5 for b in rows(["patient"]))


def test_a_binned_waterfall_has_exact_counts_and_order_statistics(monkeypatch, tmp_path):
    """Above WATERFALL_BINS patients a panel's bins are consecutive ranks drawn at the change of
    their first (largest) patient, responders first within the bin (and within equal changes)."""
    monkeypatch.setattr(tf, "MAX_BARS", 10)
    monkeypatch.setattr(tf, "WATERFALL_BINS", 16)
    tab = _table(n_per_arm=300, seed=4)
    # ties: changes rounded to whole percent, some of them shared by responders and the others
    change = best_percent_change(tab["tumour_baseline"], tab["tumour_nadir"])
    tab["tumour_nadir"] = tab["tumour_baseline"] * (1 + np.round(np.clip(change, -100, 300) / 25) * 25 / 100)
    tab["responded"] = tab["responded"] | (np.arange(tab["arm"].size) % 7 == 0)
    change = best_percent_change(tab["tumour_baseline"], tab["tumour_nadir"])
    path = _parquet(tab, tmp_path / "t.parquet")
    fig = draw_waterfall(tab, cap=100.0)
    for ax, arm in zip(fig.axes, ("CAR-T", "CAR-NK"), strict=True):
        sel = (tab["arm"] == arm) & np.isfinite(change)
        c, r = change[sel], tab["responded"][sel]
        n = int(sel.sum())
        assert n > 16
        capped = int(np.sum(c > 100))
        assert ax.get_title() == f"{arm}: {n} patients, {int(r.sum())} responded; {capped} above +100 % drawn at the cap"
        order = np.lexsort((~r, -c))  # by descending change, responders first among equals
        c, r = c[order], r[order]
        w = -(-n // 16)
        bins = np.arange(n) // w
        first = np.minimum(c[::w], 100.0)  # each bin's first member: an exact order statistic
        resp = np.bincount(bins, weights=r).astype(int)
        in_bin = np.arange(n) - bins * w
        expected_yes = np.where(in_bin < resp[bins], first[bins], 0.0)
        expected_no = np.where(in_bin < resp[bins], 0.0, first[bins])
        (yes,) = [a for a in ax.patches if a.get_gid() == f"waterfall:{arm}:responded"]
        (no,) = [a for a in ax.patches if a.get_gid() == f"waterfall:{arm}:no response"]
        for patch, want in ((yes, expected_yes), (no, expected_no)):
            v, edges, _ = patch.get_data()
            assert v.size <= 2 * 16 and edges[0] == -0.5 and edges[-1] == n - 0.5
            np.testing.assert_array_equal(v[np.searchsorted(edges, np.arange(n), side="right") - 1], want)
        # the drawn heights are values of the data (order statistics), not averages
        assert set(np.unique(yes.get_data()[0][yes.get_data()[0] != 0])) <= set(np.minimum(c, 100.0))
    assert "bins of consecutive patients" in fig._suptitle.get_text()
    assert _artists(fig) == _artists(draw_waterfall(Batches(path, rows=7), cap=100.0))


def test_logistic_fit_from_batches_equals_the_in_memory_fit(tmp_path):
    rng = np.random.default_rng(11)
    n = 5000
    lx = rng.uniform(0.0, 3.0, n)
    x = 10**lx
    x[::97] = np.nan  # left out
    y = rng.random(n) < 1 / (1 + np.exp(-(-2.5 + 1.7 * lx)))
    path = _parquet({"car_cmax": x, "responded": y}, tmp_path / "t.parquet")
    mem = logistic_fit(x, y)
    b = Batches(path, rows=7)

    def scan():
        for batch in b(["car_cmax", "responded"]):
            yield batch["car_cmax"].astype(float), batch["responded"].astype(float)[None, :]

    got = logistic_fit_scan(scan)
    assert got.estimable and got.converged and (got.n, got.responders) == (mem.n, mem.responders)
    np.testing.assert_allclose([got.intercept, got.slope], [mem.intercept, mem.slope], rtol=1e-10)
    np.testing.assert_allclose(got.cov, mem.cov, rtol=1e-10)
    # the maximum-likelihood estimate: the score vanishes there
    ok = np.isfinite(x)
    X = np.column_stack([np.ones(ok.sum()), lx[ok]])
    p = 1 / (1 + np.exp(-(X @ [mem.intercept, mem.slope])))
    assert np.max(np.abs(X.T @ (y[ok] - p))) < 1e-8 * ok.sum()
    assert "Newton" in mem.method
    # the figure's fitted curve is this fit
    fig = draw_exposure_response(Batches(path, rows=7))
    (line,) = [ln for ln in fig.axes[0].lines if ln.get_gid() == "logistic"]
    np.testing.assert_allclose(line.get_ydata(), mem.predict(line.get_xdata()), rtol=1e-10)
    plt.close(fig)


def test_exposure_bins_are_exact_quantile_bins_with_exact_medians():
    tab = _table(n_per_arm=150)
    fig = draw_exposure_response(tab, bins=4)
    ax = fig.axes[0]
    x, y = tab["car_cmax"], tab["responded"].astype(float)
    ok = np.isfinite(x)
    x, y = x[ok], y[ok]
    edges = np.unique(np.quantile(np.log10(x), np.linspace(0, 1, 5)))
    idx = np.clip(np.searchsorted(edges, np.log10(x), side="right") - 1, 0, edges.size - 2)
    (pts,) = [ln for ln in ax.lines if ln.get_gid() == "binned"]
    np.testing.assert_allclose(np.asarray(pts.get_xdata(), float), [np.median(x[idx == b]) for b in range(4)], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(pts.get_ydata(), float), [np.mean(y[idx == b]) for b in range(4)], rtol=1e-12)
    assert [t.get_text() for t in ax.texts if t.get_text().startswith("n=")] == [
        f"n={int(np.sum(idx == b))}" for b in range(4)]
    plt.close(fig)


def test_exposure_ticks_are_a_bounded_subset_of_the_exposures(monkeypatch):
    monkeypatch.setattr(tf, "RUG_POINTS", 40)
    tab = _table(n_per_arm=150)
    fig = draw_exposure_response(tab)
    (rug,) = [ln for ln in fig.axes[0].lines if ln.get_marker() == "|"]
    xs, ys = np.asarray(rug.get_xdata()), np.asarray(rug.get_ydata())
    assert 0 < xs.size <= 41
    ok = np.isfinite(tab["car_cmax"])
    for flag, sign in ((True, ys > 0.5), (False, ys < 0.5)):
        pool = np.sort(tab["car_cmax"][ok & (tab["responded"] == flag)])
        assert np.all(np.isin(xs[sign], pool))  # exact exposures of patients with that outcome
        assert xs[sign].min() == pool[0] and xs[sign].max() == pool[-1]
    plt.close(fig)


def test_grade_errors_read_in_batches(tmp_path):
    tab = _table()
    tab["crs_max_grade"] = tab["crs_max_grade"].copy()
    tab["crs_max_grade"][-1] = 2.5
    with pytest.raises(ValueError, match=r"column .crs_max_grade. holds .*2\.5"):
        draw_grade_bars(Batches(_parquet(tab, tmp_path / "t.parquet"), rows=7))
    with pytest.raises(ValueError, match="no column 'car_cmax'"):
        draw_exposure_response(Batches({"responded": np.ones(3, bool)}))
    assert not math.isnan(logistic_fit([1.0, 10, 100, 1000], [0, 1, 0, 1]).slope)
