"""Atomic outputs: an interrupted write leaves neither a partial file nor a temp file."""

import os

import numpy as np
import pytest
import xarray as xr

from livingdrug.io import (
    atomic_write_text,
    ensure_writable_dir,
    read_trajectories,
    write_trajectories,
)
from livingdrug.io.atomic import OutputError, atomic_write_with
from livingdrug.io.results import read_units


def test_interrupted_write_leaves_nothing(tmp_path):
    target = tmp_path / "summary.json"

    def writer(tmp):
        with open(tmp, "w") as fh:
            fh.write('{"half": ')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_with(target, writer)
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_interrupted_rewrite_keeps_the_old_complete_file(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "complete")

    def writer(tmp):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write_with(target, writer)
    assert target.read_text() == "complete"


def test_unwritable_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="not writable"):
        ensure_writable_dir(blocker / "sub")


def test_parquet_round_trip_keeps_values_and_units(tmp_path):
    t = np.linspace(0, 2, 3)
    y = np.arange(6.0).reshape(2, 3)
    ds = xr.Dataset(
        {"E": (("patient", "time"), y, {"units": "cell"}), "status": (("patient",), np.zeros(2, int))},
        coords={"patient": [0, 1], "time": t},
    )
    path = write_trajectories(ds, tmp_path / "traj.parquet", manifest={"seed": 3})
    df = read_trajectories(path)
    assert list(df.columns) == ["patient", "time", "E"]
    assert df["E"].tolist() == y.reshape(-1).tolist()
    assert df["time"].tolist() == [0.0, 1.0, 2.0, 0.0, 1.0, 2.0]
    assert read_units(path) == {"patient": "1", "time": "d", "E": "cell"}


def test_outputs_get_ordinary_file_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "x.json", "{}")
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o644
