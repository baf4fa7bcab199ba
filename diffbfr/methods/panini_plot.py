"""Panini-Net's DAFI prior share as a small chart (its stage's `Stage.plot`): per face one line
over the feature levels (4 px ... 128 px, read from the infos), y = the share taken from the
face prior in %, and, where the image DAFI block ran, its share as a separate marker at the
right, past a dashed line (it blends images, not features: not a point on the same curve).

Drawn with OpenCV (a dependency already; the app does not ship matplotlib). The layout is
computed first (`layout`: every text with its box), then drawn, so tests can check that no two
texts overlap and all lie inside the picture.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..nets.panini_dafi import IMAGE

SIZE = (480, 260)             # width, height: readable as it is, beside the face gallery
MAX_LEGEND = 8                # faces drawn in colour and named; the rest in thin grey, "+N more"
TITLE = "Share taken from the face prior, per level"
X_LABEL = "feature level (px)"
Y_LABEL = "from the prior"
IMAGE_LABEL = "image"         # the image DAFI block's tick (the stage's words: "final image")
FONT = cv2.FONT_HERSHEY_SIMPLEX
INK, GRID, REST = (40, 40, 40), (225, 225, 225), (185, 185, 185)
# distinct on white and for the common colour blindnesses (Okabe-Ito, then two more), RGB;
# the faces past MAX_LEGEND in REST
COLOURS = ((0, 114, 178), (230, 159, 0), (0, 158, 115), (204, 121, 167), (86, 180, 233), (213, 94, 0),
           (117, 80, 180), (240, 200, 40))


@dataclass(frozen=True)
class Text:
    text: str
    x: int                    # left of the text box
    y: int                    # baseline (horizontal) / bottom of the box (vertical)
    scale: float
    thickness: int = 1
    colour: tuple = INK
    vertical: bool = False    # read bottom to top

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the ink, descenders included."""
        (w, h), base = cv2.getTextSize(self.text, FONT, self.scale, self.thickness)
        if self.vertical:
            return self.x, self.y - w, self.x + h + base, self.y
        return self.x, self.y - h, self.x + w, self.y + base


@dataclass(frozen=True)
class Layout:
    size: tuple[int, int]
    plot: tuple[int, int, int, int]          # x0, y0, x1, y1 of the plotting area (y0 = 100 %)
    levels: list[str]                        # the feature levels, ascending
    xs: dict[str, int]                       # level (or IMAGE) -> its x
    faces: list[tuple[str, dict, tuple]]     # (name, shares, colour) in face order; the first drawn on top
    texts: list[Text]
    swatches: list[tuple[int, int, tuple]]   # (x, y, colour): the legend's line beside each named face


def _width(text: str, scale: float, thickness: int = 1) -> int:
    return cv2.getTextSize(text, FONT, scale, thickness)[0][0]


def _shares(infos: list[dict]) -> list[tuple[str, dict]]:
    """(the face's name, its shares) for every info that has shares."""
    out = []
    for k, info in enumerate(infos):
        shares = info.get("prior_share") or {}
        if shares:
            out.append((f"Face {info.get('face', k + 1)}", shares))
    return out


def layout(infos: list[dict], size: tuple[int, int] = SIZE) -> Layout | None:
    """Where everything goes; None when no face has a prior share."""
    faces = _shares(infos)
    if not faces:
        return None
    w, h = size
    levels = sorted({r for _, s in faces for r in s if str(r).isdigit()}, key=int)
    with_image = any(IMAGE in s for _, s in faces)
    shown = faces[:MAX_LEGEND]
    legend = [name for name, _ in shown]
    if len(faces) > len(shown):
        legend.append(f"+{len(faces) - len(shown)} more (grey)")
    small, tick = 0.4, 0.38
    legend_w = max(_width(t, small) for t in legend) + 26
    x0, y0, x1, y1 = 62, 34, w - legend_w - 14, h - 46
    texts = [Text(TITLE, max(4, (w - _width(TITLE, 0.5)) // 2), 18, 0.5)]
    # y: 0..100 % with a grid line every 25 %, the axis label read upwards at the far left
    for p in range(0, 101, 25):
        y = _y((x0, y0, x1, y1), p / 100)
        label = f"{p} %"
        texts.append(Text(label, x0 - 6 - _width(label, tick), y + 4, tick))
    (lw, _), _ = cv2.getTextSize(Y_LABEL, FONT, small, 1)
    texts.append(Text(Y_LABEL, 4, (y0 + y1 + lw) // 2, small, vertical=True))
    # x: the levels evenly spaced (they double: a log scale), the image block apart at the right
    slots = len(levels) + (1.5 if with_image else 0)
    step = (x1 - x0) / max(slots, 1)
    xs = {r: round(x0 + step * (i + 0.5)) for i, r in enumerate(levels)}
    if with_image:
        xs[IMAGE] = round(x1 - step * 0.5)
    for r, x in xs.items():
        name = IMAGE_LABEL if r == IMAGE else r
        texts.append(Text(name, x - _width(name, tick) // 2, y1 + 16, tick))
    mid = (xs[levels[0]] + xs[levels[-1]]) // 2 if levels else (x0 + x1) // 2
    texts.append(Text(X_LABEL, max(x0, mid - _width(X_LABEL, small) // 2), y1 + 36, small))
    # legend: a colour swatch per face, then how many more are drawn in grey
    lx = x1 + 14
    for i, t in enumerate(legend):
        texts.append(Text(t, lx + 22, y0 + 10 + 17 * i, small, colour=INK if i < len(shown) else (110, 110, 110)))
    coloured = [(name, s, COLOURS[i % len(COLOURS)]) for i, (name, s) in enumerate(shown)]
    rest = [(name, s, REST) for name, s in faces[len(shown):]]
    swatches = [(lx, y0 + 10 + 17 * i - 4, colour) for i, (_, _, colour) in enumerate(coloured)]
    return Layout(size, (x0, y0, x1, y1), levels, xs, coloured + rest, texts, swatches)


def _y(plot: tuple[int, int, int, int], share: float) -> int:
    """The row of a share (0..1, clipped) in the plotting area `plot` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = plot
    return round(y1 - (y1 - y0) * min(max(float(share), 0.0), 1.0))


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _draw_text(img: np.ndarray, t: Text) -> None:
    if not t.vertical:
        cv2.putText(img, t.text, (t.x, t.y), FONT, t.scale, t.colour, t.thickness, cv2.LINE_AA)
        return
    bx0, by0, bx1, by1 = t.box
    (w, h), base = cv2.getTextSize(t.text, FONT, t.scale, t.thickness)
    patch = np.full((h + base, w, 3), 255, np.uint8)
    cv2.putText(patch, t.text, (0, h), FONT, t.scale, t.colour, t.thickness, cv2.LINE_AA)
    img[by0:by1, bx0:bx1] = np.rot90(patch)   # counter-clockwise: read bottom to top


def _dashed_vline(img, x, y0, y1, colour, dash=4):
    for y in range(y0, y1, 2 * dash):
        cv2.line(img, (x, y), (x, min(y + dash, y1)), colour, 1)


def prior_share_plot(infos: list[dict], size: tuple[int, int] = SIZE) -> np.ndarray | None:
    """Infos of Panini-Net's stage ({"prior_share": {level: share, ..., "image": share}, "face": n})
    -> a uint8 HxWx3 RGB chart, or None when no face has a share to draw."""
    lay = layout(infos, size)
    if lay is None:
        return None
    w, h = lay.size
    x0, y0, x1, y1 = lay.plot
    img = np.full((h, w, 3), 255, np.uint8)
    for p in range(0, 101, 25):
        y = _y(lay.plot, p / 100)
        cv2.line(img, (x0, y), (x1, y), GRID if p not in (0, 100) else (200, 200, 200), 1)
    cv2.line(img, (x0, y0), (x0, y1), INK, 1)
    cv2.line(img, (x0, y1), (x1, y1), INK, 1)
    for x in lay.xs.values():
        cv2.line(img, (x, y1), (x, y1 + 4), INK, 1)
    if IMAGE in lay.xs:   # the image block is not a feature level: set apart
        last = lay.xs[lay.levels[-1]] if lay.levels else x0
        _dashed_vline(img, (last + lay.xs[IMAGE]) // 2, y0, y1, (150, 150, 150))
    n = len(lay.faces)
    for j, (_, shares, colour) in reversed(list(enumerate(lay.faces))):   # face 1 last: on top
        grey = colour == REST
        # each face a few px aside of the level (spread over at most 24 px): equal shares stay
        # visible as dots side by side instead of one face hiding the others
        dx = round((j - (n - 1) / 2) * min(5.0, 24 / n))
        pts = [(lay.xs[r] + dx, _y(lay.plot, shares[r])) for r in lay.levels if _finite(shares.get(r))]
        if len(pts) > 1:
            cv2.polylines(img, [np.array(pts, np.int32)], False, colour, 1 if grey else 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, p, 2 if grey else 3, colour, -1, cv2.LINE_AA)
        if _finite(shares.get(IMAGE)):   # a square per face
            x, y, r = lay.xs[IMAGE] + dx, _y(lay.plot, shares[IMAGE]), 3 if grey else 4
            cv2.rectangle(img, (x - r, y - r), (x + r, y + r), colour, -1)
            if not grey:
                cv2.rectangle(img, (x - r, y - r), (x + r, y + r), INK, 1)
    for lx, y, colour in lay.swatches:
        cv2.line(img, (lx, y), (lx + 16, y), colour, 2, cv2.LINE_AA)
        cv2.circle(img, (lx + 8, y), 3, colour, -1, cv2.LINE_AA)
    for t in lay.texts:
        _draw_text(img, t)
    return img
