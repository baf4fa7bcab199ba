"""The page's outputs, assembled in one place. A callback says what each component shows, by
name; `outputs` lists them in the order of the event's outputs (ui/page.py wires the same
names to the components), leaving every component it does not name as it is (gr.skip())."""
from __future__ import annotations

import gradio as gr

# the photo callbacks (Restore, an example, a setting moved, a face ticked); "plot": the stages'
# charts (views.stage_plots)
PHOTO = ("state", "status", "result", "download", "gallery", "identity", "face_files", "plot", "pick", "preview")
# a new upload: the same but the Photo box itself instead of the faces preview
LOAD = tuple(n for n in PHOTO if n != "preview") + ("photo",)


def hidden():
    """A download box (or the charts' image) emptied and off the page."""
    return gr.update(value=None, visible=False)


def no_faces():
    """The face picker emptied and off the page."""
    return gr.update(choices=[], value=[], visible=False)


def outputs(names=PHOTO, **shown) -> tuple:
    """What each of `names` shows: `shown[name]`, or left as it is."""
    unknown = set(shown) - set(names)
    if unknown:
        raise KeyError(f"not among this event's outputs: {', '.join(sorted(unknown))}")
    return tuple(shown[n] if n in shown else gr.skip() for n in names)


def cleared(names=PHOTO, **shown) -> tuple:
    """No result on the page (before/after, download, stages, identity, per-face downloads, the
    charts and the picker emptied); `shown` sets the rest (the session, the status) or overrides."""
    empty = {"result": None, "download": hidden(), "gallery": [], "identity": "", "face_files": hidden(),
             "plot": hidden(), "pick": no_faces(), "guess": [], "guess_text": ""}
    return outputs(names, **{**{n: v for n, v in empty.items() if n in names}, **shown})
