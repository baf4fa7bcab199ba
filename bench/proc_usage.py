"""Memory and disk use of a running process and its children, read from /proc (Linux).

The load bench (bench.load) measures the app's peak resident memory two ways: by sampling the
RSS of the whole process tree (the app and any workers it spawns), and by the kernel's own peak
counter of the app process (VmHWM), which it resets after warm-up where the kernel allows it.
Disk use is the size of the folders the app writes to, sampled alongside.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

MB = 2**20


def status_kb(pid: int, key: str) -> int:
    """A kB field of /proc/<pid>/status (VmRSS, VmHWM); 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (via /proc/<pid>/task/<tid>/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def tree_rss_mb(pid: int) -> float:
    return sum(status_kb(p, "VmRSS") for p in process_tree(pid)) / 1024


def reset_peak(pid: int) -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of pid; False where not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def folder_mb(folder: Path) -> float:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:  # deleted while we walk: the app prunes as we measure
                pass
    return total / MB


class Sampler(threading.Thread):
    """Samples the app's RSS (every interval) and its disk use (every ~0.5 s): the peaks."""

    def __init__(self, pid: int, disk, interval: float):
        super().__init__(daemon=True)
        self.pid, self.disk, self.interval = pid, disk, interval
        self.peak_rss = 0.0
        self.peak_disk: dict[str, float] = {}
        self._done = threading.Event()

    def run(self) -> None:
        next_disk = 0.0
        while not self._done.is_set():
            self.peak_rss = max(self.peak_rss, tree_rss_mb(self.pid))
            if time.monotonic() >= next_disk:
                for k, mb in self.disk().items():
                    self.peak_disk[k] = max(self.peak_disk.get(k, 0.0), mb)
                next_disk = time.monotonic() + 0.5
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join(5)
