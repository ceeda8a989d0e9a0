"""Trial execution (:mod:`livingdrug.trial`): results independent of chunking and executor,
resume after damage or ``kill``, Dask worker loss, unwritable folders and a full disk,
DuckDB on the endpoint table.

The reference for every check is the same trial run in one chunk in this process: the trial
promises that patient *i*'s endpoints depend only on *i*, the design and the seed, so any
other way of running it must reproduce that table *bitwise* (no tolerance is involved).
Designs are small (24 patients, 60 days, daily output) so that each run takes well under a
second once the models are compiled.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import shutil
import signal
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from livingdrug.io.atomic import OutputError
from livingdrug.scenarios import ScenarioError, builtin_dir
from livingdrug.trial import ChunkReport, read_endpoints, run_trial

N = 24

#: cd19-ball with 60 days of daily output and a 24-patient population (burden, weight, expansion)
SCENARIO = """
name = "small-trial"
title = "Small CD19 CAR-T trial"
model = "car_t"

[patient]
weight = "70 kg"

[dosing]
dose = "1e8 cell"
time = "0 d"

[simulation]
start = "-6 d"
days = 60
output_interval = "1 d"
engine = "ode"
rtol = 1e-6
atol = 1e-9

[population]
patients = 24
seed = 3

[population.parameters.weight]
median = "70 kg"
cv = 0.2
lower = "40 kg"
upper = "140 kg"

[population.parameters.k_exp]
cv = 0.3

[population.covariates.leukaemia]
median = "1.5e11 cell"
cv = 1.0
lower = "1e9 cell"
upper = "2.2e11 cell"
"""

#: CAR-T (autologous, manufactured product) vs CAR-NK (off the shelf), arms given by path
COMPARISON = """
name = "small-cmp"
title = "Small CAR-T vs CAR-NK comparison"
[population]
patients = 24
seed = 4
[population.covariates.leukaemia]
median = "1e11 cell"
cv = 0.5
upper = "2.2e11 cell"
[[arms]]
name = "CAR-T"
scenario = "cd19-ball-60.toml"
logistics = "autologous-centre"
product = "manufactured"
[[arms]]
name = "CAR-NK"
scenario = "cd19-carnk-60.toml"
logistics = "off-the-shelf-centre"
"""


def write_comparison(folder: Path) -> Path:
    """The comparison and its two arm scenarios (built-ins shortened to 60 days) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("cd19-ball", "cd19-carnk"):
        text = (builtin_dir() / f"{name}.toml").read_text()
        text, k = re.subn(r"(?m)^days = 365$", "days = 60", text)
        text, j = re.subn(r"(?m)^output_interval = .*$", 'output_interval = "1 d"', text)
        assert k == 1 and j == 1, f"{name}.toml changed layout"
        (folder / f"{name}-60.toml").write_text(text)
    (folder / "cmp.toml").write_text(COMPARISON)
    return folder / "cmp.toml"


def assert_same_endpoints(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    """Every column present in both, same dtype, bitwise the same values (NaN where NaN)."""
    assert list(a) == list(b)
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        assert x.dtype == y.dtype and x.shape == y.shape, k
        if x.dtype.kind == "f":
            assert np.array_equal(x.view(np.int64), y.view(np.int64)), k  # bitwise, NaN payload included
        else:
            assert np.array_equal(x, y), k


def assert_every_patient_once(cols: dict[str, np.ndarray], n: int, arms: list[str]) -> None:
    pairs = list(zip(cols["arm"].tolist(), cols["patient"].tolist(), strict=True))
    assert len(pairs) == len(set(pairs)) == n * len(arms)
    assert set(pairs) == {(a, i) for a in arms for i in range(n)}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory) -> Path:
    f = tmp_path_factory.mktemp("design") / "small.toml"
    f.write_text(SCENARIO)
    return f


@pytest.fixture(scope="module")
def comparison_file(tmp_path_factory) -> Path:
    return write_comparison(tmp_path_factory.mktemp("cmp"))


@pytest.fixture(scope="module")
def reference(scenario_file, tmp_path_factory):
    """The scenario trial in one chunk, in this process."""
    return run_trial(scenario_file, tmp_path_factory.mktemp("ref") / "t", chunk_size=N, figures=False)


@pytest.fixture(scope="module")
def cmp_reference(comparison_file, tmp_path_factory):
    return run_trial(comparison_file, tmp_path_factory.mktemp("cmpref") / "t", chunk_size=N, figures=False)


# ---------------------------------------------------------------------------------------
# bitwise identity
# ---------------------------------------------------------------------------------------


def test_reference_trial_is_a_real_trial(reference):
    """Guard against a vacuous comparison: patients differ, the model ran, files are there."""
    cols = reference.patients
    assert_every_patient_once(cols, N, ["Small CD19 CAR-T trial"])
    assert np.unique(cols["weight"]).size == N and np.unique(cols["leukaemia"]).size == N
    assert (cols["status"] == 0).all() and np.isfinite(cols["car_cmax"]).all()
    assert np.unique(cols["car_cmax"]).size == N  # expansion differs patient to patient
    folder = reference.folder
    assert {p.name for p in (folder / "parts").iterdir()} == {"part-000000.parquet", "part-000000.sha256"}
    assert reference.manifest["chunks"] == 1 and reference.manifest["reused_chunks"] == 0
    assert json.loads((folder / "manifest.json").read_text())["outputs"]["endpoints.parquet"] == sha(
        folder / "endpoints.parquet")
    assert_same_endpoints(read_endpoints(folder), cols)


@pytest.mark.parametrize("chunk", [1, 7, 16])
def test_endpoints_do_not_depend_on_the_chunk_size(scenario_file, reference, tmp_path, chunk):
    reports: list[ChunkReport] = []
    r = run_trial(scenario_file, tmp_path / "t", chunk_size=chunk, figures=False, on_chunk=reports.append)
    assert len(reports) == math.ceil(N / chunk) == r.manifest["chunks"]
    assert [x.patients_done for x in reports][-1] == N and not any(x.reused for x in reports)
    assert len(list((tmp_path / "t" / "parts").glob("part-*.parquet"))) == math.ceil(N / chunk)
    assert_same_endpoints(r.patients, reference.patients)
    # the merged table is the same file, byte for byte
    assert sha(tmp_path / "t" / "endpoints.parquet") == sha(reference.folder / "endpoints.parquet")
    assert r.summary["arms"] == reference.summary["arms"]


def test_two_chunks_at_a_time_give_the_bytes_of_one_at_a_time(scenario_file, reference, tmp_path, monkeypatch):
    """The in-process executor runs two chunks at once where numba allows it; one at a time
    (the workqueue threading layer's case) must give the same endpoint file."""
    import livingdrug.trial as trial_mod

    assert trial_mod._chunk_threads() in (1, 2)
    r2 = run_trial(scenario_file, tmp_path / "two", chunk_size=3, figures=False)
    monkeypatch.setattr(trial_mod, "_chunk_threads", lambda: 1)
    r1 = run_trial(scenario_file, tmp_path / "one", chunk_size=3, figures=False)
    assert r1.manifest["chunks"] == r2.manifest["chunks"] == math.ceil(N / 3)
    assert sha(tmp_path / "one" / "endpoints.parquet") == sha(tmp_path / "two" / "endpoints.parquet") == sha(
        reference.folder / "endpoints.parquet")


def test_merged_row_groups_do_not_depend_on_the_parts(scenario_file, comparison_file, reference, cmp_reference,
                                                      tmp_path, monkeypatch):
    """endpoints.parquet is merged a part at a time in fixed-size row groups: with groups
    smaller than the parts and the trial, the file is still the same bytes for any chunk
    size, and holds the same table (arms together, patients in order)."""
    import pyarrow.parquet as pq

    import livingdrug.io.results as results

    monkeypatch.setattr(results, "MERGE_ROW_GROUP", 4)
    for f, ref in ((scenario_file, reference), (comparison_file, cmp_reference)):
        shas = []
        for chunk in (3, 7):
            r = run_trial(f, tmp_path / f"{f.stem}-{chunk}", chunk_size=chunk, figures=False)
            path = r.folder / "endpoints.parquet"
            assert pq.ParquetFile(path).metadata.num_row_groups == math.ceil(len(ref.patients["patient"]) / 4)
            assert_same_endpoints(read_endpoints(r.folder), ref.patients)
            assert r.summary["arms"] == ref.summary["arms"]
            shas.append(sha(path))
        assert shas[0] == shas[1]


def test_the_summary_reads_the_table_a_batch_at_a_time(scenario_file, reference, cmp_reference, monkeypatch):
    """The summary never holds a column of the table (memory independent of the number of
    patients): read from endpoints.parquet in batches of 7 rows, with the streaming sort
    holding at most 5 values (clinical.streaming.RANGE_ROWS), it is the same summary as from
    the table in memory — every count, quartile, Kaplan–Meier median, band and landmark, and
    the comparison's paired or randomised tests."""
    from livingdrug.clinical import streaming
    from livingdrug.clinical.probability import kaplan_meier
    from livingdrug.comparison import _arm_summary, _paired, _randomised
    from livingdrug.io.results import Batches

    rows: list[int] = []

    class Spy(Batches):
        def __call__(self, columns):
            for b in super().__call__(columns):
                rows.append(len(next(iter(b.values()))))
                yield b

    monkeypatch.setattr(streaming, "RANGE_ROWS", 5)
    for r in (reference, cmp_reference):
        table = read_endpoints(r.folder)
        path = r.folder / "endpoints.parquet"
        for arm, expected in r.summary["arms"].items():
            mask = table["arm"] == arm
            in_memory = _arm_summary({k: v[mask] for k, v in table.items()}, {}, None)
            streamed = _arm_summary(Spy(path, where={"arm": arm}, rows=7), {}, None)
            assert streamed == in_memory
            # and the in-memory functions it replaces: numpy's quartiles, scipy's Kaplan–Meier
            sub = {k: v[mask] for k, v in table.items()}
            w = sub["referral_to_infusion"][np.isfinite(sub["referral_to_infusion"])]
            q = streamed["referral_to_infusion_days"]
            assert [q["q1"], q["median"], q["q3"]] == pytest.approx(list(np.percentile(w, [25, 50, 75])), rel=1e-14)
            km = kaplan_meier(sub["os_day"], sub["os_event"])
            assert streamed["os"]["median_days"] == (km.median if np.isfinite(km.median) else None)
            lm = streamed["os"]["at_6_months"]
            assert (lm is None) == (6 * 365.25 / 12 > km.time[-1] + 1.0)
            assert lm is None or lm["estimate"] == km.at(6 * 365.25 / 12)
            assert streamed["os"]["n"] == km.n and streamed["os"]["events"] == km.n_events
            expected = {k: v for k, v in expected.items() if k != "programme"}
            assert {k: v for k, v in streamed.items() if k != "programme"} == expected
        arms = {a: Spy(path, where={"arm": a}, rows=7) for a in r.summary["arms"]}
        if r.summary["paired"]:
            assert _paired(arms, r.summary["arms"]) == r.summary["paired"]
        if r.summary["randomised"]:
            assert _randomised(arms, r.summary["arms"]) == r.summary["randomised"]
    assert rows and max(rows) <= 7
    assert len(cmp_reference.summary["arms"]) == 2 and (cmp_reference.summary["paired"] or cmp_reference.summary["randomised"])


def test_comparison_with_logistics_does_not_depend_on_the_chunk_size(comparison_file, cmp_reference, tmp_path):
    ref = cmp_reference.patients
    # the logistics matter here: drop-outs and patients who waited untreated
    assert (ref["outcome"] != "infused").any() and (np.nan_to_num(ref["untreated_days"]) > 0).any()
    assert_every_patient_once(ref, N, ["CAR-T", "CAR-NK"])
    r = run_trial(comparison_file, tmp_path / "t", chunk_size=5, figures=False)
    assert r.manifest["chunks"] == 5
    assert_same_endpoints(r.patients, ref)
    assert sha(tmp_path / "t" / "endpoints.parquet") == sha(cmp_reference.folder / "endpoints.parquet")


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as c:
        yield c


def test_dask_cluster_gives_the_same_endpoints(scenario_file, comparison_file, reference, cmp_reference,
                                               cluster, tmp_path):
    addr = cluster.scheduler_address
    r = run_trial(scenario_file, tmp_path / "s", chunk_size=5, executor="dask", scheduler=addr, figures=False)
    assert r.manifest["executor"] == "dask" and r.manifest["chunks"] == 5
    assert_same_endpoints(r.patients, reference.patients)
    c = run_trial(comparison_file, tmp_path / "c", chunk_size=7, executor="dask", scheduler=addr, figures=False)
    assert_same_endpoints(c.patients, cmp_reference.patients)
    # a second trial on the same scheduler with another seed is not served the first one's chunks
    other = run_trial(scenario_file, tmp_path / "o", chunk_size=5, seed=11, executor="dask", scheduler=addr,
                      figures=False)
    assert not np.array_equal(other.patients["weight"], reference.patients["weight"])
    local_other = run_trial(scenario_file, tmp_path / "lo", chunk_size=N, seed=11, figures=False)
    assert_same_endpoints(other.patients, local_other.patients)


@pytest.mark.slow
def test_a_dask_worker_killed_mid_run_costs_only_its_task(scenario_file, tmp_path):
    """Kill -9 one of two worker processes after the first chunk arrives, while it holds
    tasks: the scheduler reruns them elsewhere (the nanny restarts the worker) and every
    patient's endpoints are still those of a local run."""
    distributed = pytest.importorskip("distributed")
    n = 120
    local = run_trial(scenario_file, tmp_path / "local", patients=n, chunk_size=n, figures=False)
    killed: list[tuple[str, int, int]] = []
    # the scheduler of a LocalCluster lives in this process: read its worker states directly
    # (a second Client in this process would share futures' state with run_trial's own)
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cl:
        def kill_one(r: ChunkReport) -> None:
            if killed:
                return
            busy = [(len(ws.processing), ws.address, ws.pid) for ws in list(cl.scheduler.workers.values())
                    if ws.processing]
            assert busy, "no task in flight to lose: make the trial longer"
            count, address, pid = max(busy)
            os.kill(pid, signal.SIGKILL)
            killed.append((address, pid, count))

        r = run_trial(scenario_file, tmp_path / "dask", patients=n, chunk_size=4, executor="dask",
                      scheduler=cl.scheduler_address, figures=False, on_chunk=kill_one)
        assert len(killed) == 1 and killed[0][2] >= 1
        # it really died: the nanny replaced it by a new worker process (a new address and pid)
        cl.wait_for_workers(2, timeout=60)
        now = {ws.address: ws.pid for ws in cl.scheduler.workers.values()}
        assert killed[0][0] not in now and killed[0][1] not in now.values()
    assert r.manifest["chunks"] == n // 4
    assert_every_patient_once(r.patients, n, ["Small CD19 CAR-T trial"])
    assert_same_endpoints(r.patients, local.patients)


# ---------------------------------------------------------------------------------------
# resume
# ---------------------------------------------------------------------------------------


def test_resume_recomputes_only_damaged_parts(scenario_file, reference, tmp_path):
    out = tmp_path / "t"
    first = run_trial(scenario_file, out, chunk_size=4, figures=False)  # 6 parts
    parts = out / "parts"
    keep = {k: (parts / f"part-{k:06d}.parquet").stat().st_mtime_ns for k in (0, 2, 3, 5)}
    (parts / "part-000001.sha256").unlink()  # finished writing but never checked
    p4 = parts / "part-000004.parquet"
    p4.write_bytes(p4.read_bytes()[: p4.stat().st_size // 2])  # torn write
    (parts / ".part-000006.parquet.abc.tmp").write_bytes(b"PAR1")  # left by a killed writer
    (out / "manifest.json").unlink()
    reports: list[ChunkReport] = []
    r = run_trial(scenario_file, out, resume=True, figures=False, on_chunk=reports.append)
    computed = sorted(x.chunk for x in reports if not x.reused)
    assert computed == [1, 4]
    assert [(x.done, x.patients_done) for x in reports if x.reused] == [(4, 16)]
    assert reports[-1].done == reports[-1].total == 6 and reports[-1].patients_done == N
    assert r.manifest["reused_chunks"] == 4
    assert {k: (parts / f"part-{k:06d}.parquet").stat().st_mtime_ns for k in keep} == keep  # not rewritten
    assert (parts / "part-000001.sha256").read_text().strip() == sha(parts / "part-000001.parquet")
    assert not list(parts.glob(".*.tmp"))
    assert_every_patient_once(r.patients, N, ["Small CD19 CAR-T trial"])
    assert_same_endpoints(r.patients, first.patients)
    assert_same_endpoints(read_endpoints(out), reference.patients)


def test_resume_of_a_finished_trial_recomputes_nothing(scenario_file, tmp_path):
    out = tmp_path / "t"
    run_trial(scenario_file, out, chunk_size=10, figures=False)
    reports: list[ChunkReport] = []
    r = run_trial(scenario_file, out, resume=True, figures=False, on_chunk=reports.append)
    assert [(x.reused, x.done, x.total) for x in reports] == [(True, 3, 3)]
    assert r.manifest["reused_chunks"] == 3


@pytest.mark.parametrize(("change", "field"), [({"seed": 9}, "seed"), ({"patients": 20}, "patients"),
                                               ({"chunk_size": 5}, "chunk_size")])
def test_resume_with_other_settings_is_refused(scenario_file, tmp_path, change, field):
    out = tmp_path / "t"
    run_trial(scenario_file, out, chunk_size=8, figures=False)
    before = {p.name: sha(p) for p in (out / "parts").iterdir()}
    with pytest.raises(ScenarioError) as e:
        run_trial(scenario_file, out, resume=True, figures=False, **change)
    assert e.value.field == field and "trial.json" in str(e.value) and "another folder" in str(e.value)
    assert {p.name: sha(p) for p in (out / "parts").iterdir()} == before  # nothing touched


def test_resume_notices_an_edited_arm_file(tmp_path):
    f = write_comparison(tmp_path / "design")
    out = tmp_path / "t"
    run_trial(f, out, patients=3, figures=False)
    arm = tmp_path / "design" / "cd19-carnk-60.toml"
    arm.write_text(arm.read_text().replace("days = 60", "days = 59"))
    with pytest.raises(ScenarioError) as e:
        run_trial(f, out, patients=3, resume=True, figures=False)
    assert e.value.field == "inputs" and "arm scenario and logistics files" in str(e.value)


def test_a_new_trial_into_a_trial_folder_is_refused(scenario_file, tmp_path):
    out = tmp_path / "t"
    run_trial(scenario_file, out, patients=4, figures=False)
    with pytest.raises(ScenarioError) as e:
        run_trial(scenario_file, out, patients=4, figures=False)
    assert "trial.json" in str(e.value) and "--resume" in str(e.value)
    with pytest.raises(ScenarioError) as e:
        run_trial(scenario_file, tmp_path / "empty", resume=True, figures=False)
    assert "nothing to resume" in str(e.value) and not (tmp_path / "empty").exists()


@pytest.mark.parametrize(("kwargs", "text"), [({"executor": "foo"}, "foo"), ({"scheduler": "tcp://x:1"}, "dask"),
                                              ({"workers": 2}, "dask"), ({"patients": 0}, "patients"),
                                              ({"seed": -1}, "seed"), ({"chunk_size": 0}, "chunk_size")])
def test_bad_arguments_name_the_field(scenario_file, tmp_path, kwargs, text):
    with pytest.raises(ScenarioError) as e:
        run_trial(scenario_file, tmp_path / "t", figures=False, **kwargs)
    assert text in str(e.value)
    assert not (tmp_path / "t" / "trial.json").exists()


def test_a_scenario_without_population_is_not_a_trial(tmp_path):
    f = tmp_path / "one.toml"
    f.write_text(SCENARIO.split("[population]")[0])
    with pytest.raises(ScenarioError) as e:
        run_trial(f, tmp_path / "t", figures=False)
    assert e.value.field == "population" and "one.toml" in str(e.value)


# ---------------------------------------------------------------------------------------
# output failures
# ---------------------------------------------------------------------------------------


def test_disk_full_on_the_second_part_keeps_the_first_and_resume_finishes(scenario_file, reference, tmp_path,
                                                                         monkeypatch):
    import livingdrug.io.results as results
    from livingdrug.io.atomic import atomic_write_with

    real = results.write_columns
    calls = []

    def full_disk(columns, path, units):
        calls.append(Path(path).name)
        if len(calls) == 2:
            def half(tmp):
                Path(tmp).write_bytes(b"PAR1 half a part")
                raise OSError(errno.ENOSPC, "No space left on device")
            return atomic_write_with(Path(path), half)
        return real(columns, path, units)

    monkeypatch.setattr(results, "write_columns", full_disk)
    out = tmp_path / "t"
    with pytest.raises(OutputError) as e:
        run_trial(scenario_file, out, chunk_size=8, figures=False)
    msg = str(e.value)
    assert "No space left on device" in msg and "--resume" in msg and "part-000001.parquet" in msg
    parts = out / "parts"
    assert sorted(p.name for p in parts.iterdir()) == ["part-000000.parquet", "part-000000.sha256"]
    assert (parts / "part-000000.sha256").read_text().strip() == sha(parts / "part-000000.parquet")
    assert not (out / "manifest.json").exists() and not (out / "endpoints.parquet").exists()
    monkeypatch.setattr(results, "write_columns", real)
    reports: list[ChunkReport] = []
    r = run_trial(scenario_file, out, resume=True, figures=False, on_chunk=reports.append)
    assert sorted(x.chunk for x in reports if not x.reused) == [1, 2]
    assert_same_endpoints(r.patients, reference.patients)


def test_an_output_path_that_cannot_be_a_folder_is_a_clear_error(scenario_file, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError) as e:
        run_trial(scenario_file, blocker / "trial", figures=False)
    assert "a-file" in str(e.value) and "not writable" in str(e.value) and "--out" in str(e.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores file permissions")
def test_parts_folder_made_read_only_mid_run(scenario_file, tmp_path):
    out = tmp_path / "t"
    parts = out / "parts"

    def lock(r: ChunkReport) -> None:
        parts.chmod(0o500)

    try:
        with pytest.raises(OutputError) as e:
            run_trial(scenario_file, out, chunk_size=8, figures=False, on_chunk=lock)
        assert "part-000001.parquet" in str(e.value) and "--resume" in str(e.value)
        assert sorted(p.name for p in parts.iterdir()) == ["part-000000.parquet", "part-000000.sha256"]
    finally:
        parts.chmod(0o700)


# ---------------------------------------------------------------------------------------
# the endpoint table
# ---------------------------------------------------------------------------------------


def test_duckdb_reads_the_endpoint_table(cmp_reference):
    duckdb = pytest.importorskip("duckdb")
    path = cmp_reference.folder / "endpoints.parquet"
    rows = duckdb.sql(f"select arm, avg(responded::int), count(*), count(distinct patient) "
                      f"from '{path}' group by arm order by arm").fetchall()
    arms = cmp_reference.summary["arms"]
    assert [r[0] for r in rows] == sorted(arms)
    for arm, mean, count, distinct in rows:
        itt = arms[arm]["response_itt"]
        assert count == distinct == N == itt["trials"]
        assert mean == pytest.approx(itt["estimate"], rel=1e-12) and mean * N == pytest.approx(itt["successes"])
    assert any(arms[a]["response_itt"]["estimate"] < 1 for a in arms)  # drop-outs count as failures
    unit = pq.read_schema(path).field("referral_to_infusion").metadata[b"unit"]
    assert unit == b"d"


def test_parts_hold_consecutive_patients_of_every_arm(comparison_file, tmp_path):
    out = tmp_path / "t"
    run_trial(comparison_file, out, patients=10, chunk_size=4, figures=False)
    for k, (lo, hi) in enumerate([(0, 4), (4, 8), (8, 10)]):
        t = pq.read_table(out / "parts" / f"part-{k:06d}.parquet", columns=["arm", "patient"])
        assert t.column("arm").to_pylist() == ["CAR-T"] * (hi - lo) + ["CAR-NK"] * (hi - lo)
        assert t.column("patient").to_pylist() == list(range(lo, hi)) * 2


def test_copying_a_finished_folder_keeps_it_resumable(scenario_file, tmp_path):
    """Checksums are of the bytes, not of paths or times: a copied folder resumes with nothing to do."""
    run_trial(scenario_file, tmp_path / "a", chunk_size=12, figures=False)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    reports: list[ChunkReport] = []
    run_trial(scenario_file, tmp_path / "b", resume=True, figures=False, on_chunk=reports.append)
    assert [x.reused for x in reports] == [True]


def test_a_worker_elsewhere_finds_the_arm_files_of_a_relative_comparison_path(comparison_file, cmp_reference,
                                                                             tmp_path, monkeypatch):
    """A chunk is rebuilt from the recipe on a worker whose working directory is not ours:
    relative arm paths must still resolve against the comparison file's folder."""
    from livingdrug.trial import _recipe, trial_chunk, trial_design

    monkeypatch.chdir(comparison_file.parent)
    recipe = _recipe(trial_design(comparison_file.name))
    assert recipe["source"] == "cmp.toml"
    monkeypatch.chdir(tmp_path)
    cols = trial_chunk(recipe, 2, 5)
    ref = cmp_reference.patients
    rows = np.flatnonzero(np.isin(ref["patient"], [2, 3, 4]))
    assert_same_endpoints(cols, {k: v[rows] for k, v in ref.items()})


def test_nonmem_file_of_the_first_patients(cmp_reference):
    """nonmem.csv: the product kinetics of the first patients of every arm in the layout
    pharmacometricians read (ID TIME DV AMT EVID CMT MDV + covariates); one dose record per
    patient with that patient's dose, observations at the sampling days, DV = the simulated
    product cells in blood (cross-checked against the patient's Cmax)."""
    from livingdrug.io.nonmem import read_nonmem_csv
    from livingdrug.trial import BAND_PATIENTS, NONMEM_DAYS

    folder = cmp_reference.folder
    tab = read_nonmem_csv(folder / "nonmem.csv")  # checks the layout
    cols = cmp_reference.patients
    dose_rows = tab["EVID"] == 1
    ids = tab["ID"][dose_rows]
    first = (cols["patient"] < BAND_PATIENTS) & (cols["outcome"] == "infused") & (cols["status"] == 0)
    assert ids.size == int(first.sum()) == len(np.unique(tab["ID"]))
    arm_index = {a: k for k, a in enumerate(dict.fromkeys(cols["arm"]))}
    expected_ids = np.array([arm_index[a] * 10_000_000 + p + 1 for a, p in zip(cols["arm"][first], cols["patient"][first],
                                                                                strict=True)])
    np.testing.assert_array_equal(np.sort(ids), np.sort(expected_ids))
    by_id = dict(zip(expected_ids, cols["dose"][first], strict=True))
    np.testing.assert_allclose(tab["AMT"][dose_rows], [by_id[i] for i in ids], rtol=1e-7)
    obs = ~dose_rows
    assert set(np.unique(tab["TIME"][obs])) <= set(map(float, NONMEM_DAYS))
    cmax = dict(zip(expected_ids, cols["car_cmax"][first], strict=True))
    for i in ids:  # sampled values never exceed the simulated peak
        assert tab["DV"][obs & (tab["ID"] == i)].max() <= cmax[i] * (1 + 1e-7)
    assert set(np.unique(tab["ARM"])) == {1.0, 2.0}


def test_optional_trajectories_are_kept_and_do_not_depend_on_chunking(scenario_file, reference, tmp_path):
    import pyarrow as pa

    a = run_trial(scenario_file, tmp_path / "a", chunk_size=N, figures=False, trajectories=7)
    run_trial(scenario_file, tmp_path / "b", chunk_size=7, figures=False, trajectories=7)
    assert_same_endpoints(a.patients, reference.patients)  # trajectories change no endpoint

    def load(folder):
        t = pa.concat_tables([pq.read_table(p) for p in sorted((folder / "trajectories").glob("part-*.parquet"))])
        return {k: t.column(k).to_numpy(zero_copy_only=False) for k in t.column_names}

    ta, tb = load(tmp_path / "a"), load(tmp_path / "b")
    for k in ta:
        np.testing.assert_array_equal(ta[k], tb[k])
    times = np.unique(ta["time"])
    np.testing.assert_allclose(times, np.arange(-7.0, 61.0, 7.0)[np.arange(-7.0, 61.0, 7.0) >= -6 - 1e-9])
    assert ta["patient"].size == N * times.size  # every infused patient at every sampling time
    cmax = dict(zip(reference.patients["patient"], reference.patients["car_cmax"], strict=True))
    for p in range(N):  # sampled product cells never exceed the simulated peak
        assert ta["car_t_blood"][ta["patient"] == p].max() <= cmax[p] * (1 + 1e-9)
    assert {"crs_grade", "icans_grade", "blasts_pct"} <= set(ta)
    with pytest.raises(ScenarioError, match="trajectories"):
        run_trial(scenario_file, tmp_path / "a", chunk_size=N, resume=True, figures=False, trajectories=1)
    with pytest.raises(ScenarioError, match="trajectories"):
        run_trial(scenario_file, tmp_path / "c", figures=False, trajectories=0)


def test_default_chunk_is_large_but_leaves_several_chunks():
    """1,024 patients per chunk for a large trial (fixed per-chunk costs amortised), 256 with
    trajectories (held whole per chunk), never more than an eighth of the trial rounded up to
    64, never under 64."""
    from livingdrug.trial import default_chunk

    assert default_chunk(1_000_000) == 1024
    assert default_chunk(1_000_000, trajectories=1.0) == 256
    assert default_chunk(1000) == 128  # 1000/8 = 125 → 128: eight chunks
    assert default_chunk(20) == 64
    assert default_chunk(8192) == 1024 and default_chunk(8193) == 1024
