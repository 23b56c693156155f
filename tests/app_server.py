"""One Streamlit server on loopback and the Chromium flags, for the scripts that drive the app in a browser
(``classroom.py``, ``fault_lab_latency.py``; ``test_browser.py`` shares the flags and the free port)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

#: Flags that work for Debian's headless Chromium here (no sandbox, no GPU, nothing fetched in the background).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STARTUP_S = 180  # imports, data and the first LRP scoring on a shared CPU


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(root: Path, store: str, log: Path, port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """``streamlit run app.py`` in ``root`` on 127.0.0.1 with ``XTMR_STORE=store``, once it answers its health
    check; the process and its URL. Exits with one line (naming ``log``) if it dies or does not answer."""
    port = free_port() if port is None else port
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1"]
    cmd += ["--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    env = dict(os.environ, XTMR_STORE=store)
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=root, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"error: streamlit exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.2)
    stop(proc)
    raise SystemExit(f"error: streamlit did not answer within {STARTUP_S} s; see {log}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server and everything it started (its process group)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)
