"""Running a grid of campaign points: one after another here, or as Ray tasks on a cluster.

A *runner* is any callable ``runner(exp, fn, items, progress=None) -> list``: it returns
``[fn(exp, item) for item in items]``, in the order of ``items``, whatever order the work finished in.
``fn`` is a module-level function (it travels to other processes by name) and ``exp`` the ``Experiment``.
``serial_runner`` does that in this process; ``RayRunner`` makes each item a Ray task. The grids of
``sweep.run_sweep`` and the report take a runner, so ``--ray`` changes where the work runs, never the result:
every campaign's faults depend on its ``(seed, trial)`` alone, so a point gives the same numbers in any
process.

Ray is imported only inside ``RayRunner`` (``import xtmr_core.distributed`` does not import it), so the
app and the rest of the command line do not pay for it.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from xtmr_core.errors import XtmrError

T = TypeVar("T")
R = TypeVar("R")

#: ``progress(done, total, item)``: called once per finished item, ``done`` counting up to ``total``.
Progress = Callable[[int, int, Any], None]

#: What ``--ray`` without an address means: start a local Ray on this machine's cores.
LOCAL = "local"


#: ``carry(exp, item)``: the results-store trials ``item`` needs, packed to travel (``Experiment.carried``), or
#: ``None``. A runner whose workers cannot open the store sends them with the task and writes back what ran.
Carry = Callable[[Any, Any], Any]


class Runner(Protocol):
    """Runs ``fn(exp, item)`` for every item; returns the results in the order of ``items``."""

    def __call__(
        self,
        exp: Any,
        fn: Callable[[Any, T], R],
        items: Sequence[T],
        progress: Progress | None = None,
        carry: Carry | None = None,
    ) -> list[R]: ...


def serial_runner(
    exp: Any,
    fn: Callable[[Any, T], R],
    items: Sequence[T],
    progress: Progress | None = None,
    carry: Carry | None = None,
) -> list[R]:
    """Run every item here, one after another (the reference every other runner must equal); ``carry`` is not
    needed: ``exp`` uses its results store itself."""
    out = []
    for i, item in enumerate(items):
        out.append(fn(exp, item))
        if progress is not None:
            progress(i + 1, len(items), item)
    return out


# Worker side: each Ray worker process keeps the experiments it has received, keyed by their object id, so
# the model, data, scores, injectors and clean predictions are built once per process, not once per task.
_WORKER_EXPERIMENTS: dict[str, Any] = {}


def _worker_experiment(ref_box: list[Any]) -> Any:
    """The experiment behind an object reference, deserialised once per worker process and moved to the
    GPU Ray assigned to this task, if any."""
    import ray
    import torch

    ref = ref_box[0]  # boxed in a list, so Ray hands over the reference instead of a fresh copy per task
    key = ref.hex()
    if key not in _WORKER_EXPERIMENTS:
        exp = ray.get(ref)
        device = torch.device("cuda") if ray.get_gpu_ids() and torch.cuda.is_available() else torch.device("cpu")
        _WORKER_EXPERIMENTS.clear()  # one grid at a time: free the previous one's memory
        _WORKER_EXPERIMENTS[key] = exp.to(device) if hasattr(exp, "to") else exp
    return _WORKER_EXPERIMENTS[key]


def _task(ref_box: list[Any], fn: Callable[[Any, Any], Any], item: Any, carried: Any = None) -> Any:
    """One item on a worker. With ``carried`` (a ``store.CarriedStore``) the experiment reads its trials from it
    instead of running them, and the trials it runs travel back in it: ``(result, carried)``."""
    exp = _worker_experiment(ref_box)
    if carried is None:
        return fn(exp, item)
    own = exp.store
    exp.store = carried  # a worker runs one task at a time: the experiment is this task's alone meanwhile
    try:
        return fn(exp, item), carried.returned()
    finally:
        exp.store = own


#: Ray's token authentication (on by default for a cluster started with Ray >= 2.60): the mode, the token itself,
#: a file holding it, and the file ``ray start --head`` writes.
AUTH_MODE, AUTH_TOKEN, AUTH_TOKEN_PATH = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"
DEFAULT_TOKEN_FILE = os.path.join("~", ".ray", "auth_token")


def _token_at_hand() -> bool:
    """Whether this machine holds a Ray authentication token (in the environment or in Ray's token file)."""
    path = os.environ.get(AUTH_TOKEN_PATH) or os.path.expanduser(DEFAULT_TOKEN_FILE)
    return bool(os.environ.get(AUTH_TOKEN)) or os.path.isfile(path)


def _token_auth_where_a_token_is() -> None:
    """Send the token to a cluster at an address: ``ray.init(address=...)`` sends one only in token mode, so an
    explicit address on the head itself failed with "Authentication token is missing" where ``auto`` worked. A
    mode the user chose is left alone."""
    if AUTH_MODE not in os.environ and _token_at_hand():
        os.environ[AUTH_MODE] = "token"


class _Held:
    """What Ray's core wrote to stderr while it connected."""

    text = ""


@contextlib.contextmanager
def _stderr_held() -> Iterator[_Held]:
    """Route file descriptor 2 (where Ray's core logs) to a temporary file while Ray connects: a refused connection
    repeats its reason there every second until Ray gives up. The caller replays it if the connection succeeded
    (it is then news, not noise) and takes its reason for the one-line error if not."""
    held = _Held()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield held
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            held.text = tmp.read().decode(errors="replace")


def _ray_reason(e: BaseException, log: str) -> str:
    """Ray's own reason for a failed connection, one clause: the cause it chained (e.g. its ``AuthenticationError``:
    ``Authentication token is missing or incorrect``), else the last message its core logged, else the error."""
    cause = e.__cause__ or e.__context__
    text = str(cause).strip() if cause is not None else ""
    if not text:
        found = re.findall(r"^\[[^\]]*\] \S+:\d+: (.+)$", log, flags=re.MULTILINE)
        text = found[-1] if found else str(e).strip() or type(e).__name__
    first = text.splitlines()[-1] if "Traceback" in text else text.splitlines()[0]
    return first.split(". ")[0].rsplit(": ", 1)[-1].rstrip(".")


def _connect_error(address: str, e: BaseException, log: str = "") -> str:
    """Why Ray could not start or be reached, in one line: Ray's own reason (``_ray_reason``; ``log``: what its core
    wrote meanwhile), and what to do when that reason is its token."""
    reason = _ray_reason(e, log)
    if address == LOCAL:
        return f"cannot start Ray on this machine: {reason}"
    if "token" not in reason.lower() and "authenticat" not in reason.lower():
        return f"cannot reach Ray at {address!r}: {reason}"
    if os.environ.get(AUTH_MODE, "").lower() == "token":
        hint = "this machine's token ($RAY_AUTH_TOKEN or ~/.ray/auth_token) is not the head's"
    else:
        hint = "the cluster wants its token (Ray >= 2.60 turns token authentication on by default)"
    fix = "copy the head's ~/.ray/auth_token here or set RAY_AUTH_TOKEN"
    return f"cannot reach Ray at {address!r}: {reason}: {hint}; {fix}"


class RayRunner:
    """Runs the items of a grid as Ray tasks, each with the experiment shipped once (``ray.put``).

    Args:
        address: ``LOCAL`` (or ``None``): start a Ray on this machine's cores; ``auto``: join the cluster
            this machine belongs to; ``ray://HOST:10001``: connect to a remote cluster as a client.
        num_cpus: CPUs for a local Ray (default: all); ignored when joining a cluster.
        gpus_per_task: GPUs each task asks for; ``None`` = 1 when the cluster has GPUs, else 0 (a task given
            none runs on the CPU). A fraction (e.g. 0.25) lets several tasks share a GPU.
        max_retries: how often Ray reruns a task whose worker died (the result is then counted once: a
            task's result is only taken from the attempt that finished).

    Raises:
        XtmrError: Ray cannot start or connect (one line saying why).
    """

    def __init__(
        self,
        address: str | None = LOCAL,
        *,
        num_cpus: int | None = None,
        gpus_per_task: float | None = None,
        max_retries: int = 3,
    ) -> None:
        self.address = address or LOCAL
        self.num_cpus = num_cpus
        self.gpus_per_task = gpus_per_task
        self.max_retries = int(max_retries)
        self._started = False

    def _init(self) -> Any:
        if self.address != LOCAL:
            _token_auth_where_a_token_is()
        try:
            import ray
        except ImportError:  # pragma: no cover - ray is in requirements.txt
            raise XtmrError("--ray needs the ray package: pip install 'ray[default]'") from None
        if ray.is_initialized():  # a Ray this process already runs (e.g. a notebook's): use it as it is
            return ray
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        held = _Held()
        try:
            if self.address == LOCAL:
                # Workers import xtmr_core from this checkout; torch in each uses one thread per task's CPU.
                env = {"PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)}
                ray.init(
                    num_cpus=self.num_cpus,
                    include_dashboard=False,
                    log_to_driver=False,
                    runtime_env={"env_vars": env},
                )
            else:
                # A remote cluster gets this package uploaded with the job. Ray's core says why a connection
                # fails only in log lines on stderr, repeated until it gives up: keep them for the one-line error.
                with _stderr_held() as held:
                    ray.init(
                        address=self.address,
                        log_to_driver=False,
                        runtime_env={"py_modules": [os.path.join(here, "xtmr_core")]},
                    )
                sys.stderr.write(held.text)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise XtmrError(_connect_error(self.address, e, held.text)) from None
        self._started = True
        return ray

    def shutdown(self) -> None:
        """Stop the Ray this runner started or joined, not one it found running (safe to call twice)."""
        if self._started and "ray" in sys.modules:
            import ray

            ray.shutdown()
            self._started = False

    def __call__(
        self,
        exp: Any,
        fn: Callable[[Any, T], R],
        items: Sequence[T],
        progress: Progress | None = None,
        carry: Carry | None = None,
    ) -> list[R]:
        """Run ``fn(exp, item)`` for every item as Ray tasks; results in the order of ``items``.

        With ``carry`` and a results store on ``exp`` (``exp.store``), the driver reads each item's stored
        trials first: an item whose trials are all stored runs here (reading only, no task); the others go to
        the workers with their stored trials, which they read instead of running, and the trials they run come
        back and are written to the store here.
        """
        items = list(items)
        if not items:
            return []
        results: list[Any] = [None] * len(items)
        done = 0

        def finished(i: int) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, len(items), items[i])

        store = getattr(exp, "store", None) if carry is not None else None
        carried = [carry(exp, item) if carry is not None and store is not None else None for item in items]
        for i, c in enumerate(carried):
            if c is not None and c.complete:  # every trial stored: reading is cheaper than a task
                results[i] = fn(exp, items[i])
                finished(i)
        remaining = [i for i, c in enumerate(carried) if c is None or not c.complete]
        if not remaining:
            return results
        ray = self._init()
        gpus = self.gpus_per_task
        if gpus is None:
            has_gpu = ray.cluster_resources().get("GPU", 0) > 0
            gpus = 1 if has_gpu else 0
        remote = ray.remote(_task).options(num_cpus=1, num_gpus=gpus, max_retries=self.max_retries)
        box = [ray.put(exp)]  # the model, data and scores travel once (without the store: it stays here)
        pending = {remote.remote(box, fn, items[i], carried[i]): i for i in remaining}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                i = pending.pop(ref)
                value = ray.get(ref)
                if carried[i] is not None:
                    value, back = value
                    back.deliver(store)  # the driver writes what the worker ran
                results[i] = value
                finished(i)
        return results


def make_runner(ray_address: str | None, device: str | None = None) -> Runner:
    """The runner for a ``--ray`` option: ``None`` = ``serial_runner``, else a ``RayRunner`` at that address
    (asking for no GPU when ``device`` is ``cpu``)."""
    if ray_address is None:
        return serial_runner
    return RayRunner(ray_address, gpus_per_task=0 if device == "cpu" else None)
