"""One in-flight computation per key, shared by every thread of the process that asks for it at the same time.

Two app sessions (threads of one Streamlit server) that ask for the same new grid point at the same moment
must not both compute it: the first to ask computes (the *owner*), the others wait for it, are handed each
partial result it publishes (so their pages stream too) and get its final result. When the owner fails or is
cancelled — a Streamlit rerun raises inside its progress callback — one waiter takes over and computes it
itself (with a results store, the trials the owner finished are read back, not run again); the others wait
for the new owner. A waiter whose own ``should_stop`` says stop leaves the queue and computes on its own
(it is then stopped at once and returns what it has).

The map is process-wide; keys are anything hashable (``Experiment.evaluate_point`` uses the point's store
key, its plans' keys and its trial count). Torch-free and Streamlit-free.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

R = TypeVar("R")
P = TypeVar("P")

#: Seconds between a waiter's checks of its own ``should_stop`` while nothing new arrives.
POLL_S = 0.2

_RUNNING, _DONE, _ABANDONED, _STOPPED = "running", "done", "abandoned", "stopped"


class _Flight(Generic[R, P]):
    """One computation in progress: its state, latest partial result and final result, under a condition."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.state = _RUNNING
        self.version = 0  # counts publications, so a waiter hands each partial on once
        self.partial: P | None = None
        self.result: R | None = None
        self.waiters = 0


_FLIGHTS: dict[Hashable, _Flight[object, object]] = {}
_LOCK = threading.Lock()


def in_flight() -> int:
    """How many computations are in flight in this process now (for tests and diagnostics)."""
    with _LOCK:
        return len(_FLIGHTS)


def shared(
    key: Hashable,
    compute: Callable[[Callable[[P], None]], R],
    *,
    on_partial: Callable[[P], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> R:
    """``compute(publish)``, unless another thread is computing ``key`` right now: then wait for its result.

    Args:
        key: what is computed (equal keys = the same result).
        compute: does the work; it calls ``publish(partial)`` with each partial result (e.g. after each trial)
            so that waiters can show it. It is called only in the thread that owns the key.
        on_partial: this caller's own progress callback: the owner's ``compute`` calls it itself; a waiter gets
            every partial the owner publishes while it waits. An exception it raises ends this call (a waiter
            simply leaves; an owner's computation is abandoned and a waiter takes over).
        should_stop: polled while waiting; ``True`` makes this caller compute on its own instead (its
            ``compute`` is expected to stop at once and return what it has).

    Returns:
        The result: computed here, or the owner's (the same object for every waiter: do not mutate it).
    """
    while True:
        with _LOCK:
            flight = _FLIGHTS.get(key)
            owner = flight is None
            if flight is None:
                flight = _Flight()
                _FLIGHTS[key] = flight
            else:
                with flight.cond:
                    flight.waiters += 1
        if owner:
            return _own(key, flight, compute)  # type: ignore[return-value]
        outcome = _wait(flight, on_partial, should_stop)  # type: ignore[arg-type]
        if outcome == _DONE:
            return flight.result  # type: ignore[return-value]
        if outcome == _STOPPED:
            return compute(lambda partial: None)
        # abandoned by its owner: try again (the first to come back becomes the owner)


def _own(key: Hashable, flight: _Flight[R, P], compute: Callable[[Callable[[P], None]], R]) -> R:
    """Run ``compute`` as the key's owner; hand the result (or the abandonment) to the waiters."""

    def publish(partial: P) -> None:
        with flight.cond:
            flight.partial = partial
            flight.version += 1
            flight.cond.notify_all()

    try:
        result = compute(publish)
    except BaseException:
        _finish(key, flight, _ABANDONED, None)
        raise
    _finish(key, flight, _DONE, result)
    return result


def _finish(key: Hashable, flight: _Flight[R, P], state: str, result: R | None) -> None:
    with _LOCK:
        if _FLIGHTS.get(key) is flight:
            del _FLIGHTS[key]  # a later ask starts afresh (its result is then in the caller's cache or store)
    with flight.cond:
        flight.state, flight.result = state, result
        flight.cond.notify_all()


def _wait(flight: _Flight[R, P], on_partial: Callable[[P], None] | None, should_stop: Callable[[], bool] | None) -> str:
    """Wait for ``flight`` to end, handing each new partial to ``on_partial``: ``_DONE``, ``_ABANDONED``, or
    ``_STOPPED`` when ``should_stop`` said so first."""
    seen = 0
    try:
        while True:
            with flight.cond:
                if flight.state == _RUNNING and flight.version == seen:
                    flight.cond.wait(POLL_S)
                state, version, partial = flight.state, flight.version, flight.partial
            if state != _RUNNING:
                return state
            if version != seen:
                seen = version
                if on_partial is not None and partial is not None:
                    on_partial(partial)  # outside the condition: a slow page must not hold the owner up
            if should_stop is not None and should_stop():
                return _STOPPED
    finally:
        with flight.cond:
            flight.waiters -= 1


__all__ = ["POLL_S", "in_flight", "shared"]
