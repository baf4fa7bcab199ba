"""bench.load end to end, tiny: the app in a subprocess, two concurrent API clients, one small
photo each; every request must succeed and every number must be plausible."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio_client")

from bench import load  # noqa: E402 (only once gradio_client is known to be there)


def test_two_clients_one_request_each(tmp_path):
    out = tmp_path / "load.json"
    t0 = time.monotonic()
    rep = load.main(["--clients", "2", "--requests", "1", "--settle", "1", "--timeout", "120",
                     "--sample-ms", "50", "--no-warm", "--json", str(out)])
    took = time.monotonic() - t0
    assert rep.ok == 2 and rep.failed == 0, rep.errors
    assert rep.faces_per_request >= 1  # the example astronaut has a face
    assert 0 < rep.latency_median_s <= rep.latency_max_s < 120
    # memory: an idle app with torch and Gradio loaded is 100s of MB, never GBs
    assert 100 < rep.rss_idle_mb <= rep.rss_baseline_mb * 1.05 < 3000
    assert rep.rss_peak_sampled_mb >= rep.rss_baseline_mb * 0.9
    if rep.rss_peak_hwm_mb is not None:  # the kernel's exact peak is at least any sample
        assert rep.rss_peak_hwm_mb >= rep.rss_peak_sampled_mb * 0.98
    assert rep.rss_after_mb < rep.rss_baseline_mb + 300
    # disk: the results folder holds the restored photos, and is part of all temp files
    assert 0 < rep.disk_results_peak_mb <= rep.disk_all_peak_mb < 200
    assert json.loads(out.read_text())["ok"] == 2
    assert took < 120, f"the tiny bench run took {took:.0f} s"


def test_photo_variants_differ_in_pixels_only_in_a_corner(tmp_path):
    paths = load.photo_variants(load.SMALL_PHOTO, 3, tmp_path)
    assert len(set(p.read_bytes() for p in paths)) == 3
    with Image.open(load.SMALL_PHOTO) as im:
        original = np.asarray(im.convert("RGB")).astype(int)
    for p in paths:
        with Image.open(p) as im:
            assert im.format == "JPEG"
            rgb = np.asarray(im).astype(int)
        assert rgb.shape == original.shape
        assert np.abs(rgb[16:, 16:] - original[16:, 16:]).mean() < 2  # re-encoded, otherwise the same
    assert load.photo_variants(load.SMALL_PHOTO, 3, tmp_path) == paths  # made once


def test_synthetic_photo_is_made_once(tmp_path):
    first = load.synthetic_photo(0.5, "png", tmp_path)
    stamp = first.stat().st_mtime_ns
    again = load.synthetic_photo(0.5, "png", tmp_path)
    assert again == first and again.stat().st_mtime_ns == stamp
    with Image.open(first) as im:
        assert abs(im.width * im.height - 0.5e6) < 0.02e6 and im.mode == "RGB"
