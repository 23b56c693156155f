"""Runners: serial and Ray give the same grid, row for row; Ray is imported only on the --ray path."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from xtmr_core.distributed import RayRunner, make_runner, serial_runner
from xtmr_core.report.grid import GridRunner

ROOT = Path(__file__).resolve().parents[1]


def _square(exp, item):
    return exp * item * item


def _die_once(exp, item):
    """Kill this worker process the first time item 2 runs (a marker file says it happened)."""
    value, marker = item
    if value == 2 and not os.path.exists(marker):
        Path(marker).write_text("killed")
        os._exit(1)
    return exp * value


def test_serial_runner_keeps_order_and_reports_each_item_once():
    seen = []
    out = serial_runner(10, _square, [3, 1, 2], progress=lambda d, t, item: seen.append((d, t, item)))
    assert out == [90, 10, 40] and seen == [(1, 3, 3), (2, 3, 1), (3, 3, 2)]
    assert make_runner(None) is serial_runner and isinstance(make_runner("local"), RayRunner)


def test_ray_is_not_imported_without_ray():
    """Every module of the sweep and report paths loads, a runner is built and `sweep --ray` parses,
    and Ray is still not imported (a fresh interpreter, so no other test's import counts)."""
    code = (
        "import sys\n"
        "import xtmr_core.cli, xtmr_core.sweep, xtmr_core.experiment, xtmr_core.batched, xtmr_core.report\n"
        "from xtmr_core.distributed import RayRunner, make_runner, serial_runner\n"
        "from xtmr_core.report.grid import GridRunner\n"
        "assert make_runner(None) is serial_runner\n"
        "GridRunner(RayRunner('auto'))\n"
        "a = xtmr_core.cli.build_parser().parse_args(['sweep', '--ray'])\n"
        "assert a.ray == 'local'\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]


@pytest.fixture(scope="module")
def ray_runner():
    runner = RayRunner(num_cpus=2)
    ray = runner._init()
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import the tests
    yield runner
    runner.shutdown()


@pytest.mark.slow
def test_ray_sweep_gives_the_serial_csv_row_for_row(ray_runner, tmp_path):
    from xtmr_core.experiment import Experiment
    from xtmr_core.sweep import run_sweep

    exp = Experiment("lenet5", "mnist5k", device="cpu")
    kw = dict(protects=["magnitude", "full"], budgets=[1], bers=[1e-3], formats=["fp32", "int8"])
    serial = run_sweep(exp, **kw, trials=3, seed=7)
    done = []
    ray = run_sweep(exp, **kw, trials=3, seed=7, runner=ray_runner, progress=lambda d, t, label: done.append(d))
    assert serial.to_csv(index=False) == ray.to_csv(index=False)
    points = len(serial[["format", "ber"]].drop_duplicates())  # progress counts paired grid points, not rows
    assert sorted(done) == list(range(1, points + 1))


@pytest.mark.slow
def test_a_worker_killed_mid_task_is_retried_and_counted_once(ray_runner, tmp_path):
    marker = str(tmp_path / "killed")
    items = [(v, marker) for v in range(5)]
    seen = []
    out = ray_runner(3, _die_once, items, progress=lambda d, t, item: seen.append(item))
    assert Path(marker).exists()  # a worker really died
    assert out == serial_runner(3, _die_once, items) == [0, 3, 6, 9, 12]
    assert sorted(seen) == items  # every item reported once: none lost, none twice


@pytest.mark.slow
def test_sweep_command_with_ray_writes_the_serial_csv(ray_runner, tmp_path):
    from xtmr_core.cli import main

    ray_runner(0, _square, [1])  # the module's Ray is up: the command uses it (and leaves it running)
    args = ["sweep", "--protect", "magnitude,full", "--budgets", "1", "--bers", "1e-3", "--trials", "2"]
    assert main([*args, "--out", str(tmp_path / "serial.csv")]) == 0
    assert main([*args, "--ray", "--out", str(tmp_path / "ray.csv")]) == 0
    assert (tmp_path / "serial.csv").read_text() == (tmp_path / "ray.csv").read_text()


def test_grid_runner_gives_the_local_runners_rows(tmp_path):
    """The report's grid through a GridRunner (here: serial) gives the rows of its own LocalRunner."""
    from xtmr_core.report.grid import GridPoint, LocalRunner, ber_plans

    points = [GridPoint("lenet5", "fp32", ber, tuple(ber_plans("fp32")[:2]), trials=2) for ber in (1e-4, 1e-3)]
    ticks: list = []
    mine = GridRunner(serial_runner)(points, "mnist5k", {}, lambda n, label: ticks.append(n))
    theirs = LocalRunner()(points, "mnist5k", {}, lambda n, label: None)
    import pandas as pd

    def table(rows: list) -> str:  # as CSV text: NaN equals NaN, timings left out
        return pd.DataFrame(rows).drop(columns=["seconds"]).to_csv(index=False)

    assert len(mine) == 2 * len(points) and table(mine) == table(theirs)
    assert sum(ticks) == len(points)


def _refused(reason: str) -> ConnectionError:
    """What ray.init raises when a cluster refuses the connection: a ConnectionError chained to Ray's reason."""
    try:
        try:
            raise RuntimeError(reason)
        except RuntimeError as cause:
            raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379") from cause
    except ConnectionError as e:
        return e


def test_a_refused_ray_address_says_rays_reason_in_one_line(monkeypatch):
    from xtmr_core import distributed

    auth = _refused(
        "RPC error: InvalidAuthToken: Authentication token is missing or incorrect. Note: RAY_AUTH_MODE is currently "
        "'disabled' (not 'token').\nEnsure that the token ..."
    )
    monkeypatch.delenv(distributed.AUTH_MODE, raising=False)
    text = distributed._connect_error("127.0.0.1:6379", auth)
    assert "\n" not in text and text.startswith("cannot reach Ray at '127.0.0.1:6379': Authentication token is missing")
    assert "copy the head's ~/.ray/auth_token here or set RAY_AUTH_TOKEN" in text
    monkeypatch.setenv(distributed.AUTH_MODE, "token")
    assert "is not the head's" in distributed._connect_error("auto", auth)
    # another reason, only in the core's log lines: that one, and no word about tokens
    log = "[2026-12-04 16:55:32,634 W 4717 4717] gcs_client.cc:210: Failed to get cluster ID: Connection refused\n"
    other = distributed._connect_error("10.0.0.1:6379", ConnectionError("Failed to connect"), log)
    assert other == "cannot reach Ray at '10.0.0.1:6379': Connection refused"


def test_token_authentication_is_turned_on_where_a_token_is(monkeypatch, tmp_path):
    from xtmr_core import distributed

    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ray/auth_token here
    monkeypatch.delenv(distributed.AUTH_TOKEN, raising=False)
    monkeypatch.delenv(distributed.AUTH_TOKEN_PATH, raising=False)
    monkeypatch.delenv(distributed.AUTH_MODE, raising=False)
    distributed._token_auth_where_a_token_is()
    assert distributed.AUTH_MODE not in os.environ  # no token: the mode is Ray's to choose
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("x" * 32)
    distributed._token_auth_where_a_token_is()
    assert os.environ[distributed.AUTH_MODE] == "token"  # ray start --head wrote one: send it
    monkeypatch.setenv(distributed.AUTH_MODE, "disabled")
    distributed._token_auth_where_a_token_is()
    assert os.environ[distributed.AUTH_MODE] == "disabled"  # a mode the user chose stays


class _Ref:
    """A fake object reference: the value as it arrived (after a pickle round trip, as between processes)."""

    def __init__(self, value) -> None:
        self.value = value

    def hex(self) -> str:
        return str(id(self))


def _travel(obj):
    import pickle

    return pickle.loads(pickle.dumps(obj))


class _FakeRay:
    """Ray's calls that ``RayRunner`` makes, run in this process with every value pickled on the way, so a test
    of the driver/worker protocol needs no Ray (``tasks`` counts the tasks submitted)."""

    def __init__(self) -> None:
        self.tasks = 0

    def put(self, obj):
        return _Ref(_travel(obj))

    def get(self, ref):
        return ref.value

    def get_gpu_ids(self):
        return []

    def cluster_resources(self):
        return {}

    def wait(self, refs, num_returns=1):
        return refs[:num_returns], refs[num_returns:]

    def remote(self, fn):
        fake = self

        class Remote:
            def options(self, **kw):
                return self

            def remote(self, box, *args):
                fake.tasks += 1
                return _Ref(_travel(fn(box, *[_travel(a) for a in args])))

        return Remote()


def test_ray_workers_read_the_stored_trials_and_the_driver_writes_what_they_ran(tmp_path, monkeypatch):
    """With a results store, the driver sends each point's stored trials with its task and writes back the trials
    the worker ran: a 3-trial sweep after a 2-trial one runs one trial per plan; a rerun sends no task; the CSV
    is the store-less serial one."""
    from xtmr_core import distributed
    from xtmr_core.experiment import Experiment
    from xtmr_core.store import Store
    from xtmr_core.sweep import run_sweep

    fake = _FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)  # _worker_experiment imports it
    runner = RayRunner(num_cpus=1)
    monkeypatch.setattr(runner, "_init", lambda: fake)
    exp = Experiment("lenet5", "mnist5k", device="cpu", store=Store(tmp_path / "s.sqlite"))
    kw = dict(protects=["magnitude", "full"], budgets=[1], bers=[1e-3, 1e-2], formats=["int8"], seed=3)
    rows = 3 * 2  # plans (with the baseline) x points
    run_sweep(exp, **kw, trials=2)
    assert (exp.store.read, exp.store.ran) == (0, 2 * rows)
    try:
        ray = run_sweep(exp, **kw, trials=3, runner=runner)
        assert fake.tasks == 2 and (exp.store.read, exp.store.ran) == (2 * rows, 3 * rows)
        again = run_sweep(exp, **kw, trials=3, runner=runner)
        assert fake.tasks == 2 and (exp.store.read, exp.store.ran) == (5 * rows, 3 * rows)  # read here, no task
    finally:
        distributed._WORKER_EXPERIMENTS.clear()
    exp.store = None
    serial = run_sweep(exp, **kw, trials=3)
    assert serial.to_csv(index=False) == ray.to_csv(index=False) == again.to_csv(index=False)


@pytest.mark.slow
def test_real_ray_workers_run_only_the_trials_the_store_lacks(ray_runner, tmp_path):
    from xtmr_core.experiment import Experiment
    from xtmr_core.store import Store
    from xtmr_core.sweep import run_sweep

    exp = Experiment("lenet5", "mnist5k", device="cpu", store=Store(tmp_path / "s.sqlite"))
    kw = dict(protects=["magnitude"], budgets=[1], bers=[1e-3, 1e-2], formats=["int8"], seed=5)
    run_sweep(exp, **kw, trials=2)
    ray = run_sweep(exp, **kw, trials=3, runner=ray_runner)
    assert (exp.store.read, exp.store.ran) == (2 * 4, 3 * 4)  # 2 plans x 2 points
    exp.store = None
    assert run_sweep(exp, **kw, trials=3).to_csv(index=False) == ray.to_csv(index=False)
