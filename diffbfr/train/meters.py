"""What the training loop (loop.run) measures while it runs: the wall clock against the
budget and the resume saves, the images per second, and the mean losses between log lines."""
from __future__ import annotations

import time

import torch


class Clock:
    """Wall-clock budget of this run and the periodic resume saves."""

    def __init__(self, minutes: float, save_every_min: float):
        self.budget, self.save_every = minutes * 60, save_every_min * 60
        self.start = self.last_save = time.time()

    @property
    def elapsed(self) -> float:
        return time.time() - self.start

    def out_of_time(self) -> bool:
        return self.elapsed >= self.budget

    def save_due(self) -> bool:
        """True at most once per --save-every-min (it restarts the interval when it says so)."""
        if time.time() - self.last_save < self.save_every:
            return False
        self.last_save = time.time()
        return True


class Meter:
    """Training images per second: the time between consecutive tick()s. The first step of a
    run (compilation, cudnn autotuning) and any step after pause() (validation, saving) only
    restart the clock, so neither counts. tick() does not synchronise: on CUDA the rate is
    right over many steps (the loop reads it every --log-every steps), not for one."""

    def __init__(self):
        self.images, self.seconds, self._window = 0, 0.0, [0, 0.0]
        self._last: float | None = None

    def tick(self, n: int) -> None:
        now = time.time()
        if self._last is not None:
            self.images += n
            self.seconds += now - self._last
            self._window[0] += n
            self._window[1] += now - self._last
        self._last = now

    def pause(self) -> None:
        self._last = None

    @property
    def rate(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0

    def window_rate(self) -> float:
        """Rate since the last call (for the log line)."""
        n, s = self._window
        self._window = [0, 0.0]
        return n / s if s else 0.0


class LossMeans:
    """The losses of the steps since the last log line, summed on the device (no sync per step),
    each averaged over the steps that returned it (e.g. a lazy regulariser every 16 steps)."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0) + v
            self.counts[k] = self.counts.get(k, 0) + 1

    def __bool__(self) -> bool:
        return bool(self.counts)

    def take(self) -> dict[str, float]:
        """The means (this syncs with the device), and a fresh start."""
        means = {k: float(v) / self.counts[k] for k, v in self.sums.items()}
        self.sums, self.counts = {}, {}
        return means
