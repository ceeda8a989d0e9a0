"""The monitoring-CSV reader: encodings of devices, drugs and therapy, and time handling.
Grading rules: Lee DW et al. 2019, Biol Blood Marrow Transplant 25:625 (ASTCT)."""

import math

import numpy as np
import pytest

from livingdrug.clinical.grading import grade_signs
from livingdrug.io.monitoring import O2_DEVICES, MonitoringError, read_monitoring


def _read(tmp_path, text, name="m.csv", encoding="utf-8"):
    f = tmp_path / name
    f.write_bytes(text.encode(encoding))
    return read_monitoring(f)


@pytest.mark.parametrize(
    "device,flow,level,crs",
    [
        ("none", "0", 0, 1),
        ("nasal_cannula", "6", 1, 2),
        ("nasal_cannula", "6.1", 2, 3),  # > 6 L/min on a cannula is high-flow (Lee 2019)
        ("nasal_cannula", "", 1, 2),
        ("blow_by", "", 1, 2),
        ("high_flow", "40", 2, 3),
        ("facemask", "8", 2, 3),
        ("non_rebreather", "15", 2, 3),
        ("venturi", "10", 2, 3),
        ("cpap", "", 3, 4),
        ("bipap", "", 3, 4),
        ("mechanical_ventilation", "", 3, 4),
        ("Nasal_Cannula", "2", 1, 2),  # names are case-insensitive
    ],
)
def test_every_oxygen_device(tmp_path, device, flow, level, crs):
    d = _read(tmp_path, f"time,temperature_c,o2_device,o2_flow_l_min\n0,38.5,{device},{flow}\n")
    assert d.signs["o2_level"][0] == level
    assert int(grade_signs(d.signs)["crs_grade"][0]) == crs
    assert set(O2_DEVICES) >= {device.lower()}


@pytest.mark.parametrize(
    "drugs,n,vp,crs",
    [
        ("", 0, 0, 2),
        ("none", 0, 0, 2),
        ("norepinephrine", 1, 0, 3),
        ("noradrenaline;norepinephrine", 1, 0, 3),  # one drug under two names
        ("vasopressin", 0, 1, 3),  # vasopressin alone: a vasopressor, grade 3
        ("norepinephrine; vasopressin", 1, 1, 3),  # "with or without vasopressin": 3
        ("norepinephrine;epinephrine", 2, 0, 4),
        ("adrenaline;phenylephrine;vasopressin", 2, 1, 4),
        ("Dopamine;ANGIOTENSIN_II", 2, 0, 4),
    ],
)
def test_vasopressor_lists(tmp_path, drugs, n, vp, crs):
    d = _read(tmp_path, f'time,temperature_c,sbp_mmhg,vasopressors\n0,38.5,85,"{drugs}"\n')
    assert (d.signs["vasopressors_n"][0], d.signs["vasopressin"][0]) == (n, vp)
    assert int(grade_signs(d.signs)["crs_grade"][0]) == crs


def test_absent_columns_are_not_recorded(tmp_path):
    d = _read(tmp_path, "time,ice_score\n0,8\n")
    assert np.isnan(d.signs["vasopressors_n"]).all() and np.isnan(d.signs["temperature_c"]).all()
    g = grade_signs(d.signs)
    assert int(g["icans_grade"][0]) == 1 and int(g["crs_grade"][0]) == 0


def test_therapy_once_given_stays_given(tmp_path):
    d = _read(
        tmp_path,
        "time,temperature_c,sbp_mmhg,antipyretic_or_anticytokine\n"
        "0,38.5,120,\n1,38.5,120,false\n2,39,85,yes\n3,37,85,\n4,37,85,true\n",
    )
    np.testing.assert_array_equal(d.signs["anticytokine_given"][1:], [0, 1, 1, 1])
    assert math.isnan(d.signs["anticytokine_given"][0])
    # afebrile hypotension after tocilizumab is still CRS grade 2 (fever no longer required)
    np.testing.assert_array_equal(grade_signs(d.signs)["crs_grade"], [1, 1, 2, 2, 2])


def test_datetimes_become_hours_from_the_first_row(tmp_path):
    d = _read(tmp_path, "time,temperature_c\n2024-05-01T10:00,37\n2024-05-02 22:30,38\n\n2024-05-03T10:00,38\n")
    assert d.time_kind == "datetime"
    np.testing.assert_allclose(d.hours, [0.0, 36.5, 48.0])
    assert d.rows == (2, 3, 5)  # spreadsheet rows: the blank line is row 4


def test_byte_order_mark_and_header_whitespace_are_accepted(tmp_path):
    d = _read(tmp_path, "\ufefftime , Temperature_C\n0,38\n")
    assert d.columns == ("time", "temperature_c") and d.signs["temperature_c"][0] == 38.0


def test_mixed_time_zones_are_an_error(tmp_path):
    with pytest.raises(MonitoringError, match="row 3.*UTC offset"):
        _read(tmp_path, "time,temperature_c\n2024-05-01T10:00,37\n2024-05-01T12:00+02:00,38\n")


def test_duplicate_column_is_an_error(tmp_path):
    with pytest.raises(MonitoringError, match="row 1, column 'temperature_c'.*each column once"):
        _read(tmp_path, "time,temperature_c,temperature_c\n0,37,37\n")


def test_non_utf8_is_an_error(tmp_path):
    with pytest.raises(MonitoringError, match="UTF-8"):
        _read(tmp_path, "time,consciousness\n0,réveil\n", encoding="latin-1")
