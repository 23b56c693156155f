"""Shared in-flight computations: two threads asking for the same key at once compute it once; a waiter sees
the owner's partial results, takes over when the owner is cancelled, and leaves when told to stop."""

import threading
import time

import pytest

from xtmr_core import inflight
from xtmr_core.spec import CampaignSpec


def _waiters(key) -> int:
    with inflight._LOCK:
        flight = inflight._FLIGHTS.get(key)
    return 0 if flight is None else flight.waiters


def _until(cond, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, "timed out"
        time.sleep(0.005)


class Gated:
    """A computation that publishes ``1, 2`` and returns ``"result"``, held at its start until ``go`` is set."""

    def __init__(self, fail_first: bool = False) -> None:
        self.calls = 0
        self.shown = threading.Event()  # set by a waiter that has been handed the last partial
        self.started = threading.Event()
        self.go = threading.Event()
        self.fail_first = fail_first

    def __call__(self, publish):
        self.calls += 1
        n = self.calls
        first = n == 1
        self.started.set()
        if first:
            assert self.go.wait(20)
        publish(1)
        publish(2)
        if first and not self.fail_first:
            self.shown.wait(2)  # let the waiter see the partial before the result supersedes it
        if first and self.fail_first:
            raise KeyboardInterrupt("a Streamlit rerun")  # a BaseException, as Streamlit's are
        return f"result {n}"


def _run_two(key, work, *, second_kwargs=None):
    """The first thread owns ``key``; the second asks while it is in flight; returns both outcomes."""
    out: dict = {}

    def ask(name, **kw):
        try:
            out[name] = inflight.shared(key, work, **kw)
        except BaseException as e:  # noqa: BLE001 - the owner's cancellation is the point of the test
            out[name] = e

    first = threading.Thread(target=ask, args=("first",))
    first.start()
    assert work.started.wait(20)
    seen: list = []

    def on_partial(value) -> None:
        seen.append(value)
        if value == 2:
            work.shown.set()

    second = threading.Thread(target=ask, args=("second",), kwargs={"on_partial": on_partial, **(second_kwargs or {})})
    second.start()
    _until(lambda: _waiters(key) == 1 or not second.is_alive())
    work.go.set()
    first.join(20)
    second.join(20)
    assert inflight.in_flight() == 0
    return out, seen


def test_the_same_key_at_once_is_computed_once_and_the_waiter_sees_its_partials():
    work = Gated()
    out, seen = _run_two("k1", work)
    assert work.calls == 1
    assert out == {"first": "result 1", "second": "result 1"}
    assert seen and seen[-1] == 2 and set(seen) <= {1, 2}  # the waiter streamed the owner's partials


def test_a_cancelled_owner_hands_the_work_to_a_waiter():
    work = Gated(fail_first=True)
    out, _ = _run_two("k2", work)
    assert isinstance(out["first"], KeyboardInterrupt)
    assert out["second"] == "result 2" and work.calls == 2  # the waiter took over and computed it


def test_a_waiter_told_to_stop_computes_on_its_own():
    work = Gated()
    out, _ = _run_two("k3", work, second_kwargs={"should_stop": lambda: True})
    assert work.calls == 2 and out["first"] == "result 1" and out["second"] == "result 2"


def test_different_keys_do_not_wait_for_each_other():
    work = Gated()
    out: dict = {}
    first = threading.Thread(target=lambda: out.setdefault("a", inflight.shared("ka", work)))
    first.start()
    assert work.started.wait(20)
    assert inflight.shared("kb", lambda publish: "other") == "other"  # not held up by "ka"
    work.go.set()
    first.join(20)
    assert out["a"] == "result 1" and inflight.in_flight() == 0


@pytest.fixture(scope="module")
def exp():
    from xtmr_core.experiment import Experiment

    return Experiment("lenet5", "mnist5k", store=None)


@pytest.mark.parametrize("how", ["point", "campaign"])
def test_two_sessions_asking_for_the_same_point_run_its_trials_once(exp, monkeypatch, how):
    """Two app sessions (threads) ask ``evaluate_point`` (or ``evaluate``) for the same point at the same time:
    its trials run once (``run_point`` is called once), and both get the numbers a lone run gives."""
    import xtmr_core.experiment as experiment_mod

    specs = [CampaignSpec("lrp", 1.0, 1e-3, trials=3, seed=11)]
    ask = (lambda: exp.evaluate_point(specs)) if how == "point" else (lambda: exp.evaluate(specs[0]))
    alone = ask()
    real = experiment_mod.run_point
    calls = []
    started, go = threading.Event(), threading.Event()

    def counted(*args, **kwargs):
        calls.append(1)
        started.set()
        assert go.wait(20)
        return real(*args, **kwargs)

    monkeypatch.setattr(experiment_mod, "run_point", counted)
    out: dict = {}
    seen: list = []
    first = threading.Thread(target=lambda: out.setdefault("first", ask()))
    first.start()
    assert started.wait(20)
    if how == "point":
        watch = lambda: exp.evaluate_point(specs, on_trial=seen.append)  # noqa: E731
    else:
        watch = ask
    second = threading.Thread(target=lambda: out.setdefault("second", watch()))
    second.start()
    _until(lambda: sum(f.waiters for f in list(inflight._FLIGHTS.values())) == 1)
    go.set()
    first.join(60)
    second.join(60)
    assert len(calls) == 1
    accs = (lambda r: [x.accuracies for x in r.results]) if how == "point" else (lambda r: r.accuracies)
    assert accs(out["first"]) == accs(out["second"]) == accs(alone)
    if how == "point":
        assert [p.trials for p in seen] == sorted(p.trials for p in seen) and seen[-1].trials <= 3
