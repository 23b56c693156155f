"""The results store: trials read back are the trials a store-less run computes, bit for bit; a store of
another engine, model or data is never read; a damaged file is set aside with one warning; two writing
processes neither duplicate nor lose a trial."""

import copy
import dataclasses
import multiprocessing as mp
import pickle
import sqlite3

import numpy as np
import pytest
import torch

from xtmr_core import store as store_mod
from xtmr_core.data import load_dataset
from xtmr_core.errors import XtmrError
from xtmr_core.experiment import Experiment
from xtmr_core.spec import CampaignSpec
from xtmr_core.store import Store, Trial, default_path, default_store, plan_key, point_key

#: A stratified fp32 point (BER 1e-5: rare deciding faults) with two plans besides the baseline.
STRAT = [CampaignSpec("lrp", 1.0, 1e-5, trials=12), CampaignSpec("bits", bits=(30,), ber=1e-5, trials=12)]
#: A plain int8 point.
PLAIN = [CampaignSpec("magnitude", 5.0, 1e-2, "int8", trials=6)]


@pytest.fixture(scope="module")
def exp():
    return Experiment("lenet5", "mnist5k", store=None)


@pytest.fixture(scope="module")
def fresh(exp):
    """The points run without any store: the reference every stored run must equal."""
    return {"strat": exp.evaluate_point(STRAT), "plain": exp.evaluate_point(PLAIN)}


def same_point(a, b) -> None:
    """Two ``PointResult``s are identical: every float, count, stratum and per-image array."""
    assert [r.plan for r in a.results] == [r.plan for r in b.results]
    assert (a.strata is None) == (b.strata is None)
    for ra, rb in zip(a.results, b.results):
        assert ra.accuracies == rb.accuracies
        assert ra.mismatches == rb.mismatches
        assert ra.flips == rb.flips
        assert ra.strata == rb.strata
        assert len(ra.correct) == len(rb.correct)
        for x, y in zip(ra.correct, rb.correct):
            assert x.dtype == y.dtype == np.bool_ and np.array_equal(x, y)


def with_store(exp, path):
    """A shallow copy of ``exp`` (the same model, data and caches) writing to the store at ``path``."""
    other = copy.copy(exp)
    other.store = Store(path)
    return other


def test_a_longer_point_after_a_shorter_one_equals_a_fresh_run(exp, fresh, tmp_path):
    e = with_store(exp, tmp_path / "r.sqlite")
    few = e.evaluate_point([s.replace(trials=4) for s in STRAT])
    assert (e.store.read, e.store.ran) == (0, 12)
    same_point(few, exp.evaluate_point([s.replace(trials=4) for s in STRAT]))
    more = e.evaluate_point(STRAT)
    assert (e.store.read, e.store.ran) == (12, 12 + 24)  # 12 after 4 runs 8 trials of each plan
    same_point(more, fresh["strat"])
    again = e.evaluate_point([s.replace(trials=4) for s in STRAT])  # 4 after 12 runs nothing
    assert e.store.ran == 36
    same_point(again, few)
    # a fresh process's store object reads the same file: the whole point, nothing run
    other = with_store(exp, tmp_path / "r.sqlite")
    same_point(other.evaluate_point(STRAT), fresh["strat"])
    assert (other.store.read, other.store.ran) == (36, 0)


def test_plain_points_and_single_campaigns_share_the_store(exp, fresh, tmp_path):
    e = with_store(exp, tmp_path / "r.sqlite")
    alone = e.evaluate(PLAIN[0].replace(trials=3))  # the plan without its baseline
    assert alone.accuracies == fresh["plain"].results[1].accuracies[:3]
    point = e.evaluate_point(PLAIN)
    same_point(point, fresh["plain"])
    assert e.store.ran == 3 + 6 + 3 and e.store.read == 3
    again = e.evaluate(PLAIN[0])
    assert again.accuracies == fresh["plain"].results[1].accuracies and e.store.ran == 12


def test_a_stopped_point_keeps_its_trials(exp, fresh, tmp_path):
    e = with_store(exp, tmp_path / "r.sqlite")
    seen = []
    e.evaluate_point(PLAIN, on_trial=lambda p: seen.append(p.trials), should_stop=lambda: len(seen) >= 4)
    assert e.store.ran == 2 * 4
    same_point(e.evaluate_point(PLAIN), fresh["plain"])
    assert e.store.read == 8


def test_every_part_of_the_key_separates_results(exp, tmp_path):
    fp = exp.fingerprint()
    base = STRAT[0].point
    key = point_key(fp, "plain", base)
    changed = {k: point_key({**fp, k: f"{fp[k]}x"}, "plain", base) for k in fp}
    changed["design"] = point_key(fp, "0123456789abcdef", base)
    for name, value in (("ber", 2e-5), ("fmt", "bf16"), ("mode", "stuck1"), ("seed", 1), ("fault_bits", (30,))):
        changed[name] = point_key(fp, "plain", base.replace(**{name: value}))
    assert key not in changed.values() and len(set(changed.values())) == len(changed)
    assert point_key(fp, "plain", base.replace(trials=7)) == key  # the trial count is not part of it
    assert set(fp) >= {"weights", "data", "keep_batchnorm", "fault_biases", "device", "torch"}
    assert plan_key(STRAT[0]) == plan_key(STRAT[0].replace(trials=3)) != plan_key(STRAT[0].replace(budget=2.0))


def test_another_engine_model_or_data_is_never_read(exp, fresh, tmp_path, monkeypatch):
    path = tmp_path / "r.sqlite"
    with_store(exp, path).evaluate_point(PLAIN)  # fill the store
    net = copy.deepcopy(exp.trained)
    with torch.no_grad():
        net.features[0].weight[0, 0, 0, 0] += 1e-3  # another checkpoint
    splits = load_dataset("mnist5k")
    y = splits.y_test.clone()
    y[0] = (y[0] + 1) % 10
    other_data = dataclasses.replace(splits, y_test=y)  # other test data
    others = {
        "weights": Experiment("lenet5", net=net, meta=exp.meta, store=Store(path)),
        "data": Experiment("lenet5", splits=other_data, store=Store(path)),
        "fault_biases": Experiment("lenet5", fault_biases=True, store=Store(path)),
    }
    for name, e in others.items():
        e.evaluate_point(PLAIN)
        assert e.store.read == 0 and e.store.ran == 12, name
    monkeypatch.setattr(store_mod, "RESULT_FORMAT", store_mod.RESULT_FORMAT + 1)
    e = with_store(exp, path)
    same_point(e.evaluate_point(PLAIN), fresh["plain"])
    assert e.store.read == 0, "a store of another result format was read"
    e2 = with_store(exp, path)
    e2.evaluate_point(PLAIN, design="plain")
    assert e2.store.read == 12  # both formats' rows are there, each read by its own engine only


def test_the_store_round_trips_a_trial_exactly(tmp_path):
    st = Store(tmp_path / "s.sqlite")
    rng = np.random.default_rng(0)
    correct = rng.random(1001) < 0.9
    acc = int(correct.sum()) / correct.size
    spec = CampaignSpec("lrp", 1.0)
    st.write("p", {"model": "m"}, [(plan_key(spec), spec, "lrp 1%", 3, Trial(acc, 0.125, 7, correct, 2, 0.5))])
    st.write("p", {"model": "m"}, [(plan_key(spec), spec, "lrp 1%", 3, Trial(0.0, 0.0, 0, correct, 2, 0.5))])
    (got,) = st.trials("p", [plan_key(spec)], 10, 1001)
    t = got[3]
    assert (t.accuracy, t.mismatch, t.flips, t.stratum, t.seconds) == (acc, 0.125, 7, 2, 0.5)  # the first kept
    assert t.correct.dtype == np.bool_ and np.array_equal(t.correct, correct)
    assert st.trials("p", [plan_key(spec)], 3, 1001) == [{}]  # trial 3 is not among trials 0..2
    assert st.trials("p", [plan_key(spec)], 10, 1000) == [{}]  # another test-set size: not read
    info = st.info()
    assert (info["trials"], info["points"], info["plans"], info["models"]) == (1, 1, 1, ["m"])
    assert st.clear() == 1 and st.info()["trials"] == 0


def test_a_row_whose_bits_disagree_with_its_accuracy_is_not_read(tmp_path):
    st = Store(tmp_path / "s.sqlite")
    spec = CampaignSpec()
    correct = np.ones(16, dtype=bool)
    st.write("p", {}, [(plan_key(spec), spec, "none", 0, Trial(1.0, 0.0, 0, correct))])
    with sqlite3.connect(st.path) as conn:
        conn.execute("UPDATE trials SET accuracy = 0.5")
    assert st.trials("p", [plan_key(spec)], 1, 16) == [{}]


def fill(path, n=50):
    st = Store(path)
    spec = CampaignSpec()
    rows = [(plan_key(spec), spec, "none", t, Trial(1.0, 0.0, t, np.ones(1000, dtype=bool))) for t in range(n)]
    st.write("p", {"model": "m"}, rows)
    st.close()
    return spec


@pytest.mark.parametrize("damage", ["truncated", "garbage", "zeroed"])
def test_a_damaged_file_is_set_aside_with_one_warning(tmp_path, capsys, damage):
    path = tmp_path / "s.sqlite"
    spec = fill(path, 400)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"this is not a database" * 100)
    else:
        path.write_bytes(data[:4096] + bytes(len(data) - 4096))
    capsys.readouterr()
    st = Store(path)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: results store") and "Traceback" not in err, err
    assert st.trials("p", [plan_key(spec)], 400, 1000) == [{}]  # nothing wrong is read: a fresh store
    assert st.info()["trials"] == 0
    aside = [p for p in tmp_path.iterdir() if ".bad-" in p.name]
    assert len(aside) == 1 and aside[0].stat().st_size > 0
    fill(path, 3)
    assert Store(path).info()["trials"] == 3


def test_a_file_damaged_while_in_use_is_set_aside_not_raised(tmp_path, capsys):
    path = tmp_path / "s.sqlite"
    spec = fill(path, 400)
    st = Store(path)
    capsys.readouterr()
    data = path.read_bytes()
    path.write_bytes(data[:4096] + bytes(len(data) - 4096))  # damaged under a running process
    got = st.trials("p", [plan_key(spec)], 400, 1000)
    assert got == [{}] or all(t.accuracy == 1.0 for t in got[0].values())
    err = capsys.readouterr().err
    assert err.count("\n") <= 1 and "Traceback" not in err


def test_bad_store_paths_are_one_line(tmp_path):
    with pytest.raises(XtmrError, match="is a folder"):
        Store(tmp_path)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(XtmrError, match="another program's SQLite database"):
        Store(other)
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(XtmrError, match="cannot create the folder"):
        Store(afile / "s.sqlite")


def test_location_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("XTMR_STORE", "none")
    assert default_path() is None and default_store() is None
    monkeypatch.setenv("XTMR_STORE", str(tmp_path / "x.sqlite"))
    assert default_store().path == tmp_path / "x.sqlite"
    monkeypatch.delenv("XTMR_STORE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_path() == tmp_path / "cache" / "xtmr" / "results.sqlite"
    monkeypatch.setenv("XTMR_STORE", str(tmp_path / "afile" / "x.sqlite"))
    (tmp_path / "afile").write_text("")
    assert default_store() is None  # the default store that cannot open: a warning, and no store


def test_an_experiment_travels_without_its_store(exp, tmp_path):
    e = with_store(exp, tmp_path / "r.sqlite")
    assert pickle.loads(pickle.dumps(e)).store is None


def _writer(path: str, start: int, n: int, barrier) -> None:
    st = Store(path)
    spec = CampaignSpec()
    barrier.wait()
    for t in range(start, start + n):  # one transaction per trial, as a campaign writes them
        correct = np.arange(100) % (t + 2) == 0
        trial = Trial(int(correct.sum()) / 100, 0.0, t, correct)
        st.write("p", {"model": "m"}, [(plan_key(spec), spec, "none", t, trial)])


def test_two_processes_writing_at_once_neither_duplicate_nor_lose_a_trial(tmp_path):
    path = str(tmp_path / "s.sqlite")
    Store(path).close()
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(path, start, 120, barrier)) for start in (0, 60)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    (got,) = Store(path).trials("p", [plan_key(CampaignSpec())], 1000, 100)
    assert sorted(got) == list(range(180))
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 180
    for t, trial in got.items():
        assert trial.flips == t and np.array_equal(trial.correct, np.arange(100) % (t + 2) == 0)


# -- the command line ---------------------------------------------------------------------------------------

SWEEP = ["sweep", "--protect", "lrp,bits", "--bits", "30", "--budgets", "1", "--bers", "1e-5,1e-2", "--trials", "6"]


def test_cli_store_flag_and_commands(tmp_path, monkeypatch, capsys):
    from xtmr_core.cli import main

    monkeypatch.setenv("XTMR_STORE", "none")  # the CLI sets it for the run's experiments: restored after
    path = tmp_path / "s.sqlite"
    ev = ["evaluate", "--protect", "magnitude", "--budget", "5", "--ber", "1e-2", "--format", "int8", "--trials", "3"]
    assert main([*ev, "--store", str(path)]) == 0
    first = capsys.readouterr().out
    assert "0 trials read, 6 run" in first
    assert main([*ev, "--store", str(path)]) == 0
    second = capsys.readouterr().out
    assert "6 trials read, 0 run" in second
    assert first.split("results store")[0] == second.split("results store")[0]  # the same numbers
    assert main(["store", "info", "--store", str(path)]) == 0
    info = capsys.readouterr().out
    assert "trials  6" in info and "points  1" in info and "lenet5" in info
    out = tmp_path / "t.csv"
    assert main(["store", "export", "--store", str(path), "--out", str(out)]) == 0
    import pandas as pd

    table = pd.read_csv(out)
    assert len(table) == 6 and list(table["trial"]) == [0, 1, 2, 0, 1, 2]
    assert set(table["plan"]) == {"no protection", "magnitude 5%"} and (table["images"] == 1000).all()
    assert (table["correct_images"] / table["images"] == table["accuracy"]).all()
    capsys.readouterr()
    assert main(["store", "clear", "--store", str(path)]) == 0
    assert "cleared 6 trials" in capsys.readouterr().out
    assert main([*ev, "--store", "none"]) == 0
    assert "results store off" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "--store", "{tmp}"], "is a folder"),
        (["evaluate", "--store", "{tmp}/missing/s.sqlite"], "does not exist"),
        (["sweep", "--store", "{tmp}"], "is a folder"),
        (["report", "--store", "{tmp}/missing/s.sqlite"], "does not exist"),
        (["store", "info", "--store", "{tmp}"], "is a folder"),
        (["store", "info", "--out", "x.csv", "--store", "{tmp}/s.sqlite"], "--out is for store export"),
        (["store", "export", "--out", "/", "--store", "{tmp}/s.sqlite"], "is a folder"),
    ],
)
def test_cli_bad_store_paths_are_one_line_and_exit_2(argv, message, tmp_path, monkeypatch, capsys):
    from xtmr_core.cli import main

    monkeypatch.setenv("XTMR_STORE", "none")
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_cli_sweep_rerun_reads_everything_and_writes_the_same_csv(tmp_path, monkeypatch, capsys):
    from xtmr_core.cli import main

    monkeypatch.setenv("XTMR_STORE", str(tmp_path / "s.sqlite"))
    assert main([*SWEEP, "--out", str(tmp_path / "a.csv")]) == 0
    assert "0 trials read, 36 run" in capsys.readouterr().out
    assert main([*SWEEP, "--out", str(tmp_path / "b.csv")]) == 0
    assert "36 trials read, 0 run" in capsys.readouterr().out
    assert main([*SWEEP, "--store", "none", "--out", str(tmp_path / "c.csv")]) == 0
    a = (tmp_path / "a.csv").read_bytes()
    assert a == (tmp_path / "b.csv").read_bytes() == (tmp_path / "c.csv").read_bytes()


@pytest.mark.slow
def test_a_sweep_killed_half_way_and_rerun_gives_the_uninterrupted_csv(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    argv = [*SWEEP[:-1], "10", "--bers", "1e-5,1e-3,1e-2", "--protect", "lrp,magnitude,bits"]
    env = {**os.environ, "XTMR_STORE": str(tmp_path / "s.sqlite"), "OMP_NUM_THREADS": "1"}
    total = 3 * 4 * 10  # points x plans x trials
    cmd = [sys.executable, "-m", "xtmr_core", *argv]
    proc = subprocess.Popen([*cmd, "--out", str(tmp_path / "killed.csv")], env=env, stderr=subprocess.DEVNULL)
    stored = 0
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            with sqlite3.connect(tmp_path / "s.sqlite", timeout=5) as conn:
                stored = conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
        except sqlite3.Error:
            continue
        if stored >= total // 2:
            break
    assert proc.poll() is None, "the sweep finished before it could be killed half-way"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed.csv").exists()
    rerun = subprocess.run([*cmd, "--out", str(tmp_path / "rerun.csv")], env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    line = next(x for x in rerun.stdout.splitlines() if x.startswith("results store"))
    read = int(line.split(": ")[1].split(" trials read")[0].replace(",", ""))
    ran = int(line.split(", ")[1].split(" run")[0].replace(",", ""))
    assert read >= total // 2 and read + ran == total, line
    fresh = subprocess.run(
        [*cmd, "--store", "none", "--out", str(tmp_path / "fresh.csv")], env=env, capture_output=True, text=True
    )
    assert fresh.returncode == 0, fresh.stderr
    assert (tmp_path / "rerun.csv").read_bytes() == (tmp_path / "fresh.csv").read_bytes()


def test_batched_trials_fill_the_gaps_the_same(exp, fresh, tmp_path):
    e = with_store(exp, tmp_path / "r.sqlite")
    e.trials_per_pass = 3  # several weight sets per forward pass: chunks mix stored and missing trials
    e.evaluate_point([s.replace(trials=4) for s in PLAIN])
    e.store.write("x", {}, [])  # no rows: nothing written, nothing counted
    same_point(e.evaluate_point(PLAIN), fresh["plain"])
    assert (e.store.read, e.store.ran) == (8, 12)


def test_scores_are_kept_exactly_and_read_back_by_their_own_fingerprint_only(exp, tmp_path, monkeypatch):
    import xtmr_core.experiment as experiment_mod

    path = tmp_path / "r.sqlite"
    e = with_store(exp, path)
    e._scores = {}  # not the fixture's cache
    lrp = e.scores("lrp", "epsilon")
    assert np.array_equal(lrp, experiment_mod.Experiment.scores(exp, "lrp", "epsilon"))

    def computed(*args, **kwargs):
        raise RuntimeError("computed again")

    monkeypatch.setattr(experiment_mod, "score_weights", computed)

    def fresh_copy(**fingerprint):
        f = with_store(exp, path)
        f._scores = {}
        f._fingerprint = {**exp.fingerprint(), **fingerprint}
        f._fingerprint.pop("device")
        return f

    got = fresh_copy().scores("lrp", "epsilon")
    assert got.dtype == np.float64 and got.tobytes() == lrp.tobytes()  # read back bit for bit, not computed
    with pytest.raises(RuntimeError, match="computed again"):
        fresh_copy().scores("lrp", "z")  # another rule
    with pytest.raises(RuntimeError, match="computed again"):
        fresh_copy(weights="another checkpoint").scores("lrp", "epsilon")
    with sqlite3.connect(path) as conn:  # a damaged row: computed again, never a wrong ranking
        conn.execute("UPDATE scores SET data = substr(data, 1, 8) || zeroblob(8) || substr(data, 17)")
    with pytest.raises(RuntimeError, match="computed again"):
        fresh_copy().scores("lrp", "epsilon")
    assert Store(path).info()["scores"] == 1
