"""The command line: one-line errors with exit code 2, JSON output, sweeps and the bench."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from xtmr_core import vocabulary
from xtmr_core.cli import build_parser, main
from xtmr_core.vocabulary import VERDICTS

BAD = [
    (["evaluate", "--ber", "1.5"], "BER must be"),
    (["evaluate", "--ber=-1e-3"], "BER must be"),
    (["evaluate", "--budget", "120", "--protect", "lrp"], "budget must be"),
    (["evaluate", "--budget", "-1"], "budget must be"),
    (["evaluate", "--model", "resnet"], "unknown model 'resnet'"),
    (["evaluate", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["evaluate", "--format", "fp8"], "invalid choice"),
    (["evaluate", "--protect", "best"], "invalid choice"),
    (["evaluate", "--protect", "best+range"], "invalid choice"),
    (["evaluate", "--protect", "damage", "--budget", "250"], "damage budget"),
    (["evaluate", "--protect", "ecc", "--ecc-double", "drop"], "invalid choice"),
    (["evaluate", "--protect", "damage", "--harm", "max"], "invalid choice"),
    (["evaluate", "--ber", "abc"], "invalid float"),
    (["evaluate", "--trials", "0"], "trials"),
    (["evaluate", "--protect", "bits"], "no bit positions given"),
    (["evaluate", "--protect", "bits", "--bits", "40"], "outside"),
    (["evaluate", "--checkpoint", "/nonexistent/x.pt"], "x.pt"),
    (["sweep", "--bers", "1e-4,7"], "BER must be"),
    (["sweep", "--protect", "lrp,bogus"], "bogus"),
    (["evaluate", "--seed", "-1"], "--seed"),
    (["sweep", "--bers", ","], "comma-separated"),
    (["sweep", "--target", "95"], "--target"),
    (["sweep", "--fault-bits", "99"], "outside"),
    (["sweep", "--formats", "fp32,int8", "--protect", "bits", "--bits", "30"], "outside 0..7"),
    (["sweep", "--out", "/"], "is a folder"),
    (["sweep", "--out", "/nonexistent/x.csv"], "does not exist"),
    (["evaluate", "--export-faults", "/"], "is a folder"),
    (["train", "--out", "/"], "is a folder"),
    (["train", "--batch-size", "0", "--out", "never-written.pt"], "batch-size"),
    (["bench", "--repeats", "0"], "repeats"),
]


@pytest.mark.parametrize("argv, message", BAD)
def test_bad_input_is_one_line_on_stderr_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


# The check must run before torch loads: the CLI answers bad input at once, not after seconds of imports.
TORCH_FREE_BAD = [
    ["evaluate", "--ber", "2"],
    ["evaluate", "--budget", "101", "--protect", "lrp"],
    ["evaluate", "--seed", "-1"],
    ["evaluate", "--trials", "0"],
    ["evaluate", "--protect", "bits", "--bits", "40"],
    ["evaluate", "--fault-bits", "3-1"],
    ["evaluate", "--format", "int8", "--fault-bits", "9"],
    ["sweep", "--bers", "1e-4,7"],
    ["sweep", "--formats", "fp32,int8", "--protect", "bits", "--bits", "30"],
    ["sweep", "--target", "95"],
    ["bench", "--bers", "2"],
    ["train", "--seed", "-1", "--out", "never-written.pt"],
]


@pytest.mark.parametrize("argv", TORCH_FREE_BAD, ids=" ".join)
def test_bad_input_is_refused_before_torch_loads(argv):
    probe = (
        "import sys\nfrom xtmr_core.cli import main\ntry:\n    rc = main(sys.argv[1:])\n"
        "except SystemExit as e:\n    rc = e.code\nprint('torch' in sys.modules, 'numpy' in sys.modules)\nsys.exit(rc)"
    )  # argparse's own usage errors exit through SystemExit
    proc = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("error: "), proc.stderr
    assert proc.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("command", ["evaluate", "sweep", "train"])
def test_model_and_dataset_take_the_vocabulary_and_outside_sources(command):
    extra = ["--out", "x"] if command == "train" else []
    for name in (*vocabulary.MODELS, "torchvision:resnet18", "nets/my.py:build", "mypkg.nets:build"):
        assert build_parser().parse_args([command, "--model", name, *extra]).model == name
    for name in (*vocabulary.DATASETS, "imagefolder:photos/"):
        assert build_parser().parse_args([command, "--dataset", name, *extra]).dataset == name


@pytest.mark.parametrize(
    "command, flag, names",
    [
        ("evaluate", "--format", vocabulary.FORMATS),
        ("evaluate", "--protect", vocabulary.PLAN_NAMES),
        ("evaluate", "--rule", vocabulary.RULES),
        ("evaluate", "--mode", vocabulary.MODES),
        ("evaluate", "--int8-granularity", vocabulary.INT8_GRANULARITIES),
        ("evaluate", "--device", vocabulary.DEVICES),
        ("report", "--dataset", vocabulary.DATASETS),
        ("train", "--optimizer", vocabulary.OPTIMIZERS),
        ("train", "--lr-schedule", vocabulary.LR_SCHEDULES),
    ],
)
def test_the_choices_are_the_vocabulary(command, flag, names):
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    action = next(a for a in sub._actions if flag in a.option_strings)
    assert tuple(action.choices) == names
    for name in names:  # every name parses
        args = build_parser().parse_args([command, flag, name] + (["--out", "x"] if command == "train" else []))
        assert getattr(args, action.dest) == name


def test_bad_checkpoint_file_is_refused_in_one_line(tmp_path, capsys):
    bad = tmp_path / "junk.pt"
    bad.write_bytes(b"not a checkpoint at all")
    assert main(["evaluate", "--checkpoint", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "junk.pt" in err and len(err.splitlines()) == 1


def test_evaluate_json_has_the_documented_keys(capsys):
    assert main(["evaluate", "--protect", "lrp", "--budget", "1", "--ber", "1e-4", "--trials", "8", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    for key in (
        "clean_accuracy",
        "mean_accuracy",
        "ci95",
        "trials",
        "mean_bit_flips",
        "protected_weights",
        "overhead_pct",
        "overhead_with_index_pct",
        "ber",
        "format",
        "protect",
        "budget",
    ):
        assert key in d
    assert d["trials"] == 8 and d["protect"] == "lrp" and d["budget"] == 1 and d["format"] == "fp32"
    assert d["overhead_pct"] == pytest.approx(2.0, rel=0.01) and d["clean_accuracy"] >= 0.95
    assert d["ci95"][0] <= d["mean_accuracy"] <= d["ci95"][1]
    # fp32 at a low BER runs the stratified design by default, and says so with its strata
    assert d["design"] == "stratified" and sum(r["trials"] for r in d["strata"]) == 8
    assert sum(r["weight"] for r in d["strata"]) == pytest.approx(1.0)
    assert d["paired"]["verdict"] in VERDICTS and d["paired"]["difference"]["half_width"] > 0


def test_evaluate_says_not_enough_trials_instead_of_a_zero_width_interval(capsys):
    argv = ["evaluate", "--protect", "lrp", "--budget", "1", "--ber", "1e-5", "--trials", "3", "--json"]
    assert main(argv) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["paired"]["verdict"] == "not enough trials" and d["paired"]["judgement"]["needed"] == 8
    assert d["paired"]["difference"]["low"] is None and d["ci95"] == [None, None]
    # plain sampling at the same point: no trial yet in which the plans differ, so no interval either
    assert main([*argv[:-3], "--trials", "6", "--design", "plain", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["design"] == "plain" and d["strata"] is None
    diff = d["paired"]["difference"]
    assert diff["half_width"] is None or diff["half_width"] > 0  # never a zero-width interval


@pytest.mark.parametrize(
    "argv, plan, copies",
    [
        (["--protect", "ecc", "--ecc-double", "read"], "ecc (DED read)", 12.5),
        (["--protect", "damage", "--budget", "2", "--format", "int8"], "damage 2%", 2.0),
        (["--protect", "lrp+range", "--budget", "1"], "lrp 1% +range", 2.0),
        (["--protect", "lrp", "--guard", "--budget", "1"], "lrp 1% +range", 2.0),
    ],
)
def test_evaluate_offers_ecc_damage_and_the_guard_with_any_plan(argv, plan, copies, capsys):
    assert main(["evaluate", *argv, "--ber", "1e-4", "--trials", "2", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["plan"] == plan and d["overhead_pct"] == pytest.approx(copies, rel=0.01)
    assert d["overhead_with_index_pct"] >= d["overhead_pct"]


def test_evaluate_exports_the_fault_list_of_trial_zero(tmp_path, capsys):
    out = tmp_path / "faults.csv"
    assert (
        main(["evaluate", "--ber", "1e-4", "--trials", "1", "--seed", "3", "--export-faults", str(out), "--json"]) == 0
    )
    d = json.loads(capsys.readouterr().out)
    faults = pd.read_csv(out)
    assert list(faults.columns) == ["layer", "flat_index", "index", "bit", "copy"]
    assert len(faults) == d["flips"][0] and faults["bit"].between(0, 31).all()


def test_sweep_writes_csv_and_the_smallest_budget_table(tmp_path, capsys):
    out = tmp_path / "s.csv"
    assert (
        main(
            [
                "sweep",
                "--protect",
                "lrp,magnitude",
                "--budgets",
                "0.5,5",
                "--bers",
                "1e-4",
                "--trials",
                "2",
                "--out",
                str(out),
                "--target",
                "0.9",
            ]
        )
        == 0
    )
    table = pd.read_csv(out)
    assert set(table["protect"]) == {"none", "lrp", "magnitude"} and len(table) == 5
    assert {"recovered", "relative_gain", "overhead_with_index_pct"} <= set(table.columns)
    printed = capsys.readouterr().out
    assert "smallest budget" in printed and "lrp" in printed


@pytest.mark.slow
def test_python_dash_m_runs_offline_as_a_subprocess():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "xtmr_core",
            "evaluate",
            "--model",
            "lenet5",
            "--dataset",
            "mnist5k",
            "--protect",
            "lrp",
            "--budget",
            "1",
            "--ber",
            "1e-4",
            "--trials",
            "5",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["trials"] == 5
    bad = subprocess.run(
        [sys.executable, "-m", "xtmr_core", "evaluate", "--ber", "2"], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "Traceback" not in bad.stderr


def test_help_exists_for_every_command(capsys):
    for cmd in ("train", "evaluate", "sweep", "bench", "report"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
    assert "--ber" in capsys.readouterr().out


def test_evaluate_exports_the_fault_list_of_any_trial_or_all(tmp_path, capsys):
    argv = ["evaluate", "--ber", "1e-4", "--trials", "3", "--seed", "3", "--json", "--store", "none"]
    assert main([*argv, "--export-faults", str(tmp_path / "all.csv"), "--trial", "all"]) == 0
    flips = json.loads(capsys.readouterr().out)["flips"]
    every = pd.read_csv(tmp_path / "all.csv")
    assert list(every.columns) == ["trial", "layer", "flat_index", "index", "bit", "copy"]
    assert every.groupby("trial").size().tolist() == flips  # one row per faulty bit of each trial
    assert main([*argv, "--export-faults", str(tmp_path / "t2.csv"), "--trial", "2"]) == 0
    capsys.readouterr()
    two = pd.read_csv(tmp_path / "t2.csv")
    assert two.equals(every[every["trial"] == 2].drop(columns="trial").reset_index(drop=True))
    for bad, says in (
        (["--trial", "3", "--export-faults", str(tmp_path / "x.csv")], "outside 0..2"),
        (["--trial", "1"], "--export-faults"),
    ):
        assert main([*argv, *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert says in err and len(err.splitlines()) == 1


def test_the_smallest_budget_table_says_not_reached_instead_of_nan():
    from xtmr_core.sweep import iso_table, iso_text

    rows = [("lrp", 0.5, 0.90), ("lrp", 1.0, 0.96), ("magnitude", 0.5, 0.80), ("magnitude", 1.0, 0.85)]
    table = pd.DataFrame(
        [
            {"format": "fp32", "ber": 1e-4, "protect": p, "plan": f"{p} {b:g}%", "budget": b, "mean_accuracy": acc}
            for p, b, acc in rows
        ]
    )
    text = iso_text(iso_table(table, 0.95)).set_index("protect")
    assert text.loc["lrp", "min_budget"] == "1%" and text.loc["lrp", "accuracy_at_min"] == "0.9600"
    assert text.loc["magnitude", "min_budget"] == "not reached (max budget tried: 1%)"
    assert "NaN" not in text.to_string() and "nan" not in text.to_string()
