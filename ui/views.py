"""What the app shows, as plain functions of the photo path's results: the status line, the
identity table, the stage gallery and charts, the faces found, the weights notice, messages
without server paths, and slider values -> settings. No Gradio here: ui/handlers.py hands these to
the components ui/page.py lays out.
"""
from __future__ import annotations

import re

import cv2
import numpy as np

from diffbfr import methods
from diffbfr import settings as S
from diffbfr.faces.identity import SAME_PERSON_THRESHOLD
from diffbfr.image_out import upscale_nearest
from diffbfr.methods import Method, Model
from diffbfr.photo import PhotoResult, counted

DISPLAY_SIZE = 256     # stage images are upscaled (nearest) to this for the gallery


# an absolute file path (POSIX or Windows) that starts a word: /srv/app/weights/x.bin, C:\x\y
_ABS_PATH = re.compile(r"(?<![\w.~/\\])(?:[A-Za-z]:)?(?:[/\\][^\s/\\'\"(),;\[\]]+)+[/\\]?")


# a run of more than 15 digits (a 309-digit integer someone sent): shortened in messages
_LONG_NUMBER = re.compile(r"\d{16,}")


def short_numbers(text: str) -> str:
    """Every number longer than 15 digits as its first digits and its length: '123456…(309 digits)'."""
    return _LONG_NUMBER.sub(lambda m: f"{m.group()[:6]}…({len(m.group())} digits)", str(text))


def without_paths(text: str) -> str:
    """A message for the page with every absolute file path cut to its last part (an error's
    wording may name server folders, uploads, weights, which visitors never need to see) and
    every very long number shortened (short_numbers)."""
    return short_numbers(_ABS_PATH.sub(lambda m: re.split(r"[/\\]", m.group().rstrip("/\\"))[-1], str(text)))


def settings_from_ui(method: Method, values) -> object:
    """Slider values in knob order (floats, possibly None from an emptied field: the default) ->
    settings, through the one validation (S.validate; the sliders' values are always in range)."""
    names = [k.name for k in S.knobs(method.settings)]
    return S.validate(method.settings, dict(zip(names, values)))


def auto_words(method: Method) -> dict[str, str]:
    """The Auto box's label and help, and the status note while it is off, in the method's own
    words for what Auto chooses per face (Method.auto_words)."""
    every, one = method.auto_words
    return {"label": f"Auto: choose the {every} from how damaged each face looks",
            "info": "Each face gets settings calibrated for its estimated degradation (shown under the result). "
                    f"Moving the fidelity slider or {one} switches it off; tick it again to go back.",
            "off": "**Auto is off**: these are the sliders' settings, the same for every face (moving the "
                   f"fidelity slider or {one} switches Auto off). Tick **Auto** to let it choose each face's "
                   f"{every} again."}


def identity_meaning(d: float | None, method: Method) -> str:
    if d is None:
        return "n/a: the identity model found no face in the input or the result"
    if d < 0.4:
        return "very likely the same person"
    if d < SAME_PERSON_THRESHOLD:
        return f"probably the same person (below dlib's {SAME_PERSON_THRESHOLD} threshold)"
    return "identity drifted" + (f": {method.drift_hint}" if method.drift_hint else "")


def identity_markdown(results: list[PhotoResult], titles: dict[str, str], quality_ok: bool = True) -> str:
    rows = [(r, f) for r in results for f in r.faces]
    if not rows:
        return ""
    many = len(results) > 1
    head = "| Face | " + ("Method | " if many else "") + "Identity distance input → result | Meaning |"
    lines = [head, "|---|" + ("---|" if many else "") + "---|---|"]
    for r, f in rows:
        num = "n/a" if f.identity is None else f"{f.identity:.3f}"
        meaning = ("left as it was (not restored)" if f.left_as_is
                   else identity_meaning(f.identity, methods.get(r.method)))
        lines.append(f"| {f.index + 1} | " + (f"{titles[r.method]} | " if many else "")
                     + f"{num} | {meaning} |")
    lines.append(f"\n*Distance between dlib face embeddings: 0 = identical, below {SAME_PERSON_THRESHOLD} "
                 "= same person.*")
    if not quality_ok:
        lines.append("\n**Identity kept does not mean the face got better:** these weights restore worse "
                     "than plain bicubic upsampling (see the notice at the top).")
    return "\n".join(lines)


def status_markdown(result: PhotoResult, method: Method, label: str = "") -> str:
    n = len(result.faces)
    if n == 0:
        head = "**No face restored.**"
    else:
        order = method.stage_names
        ran = [st for st in order if any(st in f.stages.computed for f in result.faces)]
        reused = [method.labels[st] for st in order if st not in ran]
        seconds = {st: sum(f.stages.timings.get(st, 0.0) for f in result.faces) for st in ran}
        ran_txt = ", ".join(f"{method.labels[st]} {seconds[st]:.2f} s" for st in ran) or "nothing"
        head = (f"**{method.title}: {counted(result.faces)}** in "
                f"{result.timings.get('total', 0):.2f} s (ran: {ran_txt}"
                + (f"; reused from cache: {', '.join(reused)}" if reused else "") + ").")
    lines = [head] + [f"- {msg}" for msg in result.notices]
    if label:
        lines.append(f"- Model: {label}.")
    return "\n".join(lines)


def details_markdown(results: list[PhotoResult]) -> str:
    """What stages reported besides images (e.g. Panini-Net's DAFI prior share per level),
    in the words each stage's `describe` gives them."""
    lines = []
    for r in results:
        method = methods.get(r.method)
        for f in r.faces:
            for st in method.stages:
                info = f.stages.info.get(st.name)
                if info and st.describe is not None:
                    lines.append(f"- Face {f.index + 1}, {st.label}: {st.describe(info)}")
    return "\n".join(lines)


def stage_plots(results: list[PhotoResult], gap: int = 8) -> tuple[np.ndarray | None, str]:
    """The charts of every stage that draws one (`Stage.plot`, e.g. Panini-Net's prior share per
    level) over its faces' infos, stacked top to bottom (side by side: one per method), and
    their caption; (None, "") when no stage that ran has one."""
    charts, captions = [], []
    for r in results:
        for st in methods.get(r.method).stages:
            infos = [{**f.stages.info[st.name], "face": f.index + 1} for f in r.faces if f.stages.info.get(st.name)]
            chart = st.plot(infos) if st.plot is not None and infos else None
            if chart is not None:
                charts.append(chart)
                captions.append(f"{st.label}: {st.plot_label or 'per face'}")
    if not charts:
        return None, ""
    width = max(c.shape[1] for c in charts)
    rows = []
    for i, c in enumerate(charts):   # narrower charts padded white on the right, a white gap between
        rows.append(np.pad(c, ((0, gap if i < len(charts) - 1 else 0), (0, width - c.shape[1]), (0, 0)),
                           constant_values=255))
    return np.concatenate(rows), " · ".join(captions)


def gallery_items(result: PhotoResult, method: Method, size: int = DISPLAY_SIZE) -> list[tuple[np.ndarray, str]]:
    """Per face: the input and every stage, upscaled with nearest so pixels stay honest."""
    items = []
    for f in result.faces:
        for name, label in method.labels.items():
            items.append((upscale_nearest(f.stages[name], size), f"Face {f.index + 1} · {label}"))
    return items


def weights_notice(model: Model) -> str:
    """The page's honesty line about the loaded weights, from the weights folder's manifest."""
    if model.label:
        return f"⚠️ **{model.method.title}: {model.label}.**"
    card = model.card
    # a stage that measures worse than skipping it is said even when the whole chain beats bicubic
    stage = card.get("stage_warning", "")
    stage = f"⚠️ **{model.method.title}:** {stage}" if stage else ""
    if card.get("beats_bicubic", False):
        return stage
    note = card.get("quality_note", "these weights have not been shown to beat plain bicubic upsampling")
    return "\n\n".join(filter(None, [
        f"⚠️ **{model.method.title}: these weights restore faces worse than plain bicubic upsampling.** "
        f"{note} The README that comes with these weights, in the project's files, says more.", stage]))


def face_choices(found) -> list[tuple[str, int]]:
    """The face picker's entries: numbered left to right, with their size in the photo."""
    return [(f"Face {i + 1} ({f.face_size:.0f} px)", i) for i, f in enumerate(found)]


def faces_preview(rgb: np.ndarray, found, chosen: list[int], max_side: int = 1024) -> np.ndarray:
    """The photo (downscaled for display) with a numbered box per face found: green when it
    is restored, grey when it is not."""
    scale = min(1.0, max_side / max(rgb.shape[:2]))
    img = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else rgb.copy()
    thick = max(2, round(max(img.shape[:2]) / 400))
    for i, f in enumerate(found):
        if f.face is None:
            continue
        x0, y0, x1, y1 = (int(round(v * scale)) for v in f.face.box)
        colour = (40, 200, 90) if i in chosen else (150, 150, 150)
        cv2.rectangle(img, (x0, y0), (x1, y1), colour, thick)
        cv2.putText(img, str(i + 1), (x0 + 2, max(y0 - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX,
                    max(0.5, thick / 3), colour, thick, cv2.LINE_AA)
    return img
