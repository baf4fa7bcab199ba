"""The caches of the photo path: a small LRU map bounded by entries and by the image bytes it
holds, and the keys it is read with (a photo's content hash; a stage's key, read off the
method's stage table), so that moving one slider reruns only the stages that slider reaches."""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Hashable

import numpy as np

from .methods.base import Method

# What each of a PhotoRestorer's caches may hold in image bytes, whatever its entry count: 512
# stage entries of 128 px faces are ~25 MB, but a count alone bounds no bytes (larger stage
# images, a crowd's 40 aligned faces in one detection entry).
CACHE_BYTES = 64 * 2**20


def held_bytes(value, _depth: int = 0) -> int:
    """Bytes of the numpy arrays a cached value holds: arrays, and those in tuples, lists, dicts
    and objects' fields (FaceStages, AlignedFace, Face), a few levels deep."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if _depth > 4 or value is None or isinstance(value, (str, bytes, int, float, bool)):
        return 0
    if isinstance(value, dict):
        value = value.values()
    elif hasattr(value, "__dict__"):
        value = vars(value).values()
    elif not isinstance(value, (tuple, list)):
        return 0
    return sum(held_bytes(v, _depth + 1) for v in value)


class LRUCache:
    """Small thread-safe LRU map, bounded by entries (maxsize; 0 keeps nothing) and, when
    max_bytes is given, by the image bytes its values hold (held_bytes; an entry larger than
    that is not kept); counts hits and misses (handy in tests and the bench)."""

    def __init__(self, maxsize: int, max_bytes: int | None = None):
        self.maxsize = max(0, int(maxsize))
        self.max_bytes = None if max_bytes is None else max(0, int(max_bytes))
        self.bytes = 0
        self._data: OrderedDict = OrderedDict()
        self._sizes: dict = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key, default=None):
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
            return default

    def put(self, key, value) -> None:
        size = held_bytes(value)
        with self._lock:
            self.bytes += size - self._sizes.get(key, 0)
            self._data[key], self._sizes[key] = value, size
            self._data.move_to_end(key)
            while self._data and (len(self._data) > self.maxsize
                                  or (self.max_bytes is not None and self.bytes > self.max_bytes)):
                old, _ = self._data.popitem(last=False)
                self.bytes -= self._sizes.pop(old)

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._sizes.clear()
            self.bytes = 0


def image_key(rgb: np.ndarray) -> str:
    """Content hash of a decoded image: the same photo uploaded twice hits the cache."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(rgb.shape).encode())
    h.update(np.ascontiguousarray(rgb).tobytes())
    return h.hexdigest()


def stage_key(method: Method, stage: str, face_key: Hashable, s) -> tuple:
    """Everything a stage's output depends on, read off the method's stage table."""
    return (method.name, stage, face_key) + tuple((f, getattr(s, f)) for f in method.key_fields(stage))

