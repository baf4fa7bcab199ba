"""The page's events: turn photo-path results into what the page shows (ui/outputs.py) and
user messages. The one-call API is ui/restore_api.py, the example warm-up ui/warm_up.py. Every
callback catches its errors: the user sees a sentence, never a traceback."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

import gradio as gr
import numpy as np

from diffbfr import methods
from diffbfr import settings as S
from diffbfr.image_out import upscale_nearest
from diffbfr.imageio import ImageError, release_memory
from diffbfr.photo import PhotoOptions, is_unsure
from diffbfr.uncertainty import stochastic, uncertainties

from .files import AppFiles
from .outputs import LOAD, PHOTO, cleared, outputs
from .session import Upload
from .state import AppState
from .warm_up import InFlight
from .views import (
    auto_words,
    details_markdown,
    face_choices,
    faces_preview,
    gallery_items,
    identity_markdown,
    settings_from_ui,
    stage_plots,
    status_markdown,
    without_paths,
)

log = logging.getLogger("diffbfr.app")
TOAST_S = 6   # warnings fade instead of piling up over new results


def knob_layout() -> list[tuple[str, S.Knob]]:
    """(method, knob) for every slider, in the order the handlers receive their values."""
    return [(name, k) for name, m in methods.METHODS.items() for k in S.knobs(m.settings)]


def warn(message: str) -> None:
    gr.Warning(message, duration=TOAST_S)


@dataclass(frozen=True)
class Controls:
    """The page's controls a restore reads, in the order ui/page.py lists them after the
    session (page.CONTROLS): the photo box, aligned, method, output size, thorough, Auto, and
    every slider's value in knob_layout() order."""
    path: str | None
    aligned: bool
    choice: str
    scale: str | None
    thorough: bool
    auto: bool
    values: tuple

    @classmethod
    def read(cls, args) -> "Controls":
        path, aligned, choice, scale, thorough, auto, *values = args
        return cls(path, bool(aligned), choice, scale, bool(thorough), bool(auto), tuple(values))

    def options(self, select) -> PhotoOptions:
        """The photo path's options these controls ask for, restoring the faces `select`."""
        return PhotoOptions(self.aligned, select, "auto" if self.scale in (None, "auto") else self.scale,
                            self.thorough, self.auto)


class Handlers:
    """Every event of the page, over one AppState; `files` writes what they show (and the API's
    results: ui/restore_api.py shares it), `in_flight` counts people's requests. ui/page.py
    wires them: the photo callbacks take (session, *Controls) and answer outputs.PHOTO,
    on_image answers outputs.LOAD, on_method its `method_outputs`."""

    def __init__(self, app: AppState, example_paths: list[str]):
        self.app = app
        self.files = AppFiles(example_paths)
        self.layout = knob_layout()
        # what on_method answers, by name: ui/page.py maps each to its component
        self.simple_names = [n for n, m in methods.METHODS.items() if m.simple is not None]
        self.method_outputs = [f"{n}-simple" for n in self.simple_names] + [
            "auto", *PHOTO[1:], "guess", "guess_text"]
        self.in_flight = InFlight()   # people's requests (the example warm-up waits for none)

    def on_image(self, path, up=None):
        """A photo was put in the Photo box (outputs: outputs.LOAD): decode it into the session."""
        if not path:
            if up is None:
                # nothing was loaded: this is the box emptied by a failed upload (its change
                # event follows the error), so the error stays on screen until the next action
                return outputs(LOAD)
            return cleared(LOAD, state=None, status="")
        if up is not None and up.restored and up.source == path:
            # a picked example is restored by its own event, which may finish first: keep it
            return outputs(LOAD)
        if not os.path.exists(path):
            # the component can fire `change` twice for one upload; the first call already
            # handled it and deleted the file: keep what it showed
            return outputs(LOAD)
        try:
            up = self.app.uploads.load(path, name=Path(path).stem)
        except Exception as exc:  # noqa: BLE001 -- unknown decoder failures included
            if not isinstance(exc, ImageError):
                log.exception("loading %s failed", path)
                exc = f"Could not read this image ({type(exc).__name__}: {exc})."
            exc = without_paths(exc)   # the upload's server path may be in the wording
            self.files.discard_upload(path)  # unusable: no reason to keep it
            warn(exc)
            # clear the Photo box too: no broken or partial picture stays on screen
            return cleared(LOAD, state=None, status=f"⚠️ {exc}", photo=gr.update(value=None))
        return cleared(LOAD, state=up, status=self._loaded(up))

    @staticmethod
    def _loaded(up: Upload) -> str:
        w, h = up.size
        return "\n".join([f"Loaded a {w}x{h} photo. Press **Restore**."] + [f"- {n}" for n in up.notices])

    def _current(self, up: Upload | None, path: str | None) -> Upload | None:
        """The upload to restore. Restore can be pressed while a large photo is still being
        decoded by on_image (7-10 s for 100 MP): then decode it here instead of answering
        'no photo' next to a visible photo."""
        if path and os.path.exists(path) and (up is None or up.source != path):
            return self.app.uploads.load(path, name=Path(path).stem)
        return up   # whether its photo is still held, _run asks the store (once)

    # The photo callbacks: (session, *controls) in, outputs.PHOTO out; `controls` as Controls.read.
    def on_restore(self, up, *controls, progress=gr.Progress()):
        """Restore (and a picked example): restore the default faces of the photo in the box."""
        c = Controls.read(controls)
        try:
            up = self._current(up, c.path)
        except Exception as exc:  # noqa: BLE001
            if isinstance(exc, ImageError) and c.path and os.path.exists(c.path):
                return self.on_image(c.path)   # the decoder's message, the box cleared
            warn(without_paths(exc))
            return cleared(state=None, status=f"⚠️ {without_paths(exc)}")
        if up is None:
            msg = "No photo loaded: upload one or pick an example."
            warn(msg)
            return cleared(state=None, status=msg)
        up.selection = None  # a fresh Restore restores the default faces
        return self._run(up, c, progress)

    def on_tune(self, up, *controls, progress=gr.Progress()):
        """A setting moved: rerun live, but only once the user has pressed Restore."""
        if up is None or not up.restored:
            return outputs()
        return self._run(up, Controls.read(controls), progress)

    def on_pick(self, up, picked, *controls, progress=gr.Progress()):
        """Faces ticked / unticked: rerun without detecting again (detections are cached)."""
        if up is None or not up.restored:
            return outputs()
        up.selection = [int(i) for i in picked or []]
        return self._run(up, Controls.read(controls), progress)

    def on_simple(self, name: str, position):
        """The plain-words slider moved: set that method's expert sliders coherently."""
        method = methods.get(name)
        overrides = method.simple.apply(position if position is not None else method.simple.default,
                                        self.app.limits(name))
        return [gr.update(value=overrides[k.name]) if m == name and k.name in overrides else gr.skip()
                for m, k in self.layout]

    def slider_range(self, name: str, k: S.Knob) -> tuple:
        """(minimum, maximum, initial value) of a method's slider: it ends at the knob's ui_hi or
        where the loaded network's training ends (start steps), whichever is lower."""
        return S.slider_range(k, self.app.limits(name))

    def unavailable_message(self, choice: str) -> str:
        """Why a listed method cannot run, in plain words (create_app keeps paths out of the
        reason; without_paths in case a reason came from elsewhere)."""
        others = " or ".join(methods.get(n).title for n in self.app.restorers)
        return without_paths(f"{methods.get(choice).title} is not available: "
                             f"{self.app.unavailable[choice].rstrip('.')}."
                             + (f" Choose {others} to restore your photo." if others else ""))

    def on_method(self, up, choice):
        """The method changed (outputs: self.method_outputs): show only the chosen method's
        controls (its plain-words slider; Auto where it has one) and take the other method's
        result off the page. The rerun that follows (on_tune) shows the chosen one's; a method
        that cannot run says why, here, in words."""
        shown = [n for n in self.app.chosen(choice) if n in self.app.restorers]
        if choice in self.app.unavailable:
            status = f"⚠️ {self.unavailable_message(choice)}"
        elif up is not None and up.restored:
            status = f"Restoring with {' and '.join(methods.get(n).title for n in shown)}…"
        else:
            status = self._loaded(up) if up is not None else ""
        with_auto = [n for n in shown if self.app.restorers[n].auto is not None]
        words = auto_words(methods.get(with_auto[0])) if with_auto else {}
        return list(cleared(self.method_outputs, status=status, preview=None,
                            auto=gr.update(visible=bool(with_auto), **{k: words[k] for k in ("label", "info")
                                                                      if k in words}),
                            **{f"{n}-simple": gr.update(visible=n in shown) for n in self.simple_names}))

    def settings_for(self, name: str, values) -> object:
        mine = [v for (m, _), v in zip(self.layout, values) if m == name]
        return settings_from_ui(methods.get(name), mine)

    def _run(self, up: Upload, c: Controls, progress):
        """Restore with the chosen method(s) and show it (outputs.PHOTO)."""
        if c.choice in self.app.unavailable:
            msg = self.unavailable_message(c.choice)
            warn(msg)
            up.last = None   # nothing of the other method's is on screen (nor mapped by "guessing")
            return cleared(state=up, status=f"⚠️ {msg}", preview=None)   # up.restored stays: switching back reruns
        try:
            rgb = self.app.uploads.rgb(up)
        except ImageError as exc:   # dropped from the store to make room (a long-idle tab)
            warn(str(exc))
            return cleared(state=None, status=f"⚠️ {exc}", preview=None)
        names = self.app.chosen(c.choice)
        try:
            with self.in_flight.serving():
                results = []
                for k, name in enumerate(names):
                    def report(f, m, _k=k, _n=name):   # f None: the step's name, no frozen percentage
                        progress(None if f is None else (_k + f) / len(names), desc=f"{methods.get(_n).title}: {m}")
                    results.append(self.restore(name, rgb, up.key, up.selection, c, report))
        except Exception as exc:  # noqa: BLE001
            log.exception("restore failed")
            warn(without_paths(f"Restoration failed: {exc}"))
            return outputs(state=up, status=without_paths(f"⚠️ Restoration failed ({type(exc).__name__}: {exc})."))
        finally:
            path, up.path = up.path, None
            self.files.discard_upload(path)
            release_memory()  # a large photo's temporary buffers go back to the system
        up.restored = True
        # the session keeps what "Where is it guessing?" reads (faces, stages, settings), not the
        # full-size photos (restored, and the input at output size): a tab closed with a result
        # held them for Gradio's hour (bench.soak)
        up.last = [replace(r, image=None, before=None) for r in results]
        first = results[0]
        status = "\n\n".join(status_markdown(r, methods.get(r.method), self.app.models[r.method].label)
                             for r in results)
        status += "".join(f"\n- {n}" for n in up.notices)
        with_auto = [n for n in names if self.app.restorers[n].auto is not None]
        if not c.auto and with_auto:   # the fidelity slider or a calibrated setting switched it off: say so
            status += f"\n- {auto_words(methods.get(with_auto[0]))['off']}"
        shown = {"state": up, "status": status,
                 # one face shows its picker too when the detector is unsure of it (untick: leave it)
                 "pick": gr.update(choices=face_choices(first.found), visible=not c.aligned and (
                     len(first.found) > 1 or any(is_unsure(f) for f in first.found)),
                                   value=[f.index for f in first.faces] if up.selection is None else up.selection)}
        if not c.aligned:
            shown["preview"] = faces_preview(rgb, first.found, [f.index for f in first.faces])
        if not first.faces:
            warn(first.notices[-1] if first.notices else "No face found.")
            return cleared(**shown)
        # what this tab showed before is replaced now: its files go (no longer clickable)
        self.files.delete(up.files)
        before, after = self.files.result_pair(up, first)
        gallery = [item for r in results for item in gallery_items(r, methods.get(r.method))]
        titles = {n: methods.get(n).title for n in names}
        face_files = self.files.write_faces(up.name, results)
        up.files = [after, *face_files]
        notes = [self.app.models[n].card.get("beats_bicubic", True) for n in names]
        details = details_markdown(results)
        chart, caption = stage_plots(results)   # hidden when no stage that ran draws one
        return outputs(**shown, result=(before, after), download=gr.update(value=after, visible=True),
                       gallery=gallery, face_files=gr.update(value=face_files, visible=True),
                       plot=gr.update(value=chart, visible=chart is not None, label=caption or None),
                       identity=identity_markdown(results, titles, quality_ok=all(notes))
                       + (f"\n\n{details}" if details else ""))

    def restore(self, name: str, rgb: np.ndarray, key: str, select, c: Controls, progress=None):
        """One method on one photo, the way every button and slider asks for it (and the
        example warm-up, whose cache entries must be the ones a click looks up)."""
        return self.app.restorers[name].restore(rgb, self.settings_for(name, c.values), c.options(select), key=key,
                                                progress=progress)

    def page_controls(self, path: str | None, aligned: bool) -> Controls:
        """The controls as the page opens (the first method, the sliders' initial values, the
        Auto box's default, output size auto) with `path` in the photo box."""
        values = [self.slider_range(n, k)[2] for n, k in self.layout]
        auto = any(r.auto is not None for r in self.app.restorers.values())
        return Controls(path, aligned, next(iter(self.app.restorers)), "auto", False, auto, tuple(values))

    def on_uncertainty(self, up, progress=gr.Progress()):
        """Where is the model guessing: K = 4 samples of each restored face at its method's
        uncertainty settings (DiffBFR: per-step noise) through its first sampling stage,
        batched; the per-pixel spread as a heat map over the result on screen."""
        if up is None or not up.last or not up.last[0].faces:
            warn("Restore a photo first.")
            return [], ""
        items, lines = [], []
        for r in up.last:
            restorer = self.app.restorers[r.method]
            progress(0.1, desc=f"{methods.get(r.method).title}: 4 samples per face")
            with self.in_flight.serving():
                maps = uncertainties(restorer.model, [f.stages["lq"] for f in r.faces],
                                     [stochastic(restorer.model.method, f.settings) for f in r.faces],
                                     runner=restorer.runner,
                                     over=[f.stages.result for f in r.faces])
            for f, u in zip(r.faces, maps):
                items += [(upscale_nearest(u.overlay, 256), f"Face {f.index + 1} · where it guesses"),
                          (upscale_nearest(u.heat, 256), f"Face {f.index + 1} · spread")]
                lines.append(f"- Face {f.index + 1} ({methods.get(r.method).title}): {u.words}.")
        lines.append("\n*Bright = the samples disagree: the model is inventing there, not reading your photo.*")
        release_memory()  # the K samples' buffers go back to the system (~100-150 MB left otherwise)
        return items, "\n".join(lines)
