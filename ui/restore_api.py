"""The one-call API, /restore: photo + method + settings -> the restored photo, every stage of
every face, and the JSON record (README, "One-call API").

Declared once: the signature of RestoreAPI.restore names the arguments and holds their
defaults (the page's; `method`'s, the app's first, is filled in when the API is made), and the
page makes the endpoint's hidden input components from it (ui/page.py: api_inputs). Its cheap refusals (no photo, a file that is not an image, an unknown method,
refused settings or options) are given by RestoreAPI.check, which Gradio runs as the event's
validator when the call arrives, before it joins the queue: a refused call never waits behind
a restore."""
from __future__ import annotations

import functools
import inspect
import json
from pathlib import Path

import gradio as gr
import numpy as np

from diffbfr import methods
from diffbfr import settings as S
from diffbfr.imageio import ImageError, check_file, load_image, release_memory
from diffbfr.photo import PhotoOptions
from diffbfr.stage_cache import image_key

from .views import gallery_items, without_paths

NO_PHOTO = "No photo: send one with the call (gradio_client: handle_file(path))."
CHOICES = {"scale": {"auto": "auto", "1": 1, "2": 2, "4": 4}, "auto": {"true": True, "false": False},
           "aligned": {"true": True, "false": False}}


class RestoreAPI:
    """/restore over the app's restorers; `files` writes what it returns (shared with the page's
    events), `in_flight` counts it as a person's request (the example warm-up waits)."""

    def __init__(self, app, files, in_flight):
        self.app, self.files, self.in_flight = app, files, in_flight
        # the signature is the declaration; the one default only the app knows is its first method
        self.restore = with_defaults(self.restore, method=next(iter(app.restorers)))

    def check(self, image, method=None, aligned=None, settings_json=None, auto=None, scale=None):
        """The validator of /restore (its arguments, the page's defaults for those left out):
        one gr.validate per argument, each refusal in the words `restore` would use; a refused
        upload is deleted. Reads the photo's header only, so it answers at once."""
        problems = {}
        if not image:
            problems["image"] = NO_PHOTO
        else:
            try:
                check_file(image)
            except ImageError as exc:
                problems["image"] = without_paths(exc)
                self.files.discard_upload(image, grace=True)
        name = method if method is not None else next(iter(self.app.restorers))
        if name not in self.app.restorers:
            problems["method"] = self.unknown_method(name)
        else:
            try:
                api_settings(self.app.restorers[name].model, "{}" if settings_json is None else settings_json)
            except (S.SettingsError, ValueError) as exc:
                problems["settings_json"] = without_paths(exc)
        for arg, value in (("aligned", aligned), ("auto", auto), ("scale", scale)):
            try:
                api_choice(arg, value, CHOICES[arg], None)
            except S.SettingsError as exc:
                problems[arg] = without_paths(exc)
        names = inspect.signature(self.restore).parameters
        return [gr.validate(n not in problems, problems.get(n, "")) for n in names]

    def unknown_method(self, method) -> str:
        return f"method {method!r} is not available; available: {', '.join(self.app.restorers)}"

    def restore(self, image: str, method: str | None = None, aligned: bool = False, settings_json: str = "{}",
                auto: bool = True, scale: str = "auto"):
        """One call: photo + method + settings -> the restored photo, every stage of every face,
        and a JSON record. Arguments and defaults are the page's (README, "One-call API"):
        `settings_json` a JSON object of that method's settings (missing ones: the defaults;
        checked by diffbfr.settings.validate, which refuses, never clamps, a bad value);
        `auto` (default on, as on the page) picks the settings Auto calibrates per face (DiffBFR:
        the start steps), except when the settings name one of them (as moving such a slider
        switches Auto off on the page); `scale` "auto" (the page's default), "1", "2" or "4"."""
        if not image:
            raise gr.Error(NO_PHOTO)
        if method not in self.app.restorers:
            raise gr.Error(self.unknown_method(method))
        restorer = self.app.restorers[method]
        try:
            s, named = api_settings(restorer.model, settings_json)
            out_scale = api_choice("scale", scale, CHOICES["scale"], "auto")
            want_auto = api_choice("auto", auto, CHOICES["auto"], True)
            aligned = api_choice("aligned", aligned, CHOICES["aligned"], False)
            calibrated = set(restorer.auto.calibration.fields) if restorer.auto is not None else set()
            overridden = sorted(named & calibrated)
            use_auto = want_auto and bool(calibrated) and not overridden
            loaded = load_image(image)   # one call: not kept in the tabs' UploadStore
            with self.in_flight.serving():
                result = restorer.restore(loaded.rgb, s, PhotoOptions(aligned=aligned, scale=out_scale, auto=use_auto),
                                          key=image_key(loaded.rgb))
        except (ImageError, ValueError, KeyError) as exc:
            raise gr.Error(without_paths(exc)) from None
        finally:
            self.files.discard_upload(image, grace=True)
            release_memory()
        name = Path(image).stem
        restored = self.files.write(f"{name}_restored.png", result.image)
        gallery = [(self.files.write(f"{name}_{caption}.png", np.asarray(img)), caption)
                   for img, caption in gallery_items(result, methods.get(method), size=128)]
        notices = list(loaded.notices)
        if want_auto and overridden:
            notices.append(f"Auto is off for this call: the settings name {', '.join(overridden)}, which Auto "
                           "would choose (leave them out to let Auto choose).")
        record = result.to_record(notices)   # the one result record (the CLI writes it too)
        record["auto"] = {"requested": want_auto, "used": use_auto, "available": bool(calibrated)}
        return restored, gallery, record


def with_defaults(fn, **defaults):
    """`fn` with some of its parameters' defaults replaced, in its signature too (what Gradio
    and api_inputs read)."""
    sig = inspect.signature(fn)
    sig = sig.replace(parameters=[p.replace(default=defaults.get(p.name, p.default)) for p in sig.parameters.values()])

    @functools.wraps(fn)
    def call(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        return fn(*bound.args, **bound.kwargs)
    call.__signature__ = sig
    return call


def api_settings(model: methods.Model, settings_json) -> tuple[object, set[str]]:
    """The API's settings text -> (settings, names the caller set), through the one validation
    (diffbfr.settings.from_json: a JSON object, known names, numbers in range, the start steps
    within what the loaded networks were trained at). Raises SettingsError (plain words)."""
    s = S.from_json(model.method.settings, settings_json, model.knob_limits())
    parsed = settings_json if not isinstance(settings_json, str) else \
        (json.loads(settings_json) if settings_json.strip() else {})
    return s, {n for n, v in (parsed or {}).items() if v is not None}


def api_choice(name: str, value, choices: dict, default):
    """An API argument with a few allowed values (None: the default); SettingsError otherwise."""
    if value is None:
        return default
    text = str(value).strip().lower() if isinstance(value, (bool, int, str)) else None
    if text in choices:
        return choices[text]
    raise S.SettingsError(f"{name} must be one of {', '.join(choices)}; got {json.dumps(value, default=str)}",
                          name)
