"""The results store: every trial computed is kept in one SQLite file, read back instead of run again.

One row per (point, plan, trial index) holds what the intervals and exports need: accuracy, mismatch, bit
flips, the trial's stratum, its seconds and the per-image correctness, bit-packed (``numpy.packbits``). The
scorers' per-weight scores (LRP per rule, gradient, Taylor, ...) are kept too, exactly (float64, with their
SHA-256), keyed by the experiment's fingerprint, the scorer, its rule and seed; and small computed tables
(the report's single-flip scan) as JSON. The
file is SQLite through the standard library in WAL mode, so an app server, a CLI run and a report can read
and write it at once; rows are inserted with ``INSERT OR IGNORE`` on their primary key, so two writers of
the same trial never duplicate or lose one.

**Keys.** A point's key is a SHA-256 over everything that decides a trial's outcome: the engine's
``RESULT_FORMAT``, the ``Experiment``'s fingerprint (deployed weights, test and training data, deployment
options, device type, torch version), the sampling design (``Strata.key()`` or ``plain``) and the point's
normalised ``CampaignSpec`` without its trial count. A plan's key is the SHA-256 of its normalised spec
without the trial count; a row adds the trial index. Anything that differs gives another key, so a store
written by another engine version, checkpoint or data set is never read for this one.

**Never wrong.** A file that is not readable as a store (truncated, corrupt, an older layout) is moved aside
(``NAME.bad-TIME``) with one warning line on stderr and a fresh store is started; a row whose correctness
bits disagree with its accuracy is ignored (run again). A store that cannot be written (a full disk) warns
once and the work goes on without it.

Location: ``$XTMR_STORE`` (a file path; ``none`` turns the store off), default ``results.sqlite`` under
``$XDG_CACHE_HOME/xtmr`` (``~/.cache/xtmr``). Torch-free: ``python -m xtmr_core store`` loads no model.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Any

import numpy as np

from xtmr_core.errors import XtmrError
from xtmr_core.spec import CampaignSpec

#: The version of a trial's outcome: bump it whenever the engine changes what a trial of the same spec,
#: model and data computes (faults drawn, read-back, evaluation), so older rows are never read again.
RESULT_FORMAT = 1
#: The table layout; a file of another layout is moved aside, never read.
SCHEMA = 1
#: The environment variable that chooses the store (a path, or ``none``).
ENV = "XTMR_STORE"
#: The value of ``$XTMR_STORE`` / ``--store`` that turns the store off.
OFF = "none"
#: Seconds a writer waits for another's lock before giving up on one write.
BUSY_TIMEOUT_S = 30.0

_MARK = "xtmr results store"
_SQLITE_HEADER = b"SQLite format 3\x00"
_CORRUPT_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS points (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, info TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS plans (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, label TEXT NOT NULL,
    spec TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    point INTEGER NOT NULL, plan INTEGER NOT NULL, trial INTEGER NOT NULL,
    accuracy REAL NOT NULL, mismatch REAL NOT NULL, flips INTEGER NOT NULL, stratum INTEGER,
    seconds REAL NOT NULL, images INTEGER NOT NULL, correct BLOB NOT NULL,
    PRIMARY KEY (point, plan, trial)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tables (key TEXT PRIMARY KEY, info TEXT NOT NULL, sha256 TEXT NOT NULL,
    data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, info TEXT NOT NULL, n INTEGER NOT NULL,
    sha256 TEXT NOT NULL, data BLOB NOT NULL);
"""

#: The columns of ``store export``.
EXPORT_COLUMNS = [
    "model",
    "dataset",
    "format",
    "ber",
    "mode",
    "fault_bits",
    "seed",
    "design",
    "plan",
    "spec",
    "trial",
    "stratum",
    "accuracy",
    "mismatch",
    "flips",
    "seconds",
    "images",
    "correct_images",
    "point_key",
]


@dataclass(frozen=True)
class Trial:
    """One stored trial of one plan: what ``campaign.trial_outcome`` returned, with its stratum and time.

    Attributes:
        accuracy, mismatch, flips: the trial's accuracy, mismatch against the clean predictions and
            faulty stored bits.
        correct: per-image correctness (bool array over the test split).
        stratum: the trial's stratum in a stratified design (``None`` for plain Monte Carlo).
        seconds: the time the trial took when it was run.
    """

    accuracy: float
    mismatch: float
    flips: int
    correct: np.ndarray = field(repr=False)
    stratum: int | None = None
    seconds: float = 0.0

    def outcome(self) -> tuple[float, float, int, np.ndarray]:
        """``(accuracy, mismatch, flips, correct)``, as ``campaign.trial_outcome`` returns them."""
        return self.accuracy, self.mismatch, self.flips, self.correct


def spec_fields(spec: CampaignSpec) -> dict[str, Any]:
    """The normalised fields of a spec without its trial count (JSON-ready: tuples become lists)."""
    out: dict[str, Any] = {}
    for f in fields(spec):
        if f.name != "trials":
            v = getattr(spec, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def point_key(fingerprint: Mapping[str, Any], design: str, point: CampaignSpec) -> str:
    """The key of a grid point: ``RESULT_FORMAT``, the experiment's fingerprint, the design's key (``plain``
    or ``Strata.key()``) and the point's spec without its trial count."""
    return _digest({"result_format": RESULT_FORMAT, "fingerprint": dict(fingerprint), "design": design,
                    "point": spec_fields(point.point)})  # fmt: skip


def score_key(fingerprint: Mapping[str, Any], scorer: str, rule: str, seed: int) -> str:
    """The key of one scorer's per-weight scores: ``RESULT_FORMAT``, the experiment's fingerprint (weights, data,
    reference set, deployment, device, torch), the scorer, its LRP rule and its seed (``random``)."""
    return _digest({"result_format": RESULT_FORMAT, "fingerprint": dict(fingerprint), "scorer": scorer,
                    "rule": rule, "seed": seed})  # fmt: skip


def table_key(fingerprint: Mapping[str, Any], what: str, **params: Any) -> str:
    """The key of a small computed table (``what``, e.g. ``bit_sensitivity``, with its parameters) of one
    experiment: ``RESULT_FORMAT``, the experiment's fingerprint, ``what`` and the parameters."""
    return _digest({"result_format": RESULT_FORMAT, "fingerprint": dict(fingerprint), "what": what, **params})


def plan_key(spec: CampaignSpec) -> str:
    """The key of a plan at a point: its normalised spec without the trial count."""
    return _digest(spec_fields(spec))


def default_path() -> Path | None:
    """The store ``$XTMR_STORE`` names (``None`` when it is ``none``), else ``$XDG_CACHE_HOME/xtmr/results.sqlite``
    (``~/.cache/xtmr/results.sqlite``)."""
    env = os.environ.get(ENV, "").strip()
    if env:
        return None if env.lower() == OFF else Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "xtmr" / "results.sqlite"


_OPEN: dict[str, Store] = {}
_OPEN_LOCK = threading.Lock()


def open_store(path: str | Path, *, create_folder: bool = False) -> Store:
    """The ``Store`` at ``path``, one per file and process (shared by every ``Experiment`` of the process).

    Args:
        path: the file. create_folder: create its folder if missing (the default location); else a missing
            folder is an error (a mistyped path).

    Raises:
        XtmrError: a path that cannot hold a store (a folder, a missing or unwritable folder, another
            program's database).
    """
    key = str(Path(path).expanduser().absolute())
    with _OPEN_LOCK:
        if key not in _OPEN:
            _OPEN[key] = Store(key, create_folder=create_folder)
        return _OPEN[key]


def default_store() -> Store | None:
    """The store of ``$XTMR_STORE`` (or the default location), or ``None`` when it is off. A store that cannot
    be opened gives one warning line on stderr and ``None``: the work runs without it."""
    path = default_path()
    if path is None:
        return None
    try:
        return open_store(path, create_folder=not os.environ.get(ENV, "").strip())
    except XtmrError as e:
        _warn(f"results store off: {e}")
        return None


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _corrupt(e: BaseException) -> bool:
    """Whether an SQLite error says the file itself is damaged (not a lock or a full disk)."""
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return int(code) & 0xFF in _CORRUPT_CODES
    text = str(e).lower()
    return isinstance(e, sqlite3.DatabaseError) and ("malformed" in text or "not a database" in text)


class Store:
    """A results store in one SQLite file (see the module's docstring); safe across threads and processes.

    Args:
        path: the file (created if missing).
        create_folder: create its folder too if missing (else a missing folder is an error).

    Attributes:
        path: the file. read, ran: trials (one plan each) this process read from the store and ran and wrote.

    Raises:
        XtmrError: a path that cannot hold a store (a folder, an unwritable folder, another program's database).
    """

    def __init__(self, path: str | Path, *, create_folder: bool = True) -> None:
        self.path = Path(path).expanduser()
        self._create_folder = create_folder
        self.read = 0
        self.ran = 0
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._warned = False
        with self._lock:
            self._connect()

    # -- opening, checking, recovering ------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """The process's connection, opened (and checked) on first use and again after a fork."""
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        self._conn, self._pid = None, os.getpid()
        if self.path.is_dir():
            raise XtmrError(f"results store {self.path} is a folder; give a file name (or --store none)")
        if not self.path.parent.is_dir() and not self._create_folder:
            raise XtmrError(f"folder {self.path.parent} of results store {self.path.name} does not exist; create it")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise XtmrError(f"cannot create the folder of results store {self.path} ({e.strerror})") from None
        if not os.access(self.path.parent, os.W_OK) or (self.path.exists() and not os.access(self.path, os.W_OK)):
            raise XtmrError(f"results store {self.path} is not writable; choose another --store (or none)")
        problem = self._header_problem()
        if problem is None:
            try:
                self._conn = self._open_checked()
                return self._conn
            except _Foreign as e:
                raise XtmrError(str(e)) from None
            except sqlite3.DatabaseError as e:
                if not _corrupt(e) and not isinstance(e, _Unreadable):
                    raise XtmrError(f"cannot open results store {self.path}: {e}") from None
                problem = str(e)
        self._set_aside(problem)
        try:
            self._conn = self._open_checked()
        except sqlite3.DatabaseError as e:
            raise XtmrError(f"cannot create results store {self.path}: {e}") from None
        return self._conn

    def _header_problem(self) -> str | None:
        """Why the file cannot be an SQLite database (``None``: missing, empty or an SQLite file)."""
        try:
            with open(self.path, "rb") as f:
                head = f.read(len(_SQLITE_HEADER))
        except FileNotFoundError:
            return None
        except OSError as e:
            raise XtmrError(f"cannot read results store {self.path} ({e.strerror})") from None
        if head and head != _SQLITE_HEADER[: len(head)] or 0 < len(head) < len(_SQLITE_HEADER):
            return "not an SQLite file"
        return None

    def _open_checked(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and "meta" not in tables:
                raise _Foreign(f"{self.path} is another program's SQLite database, not an xtmr results store")
            if tables:
                marks = dict(conn.execute("SELECT name, value FROM meta"))
                if marks.get("format") != _MARK:
                    raise _Foreign(f"{self.path} is another program's SQLite database, not an xtmr results store")
                if marks.get("schema") != str(SCHEMA):
                    raise _Unreadable(f"written by another xtmr version (layout {marks.get('schema')})")
                check = conn.execute("PRAGMA quick_check").fetchone()
                if not check or check[0] != "ok":
                    raise _Unreadable(f"integrity check failed: {check[0] if check else 'no answer'}")
            if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
                raise sqlite3.OperationalError("WAL mode is not available for this file")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _TABLES.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?)", (_MARK,))
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA),))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except BaseException:
            conn.close()
            raise
        return conn

    def _set_aside(self, why: str) -> None:
        """Move an unreadable file (and its WAL) aside, with one warning line; a fresh store starts there."""
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None
        bad = self.path.with_name(f"{self.path.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        try:
            os.replace(self.path, bad)
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    os.replace(side, bad.with_name(bad.name + suffix))
        except FileNotFoundError:
            pass  # another process moved it first
        except OSError as e:
            raise XtmrError(
                f"results store {self.path} is unreadable ({why}) and cannot be moved ({e.strerror})"
            ) from None
        _warn(f"results store {self.path} was unreadable ({why}); moved it to {bad.name} and started a fresh one")

    def _run(self, what: str, work: Any, default: Any) -> Any:
        """``work(conn)`` under the lock; a damaged file is set aside (one warning) and the work retried on a
        fresh store; any other failure warns once and returns ``default`` (the caller goes on without)."""
        with self._lock:
            for attempt in (0, 1):
                try:
                    return work(self._connect())
                except sqlite3.DatabaseError as e:
                    problem = str(e)
                    if attempt == 0 and _corrupt(e):
                        try:
                            self._set_aside(problem)
                            continue
                        except XtmrError as moved:
                            problem = str(moved)
                    if not self._warned:
                        self._warned = True
                        _warn(f"results store {self.path}: cannot {what} ({problem}); going on without it")
                    return default
                except XtmrError as e:
                    if not self._warned:
                        self._warned = True
                        _warn(f"{e}; going on without the results store")
                    return default
            return default

    def close(self) -> None:
        """Close this process's connection (reopened on next use)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    # -- trials -----------------------------------------------------------------------------------------------

    def trials(
        self, point: str, plans: Sequence[str], n: int, images: int, *, count: bool = True
    ) -> list[dict[int, Trial]]:
        """The stored trials ``0..n-1`` of each plan of a point: one ``{trial index: Trial}`` per plan key.

        Rows whose shape disagrees with ``images`` test images, or whose correctness bits disagree with their
        accuracy, are left out (they are run again). ``count=False``: not counted in ``read`` (a driver
        gathering trials for a worker, which counts them when it uses them).
        """

        def work(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(
                "SELECT pl.key, t.trial, t.accuracy, t.mismatch, t.flips, t.stratum, t.seconds, t.images, t.correct "
                "FROM trials t JOIN points p ON p.id = t.point JOIN plans pl ON pl.id = t.plan "
                "WHERE p.key = ? AND t.trial < ?",
                (point, int(n)),
            ).fetchall()

        wanted = {k: i for i, k in enumerate(plans)}
        out: list[dict[int, Trial]] = [{} for _ in plans]
        for key, t, acc, mis, flips, stratum, secs, m, blob in self._run("read", work, []):
            i = wanted.get(key)
            if i is None or m != images or len(blob) != (images + 7) // 8:
                continue
            correct = np.unpackbits(np.frombuffer(blob, dtype=np.uint8), count=images).astype(bool)
            if (int(correct.sum()) / images if images else 0.0) != acc:
                continue  # a damaged row: never a wrong number
            out[i][int(t)] = Trial(float(acc), float(mis), int(flips), correct, stratum, float(secs))
        if count:
            with self._lock:
                self.read += sum(len(d) for d in out)
        return out

    def write(
        self,
        point: str,
        point_info: Mapping[str, Any],
        rows: Iterable[tuple[str, CampaignSpec, str, int, Trial]],
    ) -> int:
        """Keep trials of one point in one transaction: ``rows`` of ``(plan key, spec, plan label, trial index,
        Trial)``. A trial already stored is kept as it was (``INSERT OR IGNORE``). Returns the rows given."""
        rows = list(rows)
        with self._lock:
            self.ran += len(rows)
        if not rows:
            return 0
        info = json.dumps(dict(point_info), sort_keys=True)

        def work(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("INSERT OR IGNORE INTO points (key, info) VALUES (?, ?)", (point, info))
                pid = conn.execute("SELECT id FROM points WHERE key = ?", (point,)).fetchone()[0]
                ids: dict[str, int] = {}
                for key, spec, label, _, _ in rows:
                    if key not in ids:
                        conn.execute(
                            "INSERT OR IGNORE INTO plans (key, label, spec) VALUES (?, ?, ?)",
                            (key, label, json.dumps(spec_fields(spec), sort_keys=True)),
                        )
                        ids[key] = conn.execute("SELECT id FROM plans WHERE key = ?", (key,)).fetchone()[0]
                conn.executemany(
                    "INSERT OR IGNORE INTO trials VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            pid,
                            ids[key],
                            int(t),
                            float(tr.accuracy),
                            float(tr.mismatch),
                            int(tr.flips),
                            None if tr.stratum is None else int(tr.stratum),
                            float(tr.seconds),
                            int(tr.correct.size),
                            np.packbits(np.asarray(tr.correct, dtype=bool)).tobytes(),
                        )  # fmt: skip
                        for key, _, _, t, tr in rows
                    ],
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return len(rows)

        return int(self._run("write", work, 0))

    # -- scores -----------------------------------------------------------------------------------------------

    def scores(self, key: str, n: int) -> np.ndarray | None:
        """The stored per-weight scores of ``key`` (``score_key``), or ``None``: none stored, or a row whose
        length or checksum disagrees (computed again, never a wrong ranking)."""

        def work(conn: sqlite3.Connection) -> tuple[Any, ...] | None:
            row = conn.execute("SELECT n, sha256, data FROM scores WHERE key = ?", (key,)).fetchone()
            return None if row is None else tuple(row)

        row = self._run("read", work, None)
        if row is None:
            return None
        m, sha, blob = row
        if m != n or len(blob) != 8 * n or hashlib.sha256(blob).hexdigest() != sha:
            return None
        return np.frombuffer(blob, dtype="<f8").astype(np.float64)  # a writable copy

    def put_scores(self, key: str, info: Mapping[str, Any], scores: np.ndarray) -> None:
        """Keep per-weight scores (float64, exactly) under ``key``; a key already stored is kept as it was."""
        blob = np.ascontiguousarray(scores, dtype="<f8").tobytes()
        row = (key, json.dumps(dict(info), sort_keys=True), int(scores.size), hashlib.sha256(blob).hexdigest(), blob)

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR IGNORE INTO scores VALUES (?, ?, ?, ?, ?)", row)

        self._run("write", work, None)

    # -- small tables (the report's single-flip scan) ----------------------------------------------------------

    def table(self, key: str) -> Any:
        """The JSON value stored under ``key`` (``table_key``), or ``None`` (none, or a damaged row)."""

        def work(conn: sqlite3.Connection) -> tuple[Any, ...] | None:
            row = conn.execute("SELECT sha256, data FROM tables WHERE key = ?", (key,)).fetchone()
            return None if row is None else tuple(row)

        row = self._run("read", work, None)
        if row is None or hashlib.sha256(row[1].encode()).hexdigest() != row[0]:
            return None
        return json.loads(row[1])

    def put_table(self, key: str, info: Mapping[str, Any], value: Any) -> None:
        """Keep a JSON-ready value (floats round-trip exactly) under ``key``; a key already stored is kept."""
        data = json.dumps(value)
        row = (key, json.dumps(dict(info), sort_keys=True), hashlib.sha256(data.encode()).hexdigest(), data)

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR IGNORE INTO tables VALUES (?, ?, ?, ?)", row)

        self._run("write", work, None)

    # -- the store command ------------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """``path``, ``bytes`` (the file with its WAL), ``trials``, ``points``, ``plans``, ``scores``, ``models``."""

        def work(conn: sqlite3.Connection) -> dict[str, Any]:
            tables = ("trials", "points", "plans", "scores", "tables")
            count = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}
            models = sorted({json.loads(r[0]).get("model", "?") for r in conn.execute("SELECT info FROM points")})
            return {**count, "models": models}

        size = sum(p.stat().st_size for p in (self.path, self.path.with_name(self.path.name + "-wal")) if p.exists())
        return {"path": str(self.path), "bytes": size, **self._run("read", work, {})}

    def clear(self) -> int:
        """Delete every trial, point, plan and score (the file stays, compacted); returns the trials deleted."""

        def work(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            n = conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
            for table in ("trials", "plans", "points", "scores", "tables"):
                conn.execute(f"DELETE FROM {table}")
            conn.execute("COMMIT")
            conn.execute("VACUUM")
            return int(n)

        return int(self._run("clear", work, 0))

    def export(self, out: IO[str]) -> int:
        """Write every trial as CSV (``EXPORT_COLUMNS``) to ``out``; returns the rows written."""
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS)

        def work(conn: sqlite3.Connection) -> int:
            n = 0
            cur = conn.execute(
                "SELECT p.key, p.info, pl.label, pl.spec, t.trial, t.stratum, t.accuracy, t.mismatch, t.flips, "
                "t.seconds, t.images, t.correct FROM trials t JOIN points p ON p.id = t.point "
                "JOIN plans pl ON pl.id = t.plan ORDER BY p.id, pl.id, t.trial"
            )
            for key, info, label, spec, t, stratum, acc, mis, flips, secs, m, blob in cur:
                pi, sp = json.loads(info), json.loads(spec)
                fb = sp.get("fault_bits")
                right = int(np.unpackbits(np.frombuffer(blob, dtype=np.uint8), count=m).sum())
                writer.writerow(
                    [
                        pi.get("model"),
                        pi.get("dataset"),
                        sp.get("fmt"),
                        repr(sp.get("ber")),
                        sp.get("mode"),
                        "" if fb is None else " ".join(map(str, fb)),
                        sp.get("seed"),
                        pi.get("design"),
                        label,
                        spec,
                        t,
                        "" if stratum is None else stratum,
                        repr(acc),
                        repr(mis),
                        flips,
                        f"{secs:.6g}",
                        m,
                        right,
                        key[:16],
                    ]  # fmt: skip
                )
                n += 1
            return n

        return int(self._run("export", work, 0))


#: A row of ``Store.write``: ``(plan key, spec, plan label, trial index, Trial)``.
Row = tuple[str, CampaignSpec, str, int, Trial]


class CarriedStore:
    """The stored trials of a few points, travelling with a task to a worker that cannot open the store (a Ray
    worker, maybe on another machine), and the trials the worker runs, travelling back for the driver to write.

    It answers ``trials`` and ``write`` as a ``Store`` does; ``Experiment`` cannot tell them apart.

    Args:
        known: ``{point key: {plan key: {trial: Trial}}}`` as the driver read them.
        complete: every trial the task needs is in ``known`` (the driver then runs it itself: reading only).

    Attributes:
        read, ran: trials the worker read from ``known`` and ran. written: ``(point key, point info, rows)`` per
        ``write``, for the driver (``deliver``).
    """

    def __init__(self, known: dict[str, dict[str, dict[int, Trial]]], complete: bool = False) -> None:
        self.known = known
        self.complete = complete
        self.read = 0
        self.ran = 0
        self.written: list[tuple[str, dict[str, Any], list[Row]]] = []

    def trials(
        self, point: str, plans: Sequence[str], n: int, images: int, *, count: bool = True
    ) -> list[dict[int, Trial]]:
        """The carried trials ``0..n-1`` of each plan of a point (as ``Store.trials``)."""
        have = self.known.get(point, {})
        out = [{t: tr for t, tr in have.get(k, {}).items() if t < n and tr.correct.size == images} for k in plans]
        if count:
            self.read += sum(len(d) for d in out)
        return out

    def write(self, point: str, point_info: Mapping[str, Any], rows: Iterable[Row]) -> int:
        """Keep the rows for the driver (as ``Store.write``)."""
        rows = list(rows)
        self.ran += len(rows)
        if rows:
            self.written.append((point, dict(point_info), rows))
        return len(rows)

    def returned(self) -> CarriedStore:
        """What travels back: the trials run and the counts, without the trials that came (the driver has them)."""
        self.known = {}
        return self

    def deliver(self, store: Store) -> None:
        """Write the trials the worker ran into the driver's ``store`` and count the ones it read there."""
        for point, info, rows in self.written:
            store.write(point, info, rows)
        with store._lock:
            store.read += self.read


class _Foreign(sqlite3.DatabaseError):
    """An SQLite file that is not a results store (never touched)."""


class _Unreadable(sqlite3.DatabaseError):
    """A results store that must not be read (damaged, or another layout): moved aside."""


def human_bytes(n: float) -> str:
    """``1.2 MB``-style size."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


__all__ = [
    "ENV",
    "OFF",
    "CarriedStore",
    "RESULT_FORMAT",
    "Store",
    "Trial",
    "default_path",
    "default_store",
    "open_store",
    "plan_key",
    "point_key",
    "score_key",
    "table_key",
    "spec_fields",
    "human_bytes",
]
