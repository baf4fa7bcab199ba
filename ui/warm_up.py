"""The example warm-up, and the count of people's requests it gives way to.

Picking an example should show its result at once: after the page opens, a background thread
restores each example with the page's default method and controls (ui/handlers.py:
Handlers.page_controls), so the stage and detection caches hold what a click looks up.
Gradio's own example caching would run the whole pipeline before the page opens (tens of
seconds on a CPU). The warm-up runs one example at a time and waits while anyone's photo is
being restored (InFlight), so it never slows a person down."""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager

from diffbfr.imageio import load_image
from diffbfr.stage_cache import image_key

log = logging.getLogger("diffbfr.app")


class InFlight:
    """People's requests in flight (page, API, uncertainty map): `serving()` around each."""

    def __init__(self):
        self.count = 0
        self._lock = threading.Lock()

    @contextmanager
    def serving(self):
        with self._lock:
            self.count += 1
        try:
            yield
        finally:
            with self._lock:
                self.count -= 1

    def wait_for_none(self, pause_s: float) -> None:
        while self.count:
            time.sleep(pause_s)


def warm_examples(handlers, examples: list[tuple[str, bool]], pause_s: float = 0.2) -> int:
    """Restore each example (path, is an aligned face) the way picking it does, with the page's
    first method and its controls as the page opens. Returns the number warmed."""
    name = next(iter(handlers.app.restorers))
    done = 0
    for path, aligned in examples:
        handlers.in_flight.wait_for_none(pause_s)
        try:
            rgb = load_image(path).rgb
            handlers.restore(name, rgb, image_key(rgb), None, handlers.page_controls(path, aligned))
            done += 1
        except Exception:  # noqa: BLE001 -- a bad example must not stop the app
            log.exception("warming example %s failed", path)
    log.info("example results ready: %d of %d", done, len(examples))
    return done


def start_warm_up(handlers, examples: list[tuple[str, bool]]) -> threading.Thread:
    """warm_examples in a background thread (the page is usable meanwhile)."""
    thread = threading.Thread(target=warm_examples, args=(handlers, examples), daemon=True, name="warm-examples")
    thread.start()
    return thread
