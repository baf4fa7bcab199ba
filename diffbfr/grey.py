"""Black-and-white photos stay black and white. A scan of a grey print is rarely exactly grey:
JPEG chroma noise and a slight tint make its channels differ by up to ~20 levels, and a model
trained on colour faces would then paint an orange forehead on it (issue #30: the max red-blue
difference went from 20 to 64). `is_nearly_grey` is the one rule the loader and the photo
path use; `grey_rgb` is the one conversion, which the paste-back uses too."""
from __future__ import annotations

import cv2
import numpy as np

# A photo is nearly grey when 99.9 % of its pixels have channels within CHROMA_MAX levels of each
# other and the mean difference is at most CHROMA_MEAN. Colour photos of faces (the examples, the
# real photos in ../shared/data/real) have a mean of 20-90 and a 99.9th percentile of 55-210;
# sepia prints (a tint of 20-40 levels everywhere) stay sepia; a grey scan with a tint growing to
# 20 levels across it has a mean of ~10.
CHROMA_MAX = 24
CHROMA_MEAN = 12.0


def chroma(rgb: np.ndarray) -> np.ndarray:
    """Per pixel, the largest difference between two channels (0: grey), as int16."""
    rgb = np.asarray(rgb).astype(np.int16)
    return rgb.max(axis=2) - rgb.min(axis=2)


def is_nearly_grey(rgb: np.ndarray) -> bool:
    """True for a grey photo stored as RGB, exactly or nearly (a scan, a JPEG: see the module doc).
    Reads a subsample of about 256 x 256 pixels, so a 100 MP photo costs no more than a small one."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        return False
    small = rgb[:: max(1, rgb.shape[0] // 256), :: max(1, rgb.shape[1] // 256)]
    c = chroma(small)
    return bool(np.percentile(c, 99.9) <= CHROMA_MAX and c.mean() <= CHROMA_MEAN)


def grey_rgb(rgb: np.ndarray) -> np.ndarray:
    """The image's luma in all three channels (uint8 HxWx3): what a grey photo's outputs show."""
    g = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
    return np.repeat(g[:, :, None], 3, axis=2)
