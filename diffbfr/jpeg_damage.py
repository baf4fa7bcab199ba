"""Whether a JPEG decoded with damage. Pillow decodes a JPEG with zeroed or garbled bytes
without a word (libjpeg's warnings, "Corrupt JPEG data: premature end of data segment", go
nowhere), and the photo then restores with a grey smear where the damage was and a face
missing (issue #30: 1 face of 2 found). libjpeg as OpenCV builds it writes those warnings to
the process's stderr (file descriptor 2), so `damage` decodes the file once more at 1/8 scale
in grey (every coded coefficient is still read, so every warning still comes; ~1/20 of a full
decode's time) with descriptor 2 pointed at a temporary file, and reads the warnings back.
Anything else written to stderr meanwhile (another thread's log line) is written back."""
from __future__ import annotations

import os
import sys
import tempfile
import threading

import cv2
import numpy as np

_STDERR_LOCK = threading.Lock()   # one redirect at a time in the process
_LIBJPEG_WORDS = ("JPEG", "jpeg", "Huffman", "marker")


def damage(src: bytes | str | os.PathLike) -> str | None:
    """libjpeg's warnings on decoding `src` (a JPEG file's bytes, or its path: read by libjpeg
    as it decodes, never whole into memory), joined; None when it decoded cleanly."""
    with _STDERR_LOCK, tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            if isinstance(src, (bytes, bytearray, memoryview)):
                cv2.imdecode(np.frombuffer(src, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8)
            else:
                cv2.imread(os.fspath(src), cv2.IMREAD_REDUCED_GRAYSCALE_8)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        lines = tmp.read().decode("utf-8", "replace").splitlines()
    warned = [ln.strip() for ln in lines if any(w in ln for w in _LIBJPEG_WORDS)]
    others = [ln for ln in lines if not any(w in ln for w in _LIBJPEG_WORDS)]
    if others:
        sys.stderr.write("\n".join(others) + "\n")
    return "; ".join(warned) or None
