"""The CRS/ICANS figure zooms to the toxicity episode (report.figures.toxicity_window).

A 365-day run shows a days-long CRS episode (ASTCT grades, Lee DW et al. 2019 Biol Blood
Marrow Transplant 25:625) as a sliver, so the x-axis is cut to
[t0, max(t_dose + 30 d, last grade >= 1 + 7 d)], clipped to the run.
"""

import numpy as np
import pytest

from livingdrug.report.figures import toxicity_figure, toxicity_window

T = np.arange(-6.0, 365.25, 0.25)


def _grade(on: float, off: float) -> np.ndarray:
    return ((T >= on) & (T < off)).astype(float)


def test_window_is_thirty_days_after_infusion_for_a_short_episode():
    assert toxicity_window(T, {"crs_grade": _grade(3.0, 12.0)}, t_dose=0.0) == (-6.0, 30.0)


def test_window_extends_a_week_past_the_last_grade():
    g = {"crs_grade": _grade(3.0, 12.0), "icans_grade": 2 * _grade(5.0, 40.0)}
    lo, hi = toxicity_window(T, g, t_dose=0.0)
    assert lo == -6.0 and hi == pytest.approx(39.75 + 7.0)


def test_window_is_clipped_to_the_run_and_needs_times():
    short = T[T <= 20.0]
    assert toxicity_window(short, {"crs_grade": _grade(3.0, 12.0)[: short.size]}, t_dose=0.0) == (-6.0, 20.0)
    with pytest.raises(ValueError, match="t is empty"):
        toxicity_window(np.array([]), {}, t_dose=0.0)


def test_figure_axis_is_zoomed_and_says_so():
    fig = toxicity_figure(T, {"crs_grade": _grade(3.0, 12.0)}, t_dose=0.0)
    ax = fig.axes[0]
    assert ax.get_xlim() == pytest.approx((-6.0, 30.0))
    assert "zoomed to the toxicity window" in fig.axes[-1].get_xlabel()
    full = toxicity_figure(T, {"crs_grade": _grade(3.0, 12.0)}, t_dose=0.0, zoom=False)
    assert full.axes[0].get_xlim()[1] > 300.0 and "zoomed" not in full.axes[-1].get_xlabel()
