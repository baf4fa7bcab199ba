"""What the app keeps between requests is bounded in bytes, not only in entries: the photo
path's caches (photo.LRUCache, PhotoRestorer)."""
from __future__ import annotations

import numpy as np
import pytest

from diffbfr import methods
from diffbfr.photo import PhotoRestorer
from diffbfr.stage_cache import CACHE_BYTES, LRUCache, held_bytes

FACE = 128 * 128 * 3


def entry(i: int):
    """A stage cache entry: (image, info), as restore_faces stores it."""
    return np.full((128, 128, 3), i % 256, np.uint8), {}


def test_held_bytes_counts_the_arrays_a_value_holds():
    img, info = entry(0)
    assert held_bytes((img, info)) == FACE
    assert held_bytes([(img, {}), {"a": img[:64]}]) == FACE + FACE // 2
    assert held_bytes((None, 1.5, "x")) == 0


def test_a_cache_is_bounded_in_bytes_whatever_its_entry_count():
    cache = LRUCache(512, max_bytes=20 * FACE)
    for i in range(100):
        cache.put(i, entry(i))
        assert cache.bytes <= 20 * FACE
    assert len(cache) == 20 and cache.bytes == 20 * FACE
    assert cache.get(99) is not None and cache.get(79) is None      # oldest out first
    cache.put(99, entry(1))                                           # replacing counts once
    assert cache.bytes == 20 * FACE
    cache.put("huge", (np.zeros((1000, 1000, 3), np.uint8), {}))      # larger than the bound: not kept
    assert cache.get("huge") is None and cache.bytes <= 20 * FACE
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0


def test_count_bound_alone_when_no_byte_bound_is_given():
    cache = LRUCache(3)
    for i in range(5):
        cache.put(i, entry(i))
    assert len(cache) == 3 and cache.bytes == 3 * FACE


@pytest.fixture(scope="module")
def tiny_model():
    return methods.tiny("diffbfr", seed=0)


def test_the_photo_paths_caches_are_bounded_in_bytes(tiny_model):
    r = PhotoRestorer(tiny_model)
    assert {c.max_bytes for c in (r.stages, r.identities, r.estimates, r.detections)} == {CACHE_BYTES}
    shared = LRUCache(32)                     # the app shares one detection cache between methods
    PhotoRestorer(tiny_model, detections=shared, cache_bytes=10 * FACE)
    assert shared.max_bytes == 10 * FACE
    small = PhotoRestorer(tiny_model, cache_bytes=6 * FACE)
    faces = [entry(i)[0] for i in range(4)]
    from diffbfr.photo import restore_faces
    restore_faces(tiny_model, faces, None, small.stages, [("k", i) for i in range(4)])
    assert small.stages.bytes <= 6 * FACE and len(small.stages) >= 1
