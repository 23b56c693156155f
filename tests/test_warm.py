"""The warm command fills the store with exactly the points the Fault lab asks for at its defaults, once."""

import ui
from xtmr_core import warm as warm_mod
from xtmr_core.spec import CampaignSpec


def test_the_warmed_points_are_the_fault_labs_default_points():
    assert warm_mod.BER_STOPS == ui.BER_VALUES
    d = ui.DEFAULTS
    for fmt in warm_mod.FORMATS:
        # the spec the Fault lab builds from its default controls (app_views.fault_lab_parts._spec)
        app = [CampaignSpec(d["protect"], d["budget"], ber, fmt, d["trials"], d["seed"], d["mode"], rule=d["rule"],
                            guard=d["guard"]) for ber in ui.BER_VALUES]  # fmt: skip
        assert warm_mod.warm_specs(fmt) == app


def test_warm_runs_each_point_once_and_then_reads_it(tmp_path, monkeypatch, capsys):
    from xtmr_core.cli import main

    monkeypatch.setenv("XTMR_STORE", "none")  # the command's --store decides
    monkeypatch.setattr(warm_mod, "BER_STOPS", (1e-3, 1e-2))
    monkeypatch.setitem(warm_mod.DEFAULT_PLAN, "trials", 2)
    argv = ["warm", "--formats", "int8", "--store", str(tmp_path / "s.sqlite")]
    assert main(argv) == 0
    first = capsys.readouterr().out.splitlines()
    assert first[0].startswith("lenet5 int8 BER 0.001: 2 trials of lrp 1% and no protection, 0 read, 4 run")
    assert len(first) == 3 and "warmed 2 points" in first[-1] and "0 trials read, 8 run" in first[-1]
    assert main(argv) == 0
    assert "8 trials read, 0 run" in capsys.readouterr().out
    assert main(["warm", "--store", "none"]) == 2
    assert "results store is off" in capsys.readouterr().err
