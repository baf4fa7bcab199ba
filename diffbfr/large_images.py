"""Large images: decoded in bands, a bounded number at a time, memory handed back after.

A 100 MP upload decoded whole holds 0.4-0.6 GB (Pillow holds a 100 MP WebP about four times
over: 1.5 GB), several uploads at once more than a small server has. So imageio's downscaling
path reads a large image through a row source that never holds it at full size:

- _PngRows: a non-interlaced 8-bit PNG streamed band by band (zlib inflates the IDAT chunks
  incrementally, Pillow unfilters each band); also finds an eXIf chunk after the image data
  without decoding it.
- _webp_rows: a WebP decoded once by libwebp through OpenCV, 3 or 4 bytes per pixel.

and takes a turn first: at most DECODE_SLOTS large decodes at once in the process (_DECODE_SLOTS),
only one of them holding a whole image (_WHOLE_DECODE); release_memory() hands the freed memory
back to the OS after each. imageio decides which decodes are large (its _turn) and resamples the
bands (_resample_bands); everything here is re-exported by diffbfr.imageio.
"""
from __future__ import annotations

import ctypes
import gc
import os
import struct
import sys
import threading
import zlib

import cv2
import numpy as np
from PIL import Image


# Large decodes (anything that must be downscaled) are CPU-bound: one per core of a 2-core
# machine. Decoded in bands (PNG) or at reduced scale (JPEG) each holds < 200 MB for 100 MP;
# other formats hold the whole image (0.4-0.6 GB for 100 MP): one at a time. Small photos
# never wait.
DECODE_SLOTS = 2
_DECODE_SLOTS = threading.BoundedSemaphore(DECODE_SLOTS)
_WHOLE_DECODE = threading.Lock()  # taken inside a slot, so the two never wait on each other
# glibc's malloc_trim; None elsewhere (musl, macOS, Windows have no such call)
try:
    _MALLOC_TRIM = getattr(ctypes.CDLL(None), "malloc_trim", None) if sys.platform == "linux" else None
except (OSError, TypeError):
    _MALLOC_TRIM = None


def release_memory() -> None:
    """Hand memory freed after a large image back to the OS. Without it glibc keeps the freed
    blocks of a 100 MP decode in its per-thread arenas, and the process stays that large."""
    # The young generations only: whatever a decode left in reference cycles is young, and a
    # full collection stalls every thread of the app for ~0.4 s (350k objects, GIL held).
    gc.collect(1)
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _webp_rows(im: Image.Image):
    """rows(y0, y1) of a WebP decoded by libwebp through OpenCV: the pixels once, 3 or 4 bytes
    each. Pillow holds about four copies while decoding one (1.5 GB for 100 MP); same pixels."""
    im.fp.seek(0)
    bgr = cv2.imdecode(np.frombuffer(im.fp.read(), np.uint8), cv2.IMREAD_UNCHANGED)
    if bgr is None or bgr.ndim != 3:
        raise OSError("libwebp could not decode it")
    to_rgb = cv2.COLOR_BGRA2RGBA if bgr.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return lambda y0, y1: Image.fromarray(cv2.cvtColor(bgr[y0:y1], to_rgb))


class _PngRows:
    """The rows of a non-interlaced 8-bit PNG, decoded a band at a time: zlib inflates the IDAT
    stream incrementally, and Pillow's PNG decoder unfilters each band, primed with the row
    before it (stored unfiltered, as PNG filters read the previous row). A 100 MP PNG never
    exists at full size (Pillow alone holds it at 4 bytes per pixel: 400 MB)."""
    BYTES_PER_PIXEL = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}

    @classmethod
    def fits(cls, im: Image.Image) -> bool:
        tiles = getattr(im, "tile", ())  # only images opened from a file have tiles
        tile = tiles[0] if len(tiles) == 1 else None
        return (im.format == "PNG" and tile is not None and tile[0] == "zip" and tile[3] == im.mode
                and tuple(tile[1]) == (0, 0) + im.size and im.mode in cls.BYTES_PER_PIXEL
                and "interlace" not in im.info and getattr(im, "n_frames", 1) == 1)

    def __init__(self, im: Image.Image):
        self.mode, (self.w, self.h) = im.mode, im.size
        self.stride = 1 + self.w * self.BYTES_PER_PIXEL[im.mode]   # filter type byte + pixels
        self.pieces = self._idat(im.fp, im.tile[0][2])
        self.inflate = zlib.decompressobj()
        self.band, self.y0, self.y1 = None, 0, 0   # the rows [y0, y1) last handed out
        self.last_row = None                       # row y1 - 1, unfiltered

    @staticmethod
    def exif_after_data(im: Image.Image) -> bytes | None:
        """The eXIf chunk after the image data (as Pillow's info["exif"]), found by seeking."""
        fp, pos = im.fp, im.fp.tell()
        fp.seek(im.tile[0][2] - 8)
        try:
            while len(head := fp.read(8)) == 8:
                length, kind = struct.unpack(">I4s", head)
                if kind == b"eXIf":
                    return b"Exif\x00\x00" + fp.read(length)
                if kind == b"IEND":
                    break
                fp.seek(length + 4, os.SEEK_CUR)
            return None
        finally:
            fp.seek(pos)

    @staticmethod
    def _idat(fp, offset: int):
        """The compressed image data: the consecutive IDAT chunks from offset, 1 MB at a time."""
        fp.seek(offset - 8)
        while True:
            head = fp.read(8)
            if len(head) < 8:
                raise EOFError("the PNG image data ends early")
            length, kind = struct.unpack(">I4s", head)
            if kind != b"IDAT":
                return
            while length:
                piece = fp.read(min(length, 2**20))
                if not piece:
                    raise EOFError("the PNG image data ends early")
                length -= len(piece)
                yield piece
            fp.read(4)  # the chunk's CRC

    def _decode(self, n: int) -> Image.Image:
        k = n + (self.last_row is not None)
        data = bytearray(k * self.stride)  # allocated once: growing it fragments the heap
        pos = 0 if self.last_row is None else self.stride  # row 0: the context, filter "none"
        data[1:pos] = self.last_row or b""
        while pos < len(data):
            chunk = self.inflate.unconsumed_tail or next(self.pieces, b"")
            if not chunk:
                raise EOFError("the PNG image data ends early")
            rows = self.inflate.decompress(chunk, len(data) - pos)
            data[pos:pos + len(rows)] = rows
            pos += len(rows)
        # level 0: zlib framing around bytes we already have, so Pillow's decoder unfilters them
        stream = zlib.compress(data, 0)
        del data
        band = Image.frombytes(self.mode, (self.w, k), stream, "zip", self.mode)
        del stream
        self.last_row = band.crop((0, k - 1, self.w, k)).tobytes()
        return band.crop((0, k - n, self.w, k)) if k > n else band

    def rows(self, y0: int, y1: int) -> Image.Image:
        """Rows [y0, y1); each call starts at or before where the last one ended, never back."""
        assert self.y0 <= y0 <= self.y1 <= y1, "bands must follow each other"
        band = self._decode(y1 - self.y1) if y1 > self.y1 else None
        if y0 < self.y1:  # the rows shared with the last band: kept, not decoded again
            kept = self.band.crop((0, y0 - self.y0, self.w, self.y1 - self.y0))
            if band is not None:
                both = Image.new(self.mode, (self.w, y1 - y0))
                both.paste(kept, (0, 0))
                both.paste(band, (0, kept.height))
                kept = both
            band = kept
        self.band, self.y0, self.y1 = band, y0, y1
        return band
