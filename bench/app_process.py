"""`python app.py` in a subprocess on a free loopback port, polled until it answers: the one
start-and-wait the browser test, bench.app_speed and bench.load share.

    with AppProcess(["--tiny"], log=tmp / "app.log") as app:
        urllib.request.urlopen(app.url)
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class AppNotStarted(RuntimeError):
    """app.py exited, or did not answer in time; the message ends with its log's tail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppProcess:
    """Starts `python app.py --host 127.0.0.1 --port P *args` (cwd: the repository) and returns
    once its page answers; `start_s` is spawn-to-answer. `env` adds to os.environ (Gradio's
    analytics are off); `log`: a file for its stdout and stderr (None: discarded). Raises
    AppNotStarted (the process stopped) when it exits or `timeout` passes first."""

    def __init__(self, args=(), env: dict[str, str] | None = None, log: Path | None = None,
                 timeout: float = 120.0, poll_s: float = 0.2):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = Path(log) if log is not None else None
        cmd = [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(self.port), *args]
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
        out = open(self.log, "wb") if self.log is not None else subprocess.DEVNULL
        t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        finally:
            if self.log is not None:
                out.close()
        while True:
            try:
                urllib.request.urlopen(self.url, timeout=2).close()
                break
            except OSError:
                if self.proc.poll() is not None:
                    raise AppNotStarted(f"app.py exited with {self.proc.returncode}:\n{self.log_tail()}") from None
                if time.monotonic() - t0 > timeout:
                    self.stop()
                    raise AppNotStarted(f"app.py did not answer within {timeout:.0f} s:\n{self.log_tail()}") \
                        from None
                time.sleep(poll_s)
        self.start_s = time.monotonic() - t0

    def log_tail(self, n: int = 30) -> str:
        if self.log is None or not self.log.exists():
            return "(no log: run it by hand to see why)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (the app turns it into a clean shutdown), then SIGKILL after `timeout`."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "AppProcess":
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()
