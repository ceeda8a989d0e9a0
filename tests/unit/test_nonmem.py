"""NONMEM-style export (livingdrug.io.nonmem): layout conventions of the NONMEM Users Guides
(Beal, Sheiner, Boeckmann & Bauer 1989–2009, Parts V–VI), BLQ methods M1/M3 (Beal 2001,
J Pharmacokinet Pharmacodyn 28:481), round trip through CSV and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livingdrug.io.nonmem import (
    NonmemLayoutError,
    check_nonmem_layout,
    nonmem_table,
    read_nonmem_csv,
    sidecar_path,
    write_nonmem_csv,
)

# one-compartment bolus: C(t) = D/V · exp(−k (t − t_dose)), t in days
V_L = 5.0  # distribution volume (L)
K_PER_D = 0.3  # elimination rate (1/d)


def _one_compartment(t, doses, t_dose=0.0):
    dt = np.asarray(t, float)[None, :] - t_dose
    c = np.asarray(doses, float)[:, None] / V_L * np.exp(-K_PER_D * dt)
    return np.where(dt >= 0, c, 0.0)


T = np.arange(-5.0, 29.0, 1.0)  # d, lymphodepletion at −5, infusion at 0
DOSES = np.array([1e8, 3e8, 5e7, 2e8])  # cell
WT = np.array([70.0, 55.5, 82.0, 64.0])  # kg


def _table(**kw):
    args = dict(
        dose_amounts=DOSES,
        covariates={"wt": WT, "arm": np.array(["CAR-T", "CAR-NK", "CAR-T", "CAR-NK"])},
        covariate_units={"WT": "kg"},
    )
    args.update(kw)
    return nonmem_table(T, _one_compartment(T, DOSES), **args)


def test_dose_and_observation_records_follow_nonmem_conventions():
    tab = _table()
    ID, TIME, EVID, AMT, MDV, CMT, DV = (tab[k] for k in ("ID", "TIME", "EVID", "AMT", "MDV", "CMT", "DV"))
    assert list(tab)[:7] == ["ID", "TIME", "DV", "AMT", "EVID", "CMT", "MDV"]
    # sorted by ID then TIME
    order = np.lexsort((TIME, ID))
    assert np.array_equal(order, np.arange(ID.size))
    assert ID.min() == 1 and ID.max() == 4
    for i, dose in enumerate(DOSES, start=1):
        rows = np.flatnonzero(ID == i)
        # exactly one dose record per ID, first, at TIME 0, with AMT = the dose
        assert EVID[rows].sum() == 1 and EVID[rows[0]] == 1
        assert TIME[rows[0]] == 0.0 and AMT[rows[0]] == dose
        assert MDV[rows[0]] == 1 and DV[rows[0]] == 0.0 and CMT[rows[0]] == 1
        # the dose comes before the sample at the same time
        assert TIME[rows[1]] == 0.0 and EVID[rows[1]] == 0
        # samples: every t at or after the dose (29 of 34), AMT 0, CMT 2, MDV 0
        obs = rows[1:]
        assert obs.size == np.sum(T >= 0)
        assert np.all(AMT[obs] == 0) and np.all(CMT[obs] == 2) and np.all(MDV[obs] == 0)
    assert tab.settings["time_unit"] == "h"
    assert tab.units["TIME"] == "h" and tab.units["AMT"] == "cell" and tab.units["DV"] == "cell/uL"


def test_time_in_hours_matches_the_closed_form():
    # DV = AMT/V · exp(−k · TIME/24) for TIME in hours and k per day
    tab = _table()
    dose_of = dict(zip(tab["ID"][tab["EVID"] == 1], tab["AMT"][tab["EVID"] == 1], strict=True))
    obs = tab["EVID"] == 0
    amt = np.array([dose_of[i] for i in tab["ID"][obs]])
    expected = amt / V_L * np.exp(-K_PER_D * tab["TIME"][obs] / 24.0)
    np.testing.assert_allclose(tab["DV"][obs], expected, rtol=1e-12)
    days = _table(time_unit="d")
    np.testing.assert_allclose(days["TIME"] * 24.0, tab["TIME"], rtol=1e-12)
    assert days.units["TIME"] == "d"


def test_dose_time_per_patient_sets_the_time_origin():
    td = np.array([0.0, 1.0, 2.0, 3.0])
    vals = np.vstack([_one_compartment(T, DOSES[i : i + 1], td[i])[0] for i in range(4)])
    tab = nonmem_table(T, vals, dose_amounts=DOSES, dose_time=td, time_unit="d")
    for i in range(4):
        rows = tab["ID"] == i + 1
        assert tab["TIME"][rows][1:].min() == 0.0
        assert (tab["EVID"][rows] == 0).sum() == np.sum(T >= td[i])
        obs = rows & (tab["EVID"] == 0)
        np.testing.assert_allclose(tab["DV"][obs], DOSES[i] / V_L * np.exp(-K_PER_D * tab["TIME"][obs]), rtol=1e-12)


def test_covariates_are_upper_case_and_constant_per_id():
    tab = _table()
    assert "WT" in tab and "ARM" in tab
    for i in range(1, 5):
        rows = tab["ID"] == i
        assert np.unique(tab["WT"][rows]).tolist() == [WT[i - 1]]
        assert np.unique(tab["ARM"][rows]).size == 1
    # labels become codes 1…k in sorted order
    assert tab.settings["categories"]["ARM"] == {"CAR-NK": 1, "CAR-T": 2}
    assert tab["ARM"][tab["ID"] == 1][0] == 2 and tab["ARM"][tab["ID"] == 2][0] == 1
    assert tab.units["WT"] == "kg"


def test_ids_are_sorted_even_when_given_out_of_order():
    tab = _table(ids=np.array([40, 10, 30, 20]))
    first = tab["EVID"] == 1
    assert tab["ID"][first].tolist() == [10, 20, 30, 40]
    assert tab["AMT"][first].tolist() == [DOSES[1], DOSES[3], DOSES[2], DOSES[0]]


def test_sample_times_select_records():
    tab = _table(sample_times=[0.0, 1.0, 7.0, 28.0])
    for i in range(1, 5):
        assert tab["TIME"][(tab["ID"] == i) & (tab["EVID"] == 0)].tolist() == [0.0, 24.0, 168.0, 672.0]


def test_missing_samples_get_mdv_1():
    vals = _one_compartment(T, DOSES)
    vals[2, T == 7.0] = np.nan  # e.g. a failed simulation
    tab = nonmem_table(T, vals, dose_amounts=DOSES)
    rows = (tab["ID"] == 3) & (tab["TIME"] == 7 * 24.0)
    assert rows.sum() == 1
    assert tab["MDV"][rows][0] == 1 and tab["DV"][rows][0] == 0.0
    assert tab["MDV"][tab["EVID"] == 0].sum() == 1
    assert "BLQ" not in tab


@pytest.mark.parametrize("method, mdv_blq", [("M1", 1), ("M3", 0)])
def test_blq_handling(method, mdv_blq):
    lloq = 1e6  # cell/uL, so late samples fall below it
    tab = _table(lloq=lloq, blq_method=method)
    obs = tab["EVID"] == 0
    amt = np.repeat(DOSES, np.sum(T >= 0))
    truth = amt / V_L * np.exp(-K_PER_D * tab["TIME"][obs] / 24.0)
    below = truth < lloq
    assert 0 < below.sum() < below.size
    np.testing.assert_array_equal(tab["BLQ"][obs], below.astype(int))
    assert np.all(tab["BLQ"][~obs] == 0)
    np.testing.assert_array_equal(tab["MDV"][obs][below], mdv_blq)
    np.testing.assert_array_equal(tab["MDV"][obs][~below], 0)
    # DV holds the LLOQ on a BLQ record, the value otherwise
    np.testing.assert_allclose(tab["DV"][obs][below], lloq)
    np.testing.assert_allclose(tab["DV"][obs][~below], truth[~below], rtol=1e-12)
    assert np.all(tab["LLOQ"] == lloq) and tab.units["LLOQ"] == "cell/uL"
    assert tab.settings["blq_method"] == method


def test_round_trip_through_csv(tmp_path):
    tab = _table(lloq=1e6)
    path = write_nonmem_csv(tab, tmp_path / "pk.csv")
    back = read_nonmem_csv(path)
    assert list(back) == list(tab)
    for k in tab:
        if tab[k].dtype.kind in "iu":
            assert back[k].dtype == np.int64
            np.testing.assert_array_equal(back[k], tab[k])
        else:
            # 8 significant digits: relative rounding error <= 5e-8
            np.testing.assert_allclose(back[k], tab[k], rtol=5e-8, atol=0)
    assert back.units == tab.units
    assert back.settings["categories"] == tab.settings["categories"]
    exact = read_nonmem_csv(write_nonmem_csv(tab, tmp_path / "exact.csv", digits=17))
    for k in tab:  # 17 significant digits round-trip an IEEE double exactly
        np.testing.assert_array_equal(exact[k], tab[k])


def test_file_layout_and_sidecar(tmp_path):
    tab = _table()
    path = write_nonmem_csv(tab, tmp_path / "pk.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "ID,TIME,DV,AMT,EVID,CMT,MDV,WT,ARM"
    assert lines[1].startswith("1,0,0,1E+08,1,1,1,")  # the dose record: integers stay integers
    # every record starts with a digit, so IGNORE=@ skips only the column-name row
    assert all(ln[0].isdigit() for ln in lines[1:])
    meta = json.loads(sidecar_path(path).read_text())
    assert sidecar_path(path).name == "pk.json"
    assert meta["columns"]["TIME"]["unit"] == "h" and meta["columns"]["WT"]["unit"] == "kg"
    assert meta["nonmem"]["$INPUT"] == "ID TIME DV AMT EVID CMT MDV WT ARM"
    assert meta["nonmem"]["$DATA"] == "pk.csv IGNORE=@"
    assert "research" in meta["format"]


def test_reader_skips_comments_and_reads_dots_as_zero(tmp_path):
    p = tmp_path / "hand.csv"
    p.write_text("# hand-made\nID,TIME,DV,AMT,EVID,CMT,MDV\n1,0,.,100,1,1,1\n1,1,5.5,0,0,2,0\n2,0,.,50,1,1,1\n")
    tab = read_nonmem_csv(p)
    assert tab["DV"].tolist() == [0.0, 5.5, 0.0] and tab["ID"].tolist() == [1, 1, 2]
    assert tab.units == {}


@pytest.mark.parametrize(
    "body, needle",
    [
        ("1,1,5,0,0,2,0\n1,0,0,100,1,1,1\n", "TIME decreases"),
        ("2,0,0,100,1,1,1\n1,0,0,100,1,1,1\n", "not sorted by ID"),
        ("1,0,5,0,0,2,0\n1,0,0,100,1,1,1\n", "put the dose record first"),
        ("1,0,0,100,1,1,0\n", "needs MDV = 1"),
        ("1,0,0,0,1,1,1\n", "needs AMT > 0"),
        ("1,0,0,100,1,1,1\n1,1,5,7,0,2,0\n", "needs AMT = 0"),
        ("1,0,0,100,2,1,1\n", "EVID must be"),
        ("1,0,0,100,1,1,1\n1,x,5,0,0,2,0\n", "is not a number"),
        ("1,0,0,100,1,1,1\n1,1,5,0,0,2\n", "has 6 fields"),
    ],
)
def test_reader_names_the_broken_record(tmp_path, body, needle):
    p = tmp_path / "bad.csv"
    p.write_text("ID,TIME,DV,AMT,EVID,CMT,MDV\n" + body)
    with pytest.raises(NonmemLayoutError, match=needle):
        read_nonmem_csv(p)


def test_reader_checks_covariates_constant_per_id(tmp_path):
    tab = _table()
    path = write_nonmem_csv(tab, tmp_path / "pk.csv")
    lines = path.read_text().splitlines()
    cells = lines[3].split(",")
    cells[7] = "99"  # WT of patient 1 changes on its third record
    lines[3] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(NonmemLayoutError, match="covariate WT changes within the patient"):
        read_nonmem_csv(path)


def test_missing_standard_item_is_named():
    with pytest.raises(NonmemLayoutError, match="MDV"):
        check_nonmem_layout({"ID": [1], "TIME": [0], "DV": [0], "AMT": [1], "EVID": [1], "CMT": [1]})


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(values=np.ones((4, 5))), r"values has shape \(4, 5\); expected \(n, 34\)"),
        (dict(values=np.ones(34)), r"values has shape \(34,\)"),
        (dict(dose_amounts=[1e8, 2e8]), r"dose_amounts has shape \(2,\); expected \(4,\)"),
        (dict(dose_amounts=[1e8, 0.0, 1e8, 1e8]), r"dose_amounts\[1\] is 0.0"),
        (dict(dose_time=[0.0, 1.0]), r"dose_time has shape \(2,\)"),
        (dict(covariates={"WT": WT[:3]}, covariate_units={"WT": "kg"}), r"covariate 'WT' has shape \(3,\)"),
        (dict(covariates={"WT": WT}), r"covariate 'WT' has no unit"),
        (dict(covariates={"AMT": WT}, covariate_units={"AMT": "kg"}), "reserved NONMEM data item"),
        (dict(covariates={"wt": WT, "WT": WT}, covariate_units={"WT": "kg"}), "upper case"),
        (dict(covariates={"2X": WT}), "not a NONMEM data item name"),
        (dict(covariates={"WT": [70.0, np.nan, 1.0, 2.0]}, covariate_units={"WT": "kg"}), "patient index 1"),
        (dict(time_unit="min"), "time_unit is 'min'"),
        (dict(sample_times=[0.0, 2.5]), "2.5 d, which is not one of the simulated times"),
        (dict(sample_times=[-1.0, 2.0]), "before a patient's dose"),
        (dict(lloq=-1.0), "lloq is -1.0"),
        (dict(blq_method="M4"), "blq_method is 'M4'"),
        (dict(cmt_dose=0), "cmt_dose and cmt_obs"),
        (dict(ids=[1, 1, 2, 3]), "distinct"),
    ],
)
def test_bad_input_raises_a_clear_value_error(kwargs, needle):
    args = dict(dose_amounts=DOSES)
    values = kwargs.pop("values", _one_compartment(T, DOSES))
    args.update(kwargs)
    with pytest.raises(ValueError, match=needle):
        nonmem_table(T, values, **args)


def test_sidecar_name_cannot_clash(tmp_path):
    with pytest.raises(ValueError, match=r"\.csv"):
        write_nonmem_csv(_table(), tmp_path / "pk.json")


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 6),
    nan_mask=st.lists(st.booleans(), min_size=6 * 34, max_size=6 * 34),
    lloq=st.one_of(st.none(), st.floats(1e3, 1e8)),
    method=st.sampled_from(["M1", "M3"]),
)
def test_any_table_passes_the_layout_check_and_counts_add_up(n, nan_mask, lloq, method):
    doses = np.geomspace(1e7, 1e9, n)
    vals = _one_compartment(T, doses)
    vals[np.asarray(nan_mask).reshape(6, 34)[:n]] = np.nan
    tab = nonmem_table(T, vals, dose_amounts=doses, lloq=lloq, blq_method=method)
    check_nonmem_layout(tab, cmt_dose=1, blq_method=tab.settings["blq_method"])
    n_obs = n * np.sum(T >= 0)
    assert tab.n_records == n + n_obs
    obs = tab["EVID"] == 0
    post = vals[:, T >= 0]
    n_missing = int(np.isnan(post).sum())
    n_blq = 0 if lloq is None else int((post < lloq).sum())
    expected_mdv = n_missing + (n_blq if method == "M1" else 0)
    assert int(tab["MDV"][obs].sum()) == expected_mdv


def test_export_of_the_default_car_t_model(tmp_path):
    # the real model through the public API: CAR-T cells in blood (cells/µL) after the infusion
    import livingdrug as ld

    r = ld.simulate("cd19-ball")
    ds = r.dataset
    t = ds["time"].values
    cart = ds["car_t_blood"].values  # (1, T)
    dosing = r.scenario.dosing
    assert ds["car_t_blood"].attrs["units"] == "cell/uL"
    tab = nonmem_table(t, cart, dose_amounts=[dosing.dose], dose_time=dosing.time, unit="cell/uL",
                       covariates={"WT": [r.scenario.weight_kg]}, covariate_units={"WT": "kg"}, lloq=1.0)
    obs = tab["EVID"] == 0
    post = t >= dosing.time
    assert obs.sum() == post.sum() and t[0] < dosing.time  # the lymphodepletion days are not samples
    np.testing.assert_allclose(tab["TIME"][obs], (t[post] - dosing.time) * 24.0, rtol=1e-12)
    above = tab["BLQ"][obs] == 0
    np.testing.assert_allclose(tab["DV"][obs][above], cart[0, post][above], rtol=1e-12)
    # engines are right-continuous at the infusion: the TIME-0 sample already holds product
    # cells, which NONMEM reproduces because the dose record comes first
    assert cart[0, post][0] > 0 and cart[0, t < dosing.time].max() == 0
    # expansion lifts CAR-T above the LLOQ after the infusion; BLQ only below it
    assert above.any() and np.all(tab["DV"][obs][~above] == 1.0)
    back = read_nonmem_csv(write_nonmem_csv(tab, tmp_path / "cart.csv"))
    assert back.units["DV"] == "cell/uL" and back.settings["observable"] == "cart_blood"
